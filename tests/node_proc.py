"""One Enclave node in its own process, driven over stdin/stdout (tests only).

    python tests/node_proc.py --home DIR --key-file KEYFILE --port PORT [--host H] [--each]
                              [--set KEY=VALUE ...] [--progress-every N]

The node listens on 127.0.0.1 (uvloop) unless ``--host`` says otherwise. Every line on stdout is one JSON object:

    {"ev": "ready", "port": 40123, "fp": "ab12...", "pid": 4242}
    {"ev": "progress", "received": n, "delivered": d, "streams": {...}, ...}
                      (dupes: resent messages the node already had, acked, not shown)
    {"ev": "online" | "offline", "peer": fp}
    {"ev": "problem", "text": "..."}
    {"ev": "reply", "re": tag, "cmd": name, ...}     answer to a command
    {"ev": "error", "re": tag, "cmd": name, "error": "..."}
    {"ev": "stopped"}                                 after a clean stop

With ``--each`` every message event is printed too:
``{"ev": "received", "peer", "id", "body", "t"}`` (``t``: time.monotonic()) and ``{"ev": "queued" | "sent" |
"delivered" | "failed", "peer", "rowid", "id"}``. Without it (bulk runs) incoming
messages are only aggregated: a count, and per stream of bodies ``PREFIX-000123....``
the first and last sequence number seen, how many broke the +1 sequence and how many
were shown twice. A progress line goes out every ``--progress-every`` messages and at
most 0.25 s after the last change.

Commands, one JSON object per line on stdin, each with an optional ``tag`` that the
reply repeats as ``re``:

    {"cmd": "add_peer", "pem": "...", "address": "127.0.0.1:p", "name": "bob"}
    {"cmd": "send", "peer": "bob", "text": "hi"}            reply once durable
    {"cmd": "send_many", "peer_fp": hex, "count": n, "prefix": "m", "size": 100,
     "rate": 0}     bodies PREFIX-000000...; rate > 0 paces the producer (messages/s,
                    in chunks of "chunk"); the reply comes once all are durable
    {"cmd": "stats"}
    {"cmd": "check_history", "peer": "bob", "prefix": "m"}   see ``history_report``
    {"cmd": "quit"}

SIGTERM, ``quit`` and end of stdin stop the node cleanly (``Node.stop``).

The key file is an unencrypted PKCS8 PEM that the test writes into its temporary
folder: a test-only shortcut, never the format Enclave keeps keys in.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from enclave import settings as settings_mod
from enclave.errors import UserError
from enclave.node import Node
from enclave.node_events import (
    DeliveryChanged,
    MessageReceived,
    NodeProblem,
    PeerOffline,
    PeerOnline,
)

PAD = "."
FLUSH_INTERVAL = 0.25  # seconds between progress lines while counts change


# --- message bodies: "PREFIX-000123" padded with dots -----------------------------------


def make_body(prefix: str, seq: int, size: int = 100) -> str:
    head = f"{prefix}-{seq:06d}"
    if PAD in prefix or len(head) > size:
        raise ValueError(f"prefix {prefix!r} does not fit a {size}-character body")
    return head.ljust(size, PAD)


def parse_body(body: str) -> tuple[str, int] | None:
    """(prefix, seq) of a body made by ``make_body``; None for any other text."""
    head = body.split(PAD, 1)[0]
    prefix, sep, digits = head.rpartition("-")
    if not sep or not digits.isdigit():
        return None
    return prefix, int(digits)


def history_report(store, peer_fp: str, prefix: str) -> dict:
    """What the store holds with one peer, oldest first, checked against the stream
    ``prefix``: incoming count, duplicate IDs and bodies, breaks of the +1 sequence
    (order errors), and outgoing rows by state plus the peer's outbox rows."""
    rows = store.history(peer_fp, limit=1 << 62)
    incoming = [m for m in rows if m.direction == "in"]
    outgoing = [m for m in rows if m.direction == "out"]
    ids, bodies = set(), set()
    dup_ids = dup_bodies = order_errors = other = 0
    seqs = []
    for m in incoming:
        dup_ids += m.id in ids
        ids.add(m.id)
        dup_bodies += m.body in bodies
        bodies.add(m.body)
        parsed = parse_body(m.body or "")
        if parsed is None or parsed[0] != prefix:
            other += 1
            continue
        if seqs and parsed[1] != seqs[-1] + 1:
            order_errors += 1
        seqs.append(parsed[1])
    states: dict[str, int] = {}
    for m in outgoing:
        states[m.state] = states.get(m.state, 0) + 1
    return {
        "count": len(incoming),
        "in_stream": len(seqs),
        "other": other,
        "duplicate_ids": dup_ids,
        "duplicate_bodies": dup_bodies,
        "order_errors": order_errors,
        "first": seqs[0] if seqs else None,
        "last": seqs[-1] if seqs else None,
        "distinct_seqs": len(set(seqs)),
        "out": len(outgoing),
        "out_states": states,
        "outbox": len(store.outbox_for(peer_fp)),
    }


# --- the runner -------------------------------------------------------------------------


class Runner:
    def __init__(self, node: Node, each: bool, progress_every: int) -> None:
        self.node = node
        self.each = each
        self.progress_every = progress_every
        self.received = 0
        self.shown_ids: set[bytes] = set()
        self.shown_twice = 0
        self.streams: dict[str, dict] = {}
        self.delivered = 0
        self.delivered_rowids: set[int] = set()
        self.states: dict[str, int] = {}
        self._dirty = False
        self._last_mark = 0
        self._dupes = 0
        self.done = asyncio.Event()

    def emit(self, obj: dict) -> None:
        try:
            sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
            sys.stdout.flush()
        except OSError:  # the test went away; never let that reach the node's code
            self.done.set()

    # events

    def on_event(self, ev) -> None:
        kind = type(ev)
        if kind is MessageReceived:
            self._received(ev)
        elif kind is DeliveryChanged:
            self.states[ev.state] = self.states.get(ev.state, 0) + 1
            if ev.state == "delivered":
                self.delivered += 1
                self.delivered_rowids.add(ev.rowid)
            if self.each:
                self.emit(
                    {
                        "ev": ev.state,
                        "peer": ev.peer,
                        "rowid": ev.rowid,
                        "id": ev.id.hex(),
                        "reason": ev.reason,
                    }
                )
            self._changed()
        elif kind is PeerOnline:
            self.emit({"ev": "online", "peer": ev.peer})
        elif kind is PeerOffline:
            self.emit({"ev": "offline", "peer": ev.peer})
        elif kind is NodeProblem:
            self.emit({"ev": "problem", "text": ev.text})

    def _received(self, ev: MessageReceived) -> None:
        self.received += 1
        if ev.id in self.shown_ids:
            self.shown_twice += 1
        self.shown_ids.add(ev.id)
        parsed = parse_body(ev.body)
        if parsed is not None:
            prefix, seq = parsed
            s = self.streams.get(prefix)
            if s is None:
                s = self.streams[prefix] = {
                    "count": 0,
                    "first": seq,
                    "last": None,
                    "order_errors": 0,
                }
            elif seq != s["last"] + 1:
                s["order_errors"] += 1
            s["count"] += 1
            s["last"] = seq
        if self.each:
            self.emit(
                {
                    "ev": "received",
                    "peer": ev.peer,
                    "id": ev.id.hex(),
                    "body": ev.body,
                    "t": time.monotonic(),  # one clock for every process: latency
                }
            )
        self._changed()

    def _changed(self) -> None:
        self._dirty = True
        mark = (self.received + self.delivered) // self.progress_every
        if mark != self._last_mark:
            self._last_mark = mark
            self.progress()

    def progress(self) -> None:
        self._dirty = False
        self._dupes = self.node.delivery.stats["dupes"]
        self.emit(
            {
                "ev": "progress",
                "received": self.received,
                "shown_twice": self.shown_twice,
                "dupes": self._dupes,
                "streams": self.streams,
                "delivered": self.delivered,
                "delivered_rows": len(self.delivered_rowids),
                "states": self.states,
            }
        )

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)  # a periodic report, not synchronisation
            if self._dirty or self.node.delivery.stats["dupes"] != self._dupes:
                self.progress()

    # commands

    async def command(self, req: dict) -> None:
        tag, cmd = req.get("tag"), req.get("cmd")
        handler = getattr(self, f"cmd_{cmd}", None)
        try:
            if handler is None:
                raise ValueError(f"unknown command {cmd!r}")
            result = await handler(req)
        except (UserError, ValueError, KeyError, TypeError) as err:
            self.emit(
                {"ev": "error", "re": tag, "cmd": cmd, "error": f"{type(err).__name__}: {err}"}
            )
            return
        self.emit({"ev": "reply", "re": tag, "cmd": cmd, **result})

    async def cmd_add_peer(self, req: dict) -> dict:
        peer = self.node.add_peer(req["pem"], req.get("address"), req.get("name"))
        return {"fp": peer.fingerprint}

    async def cmd_send(self, req: dict) -> dict:
        sent = await self.node.send(req["peer"], req["text"])
        return {"peer": sent.peer, "rowid": sent.rowid, "id": sent.id.hex()}

    async def cmd_send_many(self, req: dict) -> dict:
        peer = bytes.fromhex(req["peer_fp"])
        count, prefix = int(req["count"]), req["prefix"]
        start, size = int(req.get("start", 0)), int(req.get("size", 100))
        rate, chunk = float(req.get("rate") or 0), int(req.get("chunk", 1000))
        loop = asyncio.get_running_loop()
        t0, began = time.perf_counter(), loop.time()
        futures = []
        for k in range(0, count, chunk):
            if rate:  # a steady producer: chunk k leaves at k / rate seconds
                await asyncio.sleep(max(0.0, began + k / rate - loop.time()))
            futures += [
                self.node.submit(peer, make_body(prefix, start + i, size))
                for i in range(k, min(k + chunk, count))
            ]
        outs = await asyncio.gather(*futures)
        return {
            "count": len(outs),
            "first_rowid": outs[0].rowid if outs else None,
            "last_rowid": outs[-1].rowid if outs else None,
            "seconds": time.perf_counter() - t0,
        }

    async def cmd_stats(self, req: dict) -> dict:
        stats = self.node.stats()
        return {
            "node": stats,
            "received": self.received,
            "delivered": self.delivered,
            "delivered_rows": len(self.delivered_rowids),
            "shown_twice": self.shown_twice,
            "streams": self.streams,
            "states": self.states,
        }

    async def cmd_check_history(self, req: dict) -> dict:
        peer = self.node.resolve(req["peer"])
        return await asyncio.to_thread(
            history_report, self.node.store, peer.fingerprint, req["prefix"]
        )

    async def cmd_quit(self, req: dict) -> dict:
        self.done.set()
        return {}


async def read_commands(runner: Runner) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:  # the test went away: stop cleanly
            runner.done.set()
            return
        if line.strip():
            try:
                req = json.loads(line)
            except ValueError as err:
                runner.emit({"ev": "error", "error": f"bad command line: {err}"})
                continue
            loop.create_task(runner.command(req))


async def amain(args) -> int:
    key = serialization.load_pem_private_key(Path(args.key_file).read_bytes(), None)
    overrides = settings_mod.overrides_from(args)
    settings = settings_mod.load(Path(args.home), overrides)
    node = Node(args.home, key, settings)
    runner = Runner(node, args.each, args.progress_every)
    node.subscribe(runner.on_event)
    _, port = await node.start(args.host, args.port)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, runner.done.set)
    runner.emit({"ev": "ready", "port": port, "fp": node.fingerprint, "pid": os.getpid()})
    tasks = [loop.create_task(read_commands(runner)), loop.create_task(runner.ticker())]
    await runner.done.wait()
    await node.stop()
    for task in tasks:
        task.cancel()
    if runner._dirty:
        runner.progress()
    runner.emit({"ev": "stopped"})
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--each", action="store_true", help="print every message event")
    parser.add_argument("--progress-every", type=int, default=1000)
    parser.add_argument("--log-level", default="WARNING")
    settings_mod.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
