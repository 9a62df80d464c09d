"""``enclave history PEER [--limit N] [--json]``: a conversation from the command line.

Rules:
- It reads the store like every command that does: after the password (the history
  will be sealed under it, docs/SECURITY.md), whether or not a node runs on the home.
- One line per message, both directions, oldest first, the last 50 unless ``--limit``;
  a contact's key rotations show as audit lines where they happened. Text goes through
  ``display.visible`` (no control characters, one line per message). Each line ends
  with the message's ``#ref`` as the REPL's ``/history`` shows it (and the state of one
  of ours not delivered yet): what ``enclave reply`` and ``enclave delete`` take. A
  reply starts with the #ref it quotes, ``(re #k3f9)``.
- ``--json``: one JSON object per line instead (``type`` "message" or "key_change");
  a message has its full ``id``, its ``ref`` and the id it quotes (``reply_to``, or null).
- History off with the contact (``enclave keep-history PEER off``): a first line says
  so (``type`` "history_off" in JSON), since what it said is shown nowhere afterwards.
"""

from __future__ import annotations

import json
import time

from enclave.errors import UserError
from enclave.faces import cli

MAX_LIMIT = 100_000


def run(args) -> int:
    from enclave.identity import home
    from enclave.node.book import open_book

    if not 1 <= args.limit <= MAX_LIMIT:
        raise UserError(f"--limit is 1 to {MAX_LIMIT:,}, not {args.limit}")
    place = home.require_identity(cli.home_of(args))
    store_key = cli.store_key(args)  # the password, like every command that reads the store
    if not place.db_path.exists():
        raise UserError(f"no peer matches {args.peer!r}")
    with open_book(place.db_path, store_key=store_key) as book:
        peer, rows, changes = book.history(args.peer, args.limit)
    for line in _lines(peer, rows, changes, args.json):
        print(line)
    return 0


def _lines(peer, rows, changes, as_json: bool) -> list[str]:
    from enclave.node.display import key_change_line, message_time, visible

    name = visible(peer.name, False) if peer.name else peer.fingerprint[:16]
    first = min((message_time(m) or m.stored_ms for m in rows), default=0)
    timeline = [(int(at * 1000), "key", (old, new)) for _, old, new, at in changes]
    timeline = [t for t in timeline if not rows or t[0] >= first]
    timeline += [(message_time(m) or m.stored_ms, "msg", m) for m in rows]
    out = []
    if not peer.keep_history:
        if as_json:
            out.append(json.dumps({"type": "history_off", "peer": peer.fingerprint}))
        else:
            out.append(f"-- history is off with {name}: messages are shown, then kept nowhere here")
    for when, kind, item in sorted(timeline, key=lambda t: t[0]):
        if kind == "key":
            old, new = item
            if as_json:
                out.append(
                    json.dumps({"type": "key_change", "time_ms": when, "old": old, "new": new})
                )
            else:
                out.append(f"{_clock(when)}  -- {key_change_line(name)}")
            continue
        out.append(_message(item, name, when, as_json, visible))
    return out


def _message(m, name: str, when: int, as_json: bool, visible) -> str:
    from enclave.node.display import message_ref

    text = m.body if m.body is not None else "(deleted)"
    if m.file is not None:
        text = f"[file] {m.file.name} ({m.file.size:,} bytes, {m.file.state})"
    ref = message_ref(m.id)
    if as_json:
        quoted = m.reply_to.hex() if m.reply_to else None
        return json.dumps({"type": "message", "time_ms": when, "direction": m.direction,
                           "peer": m.peer, "text": text, "state": m.state,
                           "id": m.id.hex(), "ref": ref, "reply_to": quoted})  # fmt: skip
    who = f"{name} -> you" if m.direction == "in" else f"you -> {name}"
    # The #ref that enclave reply and enclave delete take, as the REPL's /history shows it.
    state = f" {m.state}" if m.direction == "out" and m.state != "delivered" else ""
    quote = f"(re {message_ref(m.reply_to)}) " if m.reply_to else ""
    return f"{_clock(when)}  {who}: {quote}{visible(text, False)}  ({ref}{state})"


def _clock(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))
