"""One Enclave node in its own process for bench/e2e.py, driven by JSON lines.

    python bench/node_worker.py --home DIR --key-file KEY.pem [--settings JSON]

The node listens on 127.0.0.1 (uvloop) on a free port. stdout carries one JSON object
per line: first ``{"ev": "ready", "port", "fp", "pid"}``, then exactly one reply per
command, ``{"re": tag, ...}`` (or ``{"re": tag, "error": "..."}``). Commands on stdin:

    {"cmd": "add_peer", "pem": "...", "address": "127.0.0.1:p"}
    {"cmd": "warm", "peer_fp": hex}                     one message, delivered (acked)
    {"cmd": "throughput", "peer_fp": hex, "n": N}       N chats of 100 B in one submit_many;
        reply when all N are delivered (stored and acked by the peer), with the times
    {"cmd": "pace", "peer_fp": hex, "rate": r, "n": N}  N chats, one every 1/r s; reply
        when all are delivered, with each body's send, committed ("queued") and
        handed-to-link ("sent") times (time.monotonic)
    {"cmd": "broadcast"}                  one chat to every known peer (Node.broadcast);
        reply when all are delivered, with the time from the call
    {"cmd": "record", "prefix": "L"}      start noting receive times of such bodies
    {"cmd": "received"}                   those times: shown (MessageReceived) and
        decrypted (chats reaching Delivery.on_chats past the receive quotas, before
        their commit); stop noting
    {"cmd": "stats"}                      Node.stats() plus received/delivered counts
    {"cmd": "profile", "on": bool, "out": path}   cProfile of the loop and writer threads
    {"cmd": "cpu"}                        CPU seconds so far per thread (from /proc)
    {"cmd": "quit"}

The key file is an unencrypted PKCS8 PEM written by the harness into its temporary
folder: a benchmark shortcut, never the format Enclave keeps keys in.
"""

import argparse
import asyncio
import cProfile
import json
import os
import sys
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from enclave import settings as settings_mod
from enclave.node import Node
from enclave.node_events import DeliveryChanged, MessageReceived
from enclave.runner import run_on_uvloop

BODY_SIZE = 100


def body(prefix: str, seq: int) -> str:
    return f"{prefix}{seq:09d}".ljust(BODY_SIZE, ".")


class Worker:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.delivered = 0
        self.received = 0
        self.recv_times: dict[str, float] = {}
        self.record_prefix: str | None = None
        self.profiler = None
        self.sent_times: dict[tuple, float] | None = None
        self.arrived: dict[str, float] = {}
        self._target = 0
        self._reached: asyncio.Future | None = None
        self.done = asyncio.Event()

    # The subscriber stays as cheap as an application's would: count, and note times.
    # It does not ask for the per-message "queued"/"sent" events (subscribed with
    # progress=False); only the paced run adds a subscriber for them (``on_progress``).
    def on_progress(self, ev) -> None:
        if type(ev) is DeliveryChanged and ev.state in ("queued", "sent"):
            if self.sent_times is not None:  # queued: committed; sent: handed to the link
                self.sent_times[(ev.state, ev.id)] = time.monotonic()

    def on_event(self, ev) -> None:
        kind = type(ev)
        if kind is MessageReceived:
            self.received += 1
            prefix = self.record_prefix
            if prefix is not None and ev.body.startswith(prefix):
                self.recv_times[ev.body] = time.monotonic()
        elif kind is DeliveryChanged and ev.state == "delivered":
            self.delivered += 1
            if self._reached is not None and self.delivered >= self._target:
                if not self._reached.done():
                    self._reached.set_result(time.monotonic())

    def _until_delivered(self, total: int) -> asyncio.Future:
        self._target = total
        self._reached = asyncio.get_running_loop().create_future()
        if self.delivered >= total:
            self._reached.set_result(time.monotonic())
        return self._reached

    async def cmd_add_peer(self, req: dict) -> dict:
        peer = self.node.add_peer(req["pem"], req.get("address"), req.get("name"))
        return {"fp": peer.fingerprint}

    async def cmd_warm(self, req: dict) -> dict:
        peer = bytes.fromhex(req["peer_fp"])
        reached = self._until_delivered(self.delivered + 1)
        t0 = time.monotonic()
        await self.node.submit(peer, body("w", 0))
        await reached
        return {"seconds": time.monotonic() - t0}

    async def cmd_throughput(self, req: dict) -> dict:
        peer, n = bytes.fromhex(req["peer_fp"]), int(req["n"])
        prefix = req.get("prefix", "t")
        reached = self._until_delivered(self.delivered + n)
        t0 = time.monotonic()
        # One call for the burst (Node.submit_many, the bulk sender's API): one future
        # for all, instead of one per message (cmd_pace uses Node.submit per message).
        future = self.node.submit_many(peer, [body(prefix, i) for i in range(n)])
        t_submitted = time.monotonic()
        await future
        t_durable = time.monotonic()
        t_done = await reached
        return {
            "n": n,
            "start": t0,
            "submit_seconds": t_submitted - t0,
            "durable_seconds": t_durable - t0,
            "seconds": t_done - t0,
        }

    async def cmd_pace(self, req: dict) -> dict:
        peer, n, rate = bytes.fromhex(req["peer_fp"]), int(req["n"]), float(req["rate"])
        prefix = req.get("prefix", "L")
        reached = self._until_delivered(self.delivered + n)
        sent: dict[str, float] = {}
        self.sent_times = {}
        unsubscribe = self.node.subscribe(self.on_progress)
        futures = []
        began = time.monotonic() + 0.01
        for i in range(n):
            due = began + i / rate
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # pacing the producer, not synchronisation
            text = body(prefix, i)
            sent[text] = time.monotonic()
            futures.append(self.node.submit(peer, text))
        outs = await asyncio.gather(*futures)
        await reached
        unsubscribe()
        times = self.sent_times
        durable = {o.body: times.get(("queued", o.id)) for o in outs}
        on_wire = {o.body: times.get(("sent", o.id)) for o in outs}
        self.sent_times = None
        late = time.monotonic() - (began + (n - 1) / rate)
        return {
            "n": n,
            "sent": sent,
            "durable": durable,
            "on_wire": on_wire,
            "finished_after_last_due": late,
        }

    async def cmd_broadcast(self, req: dict) -> dict:
        count = len(self.node.store.list_peers())
        reached = self._until_delivered(self.delivered + count)
        t0 = time.monotonic()
        sent = await self.node.broadcast(body("b", 0))
        t_durable = time.monotonic()
        t_done = await reached
        return {"peers": len(sent), "durable_seconds": t_durable - t0, "seconds": t_done - t0}

    async def cmd_record(self, req: dict) -> dict:
        """Note receive times of bodies starting with ``prefix``: when MessageReceived
        reaches the subscriber, and (``arrival``) when the decrypted chats reach
        delivery, before their commit (a wrapper on ``Delivery.on_chats``)."""
        self.record_prefix = req["prefix"]
        self.recv_times.clear()
        self.arrived = {}
        delivery = self.node.delivery
        on_chats = delivery.on_chats
        arrived = self.arrived

        def noting(link, chats, *rest):
            now = time.monotonic()
            for c in chats:
                arrived[c.body] = now
            return on_chats(link, chats, *rest)

        delivery.on_chats = noting
        self._unwrap = lambda: delattr(delivery, "on_chats")
        return {}

    async def cmd_received(self, req: dict) -> dict:
        times, self.recv_times = self.recv_times, {}
        self.record_prefix = None
        self._unwrap()
        arrived, self.arrived = self.arrived, {}
        return {"times": times, "arrived": arrived, "received": self.received}

    async def cmd_stats(self, req: dict) -> dict:
        return {"node": self.node.stats(), "received": self.received, "delivered": self.delivered}

    async def cmd_cpu(self, req: dict) -> dict:
        return {"threads": thread_cpu()}

    async def cmd_profile(self, req: dict) -> dict:
        """Start (``on``) or stop and dump cProfile of the event-loop thread and of the
        store writer thread (its commits run in ``Delivery._write``)."""
        delivery = self.node.delivery
        if req["on"]:
            self.profiler = (cProfile.Profile(), cProfile.Profile(), delivery._write)
            main_prof, writer_prof, write = self.profiler

            def profiled_write(batch):
                writer_prof.enable()
                try:
                    return write(batch)
                finally:
                    writer_prof.disable()

            delivery._write = profiled_write
            main_prof.enable()
            return {}
        main_prof, writer_prof, write = self.profiler
        main_prof.disable()
        delivery._write = write
        self.profiler = None
        self.sent_times: dict[tuple, float] | None = None
        self.arrived: dict[str, float] = {}
        out = Path(req["out"])
        main_prof.dump_stats(out.with_suffix(".loop.prof"))
        writer_prof.dump_stats(out.with_suffix(".writer.prof"))
        return {
            "loop": str(out.with_suffix(".loop.prof")),
            "writer": str(out.with_suffix(".writer.prof")),
        }

    async def cmd_quit(self, req: dict) -> dict:
        self.done.set()
        return {}

    async def command(self, req: dict) -> None:
        tag = req.get("tag")
        try:
            result = await getattr(self, f"cmd_{req['cmd']}")(req)
        except Exception as err:  # report, never kill the node mid-benchmark
            result = {"error": f"{type(err).__name__}: {err}"}
        emit({"re": tag, **result})


def thread_cpu() -> dict[str, float]:
    """User + system CPU seconds of each thread of this process, by Python thread name
    (threads Python does not know, e.g. OpenSSL's or uvloop's, are summed as "other")."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{task}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        name = names.get(int(task), "other")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def read_commands(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            worker.done.set()
            return
        if line.strip():
            loop.create_task(worker.command(json.loads(line)))


async def amain(args) -> int:
    key = serialization.load_pem_private_key(Path(args.key_file).read_bytes(), None)
    settings = settings_mod.load(Path(args.home), json.loads(args.settings))
    node = Node(args.home, key, settings)
    worker = Worker(node)
    node.subscribe(worker.on_event, progress=False)
    _, port = await node.start("127.0.0.1", 0)
    emit({"ev": "ready", "port": port, "fp": node.fingerprint, "pid": os.getpid()})
    reading = asyncio.get_running_loop().create_task(read_commands(worker))
    await worker.done.wait()
    await node.stop()
    reading.cancel()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--settings", default="{}", help="Settings overrides as JSON")
    args = parser.parse_args(argv)
    return run_on_uvloop(amain(args))  # the node's own process entry (loop, GIL switching)


if __name__ == "__main__":
    sys.exit(main())
