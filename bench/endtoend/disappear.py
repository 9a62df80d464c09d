"""Disappearing messages between two running nodes (RSA-4096, 127.0.0.1).

A sends N messages to B with no timer, then N more with a 1-hour timer (each batch
timed from the first send until B has them all): what a timer costs a message on both
sides (its expiry written in the same commit). Then both clocks move past the hour and
a minute (clocks the case moves, as the tests do: nothing sleeps), and the clock runs
until both nodes have erased all N timed messages (MessagesExpired) from their stores.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from endtoend.inprocess import contacts

HOUR = 3600


def disappear_case(tmp: Path, a_key, b_key, n: int) -> dict:
    return asyncio.run(_case(tmp, a_key, b_key, n))


async def _case(tmp: Path, a_key, b_key, n: int) -> dict:
    from enclave.node.clock import Clock
    from enclave.node.events import MessageReceived, MessagesExpired, TimerChanged

    class Moved(Clock):
        offset_ms = 0

        def now_ms(self) -> int:
            return super().now_ms() + self.offset_ms

    clocks = Moved(), Moved()
    a, b = await contacts(tmp, a_key, b_key, "gone", clocks)
    got, timer = [0], asyncio.Event()
    erased = {"a": 0, "b": 0}
    all_got, all_erased = asyncio.Event(), asyncio.Event()
    want = [0]

    def on_b(event) -> None:
        if isinstance(event, MessageReceived):
            got[0] += 1
            if got[0] >= want[0]:
                all_got.set()
        elif isinstance(event, TimerChanged):
            timer.set()

    def count(side):
        def on(event) -> None:
            if isinstance(event, MessagesExpired):
                erased[side] += len(event.keys)
                if erased["a"] >= n and erased["b"] >= n:
                    all_erased.set()

        return on

    b.subscribe(on_b)
    a.subscribe(count("a"))
    b.subscribe(count("b"))

    async def batch(tag: str) -> float:
        got[0], want[0] = 0, n
        all_got.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(a.send("bob", f"{tag} {i}") for i in range(n)))
        await asyncio.wait_for(all_got.wait(), 120)
        return time.perf_counter() - t0

    try:
        await a.send("bob", "warm")
        got[0], want[0] = 0, 1
        await asyncio.wait_for(all_got.wait(), 30)
        off_s = await batch("plain")
        await a.set_disappearing("bob", HOUR)
        await asyncio.wait_for(timer.wait(), 30)
        on_s = await batch("timed")
        t0 = time.perf_counter()
        for clock in clocks:
            clock.offset_ms = (HOUR + 60) * 1000
            clock.jumped()
        await asyncio.wait_for(all_erased.wait(), 120)
        expire_s = time.perf_counter() - t0
    finally:
        await a.stop()
        await b.stop()
    return {
        "n": n,
        "off_msg_s": round(n / off_s),
        "on_msg_s": round(n / on_s),
        "expire_ms": round(expire_s * 1000, 1),
    }
