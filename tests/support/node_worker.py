"""One Enclave node in its own process, driven by JSON lines on stdin and stdout.

    python tests/support/node_worker.py --home DIR --key-file KEYFILE [--port PORT]
        [--host H] [--each | --quiet] [--set KEY=VALUE ...] [--progress-every N]

The tests, the fault lab and the benchmarks all run their nodes with this program and
drive it with ``support.procs.NodeProc``. The node listens on 127.0.0.1 (uvloop, started
as ``enclave.faces.runner`` starts a user's node) unless ``--host`` says otherwise. Every line
on stdout is one JSON object:

    {"ev": "ready", "port": 40123, "fp": "ab12...", "pid": 4242, "t": 812.3}
                      (t: time.monotonic() once the node listens, the clock every
                      process on the machine shares)
    {"ev": "progress", "received": n, "delivered": d, "streams": {...}, ...}
                      (dupes: resent messages the node already had, acked, not shown)
    {"ev": "online" | "offline", "peer": fp}
    {"ev": "problem", "text": "..."}
    {"ev": "reply", "re": tag, "cmd": name, ...}     answer to a command
    {"ev": "error", "re": tag, "cmd": name, "error": "..."}
    {"ev": "stopped"}                                 after a clean stop

What the node's events become depends on the mode:
- default: incoming messages are aggregated: a count, and per stream of bodies
  ``PREFIX-000123....`` (``support.streams``) the first and last sequence number seen,
  how many broke the +1 sequence and how many were shown twice. A progress line goes
  out every ``--progress-every`` messages and at most 0.25 s after the last change.
- ``--each``: every message event is printed too: ``{"ev": "received", "peer", "id",
  "body", "t"}`` (``t``: time.monotonic()) and ``{"ev": "queued" | "sent" | "delivered" |
  "failed", "peer", "rowid", "id"}``.
- ``--quiet`` (the benchmarks): replies only. Messages and deliveries are counted, no
  more, and the node is not asked for the "queued"/"sent" events a bulk sender's
  application would not want (``Node.subscribe(progress=False)``): a measured node does
  no work for its harness.

Commands, one JSON object per line on stdin, each with an optional ``tag`` that the
reply repeats as ``re``:

    {"cmd": "add_peer", "pem": "...", "address": "127.0.0.1:p", "name": "bob"}
    {"cmd": "send", "peer": "bob", "text": "hi"}            reply once durable
    {"cmd": "send_many", "peer_fp": hex, "count": n, "prefix": "m", "size": 100,
     "rate": 0}     bodies PREFIX-000000...; rate > 0 paces the producer (messages/s,
                    in chunks of "chunk"); the reply comes once all are durable
    {"cmd": "stats"}
    {"cmd": "send_file", "path": p, "peers": [hex, ...] | null}   Node.send_file_to_many
                    (null: every contact); reply once offered, with "t0" (monotonic,
                    before the call) and the transfers' keys
    {"cmd": "files_done", "count": n, "timeout": s}   wait until n transfers in all
                    (either direction) reached delivered, failed or cancelled; reply
                    with each one's {"t", "state", "direction", "peer", "path"}
    {"cmd": "check_history", "peer": "bob", "prefix": "m"}   see ``history_report``
    {"cmd": "control"}      serve the control socket in the home folder, as a user's
                            node does (``runner.start_control``: ``enclave send`` then
                            goes through this node); reply {"path": ... or null}
    {"cmd": "nearby"}       LAN discovery: {"state": ..., "nearby": [{"fp", "addresses",
                            "contact", "known", "invites"}, ...]}
    {"cmd": "invites", "nameplates": [7]}   announce open invitations (Node.set_invites)
    {"cmd": "peer", "fp": hex}   {"peer": {"address", "learned", "name"} or null}
    {"cmd": "quit"}

and the timing commands of ``support.node_timing`` (warm, throughput, pace, broadcast,
record, received, note, noted, profile, cpu). A command that fails is answered with an error line;
it never stops the node. SIGTERM, ``quit`` and end of stdin stop the node cleanly
(``Node.stop``).

The key file is an unencrypted PKCS8 PEM that the caller writes into its temporary
folder: a shortcut of tests and benchmarks, never the format Enclave keeps keys in.
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

from enclave.faces import runner
from enclave.faces.runner import run_on_uvloop
from enclave.node import Node
from enclave.node import settings as settings_mod
from enclave.node.events import (
    DeliveryChanged,
    FileChanged,
    MessageReceived,
    NodeProblem,
    PeerOffline,
    PeerOnline,
)

if __name__ == "__main__":  # run as a program: import support.* as the tests do
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.node_timing import Timing  # noqa: E402
from support.streams import history_report, make_body, parse_body  # noqa: E402

FLUSH_INTERVAL = 0.25  # seconds between progress lines while counts change
COMMAND_LIMIT = 1 << 24  # one command line (a peer's PEM, a long text)


def emit(obj: dict) -> bool:
    """One line on stdout; False once the reader has gone away."""
    try:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    except OSError:  # the caller went away; never let that reach the node's code
        return False
    return True


class Tally:
    """What the node's events add up to. ``count`` is all a quiet worker does per event
    (counts, and the shown times a timing run asked for); ``on_event``, the other modes'
    subscriber, also keeps the streams and reports them (``progress``, ``--each``)."""

    def __init__(self, node: Node, say, each: bool, progress_every: int) -> None:
        self.node, self.say = node, say
        self.each, self.progress_every = each, progress_every
        self.received = 0
        self.delivered = 0
        self._target = 0
        self._reached: asyncio.Future | None = None
        self._record_prefix: str | None = None
        self._shown_at: dict[str, float] = {}
        self.shown_ids: set[bytes] = set()
        self.shown_twice = 0
        self.streams: dict[str, dict] = {}
        self.delivered_rowids: set[int] = set()
        self.states: dict[str, int] = {}
        self._dirty = False
        self._last_mark = 0
        self._dupes = 0
        self.files_done: list[dict] = []  # transfers that ended, with the time
        self.file_ended = asyncio.Event()

    # --- counting (every mode) ------------------------------------------------------------

    def count(self, ev) -> None:
        kind = type(ev)
        if kind is MessageReceived:
            self.received += 1
            prefix = self._record_prefix
            if prefix is not None and ev.body.startswith(prefix):
                self._shown_at[ev.body] = time.monotonic()
        elif kind is DeliveryChanged and ev.state == "delivered":
            self.delivered += 1
            reached = self._reached
            if reached is not None and self.delivered >= self._target and not reached.done():
                reached.set_result(time.monotonic())
        elif kind is FileChanged and ev.state in ("delivered", "failed", "cancelled"):
            self.files_done.append(
                {
                    "t": time.monotonic(),
                    "state": ev.state,
                    "direction": ev.direction,
                    "peer": ev.peer,
                    "path": ev.path,
                }
            )
            self.file_ended.set()

    def until_delivered(self, total: int) -> asyncio.Future:
        """Resolves (to the time) once ``total`` messages have been delivered in all."""
        self._target = total
        self._reached = asyncio.get_running_loop().create_future()
        if self.delivered >= total:
            self._reached.set_result(time.monotonic())
        return self._reached

    def record(self, prefix: str | None) -> dict[str, float]:
        """Start noting when bodies starting with ``prefix`` are shown (None: stop);
        returns the times noted so far."""
        self._record_prefix = prefix
        noted, self._shown_at = self._shown_at, {}
        return noted

    # --- reporting (default and --each) ---------------------------------------------------

    def on_event(self, ev) -> None:
        self.count(ev)
        kind = type(ev)
        if kind is MessageReceived:
            self._shown(ev)
        elif kind is DeliveryChanged:
            self._delivery(ev)
        elif kind is PeerOnline:
            self.say({"ev": "online", "peer": ev.peer})
        elif kind is PeerOffline:
            self.say({"ev": "offline", "peer": ev.peer})
        elif kind is NodeProblem:
            self.say({"ev": "problem", "text": ev.text})

    def _delivery(self, ev: DeliveryChanged) -> None:
        self.states[ev.state] = self.states.get(ev.state, 0) + 1
        if ev.state == "delivered":
            self.delivered_rowids.add(ev.rowid)
        if self.each:
            self.say(
                {
                    "ev": ev.state,
                    "peer": ev.peer,
                    "rowid": ev.rowid,
                    "id": ev.id.hex(),
                    "reason": ev.reason,
                }
            )
        self._changed()

    def _shown(self, ev: MessageReceived) -> None:
        if ev.id in self.shown_ids:
            self.shown_twice += 1
        self.shown_ids.add(ev.id)
        parsed = parse_body(ev.body)
        if parsed is not None:
            self._in_stream(*parsed)
        if self.each:
            self.say(
                {
                    "ev": "received",
                    "peer": ev.peer,
                    "id": ev.id.hex(),
                    "body": ev.body,
                    "t": time.monotonic(),  # one clock for every process: latency
                }
            )
        self._changed()

    def _in_stream(self, prefix: str, seq: int) -> None:
        s = self.streams.get(prefix)
        if s is None:
            s = self.streams[prefix] = {"count": 0, "first": seq, "last": None, "order_errors": 0}
        elif seq != s["last"] + 1:
            s["order_errors"] += 1
        s["count"] += 1
        s["last"] = seq

    def _changed(self) -> None:
        self._dirty = True
        mark = (self.received + self.delivered) // self.progress_every
        if mark != self._last_mark:
            self._last_mark = mark
            self.progress()

    def progress(self) -> None:
        self._dirty = False
        self._dupes = self.node.delivery.stats["dupes"]
        self.say(
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

    def flush(self) -> None:
        """A last progress line, if anything changed since the one before."""
        if self._dirty:
            self.progress()

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)  # a periodic report, not synchronisation
            if self._dirty or self.node.delivery.stats["dupes"] != self._dupes:
                self.progress()

    def stats(self) -> dict:
        return {
            "received": self.received,
            "delivered": self.delivered,
            "delivered_rows": len(self.delivered_rowids),
            "shown_twice": self.shown_twice,
            "streams": self.streams,
            "states": self.states,
        }


class Worker:
    """The node, its tally and the commands; ``done`` is set when the node should stop."""

    def __init__(self, node: Node, each: bool, progress_every: int) -> None:
        self.node = node
        self.done = asyncio.Event()
        self.control = None  # the control socket's server, once asked for (cmd_control)
        self.tally = Tally(node, self.say, each, progress_every)
        self.timing = Timing(node, self.tally)

    def say(self, obj: dict) -> None:
        if not emit(obj):
            self.done.set()

    async def command(self, req: dict) -> None:
        tag, cmd = req.get("tag"), req.get("cmd")
        handler = getattr(self, f"cmd_{cmd}", None) or getattr(self.timing, f"cmd_{cmd}", None)
        try:
            if handler is None:
                raise ValueError(f"unknown command {cmd!r}")
            result = await handler(req)
        except Exception as err:  # answered, never fatal: the node runs on
            self.say(
                {"ev": "error", "re": tag, "cmd": cmd, "error": f"{type(err).__name__}: {err}"}
            )
            return
        self.say({"ev": "reply", "re": tag, "cmd": cmd, **result})

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
        return {"node": self.node.stats(), **self.tally.stats()}

    async def cmd_send_file(self, req: dict) -> dict:
        t0 = time.monotonic()
        made = await self.node.send_file_to_many(req.get("peers"), req["path"])
        return {"t0": t0, "offered": time.monotonic(), "keys": [f.key for f in made]}

    async def cmd_files_done(self, req: dict) -> dict:
        count, tally = int(req["count"]), self.tally
        deadline = time.monotonic() + float(req.get("timeout", 60.0))
        while len(tally.files_done) < count:
            tally.file_ended.clear()
            await asyncio.wait_for(tally.file_ended.wait(), max(0.0, deadline - time.monotonic()))
        return {"done": tally.files_done[:count]}

    async def cmd_check_history(self, req: dict) -> dict:
        peer = self.node.resolve(req["peer"])
        await self.node.settled()  # what it showed is stored, as a face reading it waits
        return await asyncio.to_thread(
            history_report, self.node.store, peer.fingerprint, req["prefix"]
        )

    async def cmd_control(self, req: dict) -> dict:
        path = runner.control_path(self.node.home)
        if self.control is None:
            self.control = await runner.start_control(self.node, path)
        return {"path": None if self.control is None else str(path)}

    async def cmd_nearby(self, req: dict) -> dict:
        """LAN discovery's state and what this node heard (Node.nearby)."""
        return {
            "state": self.node.discovery_state,
            "nearby": [
                {"fp": n.fingerprint, "addresses": list(n.addresses), "contact": n.contact,
                 "known": n.known, "invites": list(n.invites)}
                for n in self.node.nearby()
            ],
        }  # fmt: skip

    async def cmd_invites(self, req: dict) -> dict:
        """Announce these open invitations' nameplates (Node.set_invites)."""
        self.node.set_invites(req["nameplates"])
        return {}

    async def cmd_peer(self, req: dict) -> dict:
        """One peer as stored (None: not in the store), by its full fingerprint."""
        p = self.node.contact(req["fp"])
        if p is None:
            return {"peer": None}
        return {"peer": {"address": p.address, "learned": p.learned_address, "name": p.name}}

    async def cmd_quit(self, req: dict) -> dict:
        self.done.set()
        return {}


async def read_commands(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=COMMAND_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:  # the caller went away: stop cleanly
            worker.done.set()
            return
        if line.strip():
            try:
                req = json.loads(line)
            except ValueError as err:
                worker.say({"ev": "error", "error": f"bad command line: {err}"})
                continue
            loop.create_task(worker.command(req))


def _store_key(key) -> bytes:
    import hashlib

    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return hashlib.sha256(b"enclave test store key\n" + der).digest()


async def amain(args) -> int:
    key = serialization.load_pem_private_key(Path(args.key_file).read_bytes(), None)
    settings = settings_mod.load(Path(args.home), settings_mod.overrides_from(args))
    # --sealed: the history sealed under a store key, as a user's node keeps it; the
    # same key at every start on this home (a user's comes from identity.key), here
    # derived from the worker's private key.
    store_key = _store_key(key) if args.sealed else None
    node = Node(args.home, key, settings, store_key=store_key)
    worker = Worker(node, args.each, args.progress_every)
    tally = worker.tally
    if args.quiet:
        node.subscribe(tally.count, progress=False)
    else:
        node.subscribe(tally.on_event)
    _, port = await node.start(args.host, args.port)
    listening = time.monotonic()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.done.set)
    worker.say(
        {"ev": "ready", "port": port, "fp": node.fingerprint, "pid": os.getpid(), "t": listening}
    )
    tasks = [loop.create_task(read_commands(worker))]
    if not args.quiet:
        tasks.append(loop.create_task(tally.ticker()))
    await worker.done.wait()
    await runner.stop_node(node, worker.control)  # the control socket first, if served
    for task in tasks:
        task.cancel()
    tally.flush()
    worker.say({"ev": "stopped"})
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--each", action="store_true", help="print every message event")
    mode.add_argument("--quiet", action="store_true", help="replies only (benchmarks)")
    parser.add_argument("--progress-every", type=int, default=1000)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--sealed", action="store_true", help="seal the history (a store key)")
    settings_mod.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
    return run_on_uvloop(amain(args))  # as a user's node starts (loop, thread switching)


if __name__ == "__main__":
    sys.exit(main())
