"""The REPL's contact commands: ``/verify``, ``/rename``, ``/block``, ``/unblock``,
``/remove``, ``/clear``, ``/delete`` (one message), ``/receipts`` and ``/disappear``
(the conversation's disappearing-messages timer).

Rules:
- Each calls one Node API method; the line it leaves on screen is the rendering of
  the node's ``ContactChanged`` event (``render_change``), so a change made elsewhere
  (``enclave block`` in a shell, the page's contact menu) shows the same way.
- ``/verify`` shows the safety number (identity.safety) with its QR code and both
  fingerprints, and asks before it marks the contact verified.
- ``/remove`` deletes history and what is still owed, so it asks first and says how
  many undelivered messages go; without a terminal to ask on it refuses. ``/clear``
  erases the history alone (the contact stays), asking the same way.
"""

from __future__ import annotations

from enclave.errors import UserError
from enclave.identity import keys, safety
from enclave.node.display import (
    duration_text,
    key_change_line,
    message_ref,
    parse_duration,
    timer_line,
    visible,
)
from enclave.node.events import (
    ContactChanged,
    KeyChanged,
    MessageDeleted,
    MessagesExpired,
    MessagesRead,
    TimerChanged,
)

HELP = """\
  /rename PEER NEW       give a contact another name          /rename bob robert
  /block PEER            refuse its connections and messages  /block bob
  /unblock PEER          accept it again; its queue goes out  /unblock bob
  /remove PEER           forget it, its history and outbox    /remove bob
  /clear PEER            erase your history with it, here      /clear bob
  /delete PEER REF       delete one message, here (/history    /delete bob #k3f9
                         shows each message's reference)
  /receipts PEER on|off  read receipts with it (both must     /receipts bob on
                         allow them)
  /disappear PEER TIME   messages vanish after TIME on both   /disappear bob 1d
                         sides: 30s..4w (s m h d w), or off"""


def _one_peer(commands, rest: str, usage: str) -> str:
    peer, more = commands.take_peer(rest)
    if not peer or more.strip():
        raise UserError(f"usage: {usage}")
    return peer


async def cmd_rename(commands, rest: str) -> None:
    peer, new = commands.take_peer(rest)
    new = new.strip()
    if new[:1] in ('"', "'") and len(new) > 1 and new.endswith(new[0]):
        new = new[1:-1]
    if not peer or not new:
        raise UserError('usage: /rename PEER NEW (a name with spaces: /rename bob "Bob Smith")')
    commands.node.rename_contact(peer, new)


async def cmd_block(commands, rest: str) -> None:
    commands.node.block_contact(_one_peer(commands, rest, "/block PEER"), True)


async def cmd_unblock(commands, rest: str) -> None:
    commands.node.block_contact(_one_peer(commands, rest, "/unblock PEER"), False)


async def _owed_and_asked(commands, rest: str, command: str, question, kept: str):
    """The contact ``rest`` names, once the user said yes to ``question(label, owed
    text)``; None (and ``kept`` said) when not. Without a terminal it refuses."""
    peer = commands.node.resolve(_one_peer(commands, rest, f"{command} PEER"))
    label = commands.label(peer.fingerprint)
    owed = commands.node.owed(peer.fingerprint)
    undelivered = f"{owed} undelivered message{'s' * (owed != 1)}" if owed else ""
    if commands.ask is None:
        raise UserError(f"{command} needs a terminal to confirm")
    answer = await commands.ask(question(label, undelivered))
    if answer.strip().lower() not in ("y", "yes"):
        commands.write(kept.format(label=label))
        return None
    return peer


async def cmd_remove(commands, rest: str) -> None:
    def question(label: str, undelivered: str) -> str:
        what = "its history" + (f" and {undelivered}" if undelivered else "")
        return f"Remove {label}? This deletes {what}. [y/N] "

    peer = await _owed_and_asked(commands, rest, "/remove", question, "{label} was not removed")
    if peer is not None:
        commands.node.remove_contact(peer.fingerprint)


async def cmd_verify(commands, rest: str) -> None:
    peer = commands.node.resolve(_one_peer(commands, rest, "/verify PEER"))
    label = commands.label(peer.fingerprint)
    rows = [("You", commands.node.fingerprint), (label, peer.fingerprint)]
    width = max(len(who) for who, _ in rows)  # the groups line up, column under column
    number = safety.safety_number(commands.node.fingerprint, peer.fingerprint)
    commands.write(
        f"Safety number with {label} (the same on both sides):\n"
        + "".join(f"  {line}\n" for line in safety.grouped(number))
        + terminal_qr(number)
        + "Fingerprints:\n"
        + "".join(f"  {who.ljust(width)}  {keys.group(fp)}\n" for who, fp in rows)
        + f"Compare the number with {label} over a channel you trust (in person, a call),"
        " or scan one screen's code with the other."
    )
    if peer.verified:
        commands.write(f"{label} is already marked verified")
        return
    if commands.ask is None:
        raise UserError("/verify needs a terminal to confirm")
    answer = await commands.ask(f"Do both match what {label} reads? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        commands.write(f"{label} is not marked verified")
        return
    commands.node.set_verified(peer.fingerprint, True)
    commands.write(f"{label} is now marked verified")


async def cmd_clear(commands, rest: str) -> None:
    def question(label: str, undelivered: str) -> str:
        what = f" and its {undelivered}" if undelivered else ""
        return f"Erase your history with {label}{what} on this device? [y/N] "

    kept = "the history with {label} was kept"
    peer = await _owed_and_asked(commands, rest, "/clear", question, kept)
    if peer is not None:
        commands.node.clear_history(peer.fingerprint)


def terminal_qr(text: str) -> str:
    """A QR code of ``text`` in block characters, two rows of modules per line."""
    import io

    import segno

    out = io.StringIO()
    segno.make(text, error="m", micro=False).terminal(out=out, compact=True, border=1)
    return out.getvalue()


def render_change(event: ContactChanged, clock: str) -> str | None:
    """The line a change of the address book shows (None: the command said more)."""
    if event.change in ("added", "updated"):
        return None  # /add and the page print what they added
    label = visible(event.name, False) if event.name else keys.group(event.peer, 2)
    lines = {
        "renamed": f"{keys.group(event.peer, 2)} is now called {label}",
        "blocked": f"{label} is blocked: its connections and messages are refused"
        " (/unblock to undo)",
        "unblocked": f"{label} is unblocked; messages queued for it go out when it is reachable",
        "removed": f"{label} was removed with its history",
        "cleared": f"the history with {label} was erased on this device",
        "revoked": f"{label} revoked their key: messages to and from it are refused"
        " (pair again if they have a new one)",
        "receipts_on": f"read receipts with {label} are on (they show once {label} allows them)",
        "receipts_off": f"read receipts with {label} are off",
        "history_off": f"history with {label} is off: new messages are shown, then kept"
        f" nowhere here ({label} is not told; /clear erases what is kept)",
        "history_on": f"history with {label} is on: new messages are kept",
    }
    return f"[{clock}] {lines.get(event.change, f'{label}: {event.change}')}"


def render_key_change(event: KeyChanged, clock: str) -> str:
    """The audit line of a contact's rotation (the old fingerprint lives in it)."""
    label = visible(event.name, False) if event.name else keys.group(event.peer, 2)
    old, new = keys.group(event.old, 2), keys.group(event.peer, 2)
    return f"[{clock}] {key_change_line(label)} ({old}... -> {new}...)"


async def cmd_delete(commands, rest: str) -> None:
    peer, ref = commands.take_peer(rest)
    if not peer or len(ref.split()) != 1:
        raise UserError("usage: /delete PEER REF (the #ref /history shows beside the message)")
    await commands.node.settled()  # a chat shown a moment ago is stored first
    commands.node.delete_message(peer, ref.strip())


async def cmd_receipts(commands, rest: str) -> None:
    peer, choice = commands.take_peer(rest)
    if not peer or choice.strip().lower() not in ("on", "off"):
        raise UserError("usage: /receipts PEER on|off")
    commands.node.set_receipts(peer, choice.strip().lower() == "on")


def render_read(event: MessagesRead, label: str, clock: str) -> str:
    ref = message_ref(bytes.fromhex(event.upto))
    return f"[{clock}] {label} read your messages up to {ref}"


def render_deleted(event: MessageDeleted, label: str, clock: str) -> str:
    return f"[{clock}] {event.ref} was deleted from your history with {label} (they keep theirs)"


async def cmd_disappear(commands, rest: str) -> None:
    peer, when = commands.take_peer(rest)
    if not peer or len(when.split()) != 1:
        raise UserError("usage: /disappear PEER TIME (30s, 5m, 1h, 1d, 1w, or off)")
    try:
        seconds = parse_duration(when)
    except ValueError as err:
        raise UserError(str(err)) from None
    await commands.node.set_disappearing(peer, seconds)  # the line: its TimerChanged


def render_timer(event: TimerChanged, label: str, clock: str) -> str:
    """The system line of a TIMER, ours or the contact's, the same in every face."""
    line = timer_line("you" if event.by == "us" else label, event.seconds)
    if event.by == "us":
        line += f" with {label}"
    if event.in_force != event.seconds:  # an older change: the newer one still holds
        line += f" (a newer change holds: {duration_text(event.in_force)})"
    return f"[{clock}] {line}"


def render_expired(event: MessagesExpired, label: str, clock: str) -> str:
    count = len(event.keys)
    refs = ", ".join(event.refs[:5]) + (", ..." if count > 5 else "")
    what = "message" if count == 1 else "messages"
    was = "was" if count == 1 else "were"
    return f"[{clock}] {count} disappearing {what} with {label} expired and {was} erased ({refs})"


HANDLERS = {
    "/disappear": cmd_disappear,
    "/receipts": cmd_receipts,
    "/delete": cmd_delete,
    "/verify": cmd_verify,
    "/rename": cmd_rename,
    "/block": cmd_block,
    "/unblock": cmd_unblock,
    "/remove": cmd_remove,
    "/clear": cmd_clear,
}
