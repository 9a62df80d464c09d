"""History off per conversation, with real nodes on loopback: messages are shown and
acked as before, but after a restart the history with that contact is empty and its
text is in none of the store's files; a message we send waits in the outbox (through
a restart) until it is delivered, then goes; a resend is still not shown twice; and a
contact that floods us leaves tombstones only while honest peers are served."""

from __future__ import annotations

import os
import time

import pytest
from support.attackers import RawPeer
from support.nodes import Recorder, alice_and_bob, public_pem, start
from support.waiting import eventually

from enclave.node.events import ContactChanged
from enclave.protocol.events import Acked
from enclave.protocol.messages import Chat

MARK = "ZEBRACORN"


def _on_disk(home) -> bytes:
    return b"".join(p.read_bytes() for p in home.glob("enclave.db*"))


def _rows(node, fp: str) -> list[tuple]:
    sql = (
        "SELECT m.direction, m.body, m.state FROM messages m JOIN peers p ON p.id = m.peer"
        " WHERE p.fingerprint = ? ORDER BY m.rowid"
    )
    return node.store._rows(sql, (fp,))


@pytest.mark.asyncio
async def test_shown_and_delivered_then_gone_after_a_restart(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        peer = b.set_keep_history("alice", False)
        assert peer.keep_history is False
        assert [e.change for e in rb.events if isinstance(e, ContactChanged)] == ["history_off"]
        await a.send("bob", f"{MARK} from alice")
        await b.send("alice", f"{MARK} from bob")
        await rb.until(lambda r: r.received() and r.states("delivered"))
        await ra.until(lambda r: r.received() and r.states("delivered"))
        assert [e.body for e in rb.received()] == [f"{MARK} from alice"]  # shown, live
        assert b.history("alice") == []  # kept nowhere once settled
        assert [m.body for m in a.history("bob")] == [f"{MARK} from alice", f"{MARK} from bob"]
        # The WAL is truncated once the commits go idle: no copy of the erased text.
        await eventually(lambda: MARK.encode() not in _on_disk(tmp_path / "b"), 10, "a scrub")
        assert sorted(_rows(b, a.fingerprint)) == [
            ("in", None, "deleted"),
            ("out", None, "deleted"),
        ]
        await b.stop()
    assert MARK.encode() not in _on_disk(tmp_path / "b")
    b2 = await start(tmp_path / "b", rsa_keys["bob"])
    try:
        assert b2.history("alice") == [] and b2.resolve("alice").keep_history is False
    finally:
        await b2.stop()


@pytest.mark.asyncio
async def test_a_queued_message_survives_a_restart_and_goes_once_delivered(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        a.set_keep_history("bob", False)
        await b.stop()
        await a.send("bob", f"{MARK} waits")
        await a.stop()
        a2 = await start(tmp_path / "a", rsa_keys["alice"])
        b2 = await start(tmp_path / "b", rsa_keys["bob"])
        try:
            ra, rb = Recorder(a2), Recorder(b2)
            assert [(m.body, m.state) for m in a2.history("bob")] == [(f"{MARK} waits", "queued")]
            a2.add_peer(public_pem(rsa_keys["bob"]), f"127.0.0.1:{b2.address[1]}", "bob")
            b2.add_peer(public_pem(rsa_keys["alice"]), f"127.0.0.1:{a2.address[1]}", "alice")
            await rb.until(lambda r: r.received())
            await ra.until(lambda r: r.states("delivered"))
            assert a2.history("bob") == []
            assert [m.body for m in b2.history("alice")] == [f"{MARK} waits"]
            # Turned on again: what comes next is kept.
            a2.set_keep_history("bob", True)
            await a2.send("bob", "kept again")
            await ra.until(lambda r: len(r.states("delivered")) == 2)
            assert [m.body for m in a2.history("bob")] == ["kept again"]
        finally:
            await a2.stop()
            await b2.stop()
    assert MARK.encode() not in _on_disk(tmp_path / "a")


async def _session(key, node, source: str) -> RawPeer:
    peer = RawPeer(key, node, source=source)
    await peer.handshake()
    return peer


def _acked(upto: int):
    return lambda p: any(type(e) is Acked and e.upto >= upto for e in p.events)


@pytest.mark.asyncio
async def test_a_resend_is_not_shown_twice_with_history_off(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, _):
        ra = Recorder(a)
        a.add_peer(public_pem(rsa_keys["mallory"]), "127.0.0.1:9", "mallory")
        a.set_keep_history("mallory", False)
        mallory = await _session(rsa_keys["mallory"], a, "127.0.0.2")
        now = int(time.time() * 1000)
        chat = Chat(os.urandom(16), mallory.fingerprint, a.identity.fingerprint, now, "once")
        try:
            mallory.send_chats([chat])
            await mallory.until(_acked(0))
        finally:
            await mallory.close()
        again = await _session(rsa_keys["mallory"], a, "127.0.0.3")
        new = Chat(os.urandom(16), chat.sender, chat.recipient, now, "new")
        try:
            again.send_chats([chat, new])
            await again.until(_acked(1))
        finally:
            await again.close()
        await ra.until(lambda r: len(r.received()) >= 2)
        assert [e.body for e in ra.received()] == ["once", "new"]
        assert a.history("mallory") == []
        assert _rows(a, mallory.fingerprint.hex()) == [("in", None, "deleted")] * 2


@pytest.mark.asyncio
async def test_a_flooding_contact_leaves_tombstones_only_and_honest_peers_are_served(
    rsa_keys, tmp_path
):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        a.add_peer(public_pem(rsa_keys["mallory"]), "127.0.0.1:9", "mallory")
        a.set_keep_history("mallory", False)
        mallory = await _session(rsa_keys["mallory"], a, "127.0.0.2")
        fp, me = mallory.fingerprint, a.identity.fingerprint
        now = int(time.time() * 1000)
        sent = 0
        try:
            for _ in range(20):  # 20 frames of 100, as fast as the socket takes them
                batch = [
                    Chat(os.urandom(16), fp, me, now, f"{MARK} {sent + i} " + "x" * 200)
                    for i in range(100)
                ]
                mallory.send_chats(batch)
                sent += len(batch)
            await b.send("alice", "honest, meanwhile")
            await ra.until(lambda r: any(e.body == "honest, meanwhile" for e in r.received()))
            await rb.until(lambda r: r.states("delivered"))
            await mallory.until(_acked(sent - 1), 60)
        finally:
            await mallory.close()
        rows = _rows(a, fp.hex())
        assert len(rows) == sent and set(rows) == {("in", None, "deleted")}
        assert a.history("mallory") == [] and a.store.incoming_size(fp.hex()) == (0, 0)
        assert [m.body for m in a.history("bob")] == ["honest, meanwhile"]
        await a.send("bob", "still serving")
        await rb.until(lambda r: r.received())
        await a.stop()
    assert MARK.encode() not in _on_disk(tmp_path / "a")


@pytest.mark.asyncio
async def test_the_setting_follows_the_contact_and_is_refused_for_an_unknown_one(
    rsa_keys, tmp_path
):
    from enclave.errors import UserError

    async with alice_and_bob(tmp_path, rsa_keys) as (a, _):
        with pytest.raises(UserError, match="no peer matches"):
            a.set_keep_history("nobody", False)
        a.set_keep_history("bob", False)
        bob = bytes.fromhex(a.resolve("bob").fingerprint)
        assert bob in a.delivery.unkept
        a.remove_contact("bob")  # a contact added again starts with history on
        assert bob not in a.delivery.unkept
        a.add_peer(public_pem(rsa_keys["bob"]), "127.0.0.1:9", "bob")
        assert a.resolve("bob").keep_history is True


@pytest.mark.asyncio
async def test_legacy_v1_both_ways_with_history_off(rsa_keys, tmp_path):
    """The original client's envelopes: one received is shown and kept as a tombstone
    (its replay is still refused), one sent is erased once handed to the socket."""
    import asyncio

    from support import seed_client
    from test_node_legacy import SeedReceiver, seed_send

    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    seed = SeedReceiver(kb, ka.public_key())
    server = await asyncio.start_server(seed.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    a = await start(tmp_path / "a", ka)
    try:
        ra = Recorder(a)
        a.add_peer(public_pem(kb), f"127.0.0.1:{port}", "bob")
        a.set_protocol("bob", "v1")
        a.set_keep_history("bob", False)
        envelope = seed_client.seal(kb, ka.public_key(), f"{MARK} from the seed")
        await seed_send(a.address[1], envelope)
        await ra.until(lambda r: r.received())
        await seed_send(a.address[1], envelope)  # a replay: not shown again
        await a.send("bob", f"{MARK} to the seed")
        await asyncio.wait_for(seed.got.wait(), 20)
        await ra.until(lambda r: any(e.reason == "legacy, unconfirmed" for e in r.states("sent")))
        await a.delivery.flush()
        assert [e.body for e in ra.received()] == [f"{MARK} from the seed"]
        assert seed.texts == [f"{MARK} to the seed"]
        assert a.history("bob") == []
        assert sorted(_rows(a, a.resolve("bob").fingerprint)) == [
            ("in", None, "deleted"),
            ("out", None, "deleted"),
        ]
    finally:
        await a.stop()
        server.close()
    assert MARK.encode() not in _on_disk(tmp_path / "a")
