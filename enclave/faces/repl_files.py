"""The REPL's file commands: ``/file``, ``/accept``, ``/decline``, ``/cancel``, ``/files``
(and ``/broadcast --file``), and the lines ``FileChanged`` events print.

Rules:
- Each command calls the Node's file API only; the lines left on screen are the
  renderings of the node's ``FileChanged`` events, so a transfer started elsewhere
  (``enclave send-file``, the page) shows the same way.
- A transfer prints a line when its state changes; progress at most every 10 %.
- A file offered to us that waits for a yes says how to answer:
  ``/accept #ref`` or ``/decline #ref``.
"""

from __future__ import annotations

from enclave.errors import UserError
from enclave.faces.send_file import human
from enclave.node.display import message_ref, visible
from enclave.node.events import FileChanged

HELP = """\
  /file PEER PATH        offer a file (Tab completes PATH)    /file bob ~/photo.jpg
  /broadcast --file PATH offer a file to every contact        /broadcast --file notes.pdf
  /files                 open file transfers and their progress
  /accept [REF]          take a file offered to you           /accept #k3f9
  /decline [REF]         refuse a file offered to you         /decline #k3f9
  /cancel REF            stop a file transfer, either way     /cancel #k3f9"""

PROGRESS_STEP = 10  # percent between progress lines
ARROWS = {"in": "<-", "out": "->"}


def path_argument(text: str) -> str:
    """A PATH as typed: everything given, without one pair of surrounding quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


async def cmd_file(commands, rest: str) -> None:
    peer, path = commands.take_peer(rest.strip())
    path = path_argument(path)
    if not peer or not path:
        raise UserError("usage: /file PEER PATH")
    sent = await commands.node.send_file(peer, path)
    commands._open(sent.peer)


async def broadcast_file(commands, rest: str) -> None:
    """``/broadcast --file PATH``: the same file to every contact that can take files."""
    path = path_argument(rest)
    if not path:
        raise UserError("usage: /broadcast --file PATH")
    sent = await commands.node.send_file_to_many(None, path)
    names = ", ".join(commands.label(f.peer) for f in sent)
    commands.write(f"Offering {_name(sent[0])} to {len(sent)} contact(s): {names}")


async def cmd_accept(commands, rest: str) -> None:
    await commands.node.accept_file(_one_ref(rest, "/accept [REF]"))


async def cmd_decline(commands, rest: str) -> None:
    await commands.node.decline_file(_one_ref(rest, "/decline [REF]"))


async def cmd_cancel(commands, rest: str) -> None:
    ref = _one_ref(rest, "/cancel REF")
    if ref is None:
        raise UserError("usage: /cancel REF (see /files)")
    await commands.node.cancel_file(ref)


async def cmd_files(commands, rest: str) -> None:
    if rest:
        raise UserError("usage: /files")
    found = commands.node.files_of(None)
    if not found:
        commands.write("No open file transfers")
        return
    rows = [("REF", "", "PEER", "NAME", "SIZE", "STATE", "DONE")]
    for f in found:
        state = "waiting for /accept" if f.waiting else f.state
        rows.append(
            (
                message_ref(f.id),
                ARROWS.get(f.direction, "?"),
                commands.label(f.peer),
                _name(f),
                human(f.size),
                state,
                f"{_percent(f)}%",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    commands.write(
        "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )
    )


def _one_ref(rest: str, usage: str) -> str | None:
    parts = rest.split()
    if len(parts) > 1:
        raise UserError(f"usage: {usage}")
    return parts[0] if parts else None


# --- events ------------------------------------------------------------------------------


class FileLines:
    """What ``FileChanged`` events print: one line per state, progress every 10 %."""

    def __init__(self, commands) -> None:
        self.commands = commands
        self.shown: dict[int, tuple[str, int]] = {}  # key -> (state, percent step) shown

    def render(self, event: FileChanged, clock: str) -> str | None:
        before = self.shown.get(event.key)
        if before is None or before[0] != event.state:
            self.shown[event.key] = before = (event.state, 0)
            if event.state != "transferring":
                return self._state_line(event, clock)
        step = _percent(event) // PROGRESS_STEP * PROGRESS_STEP
        if event.state != "transferring" or step <= before[1] or step >= 100:
            return None
        self.shown[event.key] = (event.state, step)
        return f"  {self._about(event)}: {step}% ({human(event.done_bytes)} of {human(event.size)})"

    def _state_line(self, f: FileChanged, clock: str) -> str | None:
        ref, label, size = message_ref(f.id), self.commands.label(f.peer), human(f.size)
        reason = f" ({_one_line(f.reason)})" if f.reason else ""
        if f.state == "offered":
            if f.direction == "out":
                return f"[{clock}] you -> {label}: file {_name(f)} ({size})  ({ref})"
            line = f"[{clock}] {label} offers you {_name(f)} ({size})  ({ref})"
            if f.waiting:
                line += f" — /accept {ref} or /decline {ref}"
            return line
        if f.state == "delivered" and f.direction == "in":
            where = f", saved to {visible(f.path, False)}" if f.path else ""
            return f"  {self._about(f)}: delivered{where}"
        if f.state == "accepted" and f.direction == "in":
            return f"[{clock}] receiving {_name(f)} ({size}) from {label}  ({ref})"
        return f"  {self._about(f)}: {f.state}{reason}"

    def _about(self, f: FileChanged) -> str:
        way = "from" if f.direction == "in" else "to"
        return f"{message_ref(f.id)} {_name(f)} {way} {self.commands.label(f.peer)}"


def _name(f: FileChanged) -> str:
    return visible(f.name, False)


def _percent(f: FileChanged) -> int:
    if f.state == "delivered":
        return 100
    if f.size <= 0:
        return 0
    return min(100, f.done_bytes * 100 // f.size)


def _one_line(text: str) -> str:
    return visible(" ".join(str(text).split()), lines=False)


HANDLERS = {
    "/file": cmd_file,
    "/accept": cmd_accept,
    "/decline": cmd_decline,
    "/cancel": cmd_cancel,
    "/files": cmd_files,
}
