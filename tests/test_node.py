"""Nodes on real loopback sockets, in one process: delivery, restarts, broadcast."""

import pytest
from support.nodes import Recorder, introduce, public_pem, small_key, start

from enclave.errors import UserError
from enclave.node import Node
from enclave.node.events import PeerOffline, PeerOnline


@pytest.mark.asyncio
async def test_send_is_delivered_stored_and_acked(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    try:
        introduce(a, b, ka, kb)
        ra, rb = Recorder(a), Recorder(b)
        sent = [await a.send("bob", f"hello {k}") for k in range(50)]
        await ra.until(lambda r: len(r.states("delivered")) == 50)
        assert [m.body for m in rb.received()] == [f"hello {k}" for k in range(50)]
        assert {e.rowid for e in ra.states("delivered")} == {s.rowid for s in sent}
        assert [m.body for m in b.history("alice", 100)] == [f"hello {k}" for k in range(50)]
        assert {m.state for m in a.history("bob", 100)} == {"delivered"}
        assert any(isinstance(e, PeerOnline) for e in ra.events)
        assert a.stats()["queued"] == 0 and b.stats()["dupes"] == 0
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_message_to_a_down_peer_waits_and_survives_sender_restart(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    introduce(a, b, ka, kb)
    b_port = b.address[1]
    await b.stop()  # Bob goes away
    await a.send("bob", "are you there?")
    assert a.stats()["queued"] == 1
    await a.stop()  # Alice restarts before Bob comes back
    assert [m.state for m in _history(tmp_path / "a", ka, "bob")] == ["queued"]
    a = Node(tmp_path / "a", ka)
    await a.start("127.0.0.1", 0)
    b = Node(tmp_path / "b", kb)
    await b.start("127.0.0.1", b_port)
    rb, ra = Recorder(b), Recorder(a)
    try:
        a.sessions.dial(
            bytes.fromhex(b.fingerprint)
        )  # the next attempt, without waiting for backoff
        await ra.until(lambda r: len(r.states("delivered")) == 1)
        assert [m.body for m in rb.received()] == ["are you there?"]
    finally:
        await a.stop()
        await b.stop()


def _history(home, key, peer):
    from enclave.store import Store

    with Store.open(home / "enclave.db") as store:
        fp = store.find_peers(peer)[0].fingerprint
        return store.history(fp, 10)


@pytest.mark.asyncio
async def test_broadcast_reaches_every_peer_and_states_are_per_recipient(rsa_keys, tmp_path):
    ka = rsa_keys["alice"]
    a = await start(tmp_path / "a", ka)
    keys = [small_key() for _ in range(5)]
    peers = [await start(tmp_path / f"p{k}", key) for k, key in enumerate(keys)]
    try:
        for k, (p, key) in enumerate(zip(peers, keys, strict=True)):
            introduce(a, p, ka, key, names=("alice", f"peer{k}"))
        ra = Recorder(a)
        recs = [Recorder(p) for p in peers]
        sent = await a.broadcast("team meeting in 5")
        assert len(sent) == 5 and len({s.peer for s in sent}) == 5
        await ra.until(lambda r: len(r.states("delivered")) == 5)
        for rec in recs:
            assert [m.body for m in rec.received()] == ["team meeting in 5"]
        delivered = {(e.peer, e.rowid) for e in ra.states("delivered")}
        assert delivered == {(s.peer, s.rowid) for s in sent}
    finally:
        await a.stop()
        for p in peers:
            await p.stop()


@pytest.mark.asyncio
async def test_user_mistakes_are_one_line_errors(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a = await start(tmp_path / "a", ka)
    try:
        with pytest.raises(UserError, match="no peer matches"):
            await a.send("nobody", "hi")
        a.add_peer(public_pem(kb), "127.0.0.1:9", "bob")
        a.add_peer(public_pem(rsa_keys["carol"]), "127.0.0.1:9", "carol")
        with pytest.raises(UserError, match="empty"):
            await a.send("bob", "  ")
        with pytest.raises(UserError, match="limit is 10,000"):
            await a.send("bob", "x" * 10_001)
        with pytest.raises(UserError, match="own public key"):
            a.add_peer(public_pem(ka), "127.0.0.1:9")
        assert a.stats()["queued"] == 0
    finally:
        await a.stop()


@pytest.mark.asyncio
async def test_port_in_use_is_a_user_error(rsa_keys, tmp_path):
    a = await start(tmp_path / "a", rsa_keys["alice"])
    try:
        b = Node(tmp_path / "b", rsa_keys["bob"])
        with pytest.raises(UserError, match="cannot listen"):
            await b.start("127.0.0.1", a.address[1])
    finally:
        await a.stop()


@pytest.mark.asyncio
async def test_peer_going_away_is_reported_offline(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    introduce(a, b, ka, kb)
    ra = Recorder(a)
    try:
        await a.send("bob", "hi")
        await ra.until(lambda r: len(r.states("delivered")) == 1)
        await b.stop()
        await ra.until(lambda r: any(isinstance(e, PeerOffline) for e in r.events))
    finally:
        await a.stop()


@pytest.mark.asyncio
async def test_hot_path_batches_commits_writes_and_crypto(rsa_keys, tmp_path):
    """10,000 messages: far fewer store commits and transport writes than messages,
    and no executor hop per message (crypto jobs are the handshake's only)."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    try:
        introduce(a, b, ka, kb)
        ra = Recorder(a)
        fp = bytes.fromhex(b.fingerprint)
        n = 10_000
        for k in range(n):
            a.submit(fp, f"bulk {k:05d} " + "x" * 90)
        await ra.until(lambda r: len(r.states("delivered")) == n, timeout=60)
        sa, sb = a.stats(), b.stats()
        print(
            f"\nsender: {sa['commits']} commits, {sa['writes']} writes; "
            f"receiver: {sb['commits']} commits, {sb['writes']} writes for {n} messages"
        )
        assert sb["rows_in"] == n and sb["dupes"] == 0
        assert sa["commits"] < n / 50 and sb["commits"] < n / 50
        assert sa["writes"] < n / 50 and sb["writes"] < n / 50
        assert sa["crypto_jobs"] <= 3 and sb["crypto_jobs"] <= 3  # one handshake each
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.parametrize(
    "host, key",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
    ],
)
def test_sources_are_counted_by_ipv4_address_or_ipv6_64(host, key):
    from enclave.node.transport import source_key

    assert source_key(host) == key
