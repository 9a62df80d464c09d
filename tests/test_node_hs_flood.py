"""Handshake floods from strangers do not lock contacts out (PROTOCOL.md departure 13).

Strangers on other addresses send junk HS1s claiming Alice, Bob's contact, so that
Bob's global verify bucket stays empty. Alice's own handshakes still verify: an address
she lives at (her address in Bob's book) or one she authenticated from lately takes
her verifies from a share of its own. Each test keeps the flood going until Alice's
message is delivered (bounded in count), so the global bucket never refills meanwhile.
"""

import asyncio
import contextlib
import dataclasses
import time

import pytest
from support.attackers import close_writer, connect, forged_hs1, frame, read_to_close
from support.nodes import FAST, Recorder, public_pem, start
from support.waiting import eventually

# Bob's global verify bucket: two tokens, next to nothing after that.
TIGHT = dataclasses.replace(FAST, verify_rate=0.001, verify_burst=2.0)
FLOOD_LIMIT = 2000  # junk HS1s at most, per test


@contextlib.asynccontextmanager
async def flooding(bob, claim: bytes, sources: list[str]):
    """Junk HS1s claiming ``claim`` from ``sources``, one connection each, until the
    block ends; yields once Bob's global bucket is empty."""
    stop = asyncio.Event()
    sent = 0

    async def one(source: str) -> None:
        nonlocal sent
        sent += 1
        reader, writer = await connect(bob, source)
        writer.write(frame(forged_hs1(claim, bob.fingerprint_bytes)))
        await read_to_close(reader, 5.0)
        await close_writer(writer)

    async def flood() -> None:
        while not stop.is_set() and sent < FLOOD_LIMIT:
            await asyncio.gather(*(one(s) for s in sources))

    task = asyncio.get_running_loop().create_task(flood())
    try:
        await eventually(lambda: bob.stats()["closed"].get("verify_budget", 0) >= 4)
        yield
    finally:
        stop.set()
        await task


def fp(node) -> bytes:
    return bytes.fromhex(node.fingerprint)


@pytest.mark.asyncio
async def test_a_contact_at_its_known_address_gets_through_a_flood(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb, TIGHT)
    b.fingerprint_bytes = fp(b)
    try:
        a.add_peer(public_pem(kb), f"127.0.0.1:{b.address[1]}", "bob")
        b.add_peer(public_pem(ka), f"127.0.0.1:{a.address[1]}", "alice")  # where she lives
        rb = Recorder(b)
        async with flooding(b, fp(a), ["127.0.0.2", "127.0.0.3"]):
            assert b.sessions.policy.verify_global.peek(time.monotonic()) < 1
            await a.send("bob", "through the flood")
            await rb.until(lambda r: [m.body for m in r.received()] == ["through the flood"], 15)
        assert b.stats()["closed"].get("bad_signature", 0) <= 2  # the flood got no share
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_a_contact_that_authenticated_lately_gets_through_a_flood(rsa_keys, tmp_path):
    """Bob's book has another address for Alice; her first session (before the flood)
    vouches for the address she came from, and her next session after a restart gets
    through the flood from there."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb, TIGHT)
    b.fingerprint_bytes = fp(b)
    try:
        a.add_peer(public_pem(kb), f"127.0.0.1:{b.address[1]}", "bob")
        b.add_peer(public_pem(ka), "192.0.2.7:9", "alice")  # not where she comes from
        rb = Recorder(b)
        await a.send("bob", "before")
        await rb.until(lambda r: len(r.received()) == 1)
        await a.stop()
        async with flooding(b, fp(a), ["127.0.0.2", "127.0.0.3"]):
            a = await start(tmp_path / "a", ka)  # a new session: a new handshake
            await a.send("bob", "after a restart")
            await rb.until(lambda r: len(r.received()) == 2, 15)
        assert [m.body for m in rb.received()] == ["before", "after a restart"]
    finally:
        await a.stop()
        await b.stop()
