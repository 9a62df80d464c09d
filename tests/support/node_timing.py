"""The node worker's timing commands: a node's own side of the benchmarks' runs.

bench/ drives node workers (``node_worker.py --quiet``) with these; each command times
what happens in this process with ``time.monotonic()``, the clock every process on the
machine shares, so that a receiver's times can be set against a sender's:

    {"cmd": "warm", "peer_fp": hex}                     one message, delivered (acked)
    {"cmd": "throughput", "peer_fp": hex, "n": N}       N chats of 100 B in one submit_many;
        reply when all N are delivered (stored and acked by the peer), with the times
    {"cmd": "pace", "peer_fp": hex, "rate": r, "n": N}  N chats, one every 1/r s; reply
        when all are delivered, with each body's send, committed ("queued") and
        handed-to-link ("sent") times
    {"cmd": "broadcast"}                  one chat to every known peer (Node.broadcast);
        reply when all are delivered, with the time from the call
    {"cmd": "burst", "peer_fp": hex, "n": N}  N chats, each its own Node.submit, all at
        once; reply when all are delivered (the direct side of the group cases)
    {"cmd": "group_create", "name": s, "members": [hex, ...]}  a group of us and those
        contacts; its id
    {"cmd": "group_rounds", "group": id, "rounds": R}  R posts (Node.group_send), each once
        the one before is delivered to every other member; each one's seconds until then
    {"cmd": "group_burst", "group": id, "n": N}  N posts at once; reply when every copy
        is delivered
    {"cmd": "record", "prefix": "L"}      start noting receive times of such bodies
    {"cmd": "received"}                   those times: shown (MessageReceived) and
        decrypted (chats reaching Delivery.on_chats past the receive quotas, before
        their commit); stop noting
    {"cmd": "note"}                       start noting when the node publishes a peer's
        PeerOnline / PeerOffline and a new message's first "queued" (the one carrying
        its text: when a face shows it); forgets what was noted before. {"on": false}:
        stop noting
    {"cmd": "noted", "ev": "online" | "offline" | "queued", "peer": hex, "body": text,
     "timeout": s}                        the time of the first such event noted since
        "note" (``peer`` and ``body`` optional), waiting for it if need be
    {"cmd": "profile", "on": bool, "out": path}   cProfile of the loop and writer threads
    {"cmd": "cpu"}                        CPU seconds so far per thread (from /proc)

Rules: nothing here runs per message unless a command asked for it (the pace run's
progress subscriber, the record run's wrapper), so that a node that is only measured
does no work a user's node would not; the wrappers come off when their run ends.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import threading
import time
from pathlib import Path

from enclave.node.events import DeliveryChanged, PeerOffline, PeerOnline
from support.streams import make_body


class Timing:
    """The timing commands of one node; ``tally`` counts its deliveries and shown times."""

    def __init__(self, node, tally) -> None:
        self.node = node
        self.tally = tally
        self.profiler = None
        self.sent_times: dict[tuple, float] | None = None
        self.arrived: dict[str, float] = {}
        self._unwrap = None
        self.noted: list[dict] = []  # the "note" command's events, with their times
        self._noting = None  # its unsubscribe function while it notes
        self._fresh = asyncio.Event()  # set whenever an event is noted

    def on_progress(self, ev) -> None:
        """The pace run's own subscriber: when each message was committed ("queued")
        and handed to the link ("sent")."""
        if type(ev) is DeliveryChanged and ev.state in ("queued", "sent"):
            if self.sent_times is not None:
                self.sent_times[(ev.state, ev.id)] = time.monotonic()

    async def cmd_warm(self, req: dict) -> dict:
        peer = bytes.fromhex(req["peer_fp"])
        reached = self.tally.until_delivered(self.tally.delivered + 1)
        t0 = time.monotonic()
        await self.node.submit(peer, make_body("w", 0))
        await reached
        return {"seconds": time.monotonic() - t0}

    async def cmd_throughput(self, req: dict) -> dict:
        peer, n = bytes.fromhex(req["peer_fp"]), int(req["n"])
        prefix = req.get("prefix", "t")
        reached = self.tally.until_delivered(self.tally.delivered + n)
        t0 = time.monotonic()
        # One call for the burst (Node.submit_many, the bulk sender's API): one future
        # for all, instead of one per message (cmd_pace uses Node.submit per message).
        future = self.node.submit_many(peer, [make_body(prefix, i) for i in range(n)])
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
        reached = self.tally.until_delivered(self.tally.delivered + n)
        self.sent_times = {}
        unsubscribe = self.node.subscribe(self.on_progress)
        began = time.monotonic() + 0.01
        sent, outs = await self._paced(peer, prefix, n, rate, began)
        await reached
        unsubscribe()
        times, self.sent_times = self.sent_times, None
        return {
            "n": n,
            "sent": sent,
            "durable": {o.body: times.get(("queued", o.id)) for o in outs},
            "on_wire": {o.body: times.get(("sent", o.id)) for o in outs},
            "finished_after_last_due": time.monotonic() - (began + (n - 1) / rate),
        }

    async def _paced(self, peer: bytes, prefix: str, n: int, rate: float, began: float):
        """Submit ``n`` chats, the i-th at ``began + i / rate``: each body's submit time,
        and the submitted messages once all are durable."""
        sent: dict[str, float] = {}
        futures = []
        for i in range(n):
            wait = began + i / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # pacing the producer, not synchronisation
            text = make_body(prefix, i)
            sent[text] = time.monotonic()
            futures.append(self.node.submit(peer, text))
        return sent, await asyncio.gather(*futures)

    async def cmd_broadcast(self, req: dict) -> dict:
        count = len(self.node.store.list_peers())
        reached = self.tally.until_delivered(self.tally.delivered + count)
        t0 = time.monotonic()
        sent = await self.node.broadcast(make_body("b", 0))
        t_durable = time.monotonic()
        t_done = await reached
        return {"peers": len(sent), "durable_seconds": t_durable - t0, "seconds": t_done - t0}

    async def cmd_burst(self, req: dict) -> dict:
        peer, n = bytes.fromhex(req["peer_fp"]), int(req["n"])
        reached = self.tally.until_delivered(self.tally.delivered + n)
        t0 = time.monotonic()
        await asyncio.gather(*(self.node.submit(peer, make_body("d", i)) for i in range(n)))
        t_durable = time.monotonic()
        t_done = max(await reached, t_durable)  # delivered and durable, both
        return {"n": n, "durable_seconds": t_durable - t0, "seconds": t_done - t0}

    async def cmd_group_create(self, req: dict) -> dict:
        info = await self.node.create_group(req["name"], req["members"])
        return {"group": info.id, "members": len(info.members)}

    async def cmd_group_rounds(self, req: dict) -> dict:
        """A member's copy of a post is one outbox row, acked as any message is; only
        this group's copies are counted (GroupAcks), not the group's own records."""
        group, copies = req["group"], len(self.node.group(req["group"]).members) - 1
        acks = GroupAcks(self.node, group)
        rounds = []
        try:
            for i in range(int(req["rounds"])):
                reached = acks.until(acks.count + copies)
                t0 = time.monotonic()
                sent = await self.node.group_send(group, make_body("g", i))
                t_durable = time.monotonic()
                t_done = max(await reached, t_durable)  # delivered and durable, both
                rounds.append({"durable": t_durable - t0, "seconds": t_done - t0})
                if len(sent.rowids) != copies:
                    raise RuntimeError(f"{len(sent.rowids)} copies queued, not {copies}")
        finally:
            acks.unsubscribe()
        return {"copies": copies, "rounds": rounds}

    async def cmd_group_burst(self, req: dict) -> dict:
        group, n = req["group"], int(req["n"])
        copies = len(self.node.group(group).members) - 1
        acks = GroupAcks(self.node, group)
        try:
            reached = acks.until(n * copies)
            t0 = time.monotonic()
            posts = (self.node.group_send(group, make_body("G", i)) for i in range(n))
            await asyncio.gather(*posts)
            t_durable = time.monotonic()
            t_done = max(await reached, t_durable)  # delivered and durable, both
        finally:
            acks.unsubscribe()
        return {
            "n": n,
            "copies": n * copies,
            "durable_seconds": t_durable - t0,
            "seconds": t_done - t0,
        }

    async def cmd_record(self, req: dict) -> dict:
        """Note receive times of bodies starting with ``prefix``: when MessageReceived
        reaches the subscriber (the tally), and (``arrived``) when the decrypted chats
        reach delivery, before their commit (a wrapper on ``Delivery.on_chats``)."""
        self.tally.record(req["prefix"])
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
        times = self.tally.record(None)
        self._unwrap()
        arrived, self.arrived = self.arrived, {}
        return {"times": times, "arrived": arrived, "received": self.tally.received}

    async def cmd_note(self, req: dict) -> dict:
        if self._noting is not None:
            self._noting()
            self._noting = None
        self.noted = []
        if req.get("on", True):
            # A subscriber that wants progress: the node makes "queued" events meanwhile.
            self._noting = self.node.subscribe(self._note)
        return {}

    def _note(self, ev) -> None:
        kind = type(ev)
        if kind is PeerOnline:
            name, body = "online", None
        elif kind is PeerOffline:
            name, body = "offline", None
        elif kind is DeliveryChanged and ev.state == "queued" and ev.body is not None:
            name, body = "queued", ev.body
        else:
            return
        self.noted.append({"ev": name, "peer": ev.peer, "body": body, "t": time.monotonic()})
        self._fresh.set()

    async def cmd_noted(self, req: dict) -> dict:
        want = {key: req[key] for key in ("ev", "peer", "body") if req.get(key) is not None}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(req.get("timeout", 30.0))
        while True:
            for e in self.noted:
                if all(e[key] == value for key, value in want.items()):
                    return {"t": e["t"], "ev": e["ev"], "peer": e["peer"]}
            self._fresh.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {want} noted")
            await asyncio.wait_for(self._fresh.wait(), left)

    async def cmd_cpu(self, req: dict) -> dict:
        return {"threads": thread_cpu()}

    async def cmd_profile(self, req: dict) -> dict:
        """Start (``on``) or stop and dump cProfile of the event-loop thread and of the
        store writer thread (its commits run in ``Delivery._write``)."""
        if req["on"]:
            self._profile_on()
            return {}
        main_prof, writer_prof, write = self.profiler
        main_prof.disable()
        self.node.delivery._write = write
        self.profiler = None
        out = Path(req["out"])
        files = {"loop": out.with_suffix(".loop.prof"), "writer": out.with_suffix(".writer.prof")}
        main_prof.dump_stats(files["loop"])
        writer_prof.dump_stats(files["writer"])
        return {"files": {thread: str(path) for thread, path in files.items()}}

    def _profile_on(self) -> None:
        delivery = self.node.delivery
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


class GroupAcks:
    """The delivered copies of one group's posts, counted by a subscriber of its own
    (no progress events) while a group command runs; ``until(total)`` resolves to the
    time the count reaches ``total``."""

    def __init__(self, node, group: str) -> None:
        self.group = group
        self.count = 0
        self._target = 0
        self._reached: asyncio.Future | None = None
        self.unsubscribe = node.subscribe(self.on_event, progress=False)

    def on_event(self, ev) -> None:
        if type(ev) is DeliveryChanged and ev.state == "delivered" and ev.group == self.group:
            self.count += 1
            reached = self._reached
            if reached is not None and self.count >= self._target and not reached.done():
                reached.set_result(time.monotonic())

    def until(self, total: int) -> asyncio.Future:
        self._target = total
        self._reached = asyncio.get_running_loop().create_future()
        if self.count >= total:
            self._reached.set_result(time.monotonic())
        return self._reached


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
