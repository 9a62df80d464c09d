"""Private-op slots: one owner, one release, on every path (a failing disk must not leak them).

A slot is taken when a connection admits RSA private work for a peer (an HS1's
responder job, a v1 envelope's job) and given back by the node when that job has run,
whatever happened meanwhile. Each test takes the slots through one path where the work
fails or is abandoned, more times than there are slots, then shows that an honest
contact still gets a session (not "busy") and that no slot is held.
"""

import asyncio
import dataclasses
import sqlite3
import threading

import pytest
from support import seed_client
from support.attackers import RawPeer
from support.nodes import FAST, NO_PRESENCE, Recorder, introduce, public_pem, start
from support.waiting import eventually

ROUNDS = 10  # more than FAST's crypto_queue: a leak of one slot per round would show
# Mallory's handshakes must reach the job each time, not stop at her per-peer bucket.
GENEROUS = dataclasses.replace(NO_PRESENCE, handshake_burst_per_peer=100.0)


def slots(node):
    return node.sessions.policy.slots


async def honest_message_arrives(a, b) -> None:
    rb = Recorder(b)
    await a.send("bob", "still served")
    await rb.until(lambda r: [m.body for m in r.received()] == ["still served"])


@pytest.mark.asyncio
async def test_a_store_error_recording_a_v1_envelope_gives_its_slot_back(rsa_keys, tmp_path):
    """The v1 seen table's write fails (a full or failing disk) after the slot was
    taken: the envelope is dropped with its reason, the slot comes back, and the
    store call ran on a crypto thread, never on the event loop."""
    assert FAST.crypto_queue < ROUNDS
    ka, kb, kc = rsa_keys["alice"], rsa_keys["bob"], rsa_keys["carol"]
    a, b = (
        await start(tmp_path / "a", ka, NO_PRESENCE),
        await start(tmp_path / "b", kb, NO_PRESENCE),
    )
    try:
        introduce(a, b, ka, kb)
        b.add_peer(public_pem(kc), "127.0.0.1:9", "carol")  # a contact on the original client
        real, threads = b.store.v1_record, []

        def failing(*args):
            threads.append(threading.current_thread().name)
            if len(threads) <= ROUNDS:
                raise sqlite3.OperationalError("database or disk is full")
            return real(*args)

        b.store.v1_record = failing
        for i in range(ROUNDS):
            envelope = seed_client.seal(kc, kb.public_key(), f"lost {i}")
            await asyncio.to_thread(seed_client.send, "127.0.0.1", b.address[1], envelope)
        await eventually(lambda: b.stats()["closed"].get("store_error", 0) == ROUNDS)
        assert slots(b).in_use == 0
        assert threads and all(t.startswith("enclave-crypto") for t in threads), threads
        await honest_message_arrives(a, b)
        rb = Recorder(b)
        envelope = seed_client.seal(kc, kb.public_key(), "the disk is back")
        await asyncio.to_thread(seed_client.send, "127.0.0.1", b.address[1], envelope)
        await rb.until(lambda r: [m.body for m in r.received()] == ["the disk is back"])
        assert slots(b).in_use == 0
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_a_job_that_raises_gives_its_slot_back(rsa_keys, tmp_path):
    """The responder's private work itself fails (not the peer's doing): the handshake
    closes with a reason and the slot comes back."""
    ka, kb, km = rsa_keys["alice"], rsa_keys["bob"], rsa_keys["mallory"]
    a, b = await start(tmp_path / "a", ka, NO_PRESENCE), await start(tmp_path / "b", kb, GENEROUS)
    try:
        introduce(a, b, ka, kb)
        b.add_peer(public_pem(km), "127.0.0.1:9", "mallory")
        real, calls = b.identity.sign_v2, []

        def failing(data):
            calls.append(1)
            if len(calls) <= ROUNDS:
                raise MemoryError("no memory for the signature")
            return real(data)

        b.identity.sign_v2 = failing
        peers = [RawPeer(km, b, source="127.0.0.2") for _ in range(ROUNDS)]
        try:
            for peer in peers:
                await peer.open()
                await peer.begin()
                await peer.until(lambda p: p.eof.is_set())
        finally:
            for peer in peers:
                await peer.close()
        assert b.stats()["closed"].get("job_failed", 0) == ROUNDS
        await eventually(lambda: slots(b).in_use == 0)
        await honest_message_arrives(a, b)
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_a_peer_gone_during_the_job_gives_its_slot_back(rsa_keys, tmp_path):
    """HS1, then a reset at once: the job is cancelled and its slot released."""
    ka, kb, km = rsa_keys["alice"], rsa_keys["bob"], rsa_keys["mallory"]
    a, b = (
        await start(tmp_path / "a", ka, NO_PRESENCE),
        await start(tmp_path / "b", kb, NO_PRESENCE),
    )
    try:
        introduce(a, b, ka, kb)
        b.add_peer(public_pem(km), "127.0.0.1:9", "mallory")
        for _ in range(ROUNDS):
            peer = RawPeer(km, b, source="127.0.0.2")
            await peer.open()
            await peer.begin()
            peer.abort()  # a reset right after HS1
            await peer.close()
        await eventually(lambda: sum(b.stats()["closed"].values()) >= ROUNDS)
        await eventually(lambda: slots(b).in_use == 0)
        await honest_message_arrives(a, b)
    finally:
        await a.stop()
        await b.stop()
