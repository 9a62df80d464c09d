"""The REPL's contact commands: ``/rename``, ``/block``, ``/unblock``, ``/remove``.

Rules:
- Each calls one Node API method; the line it leaves on screen is the rendering of
  the node's ``ContactChanged`` event (``render_change``), so a change made elsewhere
  (``enclave block`` in a shell, the page's contact menu) shows the same way.
- ``/remove`` deletes history and what is still owed, so it asks first and says how
  many undelivered messages go; without a terminal to ask on it refuses.
"""

from __future__ import annotations

from enclave.errors import UserError
from enclave.identity import keys
from enclave.node.display import visible
from enclave.node.events import ContactChanged

HELP = """\
  /rename PEER NEW       give a contact another name          /rename bob robert
  /block PEER            refuse its connections and messages  /block bob
  /unblock PEER          accept it again; its queue goes out  /unblock bob
  /remove PEER           forget it, its history and outbox    /remove bob"""


def _one_peer(rest: str, usage: str) -> str:
    if not rest or len(rest.split()) != 1:
        raise UserError(f"usage: {usage}")
    return rest


async def cmd_rename(commands, rest: str) -> None:
    parts = rest.split()
    if len(parts) != 2:
        raise UserError("usage: /rename PEER NEW (the new name is one word)")
    commands.node.rename_contact(parts[0], parts[1])


async def cmd_block(commands, rest: str) -> None:
    commands.node.block_contact(_one_peer(rest, "/block PEER"), True)


async def cmd_unblock(commands, rest: str) -> None:
    commands.node.block_contact(_one_peer(rest, "/unblock PEER"), False)


async def cmd_remove(commands, rest: str) -> None:
    peer = commands.node.resolve(_one_peer(rest, "/remove PEER"))
    label = commands.label(peer.fingerprint)
    owed = commands.node.owed(peer.fingerprint)
    what = "its history" + (f" and {owed} undelivered message{'s' * (owed != 1)}" if owed else "")
    if commands.ask is None:
        raise UserError("/remove needs a terminal to confirm")
    answer = await commands.ask(f"Remove {label}? This deletes {what}. [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        commands.write(f"{label} was not removed")
        return
    commands.node.remove_contact(peer.fingerprint)


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
    }
    return f"[{clock}] {lines.get(event.change, f'{label}: {event.change}')}"


HANDLERS = {
    "/rename": cmd_rename,
    "/block": cmd_block,
    "/unblock": cmd_unblock,
    "/remove": cmd_remove,
}
