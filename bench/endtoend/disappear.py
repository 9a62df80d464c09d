"""Disappearing messages between two running nodes (RSA-4096, 127.0.0.1).

A sends N messages to B with no timer, then N more with a 1-hour timer (each batch
timed from the first send until B has them all): what a timer costs a message on both
sides (its expiry written in the same commit). Then both clocks move past the hour and
a minute (clocks the case moves, as the tests do: nothing sleeps), and the clock runs
until both nodes have erased all N timed messages (MessagesExpired) from their stores.

The group case does the same in a group of 5 (A, its admin, with B, the hub and two
RSA-2048 members; each knows only A): N posts from A with no timer, then N under a
1-hour group timer (a TIMER record of the group's log), each batch until every member
has them all; then every clock moves past the hour and runs until every member has
erased them (GroupMessagesExpired): A its 4 copies of each, each member its one.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from endtoend.inprocess import contacts

HOUR = 3600


async def _past_the_hour(clocks, erased: asyncio.Event, timeout: float) -> float:
    """Move every node's clock past the hour and a minute; seconds until ``erased``."""
    t0 = time.perf_counter()
    for clock in clocks:
        clock.offset_ms = (HOUR + 60) * 1000
        clock.jumped()
    await asyncio.wait_for(erased.wait(), timeout)
    return time.perf_counter() - t0


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
    a, b = await contacts(tmp, a_key, b_key, "gone", clocks=clocks)
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
        expire_s = await _past_the_hour(clocks, all_erased, 120)
    finally:
        await a.stop()
        await b.stop()
    return {
        "n": n,
        "off_msg_s": round(n / off_s),
        "on_msg_s": round(n / on_s),
        "expire_ms": round(expire_s * 1000, 1),
    }


def group_disappear_case(tmp: Path, keys: list, n: int) -> dict:
    """``keys``: 5 private keys, the admin's first."""
    return asyncio.run(_group_case(tmp, keys, n))


async def _group_case(tmp: Path, keys: list, n: int) -> dict:
    from cryptography.hazmat.primitives import serialization

    from enclave.node import Node
    from enclave.node.clock import Clock
    from enclave.node.events import GroupChanged, GroupMessageReceived, GroupMessagesExpired

    class Moved(Clock):
        offset_ms = 0

        def now_ms(self) -> int:
            return super().now_ms() + self.offset_ms

    pem = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    clocks = [Moved() for _ in keys]
    nodes = [
        Node(tmp / f"gone-g{i}", key, clock=clock)
        for i, (key, clock) in enumerate(zip(keys, clocks, strict=True))
    ]
    for node in nodes:
        await node.start("127.0.0.1", 0)
    admin, members = nodes[0], nodes[1:]
    names = [f"m{i}" for i in range(1, len(nodes))]
    got = {i: 0 for i in range(1, len(nodes))}
    erased = {i: 0 for i in range(len(nodes))}
    want, timed, joined = [0], set(), set()
    all_got, all_timed, all_joined, all_erased = (asyncio.Event() for _ in range(4))

    def watch(i: int):
        def on(event) -> None:
            if isinstance(event, GroupMessageReceived):
                got[i] += 1
                if all(v >= want[0] for v in got.values()):
                    all_got.set()
            elif isinstance(event, GroupChanged) and i:  # a member heard the record
                (timed if event.kind == "timer" else joined).add(i)
                if len(timed) == len(members):
                    all_timed.set()
                if len(joined) == len(members):
                    all_joined.set()
            elif isinstance(event, GroupMessagesExpired):
                erased[i] += len(event.ids)
                if all(v >= n for v in erased.values()):
                    all_erased.set()

        return on

    for i, node in enumerate(nodes):
        node.subscribe(watch(i))

    async def batch(tag: str) -> float:
        for i in got:
            got[i] = 0
        want[0] = n
        all_got.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(admin.group_send("five", f"{tag} {i}") for i in range(n)))
        await asyncio.wait_for(all_got.wait(), 300)
        return time.perf_counter() - t0

    try:
        admin_pem = keys[0].public_key().public_bytes(*pem).decode()
        for name, node, key in zip(names, members, keys[1:], strict=True):
            admin.add_peer(key.public_key().public_bytes(*pem).decode(),
                           f"127.0.0.1:{node.address[1]}", name)  # fmt: skip
            node.add_peer(admin_pem, f"127.0.0.1:{admin.address[1]}", "admin")
        await admin.create_group("five", names)
        await asyncio.wait_for(all_joined.wait(), 60)
        want[0] = 1
        await admin.group_send("five", "warm")
        await asyncio.wait_for(all_got.wait(), 60)
        off_s = await batch("plain")
        await admin.group_disappearing("five", HOUR)
        await asyncio.wait_for(all_timed.wait(), 60)
        on_s = await batch("timed")
        expire_s = await _past_the_hour(clocks, all_erased, 300)
    finally:
        for node in nodes:
            await node.stop()
    return {
        "n": n,
        "members": len(nodes),
        "off_posts_s": round(n / off_s),
        "on_posts_s": round(n / on_s),
        "expire_ms": round(expire_s * 1000, 1),
    }
