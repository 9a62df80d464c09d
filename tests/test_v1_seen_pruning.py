"""The node prunes the v1 seen tables on a schedule (Node._store_upkeep, Store.v1_prune).

An envelope is accepted up to 5 minutes after its timestamp, and its entry is kept at
least 15 minutes (PROTOCOL.md d, step 9): entries whose timestamp is 25 minutes old go,
in bounded steps on the store's writer thread; younger ones stay, so an envelope
replayed inside its window is still refused after a prune.
"""

import time

import pytest
from support import seed_client
from support.nodes import Recorder, public_pem, start
from support.waiting import eventually

from enclave import node as node_mod
from enclave.protocol.legacy import MAX_SKEW


def uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


@pytest.mark.asyncio
async def test_old_v1_entries_are_pruned_and_a_replay_in_the_window_is_still_refused(
    rsa_keys, tmp_path, monkeypatch
):
    monkeypatch.setattr(node_mod, "UPKEEP_EVERY", 0.05, raising=False)
    monkeypatch.setattr(node_mod, "PRUNE_STEP", 3, raising=False)  # a backlog: several steps
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    bob = await start(tmp_path / "b", kb)
    try:
        alice = bob.add_peer(public_pem(ka), "127.0.0.1:9", "alice").fingerprint
        store, expired = bob.store, time.time() - 25 * 60
        old = [uuid(n) for n in range(10)]
        for n, message_id in enumerate(old):  # past the window and the margin
            store.v1_record(alice, message_id, expired - n, bytes([n]) * 32)
        # Past the window (refused by its time anyway), kept for less than 15 minutes.
        store.v1_record(alice, uuid(99), time.time() - MAX_SKEW - 60, b"m" * 32)

        shown = Recorder(bob)
        envelope = seed_client.seal(ka, kb.public_key(), "hello once")
        await seed_client.send_in_loop(bob.address[1], envelope)
        await shown.until(lambda r: r.received())

        await eventually(lambda: not any(store.v1_seen(alice, m) for m in old), 10, "the prune")
        assert store.v1_seen(alice, uuid(99))
        before = bob.stats()["closed"].get("v1_replay", 0)
        await seed_client.send_in_loop(bob.address[1], envelope)  # a replay inside its window
        await eventually(lambda: bob.stats()["closed"].get("v1_replay", 0) == before + 1, 10)
        await bob.delivery.flush()
        assert [m.body for m in shown.received()] == ["hello once"]
        assert [m.body for m in bob.history("alice")] == ["hello once"]
    finally:
        await bob.stop()
