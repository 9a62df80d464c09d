"""Pairing by short code, the node's part: the invitations it holds (inviter side),
joining another node's invitation (joiner side), and what both end in: a verified
contact. The exchange itself is the sans-IO ``protocol.pairing``.

Rules:
- An invitation lives ``pairing.LIFETIME_S`` (10 minutes) or until it is done, failed
  or cancelled; at most MAX_INVITATIONS are open at once, each with its own nameplate.
- A pairing connection (its first frame carries ``pairing.MAGIC``) is bound to the
  invitation its HELLO names. A HELLO for no open invitation is refused with a logged
  reason and the connection closed; so is a HELLO over the source's budget
  (ATTEMPTS per ATTEMPT_WINDOW per source address), before any SPAKE2 work.
- One code is one guess: once a HELLO has been answered, the invitation ends with its
  connection, whatever happens next (wrong code, a refused message, a connection that
  closes early). The inviter is told why and makes a new code.
- A finished pairing adds the other side as a verified contact: the name on its card
  when that is a valid peer name not taken (else none); its address is the host the
  joiner came from (inviter side) or the one we dialled (joiner side), with the port
  its card gives. A card with our own key is refused.
- The code is never logged, nor put in an event or an exception.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from enclave.errors import PeerError, UsageError, UserError
from enclave.node.addresses import parse_address
from enclave.node.transport import source_key
from enclave.protocol import pairing as P

log = logging.getLogger("enclave.pairing")


def parse_code(text: str) -> P.Code:
    """A typed code, checked (every face asks this before anything starts); a one-line
    UserError for what is not a code at all. A wrong code is only known by trying it."""
    try:
        return P.parse_code(text)
    except UsageError as err:
        raise UserError(str(err)) from None


MAX_INVITATIONS = 8
ATTEMPTS = 5  # HELLOs one source may send per ATTEMPT_WINDOW, whatever their nameplate
ATTEMPT_WINDOW = 60.0
JOIN_TIMEOUT = 15.0
FIND_SECONDS = 5.0  # how long a joiner without an address listens for the inviter  # a joiner's whole exchange, from connecting to the inviter's DONE
_FRAME_LIMIT = len(P.MAGIC) + P.MAX_MESSAGE_BYTES


@dataclass(frozen=True, slots=True)
class Paired:
    """How a pairing ended: the new contact's fingerprint (hex) and name, or the reason
    it failed ("wrong_code", "cancelled", "expired", "interrupted")."""

    fingerprint: str | None = None
    name: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PairingEnded:
    """An invitation of this node ended (the event the faces show)."""

    nameplate: int
    result: Paired


class Invitation:
    """One open invitation: its code (for the face that shows it), its inviter side,
    and ``result``, a future that gets the Paired it ends in."""

    def __init__(self, code: str, side: P.Inviter) -> None:
        self.code = code
        self.nameplate = side.nameplate
        self.side = side
        self.deadline = time.time() + P.LIFETIME_S
        self.result: asyncio.Future[Paired] = asyncio.get_running_loop().create_future()
        self.link = None  # the connection its HELLO came on
        self.timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:  # never the code
        return f"Invitation(nameplate={self.nameplate})"


class Attempts:
    """HELLOs per source address in a sliding window: a bounded table of deques."""

    def __init__(self, limit: int = ATTEMPTS, window: float = ATTEMPT_WINDOW) -> None:
        self.limit, self.window = limit, window
        self._seen: dict[str, deque] = {}

    def allow(self, source: str, now: float) -> bool:
        times = self._seen.setdefault(source, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        if len(self._seen) > 4096:  # forget sources with nothing in the window
            self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - self.window}
        return True


class Pairing:
    """The node's invitations and joins; ``add`` makes a verified contact of a card
    (``add(card, address) -> Paired``), ``publish`` tells the faces."""

    def __init__(self, own_card, add, publish, changed=lambda nameplates: None) -> None:
        self.own_card = own_card  # () -> the Card this node hands out
        self.add = add
        self.publish = publish
        self.changed = changed  # (open nameplates) -> None: what the LAN announcement says
        self.open: dict[int, Invitation] = {}
        self.attempts = Attempts()

    # --- inviter ---------------------------------------------------------------------

    def invite(self) -> Invitation:
        if len(self.open) >= MAX_INVITATIONS:
            raise UserError(f"{MAX_INVITATIONS} invitations are open already; cancel one first")
        code = P.new_code(P.random_bytes, taken=self.open.keys())
        side = P.Inviter(code, self.own_card(), time.time())
        side.start()
        inv = Invitation(code, side)
        self.open[inv.nameplate] = inv
        loop = asyncio.get_running_loop()
        inv.timer = loop.call_at(loop.time() + P.LIFETIME_S, self._expire, inv)
        self.changed(sorted(self.open))
        log.info("invitation %d open for %d s", inv.nameplate, P.LIFETIME_S)
        return inv

    def cancel(self, nameplate: int) -> bool:
        inv = self.open.get(nameplate)
        if inv is None:
            return False
        for message in inv.side.cancel():
            if inv.link is not None and not inv.link.conn.closed:
                inv.link.conn.send_pairing(message)
        self._end(inv, Paired(reason="cancelled"))
        return True

    def close(self) -> None:
        for nameplate in list(self.open):
            self.cancel(nameplate)

    def _expire(self, inv: Invitation) -> None:
        if self.open.get(inv.nameplate) is inv:
            self._end(inv, Paired(reason="expired"))

    def _end(self, inv: Invitation, result: Paired) -> None:
        if self.open.get(inv.nameplate) is inv:
            del self.open[inv.nameplate]
            self.changed(sorted(self.open))
        if inv.timer is not None:
            inv.timer.cancel()
        if inv.link is not None:
            inv.link.close("pairing_over")
        if not inv.result.done():
            inv.result.set_result(result)
            self.publish(PairingEnded(inv.nameplate, result))
        log.info("invitation %d ended: %s", inv.nameplate, result.reason or "paired")

    # --- a pairing connection --------------------------------------------------------

    def on_frame(self, link, message: bytes) -> None:
        """One pairing message on ``link`` (an accepted connection)."""
        inv = next((i for i in self.open.values() if i.link is link), None)
        if inv is None:
            inv = self._bind(link, message)
            if inv is None:
                return
        try:
            answers = inv.side.receive(message, time.time())
        except PeerError as err:
            # Refused unjudged (malformed, out of order, replayed): the side is as it was.
            # Before a HELLO was answered the invitation waits on; after, this run cannot
            # finish, and one code is one guess: the invitation ends.
            log.info("pairing from %s refused: %s", link.address, err.reason)
            if inv.side.answered:
                self._end(inv, Paired(reason="interrupted"))
            else:
                inv.link = None
                link.close(err.reason)
            return
        for answer in answers:
            link.conn.send_pairing(answer)
        link.schedule_flush()
        if inv.side.done is not None:
            self._end(inv, self._paired(inv.side.done, link))
        elif inv.side.failed is not None:
            self._end(inv, Paired(reason=inv.side.failed))

    def _bind(self, link, message: bytes) -> Invitation | None:
        try:
            kind, nameplate, *_ = P.decode_message(message)
        except PeerError as err:
            return self._refuse(link, err.reason)
        if kind != P.HELLO:
            return self._refuse(link, "pairing_unexpected")
        if not self.attempts.allow(source_key(str(link.address)), time.monotonic()):
            return self._refuse(link, "pairing_rate_limited")
        inv = self.open.get(nameplate)
        if inv is None or inv.link is not None:
            return self._refuse(link, "pairing_no_invitation")
        inv.link = link
        return inv

    def _refuse(self, link, reason: str) -> None:
        log.info("pairing connection from %s refused: %s", link.address, reason)
        link.close(reason)
        return None

    def link_closed(self, link) -> None:
        for inv in list(self.open.values()):
            if inv.link is link:
                if inv.side.answered:
                    self._end(inv, Paired(reason="interrupted"))
                else:
                    inv.link = None

    def _paired(self, card: P.Card, link) -> Paired:
        peername = link.transport.get_extra_info("peername") if link.transport else None
        host = peername[0] if peername else None
        return self._add(card, _address(host, card))

    def _add(self, card: P.Card, address: str | None) -> Paired:
        try:
            return self.add(card, address)
        except UserError as err:
            log.warning("a paired contact could not be added: %s", err)
            return Paired(reason=str(err))

    # --- joiner ----------------------------------------------------------------------

    async def join(self, code: str, address: str | None) -> Paired:
        """Join the invitation ``code`` of the node at ``address`` (HOST:PORT), or of the
        one node on the LAN that announces its number (None)."""
        parsed = parse_code(code)
        where = parse_address(address or await find_one_inviter(parsed.nameplate))
        side = P.Joiner(parsed, self.own_card(), time.time())
        try:
            await asyncio.wait_for(self._run_joiner(side, where), JOIN_TIMEOUT)
        except TimeoutError:
            raise UserError(
                f"the inviter at {where} did not finish in {JOIN_TIMEOUT:.0f} s"
            ) from None
        except OSError as err:
            raise UserError(f"cannot reach the inviter at {where}: {err.strerror or err}") from None
        if side.done is None:
            raise UserError(_FAILED.get(side.failed, f"pairing failed: {side.failed}"))
        result = self._add(side.done, str(where))
        if result.reason is not None:
            raise UserError(result.reason)
        return result

    async def _run_joiner(self, side: P.Joiner, where) -> None:
        reader, writer = await asyncio.open_connection(where.host, where.port)
        try:
            _write(writer, side.start())
            while side.done is None and side.failed is None:
                message = await _read(reader)
                if message is None:
                    raise UserError(
                        f"the node at {where} ended the pairing: no invitation with that "
                        "number is open there, or it ended (ask for a new code)"
                    )
                try:
                    _write(writer, side.receive(message, time.time()))
                except PeerError as err:
                    raise UserError(f"the inviter's answer was refused ({err.reason})") from None
            await writer.drain()
        finally:
            writer.close()


async def find_one_inviter(nameplate: int, seconds: float = FIND_SECONDS) -> str:
    """The address of the one node nearby announcing an invitation numbered
    ``nameplate``. Two such nodes are not guessed between: a try at the wrong one would
    spend that person's code, so the user names the address."""
    from enclave.node.discovery import find_inviter

    found = await find_inviter(nameplate, seconds)
    if not found:
        raise UserError(
            f"no invitation numbered {nameplate} heard on this network in {seconds:.0f} s; "
            "give the inviter's address: --peer-address HOST:PORT"
        )
    if len(found) > 1:
        raise UserError(
            f"{len(found)} nodes announce an invitation numbered {nameplate} "
            f"({', '.join(found[:4])}); give the inviter's address: --peer-address HOST:PORT"
        )
    return found[0]


_FAILED = {
    "wrong_code": "wrong code: that invitation is now used up; ask for a new code",
    "cancelled": "the inviter cancelled the invitation",
    "expired": "the invitation expired; ask for a new code",
}


def _address(host: str | None, card: P.Card) -> str | None:
    """Where a paired contact is dialled: ``host`` on the port its card gives."""
    if not host or not card.addresses:
        return None
    port = card.addresses[0].rpartition(":")[2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _write(writer, messages) -> None:
    for message in messages:
        data = P.MAGIC + message
        writer.write(len(data).to_bytes(4, "big") + data)


async def _read(reader) -> bytes | None:
    """The next pairing message, or None at the end of the stream."""
    try:
        head = await reader.readexactly(4)
        size = int.from_bytes(head, "big")
        if size > _FRAME_LIMIT:
            raise UserError("the inviter sent an oversized pairing message")
        data = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionResetError):
        return None
    if data[:4] != P.MAGIC:
        raise UserError("the node at that address does not speak pairing")
    return data[4:]
