"""The REPL's commands and what it prints: parsing, rendering, no terminal handling.

Rules:
- ``Commands.execute(line)`` runs one typed line and returns False when the user quits.
  It prints only through ``write(text)`` and asks follow-up questions only through
  ``ask(question, completer)``, so tests drive it without a terminal.
- A person's mistake (``UserError``) prints one line, ``error: ...``. Nothing a person
  types can end the REPL or print a traceback: anything unexpected is one line too.
- Peer text is shown as text: control characters, escape sequences, bidi overrides and
  zero-width characters are shown as ``⟨U+XXXX⟩`` (``display.visible``), never sent
  to the terminal. A creation time outside ``display.created_time``'s window is shown
  as "unknown time" beside the receive time.
- One message that cannot be shown is one line saying so: the others still print.
- The seed's wording is kept where it gives one (``Broadcasting to N peer(s)...``,
  ``Broadcast complete: n/N sent successfully``).
- Faces call the Node only (``/retry`` is ``Node.retry_now``).
- ``/peers`` shows a peer online, or when it was last seen, and what waits for it with
  when it is tried next ("2 queued, retrying in 8 s").
"""

from __future__ import annotations

import asyncio
import math
import shlex
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from enclave.errors import UserError
from enclave.faces import nearby, repl_contacts, repl_files, repl_groups, repl_pairing
from enclave.identity import keys
from enclave.node import PairingEnded, check_text
from enclave.node.display import message_ref, message_time, timer_line, visible
from enclave.node.events import (
    ContactChanged,
    DeliveryChanged,
    FileChanged,
    GroupChanged,
    GroupMessageReceived,
    GroupMessagesExpired,
    KeyChanged,
    MessageDeleted,
    MessageReceived,
    MessagesExpired,
    MessagesRead,
    NodeProblem,
    PeerOffline,
    PeerOnline,
    Throttled,
    TimerChanged,
)

MAX_PEER_KEY_BYTES = 64 * 1024
HISTORY_DEFAULT = 20
BROADCAST_WAIT = 5.0  # seconds /broadcast waits for copies to go out before reporting
HISTORY_MAX = 1000
DAY_TIME = "%Y-%m-%d %H:%M"
# Why a peer's node throttles us (Throttled.reason), as the REPL says it.
THROTTLE_WHY = {
    "rate": "rate (too many messages a second)",
    "volume": "volume (too many bytes a second)",
    "storage": "storage (its quota for your messages is full)",
}

HELP = f"""\
Commands (Tab completes commands and contacts; PEER is a name or 8+ hex digits of a
fingerprint):
  /send PEER MESSAGE     send to one contact                  /send bob See you at 5
  /reply PEER REF MSG    answer one message (quoting it)       /reply bob #k3f9 Yes
  /broadcast MESSAGE     send to every contact (not blocked)  /broadcast Lunch is here
{repl_files.HELP}
{repl_groups.HELP}
  /peers                 contacts: address, online or last seen, verified, protocol, unread
  /unread                conversations with messages you have not seen
  /history PEER [N]      the last N messages with a contact   /history bob 50
  /history PEER off|on   off: its messages are shown, then    /history bob off
                         kept nowhere here (new ones only;
                         /clear PEER erases what is kept)
  /add [FILE ADDRESS [NAME]]
                         add a contact from its public key    /add bob.pem 10.0.0.2:8000 bob
  /fingerprint           your fingerprint, to read aloud
  /verify PEER           safety number (with QR), mark verified /verify bob
{repl_pairing.HELP}
  /retry [PEER]          send failed ones again, try now      /retry bob
{repl_contacts.HELP}
{nearby.HELP}
  /stats                 numbers of this node
  /help                  this list
  /quit                  leave (Ctrl-D too); queued messages wait in the outbox
What you send shows first, then its state changes, each with the message's short
reference (#k3f9): sent (on its way), delivered (your contact stored it), or failed
with the reason. Messages shown while a conversation is open (your last /send or
/history) are read; others count as unread until you open them.
Messages marked "legacy v1" come from the original client: no forward secrecy and a
weaker sender binding than Enclave's own protocol."""

COMMANDS = (
    "/send",
    "/reply",
    "/broadcast",
    "/peers",
    "/unread",
    "/add",
    "/history",
    "/fingerprint",
    "/verify",
    "/invite",
    "/join",
    "/retry",
    "/file",
    "/files",
    "/accept",
    "/decline",
    "/cancel",
    "/group",
    "/groups",
    "/g",
    "/ghistory",
    "/gfile",
    "/rename",
    "/block",
    "/unblock",
    "/remove",
    "/clear",
    "/delete",
    "/receipts",
    "/disappear",
    "/nearby",
    "/stats",
    "/help",
    "/quit",
)
PEER_COMMANDS = (
    "/send",
    "/reply",
    "/file",
    "/history",
    "/verify",
    "/rename",
    "/block",
    "/unblock",
    "/remove",
    "/clear",
    "/delete",
    "/receipts",
    "/disappear",
)

Write = Callable[[str], None]
Ask = Callable[..., Awaitable[str]]


class Quit(Exception):
    """Raised by a handler to leave the REPL."""


class Commands:
    def __init__(self, node, write: Write, ask: Ask | None = None) -> None:
        self.node = node
        self.write = write
        self.ask = ask
        self.unread: Counter[str] = Counter()  # fingerprint -> received, not yet seen
        self.mine: dict[int, str] = {}  # rowid -> state, for messages sent here
        # The open conversation: the last /send or /history target. What it receives is
        # read as it is shown, so it does not count as unread.
        self.open_peer: str | None = None
        self._broadcast: list | None = None  # a /broadcast under way: [text, outcome]
        # rowid of a broadcast copy -> its broadcast's outcome [delivered, ended, copies]
        self._copies: dict[int, list[int]] = {}
        self._legacy_noted: set[str] = set()
        self._files = repl_files.FileLines(self)
        self._groups = repl_groups.GroupLines(self, _clock)

    # --- running a line ---------------------------------------------------------------

    async def execute(self, line: str) -> bool:
        """Run one typed line; False when the user asked to quit."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/"):
            self.write("To send, type /send PEER MESSAGE (or /help for every command)")
            return True
        name, _, rest = line.partition(" ")
        handler = _HANDLERS.get(name.lower())
        if handler is None:
            self.write(f"error: unknown command {_clean(name)!r}; type /help for the list")
            return True
        try:
            await handler(self, rest.strip())
        except Quit:
            return False
        except UserError as err:
            self.write(f"error: {_one_line(str(err))}")
        except (EOFError, KeyboardInterrupt):
            self.write(f"{name} cancelled")
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - the REPL must outlive any bug
            self.write(
                f"error: {name} failed unexpectedly ({type(err).__name__}: "
                f"{_one_line(str(err))}); the chat keeps running"
            )
        return True

    # --- commands ---------------------------------------------------------------------

    def take_peer(self, rest: str) -> tuple[str, str]:
        """The peer a command's text starts with, and the text after it: a word, a
        quoted name ("Ana María"), or a contact's name with spaces as it is (the
        longest contact name the words start with)."""
        return take_peer(rest, {p.name for p in self.node.contacts() if p.name})

    async def cmd_reply(self, rest: str) -> None:
        """``/reply PEER REF MESSAGE``: a message that quotes another of the conversation."""
        peer, after = self.take_peer(rest)
        ref, _, text = after.strip().partition(" ")
        if not peer or not ref or not text.strip():
            raise UserError("usage: /reply PEER REF MESSAGE (the #ref /history shows)")
        check_text(text)
        sent = await self.node.send(peer, text, reply=ref)
        self._open(sent.peer)

    async def cmd_send(self, rest: str) -> None:
        peer, text = self.take_peer(rest)
        if not peer:
            raise UserError("usage: /send PEER MESSAGE")
        check_text(text)
        # The echo of the text, then each state change, come from the node's events.
        sent = await self.node.send(peer, text)
        self._open(sent.peer)

    async def cmd_broadcast(self, text: str) -> None:
        if text == "--file" or text.startswith("--file "):
            await repl_files.broadcast_file(self, text[len("--file") :])
            return
        check_text(text)
        targets = [p for p in self.node.contacts() if not p.blocked]
        if not targets:
            self.write("No peers to broadcast to; add one with /add")
            return
        self.write(f"[{_clock()}] you -> {len(targets)} peer(s): {_clean(text)}  (broadcast)")
        self._broadcast = [text, [0, 0, len(targets)]]
        try:
            sent = await self.node.broadcast(text)
        finally:
            self._broadcast = None
        # "Sent" means handed to a live session with that peer; copies for peers that
        # are offline wait in the outbox and go when the peer is back.
        n = await self.node.wait_sent(sent, BROADCAST_WAIT)
        line = f"Broadcast complete: {n}/{len(targets)} sent successfully"
        if n < len(targets):
            line += f" ({len(targets) - n} queued for offline peers)"
        self.write(line)

    async def cmd_peers(self, rest: str) -> None:
        statuses = self.node.peers()
        if not statuses:
            self.write("No peers yet. Add one with /add")
            return
        rows = [("NAME", "FINGERPRINT", "ADDRESS", "STATUS", "VERIFIED", "PROTOCOL", "UNREAD")]
        for s in statuses:
            p = s.peer
            rows.append(
                (
                    _clean(p.name or "-", lines=False)
                    + (" (blocked)" if p.blocked else "")
                    + (" (revoked)" if p.revoked else ""),
                    keys.group(p.fingerprint, 4),
                    _clean(p.address_text or "-", lines=False),
                    _presence(s),
                    "yes" if p.verified else "no",
                    "v1 (legacy)" if p.protocol == "v1" else p.protocol,
                    str(self.unread[p.fingerprint]),
                )
            )
        self.write(_table(rows))

    async def cmd_unread(self, rest: str) -> None:
        waiting = [(fp, n) for fp, n in self.unread.items() if n]
        if not waiting:
            self.write("No unread messages")
            return
        lines = [
            f"  {self.label(fp)}: {n} unread  (/history {self.label(fp)})" for fp, n in waiting
        ]
        self.write("Unread:\n" + "\n".join(lines))

    async def cmd_add(self, rest: str) -> None:
        try:
            given = shlex.split(rest)
        except ValueError as err:
            raise UserError(f"cannot read the arguments: {err}") from None
        if len(given) > 3:
            raise UserError("usage: /add [FILE ADDRESS [NAME]] (or /add alone to be asked)")
        if given:
            path, address, name = (given + [None, None])[:3]
            if address is None:
                raise UserError("usage: /add FILE ADDRESS [NAME]")
        else:
            path, address, name = await self._ask_peer()
        add_peer_from_file(self, path, address, name or None)

    async def _ask_peer(self) -> tuple[str, str, str]:
        if self.ask is None:
            raise UserError("usage: /add FILE ADDRESS [NAME]")
        from prompt_toolkit.completion import PathCompleter

        path = await self.ask("Public key file: ", completer=PathCompleter(expanduser=True))
        address = await self.ask("Address (HOST:PORT): ")
        name = await self.ask("Name (optional, Enter to skip): ")
        return path.strip(), address.strip(), name.strip()

    async def cmd_history(self, rest: str) -> None:
        query, more = self.take_peer(rest)
        parts = [query, *more.split()] if query else []
        if not parts or len(parts) > 2:
            raise UserError("usage: /history PEER [N], or /history PEER off|on")
        if len(parts) == 2 and parts[1].lower() in ("on", "off"):
            self.node.set_keep_history(parts[0], parts[1].lower() == "on")
            return  # the line is the rendering of its ContactChanged
        limit = HISTORY_DEFAULT
        if len(parts) == 2:
            if (
                not (parts[1].isascii() and parts[1].isdigit())
                or not 1 <= int(parts[1]) <= HISTORY_MAX
            ):
                raise UserError(
                    f"N must be a whole number from 1 to {HISTORY_MAX} (or on|off: keep history)"
                )
            limit = int(parts[1])
        peer = self.node.resolve(parts[0])
        await self.node.settled()
        messages = self.node.history(peer.fingerprint, limit)
        self._open(peer.fingerprint)
        label = self.label(peer.fingerprint)
        none = f"No messages with {label} {'yet' if peer.keep_history else 'kept'}"
        lines = list(_history_lines(messages, label)) or [none]
        if not peer.keep_history:
            lines.insert(0, history_off_line(label))
        self.write("\n".join(lines))

    async def cmd_fingerprint(self, rest: str) -> None:
        self.write(f"Your fingerprint: {keys.group(self.node.fingerprint)}")

    async def cmd_retry(self, rest: str) -> None:
        """Failed messages go back in the outbox, and what waits is tried at once."""
        fp = self.node.resolve(rest).fingerprint if rest else None
        done = await self.node.retry_now(fp)
        for rowid in done.requeued:
            self.mine[rowid] = "queued"
        lines = [f"Retrying {len(done.requeued)} message(s)"] if done.requeued else []
        if done.tried:
            who = ", ".join(self.label(p) for p in done.tried)
            waiting = f" ({done.waiting} message(s) waiting)" if done.waiting else ""
            lines.append(f"Trying {who} now{waiting}")
        if not done.requeued:
            lines.insert(0, "No failed messages to retry")
        self.write("\n".join(lines))

    async def cmd_stats(self, rest: str) -> None:
        stats = self.node.stats()
        lines = [f"  {line}" for line in self._rates(stats)]
        for key, value in stats.items():
            if key == "uptime":
                value = f"{value:.0f} s"
            elif isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
            lines.append(f"  {key}: {value}")
        self.write("Node statistics:\n" + "\n".join(lines))

    def _rates(self, stats: dict) -> list[str]:
        """Messages and bytes per second since the previous /stats (or the start)."""
        now = stats["uptime"]
        then, before = getattr(self, "_last_stats", (0.0, {}))
        self._last_stats = (now, stats)
        span = max(now - then, 1e-9)

        def rate(key: str) -> float:
            return (stats.get(key, 0) - before.get(key, 0)) / span

        return [
            f"over the last {span:.0f} s: {rate('rows_in'):.0f} msg/s in, "
            f"{rate('rows_out'):.0f} msg/s out, {rate('bytes_in'):.0f} B/s in, "
            f"{rate('bytes_out'):.0f} B/s out"
        ]

    async def cmd_help(self, rest: str) -> None:
        self.write(HELP)

    async def cmd_quit(self, rest: str) -> None:
        raise Quit

    # --- events -------------------------------------------------------------------------

    def label(self, fingerprint: str) -> str:
        """A peer's name, else the start of its fingerprint."""
        peer = self.node.contact(fingerprint)
        if peer is not None and peer.name:
            return _clean(peer.name, lines=False)
        return keys.group(fingerprint, 2)

    def render(self, event) -> str | None:
        """The line an event shows above the prompt (None for events not shown)."""
        if isinstance(event, MessageReceived):
            return self._render_message(event)
        if isinstance(event, DeliveryChanged):
            if event.group is not None:
                return self._groups.delivery(event, _clock())
            return self._render_delivery(event)
        if isinstance(event, GroupMessageReceived):
            return self._groups.received(event, _clock())
        if isinstance(event, GroupChanged):
            return self._groups.changed(event, _clock())
        if isinstance(event, GroupMessagesExpired):
            return self._groups.expired(event, _clock())
        if isinstance(event, FileChanged):
            return self._files.render(event, _clock())
        if isinstance(event, PeerOnline):
            return f"[{_clock()}] {self.label(event.peer)} is online"
        if isinstance(event, PeerOffline):
            return f"[{_clock()}] {self.label(event.peer)} went offline"
        if isinstance(event, NodeProblem):
            return f"[{_clock()}] note: {_one_line(event.text)}"
        if isinstance(event, PairingEnded):
            return repl_pairing.render_ended(event, _clock())
        if isinstance(event, KeyChanged):
            self._moved(event.old, event.peer)
            return repl_contacts.render_key_change(event, _clock())
        if isinstance(event, MessagesRead):
            return repl_contacts.render_read(event, self.label(event.peer), _clock())
        if isinstance(event, TimerChanged):
            return repl_contacts.render_timer(event, self.label(event.peer), _clock())
        if isinstance(event, MessagesExpired):
            return repl_contacts.render_expired(event, self.label(event.peer), _clock())
        if isinstance(event, MessageDeleted):
            return repl_contacts.render_deleted(event, self.label(event.peer), _clock())
        if isinstance(event, ContactChanged):
            if event.change == "removed":
                self.unread.pop(event.peer, None)
            return repl_contacts.render_change(event, _clock())
        if isinstance(event, Throttled):
            why = THROTTLE_WHY.get(event.reason, event.reason)
            seconds = max(1, math.ceil(event.retry_after))
            return (
                f"[{_clock()}] {self.label(event.peer)}'s node is throttling you: {why};"
                f" retrying in {seconds} s"
            )
        return None

    def _moved(self, old: str, new: str) -> None:
        """A contact's key changed: what this REPL keeps by fingerprint follows it."""
        if self.open_peer == old:
            self.open_peer = new
        if old in self.unread:
            self.unread[new] += self.unread.pop(old)

    def _open(self, fingerprint: str) -> None:
        self.open_peer = fingerprint
        self.unread.pop(fingerprint, None)
        self.node.mark_read(fingerprint)  # a read receipt, where both sides allow them

    def _render_message(self, event: MessageReceived) -> str:
        if event.peer != self.open_peer:
            self.unread[event.peer] += 1
        label = self.label(event.peer)
        mark = " (legacy v1)" if event.legacy else ""
        when = _clock(event.created_ms) if event.created_ms is not None else _unknown(_clock())
        quote = f"(re {message_ref(event.reply_to)}) " if event.reply_to else ""
        line = f"[{when}] {label}{mark}: {quote}{_indent(_clean(event.body))}"
        if event.legacy and event.peer not in self._legacy_noted:
            self._legacy_noted.add(event.peer)
            line += (
                f"\n  note: {label} uses the original client (v1): no forward secrecy and a "
                "weaker sender binding"
            )
        return line

    def _render_delivery(self, event: DeliveryChanged) -> str | None:
        """A new message's echo (its first "queued" carries the text, whoever sent
        it: this REPL, the page or ``enclave send``), then one line per state change,
        each with the message's short reference."""
        rowid, ref = event.rowid, message_ref(event.id)
        if event.state == "queued":
            if event.body is None:
                return None  # a retry: /retry or the page said so
            self.mine[rowid] = "queued"
            if self._broadcast is not None and event.body == self._broadcast[0]:
                self._copies[rowid] = self._broadcast[1]
                return None  # /broadcast printed one line for every copy
            when = _clock(event.created_ms)
            label = self.label(event.peer)
            return f"[{when}] you -> {label}: {_indent(_clean(event.body))}  ({ref})"
        self.mine[rowid] = event.state
        reason = f" ({_one_line(event.reason)})" if event.reason else ""
        line = f"  {ref} to {self.label(event.peer)}: {event.state}{reason}"
        if rowid in self._copies:
            return self._broadcast_copy(rowid, event.state, line)
        return line

    def _broadcast_copy(self, rowid: int, state: str, line: str) -> str | None:
        """A broadcast shows its failures, and one line once every copy has ended."""
        if state not in ("delivered", "failed"):
            return None
        outcome = self._copies.pop(rowid)
        outcome[0] += state == "delivered"
        outcome[1] += 1
        shown = [line] if state == "failed" else []
        if outcome[1] == outcome[2]:
            shown.append(f"  broadcast delivered to {outcome[0]} of {outcome[2]}")
        return "\n".join(shown) or None


_HANDLERS = {
    "/send": Commands.cmd_send,
    "/reply": Commands.cmd_reply,
    "/broadcast": Commands.cmd_broadcast,
    "/peers": Commands.cmd_peers,
    "/unread": Commands.cmd_unread,
    "/add": Commands.cmd_add,
    "/history": Commands.cmd_history,
    "/fingerprint": Commands.cmd_fingerprint,
    "/retry": Commands.cmd_retry,
    "/stats": Commands.cmd_stats,
    "/help": Commands.cmd_help,
    "/quit": Commands.cmd_quit,
    "/exit": Commands.cmd_quit,
    **repl_contacts.HANDLERS,
    **repl_files.HANDLERS,
    **repl_groups.HANDLERS,
    **repl_pairing.HANDLERS,
    **nearby.HANDLERS,
}


# --- helpers shared with ``enclave send`` ------------------------------------------------


def take_peer(rest: str, names: set[str]) -> tuple[str, str]:
    """``Commands.take_peer`` with the contacts' names given."""
    text = rest.lstrip()
    if text[:1] in ('"', "'"):
        end = text.find(text[0], 1)
        if end < 0:
            raise UserError("a quoted name needs its closing quote")
        return text[1:end], text[end + 1 :].lstrip(" ")
    words = text.split(" ")
    fits = [n for n in range(len(words), 1, -1) if " ".join(words[:n]) in names]
    if len(fits) > 1 or (fits and words[0] in names):
        shown = ", ".join(
            f'"{" ".join(words[:n])}"' for n in (*fits, 1) if n > 1 or words[0] in names
        )
        raise UserError(f"the text fits more than one contact ({shown}): put the name in quotes")
    if fits:
        return " ".join(words[: fits[0]]), " ".join(words[fits[0] :])
    first, _, after = text.partition(" ")
    return first, after


def add_peer_from_file(commands: Commands, path: str, address: str, name: str | None) -> None:
    from enclave.identity import home

    if not path:
        raise UserError("no public key file given")
    if not address:
        raise UserError("a peer needs an address HOST:PORT, e.g. 192.168.1.100:8000")
    data = home.read_file(Path(path).expanduser(), "peer key", MAX_PEER_KEY_BYTES)
    done = commands.node.add_contact(data, address, name=name, source=path)  # errors name the file
    if done.weak:
        commands.write(f"warning: {done.weak}")
    peer = done.peer
    verb = "Added" if done.added else "Updated"
    commands.write(
        f"{verb} peer {commands.label(peer.fingerprint)} at {_clean(peer.address or '-', lines=False)}\n"
        f"Fingerprint: {keys.group(peer.fingerprint)}\n"
        "Compare it with your peer over a channel you trust (/verify), then rely on it."
    )


# --- rendering ---------------------------------------------------------------------------


def _history_lines(messages, label: str):
    for m in messages:
        try:
            yield _history_line(m, label)
        except Exception as err:  # noqa: BLE001 - one bad row must not hide the others
            yield f"[?] message #{m.rowid} could not be shown ({type(err).__name__})"


def _history_line(m, label: str) -> str:
    when = _when(m)
    if m.timer_s is not None:  # a TIMER's row: the system line
        who = "you" if m.direction == "out" else label
        return f"[{when}] {timer_line(who, m.timer_s)}"
    body = _indent(_clean(m.body or ""))
    if m.expires_ms is not None:
        body = f"{body}  (disappears {_local(m.expires_ms, '%Y-%m-%d %H:%M')})"
    if m.reply_to:
        body = f"(re {message_ref(m.reply_to)}) {body}"
    if m.direction == "in":
        mark = " (legacy v1)" if m.legacy else ""
        return f"[{when}] {label}{mark}: {body}  ({message_ref(m.id)})"
    reason = f", {_one_line(m.reason)}" if m.reason else ""
    return f"[{when}] you -> {label}: {body}  ({message_ref(m.id)} {m.state}{reason})"


def _presence(status) -> str:
    """``/peers``' STATUS: online, or when the peer was last seen; and what waits."""
    if status.online:
        text = "online"
    elif status.peer.last_seen:
        text = f"last seen {_ago(time.time() - status.peer.last_seen)}"
    else:
        text = "offline"
    if status.queued:
        text += f"; {status.queued} queued"
        if status.retry_in is not None:
            text += f", retrying in {max(1, math.ceil(status.retry_in))} s"
    return text


def _ago(seconds: float) -> str:
    """5 s ago, 3 min ago, 2 h ago, 4 d ago."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _when(m) -> str:
    shown = message_time(m)
    if shown is None:
        return _unknown(_local(m.stored_ms, DAY_TIME))
    return _local(shown, DAY_TIME)


def _unknown(received: str) -> str:
    return f"unknown time, received {received}"


def _clock(ms: int | None = None) -> str:
    return _local(ms, "%H:%M")


def _local(ms: int | None, fmt: str) -> str:
    """``ms`` (now if None) in local time; a time the platform cannot show is unknown."""
    try:
        return time.strftime(fmt, time.localtime(None if ms is None else ms / 1000))
    except (OverflowError, OSError, ValueError):
        return "unknown time"


def _clean(text: str, lines: bool = True) -> str:
    """Text from elsewhere, safe for a terminal (``display.visible``)."""
    return visible(text, lines)


def _indent(text: str) -> str:
    return text.replace("\n", "\n    ")


def _one_line(text: str) -> str:
    return visible(" ".join(str(text).split()), lines=False)


def history_off_line(label: str) -> str:
    """The one line /history shows above a conversation with history off."""
    return (
        f"-- history is off with {label}: messages are shown, then kept nowhere here"
        f" (/history {label} on to keep new ones)"
    )
