"""``enclave send-file PEER PATH...``: files through the running node, or queued.

Rules:
- With a node running on this home, each file is handed to it (control socket): the
  node digests it, records the offer and sends it as soon as the contact is online.
  ``--wait`` stays until every file is delivered (or failed), with a progress line:
  bytes, rate and time left (on a terminal; one line per file otherwise).
- With no node running, the files are queued in the store and offered at the next
  start, as ``enclave send`` queues a message.
- Mistakes (unknown peer, a v1 contact, a missing file or a folder) are one line,
  exit 2; a file that failed to arrive is exit 1.
"""

from __future__ import annotations

import os
import sys
import time

from enclave.errors import UserError
from enclave.faces import cli, control, runner
from enclave.identity import keys


def run(args) -> int:
    place = cli.home_of(args)
    from enclave.identity import home
    from enclave.node import check_source

    home.require_identity(place)
    paths = [check_source(p) for p in args.paths]  # every mistake before anything is sent
    status = 0
    for path in paths:
        request = {"op": "file", "peer": args.peer, "text": path, "wait": bool(args.wait)}
        bar = Progress(os.path.basename(path))
        answers = control.ask(runner.control_path(place.path), request, runner.DELIVERY_WAIT + 10.0,
                              each=bar.answer if args.wait else None)  # fmt: skip
        if answers is None:
            return _queue(place, args, paths)
        status = max(status, _report(answers, bar))
    return status


def _report(answers: list[dict], bar: Progress) -> int:
    first = control.first_answer(answers)
    label = first.get("name") or keys.group(first.get("peer", ""), 4)
    last = answers[-1]
    bar.done()
    if last.get("state") == "delivered":
        print(f"{first['ref']} {first['file']} delivered to {label}")
    elif last.get("state") in ("failed", "cancelled"):
        print(
            f"{first['ref']} {first['file']} to {label}: {last['state']}: {last.get('reason') or 'no reason given'}"
        )
        return 1
    else:
        print(
            f"{first['ref']} {first['file']} ({human(first['size'])}) offered to {label} by the running node"
        )
    return 0


def _queue(place, args, paths: list[str]) -> int:
    from enclave.node.book import open_book
    from enclave.node.display import message_ref

    if not place.db_path.exists():
        raise UserError(f"no peers yet; add one: {cli.add_peer_hint(place)}")
    # The file's name is sealed in the history: that takes the password.
    with open_book(place.db_path, store_key=cli.store_key(args)) as book:
        for path in paths:
            target, t = book.queue_file(args.peer, path)
            label = target.name or keys.group(target.fingerprint, 4)
            print(f"No node is running; {message_ref(t.offer.id)} {t.offer.name} to {label} is queued "
                  f"and leaves when the node runs: {place.command('listen')}")  # fmt: skip
    return 0


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class Progress:
    """The progress line of one file: bytes, rate and time left."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.shown = False

    def answer(self, a: dict) -> None:
        if "progress" not in a:
            return
        done, size = a["progress"], max(1, a["size"])
        spent = max(1e-3, time.monotonic() - self.start)
        rate = done / spent
        left = (size - done) / rate if rate else 0
        line = f"{self.name}: {human(done)} of {human(size)} ({done * 100 // size}%), {human(int(rate))}/s, {left:.0f} s left"
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown and self.tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
