"""Durable throughput with history off beside the same with history on.

Two nodes in this process on 127.0.0.1 (RSA-4096), contacts with a session up, their
receive quotas raised (BULK_RECEIVER, as the throughput case: the quota is not what
is measured). Each run, A queues ``n`` messages of 100 B to B at once
(``Node.submit_many``) and the clock runs until A has every "delivered": B stored
each (as a tombstone with history off) and acked it, and A's commit marked it (erasing
it with history off). The two settings alternate, ``runs`` times each, history on
first; each figure is the best of its runs (two nodes share one event loop here, so
the figures are for comparing, not the node's own throughput, which scenarios.py has).
With history off both sides forget each other: B writes no bodies, A erases its rows
at the ack and truncates the WAL when the commits go idle.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from support.procs import BULK_RECEIVER

from endtoend.inprocess import contacts

BODY = "x" * 100


def nohistory_case(tmp: Path, a_key, b_key, n: int, runs: int = 3) -> dict:
    return asyncio.run(_runs(tmp, a_key, b_key, n, runs))


async def _runs(tmp: Path, a_key, b_key, n: int, runs: int) -> dict:
    from enclave.node.events import DeliveryChanged
    from enclave.node.settings import Settings

    bulk = Settings(**{key: float(value) for key, value in BULK_RECEIVER.items()})
    a, b = await contacts(tmp, a_key, b_key, "nohist", bulk)
    delivered = 0
    done = asyncio.Event()

    def on_a(event) -> None:
        nonlocal delivered
        if isinstance(event, DeliveryChanged) and event.state == "delivered":
            delivered += 1
            if delivered >= n:
                done.set()

    a.subscribe(on_a, progress=False)
    bob = bytes.fromhex(a.resolve("bob").fingerprint)
    rates: dict[str, list[float]] = {"on": [], "off": []}
    try:
        await a.send("bob", "warm")  # a session is up before the first run
        for _ in range(runs):
            for setting in ("on", "off"):
                a.set_keep_history("bob", setting == "on")
                b.set_keep_history("alice", setting == "on")
                await a.delivery.flush()
                delivered = 0
                done.clear()
                t0 = time.perf_counter()
                await a.submit_many(bob, [BODY] * n)
                await asyncio.wait_for(done.wait(), 60 + n / 1000)
                rates[setting].append(n / (time.perf_counter() - t0))
        kept = len(b.history("alice", runs * n + 10))  # the "on" runs and the warm one
    finally:
        await a.stop()
        await b.stop()
    on, off = max(rates["on"]), max(rates["off"])
    return {"n": n, "runs": runs, "on_rate": on, "off_rate": off, "ratio": off / on, "kept": kept}
