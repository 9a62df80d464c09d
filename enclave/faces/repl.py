"""The terminal face: ``enclave listen`` (prompt-toolkit REPL, or headless logging).

Rules:
- With a terminal on stdin: a prompt-toolkit REPL. Events print above the prompt while
  the user types (``patch_stdout(raw=True)`` keeps a half-typed line intact). Ctrl-C
  clears the line; Ctrl-D on an empty line and ``/quit`` leave.
- Without one (a service, a pipe, stdin closed): headless. Events are logged one line
  each on stdout until SIGTERM or SIGINT.
- With ``--json`` (terminal or not): no prompt; each event is a JSON line on stdout
  (``jsonlines``).
- Either way the node stops cleanly at the end (``runner``); the outbox keeps what is
  still queued.
- Input history lives in ``repl_history`` in the home folder, mode 0600. Message text
  is not written there: a line of ``/send`` or ``/broadcast`` is kept whole for this
  session but saved as its command and peer only, so erasing history in the store
  really erases it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from enclave.faces import runner
from enclave.faces.repl_commands import COMMANDS, PEER_COMMANDS, Commands
from enclave.faces.repl_groups import SUBCOMMANDS as GROUP_ACTIONS

HISTORY_NAME = "repl_history"
HISTORY_MODE = 0o600
PROMPT = "> "


def run(args) -> int:
    if getattr(args, "json", False):
        from enclave.faces.jsonlines import json_face

        return runner.run(args, json_face, interactive=False)
    interactive = sys.stdin is not None and _isatty(sys.stdin)
    face = interactive_face if interactive else headless_face
    return runner.run(args, face, interactive=interactive)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (ValueError, OSError):  # closed
        return False


# --- interactive -------------------------------------------------------------------------


async def interactive_face(node, stop: asyncio.Event) -> int:
    from prompt_toolkit.patch_stdout import patch_stdout

    print("Type /help for commands.", flush=True)
    with patch_stdout(raw=True):
        await Repl(node, history_path=node.home / HISTORY_NAME).run()
    return 0


class Repl:
    """The read-eval-print loop over one node. ``write`` prints one block of text."""

    def __init__(self, node, *, history_path: Path | None = None, write=None) -> None:
        from prompt_toolkit import PromptSession

        self.node = node
        self.write = write or _print
        self.commands = Commands(node, self.write, self.ask)
        self.session = PromptSession(
            PROMPT,
            history=private_history(history_path) if history_path else None,
            completer=PeerCompleter(node),
            complete_while_typing=False,
            key_bindings=_safe_bindings(),
        )

    async def run(self) -> None:
        unsubscribe = self.node.subscribe(self._on_event)
        try:
            while await self._one():
                pass
        finally:
            unsubscribe()

    async def _one(self) -> bool:
        try:
            line = await self.session.prompt_async(set_exception_handler=False, handle_sigint=False)
        except KeyboardInterrupt:
            return True  # Ctrl-C: the line is cleared, the REPL stays
        except EOFError:
            return False  # Ctrl-D
        except Exception as err:  # noqa: BLE001 - e.g. an escape sequence prompt-toolkit cannot parse
            self.write(f"note: that input could not be read ({type(err).__name__}); type it again")
            return True
        return await self.commands.execute(line)

    async def ask(self, question: str, completer=None) -> str:
        """A follow-up question (``/add``, ``/verify``); its own session, no history."""
        from prompt_toolkit import PromptSession

        session = PromptSession(question, completer=completer, key_bindings=_safe_bindings())
        return await session.prompt_async(set_exception_handler=False, handle_sigint=False)

    def _on_event(self, event) -> None:
        try:
            text = self.commands.render(event)
        except Exception as err:  # noqa: BLE001 - a rendering bug must not stop the node
            text = f"note: could not show an event ({type(err).__name__})"
        if text is not None:
            self.write(text)


def _safe_bindings():
    """Mouse reports are off, so a typed or pasted ``ESC [ ... m`` is just discarded:
    prompt-toolkit's own handler would raise on one that is not a well-formed report."""
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.keys import Keys

    bindings = KeyBindings()

    @bindings.add(Keys.Vt100MouseEvent)
    def _ignore(event) -> None:
        pass

    return bindings


def _print(text: str) -> None:
    print(text, flush=True)


class PeerCompleter(Completer):
    """Commands first; after /send, /file, /history and /verify, peer names and
    prefixes; the PATH of ``/file PEER PATH`` and ``/broadcast --file PATH``, file names."""

    def __init__(self, node) -> None:
        self.node = node
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document, complete_event):
        before = document.text_before_cursor
        words = before.split(" ")
        command = words[0].lower()
        if len(words) >= 3 and (
            command == "/file" or (command, words[1]) == ("/broadcast", "--file")
        ):
            path = " ".join(words[2:])  # a path may hold spaces
            yield from self.paths.get_completions(Document(path, len(path)), complete_event)
            return
        if len(words) == 1:
            for command in COMMANDS:
                if command.startswith(words[0].lower()):
                    yield Completion(command + " ", start_position=-len(words[0]))
            return
        if len(words) == 2 and words[0].lower() in PEER_COMMANDS:
            yield from _matching(self._peer_choices(), words[1])
        elif command in ("/group", "/g", "/ghistory"):
            yield from _matching(self._group_words(command, words), words[-1])

    def _group_words(self, command: str, words: list[str]) -> list[str]:
        """/group's actions, then group names, then contacts, where each one goes."""
        groups = [g.name for g in self.node.groups_list() if g.state == "member"]
        if command != "/group":
            return groups if len(words) == 2 else []
        if len(words) == 2:
            return list(GROUP_ACTIONS)
        action = words[1].lower()
        if len(words) == 3:
            return groups if action != "create" else []
        if action == "create" or (action in ("add", "remove", "promote") and len(words) == 4):
            return self._peer_choices()
        return []

    def _peer_choices(self) -> list[str]:
        choices = []
        for p in self.node.contacts():
            if p.name:
                choices.append(p.name)
            choices.append(p.fingerprint[:16])
        return choices


def _matching(choices: list[str], word: str):
    for choice in choices:
        if choice.lower().startswith(word.lower()):
            # A name with spaces goes in quotes, as the commands read it.
            shown = f'"{choice}"' if " " in choice else choice
            yield Completion(shown + " ", start_position=-len(word))


def private_history(path: Path):
    """A FileHistory in a 0600 file that keeps message text out of the file."""
    from prompt_toolkit.history import FileHistory

    class PrivateHistory(FileHistory):
        def store_string(self, string: str) -> None:
            super().store_string(redact(string))

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, HISTORY_MODE)
    os.close(fd)
    os.chmod(path, HISTORY_MODE)
    return PrivateHistory(str(path))


def redact(line: str) -> str:
    """``/send bob hello`` is saved as ``/send bob ``, ``/g team hi`` as ``/g team ``,
    ``/broadcast hi`` as ``/broadcast ``; ``/join CODE ...`` as ``/join `` (a code is
    spent once used, but a file of them left behind says who paired with whom)."""
    words = line.lstrip().split(" ")
    command = words[0].lower()
    if command in ("/send", "/g") and len(words) > 2:
        return f"{words[0]} {words[1]} "
    if command in ("/broadcast", "/join") and len(words) > 1:
        return f"{words[0]} "
    return line


# --- headless ----------------------------------------------------------------------------


async def headless_face(node, stop: asyncio.Event) -> int:
    """Log every event until a signal sets ``stop`` (the runner cancels this)."""
    commands = Commands(node, runner.log)

    def on_event(event) -> None:
        try:
            text = commands.render(event)
        except Exception as err:  # noqa: BLE001
            text = f"could not show an event ({type(err).__name__})"
        if text is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            for line in text.splitlines():
                runner.log(f"{stamp} {line.strip()}")

    runner.log("Running without a terminal; events are logged here. Stop with SIGTERM.")
    unsubscribe = node.subscribe(on_event)
    try:
        await stop.wait()
    finally:
        unsubscribe()
    return 0
