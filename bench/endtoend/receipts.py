"""Replies and read receipts between two running nodes (RSA-4096, 127.0.0.1).

Each round: A sends a message; when B has it, B answers with a reply quoting it (the
clock runs until A has the reply, with its quote); then B's user reads the chat
(``Node.mark_read``) and the clock runs until A shows its message read
(``MessagesRead``). Both sides allow receipts; a session is up before the first round.
Rounds are paced FLUSH_S apart, as a person reads: a sender applies a contact's first
READ at once and then at most one per FLUSH_S (node/receipts.py), so back-to-back
reads would measure that bound instead.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from endtoend.inprocess import contacts
from endtoend.measure import percentiles_us


def receipts_case(tmp: Path, a_key, b_key, rounds: int) -> dict:
    return asyncio.run(_rounds(tmp, a_key, b_key, rounds))


async def _rounds(tmp: Path, a_key, b_key, rounds: int) -> dict:
    from enclave.node.events import MessageReceived, MessagesRead
    from enclave.node.receipts import FLUSH_S

    a, b = await contacts(tmp, a_key, b_key, "rcpt")
    a.set_receipts("bob", True)
    b.set_receipts("alice", True)
    got_b: asyncio.Queue = asyncio.Queue()
    replied, read = asyncio.Event(), asyncio.Event()

    def on_a(event) -> None:
        if isinstance(event, MessageReceived) and event.reply_to is not None:
            replied.set()
        elif isinstance(event, MessagesRead):
            read.set()

    def on_b(event) -> None:
        if isinstance(event, MessageReceived):
            got_b.put_nowait(event)

    a.subscribe(on_a)
    b.subscribe(on_b)
    reply_s, read_s = [], []
    try:
        await a.send("bob", "warm")
        await asyncio.wait_for(got_b.get(), 30)
        for i in range(rounds):
            await asyncio.sleep(FLUSH_S)  # pacing (see the module's text), not waiting
            replied.clear()
            read.clear()
            await a.send("bob", f"question {i}")
            asked = await asyncio.wait_for(got_b.get(), 30)
            t0 = time.perf_counter()
            await b.send("alice", f"answer {i}", reply=asked.id.hex(), reply_direction="in")
            await asyncio.wait_for(replied.wait(), 30)
            t1 = time.perf_counter()
            b.mark_read("alice")
            await asyncio.wait_for(read.wait(), 30)
            t2 = time.perf_counter()
            reply_s.append(t1 - t0)
            read_s.append(t2 - t1)
    finally:
        await a.stop()
        await b.stop()
    reply, told = percentiles_us(reply_s), percentiles_us(read_s)
    return {
        "rounds": rounds,
        "reply_ms": reply["p50_us"] / 1000,
        "read_ms": told["p50_us"] / 1000,
        "read_max_ms": told["max_us"] / 1000,
    }
