"""Dialing: when to open a session to a peer, how often to try, and presence.

Rules:
- A peer is dialled while something is owed to it (its outbox queue) or, with the
  ``presence`` setting, while it is a contact we keep a session open to: known, not
  blocked, not marked v1 (the original client never keeps a session) and with an
  address. ``contacts_changed`` re-reads the address book (at start, and whenever a
  contact is added, changed, blocked, unblocked or removed): new contacts are dialled,
  the loops of contacts no longer wanted end at their next check.
- Each failed attempt waits an exponential backoff with jitter (0.8-1.2) between
  ``reconnect_min`` and ``reconnect_max``; an established session resets it. A down
  contact is so tried less and less often; one that starts dials us (it does the same
  at its own start), so presence is right within a handshake either way.
- When a contact's last session ends, it is dialled again after about
  ``reconnect_min``: a contact that only lost its connection is back at once; one that
  stopped is tried with growing pauses until it dials us on its return.
- Presence dials (nothing owed) take one of ``presence_dials`` places, so a node with
  many contacts opens at most that many connections at once; dials that carry messages
  never wait for a place.
- A peer that throttles us (THROTTLE) is not dialled, for messages or presence, until
  its wait is over.
- ``retry_now`` ends a pause at once and resets the backoff (the user's "retry").
- ``extra`` adds a session to a peer that has one (a file's data then moves apart from
  the chats): one try of the stored addresses, no backoff, a failure only logged.
- While messages wait and a try failed, ``Retrying`` tells the faces when the next is.
- ``try_seen`` tries an offline contact once at an address LAN discovery heard it
  announce (at most one such try per contact per SEEN_PAUSE); only when the handshake
  there authenticates the contact is the address stored (``store.learn_address``).
"""

import asyncio
import logging
import random

from enclave.node.events import Retrying
from enclave.node.transport import Link
from enclave.protocol.crypto import PeerKey

log = logging.getLogger("enclave.node.dialing")
# Seconds between extra-session dials to one peer. A peer that keeps one session per
# contact replaces its old one with ours (the chunks asked there are asked again on the
# new one): that churn is allowed at most this often.
EXTRA_PAUSE = 60.0
# Seconds between tries of one contact at addresses it was heard announcing: anyone on
# the LAN may announce a contact's fingerprint, and each try costs a handshake.
SEEN_PAUSE = 10.0


class Dialer:
    def __init__(self, sessions) -> None:
        self.sessions = sessions
        self.s = sessions.s
        self.contacts: frozenset[bytes] = frozenset()  # peers presence keeps a session to
        self.tasks: dict[bytes, asyncio.Task] = {}
        self._backoff: dict[bytes, float] = {}
        self._pauses: dict[bytes, asyncio.Future] = {}
        self._next_try: dict[bytes, float] = {}  # loop time of a peer's next attempt
        self._places = asyncio.Semaphore(self.s.presence_dials)
        self.extras: dict[bytes, asyncio.Task] = {}  # extra-session dials under way
        self._extra_after: dict[bytes, float] = {}  # loop time the next one may start
        self.seen_tries: dict[bytes, asyncio.Task] = {}  # try_seen dials under way
        self._seen_after: dict[bytes, float] = {}  # loop time the next one may start
        # Where LAN discovery heard a peer announce itself (set by the node; none without).
        self.heard = lambda peer: ()

    # --- what to dial -------------------------------------------------------------------

    def contacts_changed(self) -> None:
        """Re-read the address book: dial new contacts, let go of the others."""
        s = self.sessions
        if not self.s.presence or s.closing:
            self.contacts = frozenset()
        else:
            self.contacts = frozenset(
                bytes.fromhex(p.fingerprint)
                for p in s.store.list_peers()
                if not p.blocked and p.proto != "v1" and p.dial_addresses
            )
        for peer in self.contacts:
            self.dial(peer)
        for peer in list(self._pauses):
            if not self.wanted(peer):
                self._wake(peer)  # its loop sees it is not wanted and ends

    def wanted(self, peer: bytes) -> bool:
        s = self.sessions
        if s.closing or s.online(peer) or peer in s.delivery.throttles:
            return False  # (a peer that throttles us is dialled when its wait is over)
        return bool(s.delivery.queues.get(peer)) or peer in self.contacts

    def retry_in(self, peer: bytes) -> float | None:
        """Seconds until the next attempt to reach ``peer``, or None when none waits."""
        at = self._next_try.get(peer)
        if at is None:
            return None
        return max(0.0, at - asyncio.get_running_loop().time())

    # --- what sessions report -----------------------------------------------------------

    def session_up(self, peer: bytes) -> None:
        self._backoff.pop(peer, None)
        self._wake(peer)  # a loop pausing for this peer ends: it is online

    def session_lost(self, peer: bytes) -> None:
        """The peer's last session ended: reach it again if we keep one to it."""
        if peer in self.contacts and self.wanted(peer):
            self.dial(peer, pause=self.s.reconnect_min * random.uniform(0.8, 1.2))

    def retry_now(self, peer: bytes) -> bool:
        """Try ``peer`` at once, from the smallest backoff; False if it is not wanted."""
        self._backoff.pop(peer, None)
        if not self.wanted(peer):
            return False
        if not self._wake(peer):
            self.dial(peer)
        return True

    def forget(self, peer: bytes) -> None:
        """Stop a dial under way to ``peer`` (blocked or removed) and its backoff."""
        for tasks in (self.tasks, self.extras, self.seen_tries):
            task = tasks.pop(peer, None)
            if task is not None:
                task.cancel()
        self._backoff.pop(peer, None)

    def _wake(self, peer: bytes) -> bool:
        pause = self._pauses.get(peer)
        if pause is None or pause.done():
            return False
        pause.set_result(None)
        return True

    # --- the loop -----------------------------------------------------------------------

    def dial(self, peer: bytes, pause: float = 0.0) -> None:
        s = self.sessions
        if s.closing or peer in self.tasks or s.online(peer):
            return
        task = asyncio.get_running_loop().create_task(
            self._dial(peer, pause), name=f"dial-{peer.hex()[:8]}"
        )
        self.tasks[peer] = task

    async def _dial(self, peer: bytes, pause: float) -> None:
        try:
            if pause:
                await self._pause(peer, pause)
            # ``closing`` (in ``wanted``) too: on 3.11 a cancel that lands as the connect
            # fails is swallowed by wait_for, and the loop would sleep into the shutdown.
            while self.wanted(peer):
                if await self._attempt(peer):
                    self._backoff.pop(peer, None)
                    return
                if not self.wanted(peer):
                    return
                self._try_heard(peer)
                delay = self._delay(peer)
                if self.sessions.delivery.queues.get(peer):
                    self.sessions.publish(Retrying(peer.hex(), delay))
                await self._pause(peer, delay)
        finally:
            if self.tasks.get(peer) is asyncio.current_task():
                del self.tasks[peer]

    def _delay(self, peer: bytes) -> float:
        """The next pause: twice the last (from ``reconnect_min``), at most
        ``reconnect_max``, with jitter."""
        delay = min(self.s.reconnect_max, self._backoff.get(peer, self.s.reconnect_min / 2) * 2)
        self._backoff[peer] = delay
        return delay * random.uniform(0.8, 1.2)

    async def _pause(self, peer: bytes, delay: float) -> None:
        """Wait ``delay`` seconds, or until ``_wake`` (backoff, not synchronisation)."""
        loop = asyncio.get_running_loop()
        pause = self._pauses[peer] = loop.create_future()
        self._next_try[peer] = loop.time() + delay
        timer = loop.call_later(delay, _settle, pause)
        try:
            await pause
        finally:
            timer.cancel()
            self._pauses.pop(peer, None)
            self._next_try.pop(peer, None)

    async def _attempt(self, peer: bytes) -> bool:
        if self.sessions.delivery.queues.get(peer):
            return await self._dial_once(peer)  # messages wait: no place needed
        async with self._places:
            if not self.wanted(peer):
                return self.sessions.online(peer)
            return await self._dial_once(peer)

    async def _dial_once(self, peer: bytes) -> bool:
        """One round: the learned address first, then the given one (the fallback)."""
        s = self.sessions
        record = s.store.get_peer(peer.hex())
        key = s.policy.keys.get(peer)
        if record is None or key is None or record.blocked:
            return False
        for address in record.dial_addresses:
            if s.closing:
                return False
            if await self._dial_at(peer, key, address):
                if address != record.learned_address and record.learned_address:
                    # Reached where the user said, not where it was seen: forget that.
                    s.policy.background(s.store.learn_address, peer.hex(), None)
                return True
        return False

    async def _dial_at(self, peer: bytes, key: PeerKey, address: str) -> bool:
        s = self.sessions
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        loop = asyncio.get_running_loop()
        try:
            _, link = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Link(s, s._initiator(key), dialled=peer), host, int(port)
                ),
                timeout=s.limits.handshake_timeout,
            )
        except (TimeoutError, OSError) as err:
            log.info("dial %s at %s failed: %s", peer.hex()[:16], address, err)
            return False
        return await link.established

    # --- one more session ----------------------------------------------------------------

    def extra(self, peer: bytes) -> None:
        """Open one more session to an online peer (a file's data then has its own, and
        chats keep theirs): at most one such dial per peer at once, one per EXTRA_PAUSE.
        ``dial`` does nothing for an online peer: it keeps one session, this adds one."""
        s = self.sessions
        if s.closing or peer in self.extras or not s.online(peer):
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now < self._extra_after.get(peer, 0.0):
            return
        self._extra_after[peer] = now + EXTRA_PAUSE
        task = loop.create_task(self._extra(peer), name=f"extra-{peer.hex()[:8]}")
        self.extras[peer] = task

    async def _extra(self, peer: bytes) -> None:
        try:
            if not await self._dial_once(peer):
                log.info("no extra session to %s: the one there is carries all", peer.hex()[:16])
        except Exception as err:  # noqa: BLE001 - an optimisation: the session there works
            log.info("extra session to %s failed: %r", peer.hex()[:16], err)
        finally:
            if self.extras.get(peer) is asyncio.current_task():
                del self.extras[peer]

    # --- an address heard on the LAN -----------------------------------------------------

    def _try_heard(self, peer: bytes) -> None:
        """Its stored addresses failed: try one where discovery heard it, if any."""
        record = self.sessions.store.get_peer(peer.hex())
        known = set(record.dial_addresses) if record is not None else set()
        for address in self.heard(peer):
            if address not in known:
                self.try_seen(peer, address)
                return

    def try_seen(self, peer: bytes, address: str) -> bool:
        """Dial an offline contact at ``address`` (heard announced); False when not now."""
        s = self.sessions
        if s.closing or s.online(peer) or peer in self.seen_tries:
            return False
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now < self._seen_after.get(peer, 0.0):
            return False
        if len(self._seen_after) >= 4096:  # contacts only, but bounded all the same
            self._seen_after = {p: t for p, t in self._seen_after.items() if t > now}
        self._seen_after[peer] = now + SEEN_PAUSE
        task = loop.create_task(self._try_seen(peer, address), name=f"seen-{peer.hex()[:8]}")
        self.seen_tries[peer] = task
        return True

    async def _try_seen(self, peer: bytes, address: str) -> None:
        s = self.sessions
        try:
            key = s.policy.keys.get(peer)
            if key is None or not await self._dial_at(peer, key, address):
                return
            # Authenticated there: that is where it is now (the given address stays the fallback).
            log.info("contact %s found on the LAN at %s", peer.hex()[:16], address)
            s.policy.background(s.store.learn_address, peer.hex(), address)
        finally:
            if self.seen_tries.get(peer) is asyncio.current_task():
                del self.seen_tries[peer]

    async def close(self) -> None:
        tasks = [*self.tasks.values(), *self.extras.values(), *self.seen_tries.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _settle(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
