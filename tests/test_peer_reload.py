"""Re-reading the address book (NodePolicy.reload) forgets what left it, at once.

A peer removed from the store, or whose stored key no longer hashes to its fingerprint,
is refused as unknown on its next handshake or v1 envelope; the peers that stay keep
their keys, boot floors and v2 marks, and keep being served.
"""

import sqlite3
from contextlib import closing

import pytest
from support import seed_client
from support.attackers import RawPeer
from support.nodes import Recorder, public_pem, start
from support.waiting import eventually

from enclave.node.policy import NodePolicy
from enclave.node.settings import Settings
from enclave.protocol.crypto import fingerprint_of
from enclave.store import Store


def closed(node, reason: str) -> int:
    return node.stats()["closed"].get(reason, 0)


async def refused(node, peer: RawPeer, reason: str) -> None:
    """``peer`` tries a handshake; the node closes it for ``reason`` before it is up."""
    before = closed(node, reason)
    await peer.open()
    await peer.begin()
    await peer.until(lambda p: p.eof.is_set(), 20)
    assert not peer.conn.established
    await eventually(lambda: closed(node, reason) == before + 1, 10, f"closed[{reason}]")


@pytest.mark.asyncio
async def test_a_removed_peer_is_refused_at_once_and_the_others_are_still_served(
    rsa_keys, tmp_path
):
    bob = await start(tmp_path / "b", rsa_keys["bob"])
    peers = []
    try:
        for name in ("alice", "carol", "mallory"):
            bob.add_peer(public_pem(rsa_keys[name]), "127.0.0.1:9", name)
        carol = RawPeer(rsa_keys["carol"], bob, source="127.0.0.3")
        peers.append(carol)
        await carol.handshake()  # known: accepted
        await carol.close()
        at_bob = Recorder(bob)

        for name in ("alice", "carol"):
            assert bob.store.remove_peer(bob.resolve(name).fingerprint)
        bob.sessions.policy.reload()

        carol = RawPeer(rsa_keys["carol"], bob, source="127.0.0.3")
        peers.append(carol)
        await refused(bob, carol, "unknown_peer")
        # Alice had never spoken v2: her v1 envelopes were welcome until now.
        before = closed(bob, "v1_unknown_sender")
        envelope = seed_client.seal(rsa_keys["alice"], rsa_keys["bob"].public_key(), "still me")
        await seed_client.send_in_loop(bob.address[1], envelope)
        await eventually(lambda: closed(bob, "v1_unknown_sender") == before + 1, 10)

        mallory = RawPeer(rsa_keys["mallory"], bob, source="127.0.0.4")
        peers.append(mallory)
        await mallory.handshake()  # still in the address book: still served
        await bob.delivery.flush()
        assert at_bob.received() == []
        assert [p.name for p in bob.store.list_peers()] == ["mallory"]
    finally:
        for peer in peers:
            await peer.close()
        await bob.stop()


@pytest.mark.asyncio
async def test_a_stored_key_that_is_not_the_peers_own_is_refused(rsa_keys, tmp_path):
    """Another program rewrites Carol's row to hold Mallory's key. After the reload
    neither key is taken for Carol's fingerprint: not the one Bob had cached (the row
    no longer vouches for it), not the new one (it hashes to another fingerprint)."""
    bob = await start(tmp_path / "b", rsa_keys["bob"])
    peers = []
    try:
        carol_pem = public_pem(rsa_keys["carol"])
        fp = bob.add_peer(carol_pem, "127.0.0.1:9", "carol").fingerprint
        with closing(sqlite3.connect(bob.store.path)) as other, other:
            other.execute(
                "UPDATE peers SET public_key = ? WHERE fingerprint = ?",
                (public_pem(rsa_keys["mallory"]), fp),
            )
        bob.sessions.policy.reload()
        carol = RawPeer(rsa_keys["carol"], bob, source="127.0.0.3")
        peers.append(carol)
        await refused(bob, carol, "unknown_peer")
        assert bob.sessions.policy.peer_key(bytes.fromhex(fp)) is None

        with closing(sqlite3.connect(bob.store.path)) as other, other:  # put right again
            other.execute("UPDATE peers SET public_key = ? WHERE fingerprint = ?", (carol_pem, fp))
        bob.sessions.policy.reload()
        carol = RawPeer(rsa_keys["carol"], bob, source="127.0.0.3")
        peers.append(carol)
        await carol.handshake()
    finally:
        for peer in peers:
            await peer.close()
        await bob.stop()


def test_reload_keeps_what_stays_and_drops_what_went(rsa_keys, tmp_path):
    """Against a real store: the removed peer's key, floor and marks go; a peer that
    stays keeps its boot floor (not the hwm raised since) and its v2 mark."""
    fps = {}
    with Store.open(tmp_path / "enclave.db") as store:
        for name in ("alice", "carol"):
            fp = fingerprint_of(rsa_keys[name].public_key())
            fps[name] = fp
            store.upsert_peer(fp.hex(), public_pem(rsa_keys[name]), None, name, 1.0)
            store.raise_hwm(fp.hex(), 1000)
        store.set_proto(fps["carol"].hex(), "v1")
        own = fingerprint_of(rsa_keys["bob"].public_key())
        policy = NodePolicy(store, own, Settings(), 0.0)
        alice_key = policy.peer_key(fps["alice"])
        assert alice_key is not None and policy.v1_sender(fps["carol"]) is not None
        policy.proto[fps["alice"]] = ("auto", True, False)  # a v2 session, mark in flight
        store.raise_hwm(fps["alice"].hex(), 5000)
        store.remove_peer(fps["carol"].hex())

        policy.reload()
        assert policy.peer_key(fps["carol"]) is None and policy.v1_sender(fps["carol"]) is None
        assert fps["carol"] not in policy.keys | policy.floors | policy.proto
        assert policy.peer_key(fps["alice"]) is alice_key  # not parsed again
        assert policy.boot_floor(fps["alice"]) == 1000
        assert policy.proto[fps["alice"]] == ("auto", True, False)
        assert policy.v1_sender(fps["alice"]) is None  # v2 was seen: never v1 again

        store.upsert_peer(fps["carol"].hex(), public_pem(rsa_keys["carol"]), None, "carol", 2.0)
        policy.reload()  # added back: a new peer, with the floor the store holds for it
        assert policy.peer_key(fps["carol"]) is not None
        assert policy.boot_floor(fps["carol"]) == 0
