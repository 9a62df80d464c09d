"""Managing contacts through the Node API: rename, block, unblock, remove.

A blocked contact is a stranger to the handshake and the v1 path: refused before any
private-key work, nothing it sends is shown or stored, and what is queued for it waits
until it is unblocked. A removed contact takes its history and outbox with it.
"""

import asyncio

import pytest
from support import seed_client
from support.nodes import Recorder, alice_and_bob, public_pem, start
from support.waiting import eventually

from enclave.errors import UserError
from enclave.node.events import ContactChanged, PeerOffline


def _changes(rec: Recorder) -> list[tuple[str, str | None]]:
    return [(e.change, e.name) for e in rec.events if isinstance(e, ContactChanged)]


@pytest.mark.asyncio
async def test_rename_keeps_history_and_refuses_a_taken_or_bad_name(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        await a.send("bob", "before the rename")
        await rb.until(lambda r: r.received())
        peer = a.rename_contact("bob", "robert")
        assert peer.name == "robert" and a.resolve("robert").fingerprint == b.fingerprint
        assert [m.body for m in a.history("robert")] == ["before the rename"]
        with pytest.raises(UserError, match="no peer matches 'bob'"):
            a.resolve("bob")
        with pytest.raises(UserError, match="invalid peer name"):
            a.rename_contact("robert", "zero\u200bwidth")
        # Spaces and any script are fine; runs of spaces become one.
        assert a.rename_contact("robert", "  Ana   María ").name == "Ana María"
        assert a.resolve("Ana María").fingerprint == b.fingerprint
        assert a.rename_contact("Ana María", "robert").name == "robert"
        a.add_peer(public_pem(rsa_keys["carol"]), "127.0.0.1:9", "carol")
        with pytest.raises(UserError, match="already used"):
            a.rename_contact("robert", "carol")
        assert a.resolve("robert").name == "robert"  # a refused rename changes nothing
        # Lookalikes of a contact's name are that name: refused for another contact.
        for twin in ("ROBERT", "ｒｏｂｅｒｔ", "robert\u034f", "\u3164", "rob\u00adert"):
            with pytest.raises(UserError, match="already used|invalid peer name"):
                a.rename_contact("carol", twin)
        assert a.rename_contact("carol", "Mari\u0301a").name == "María"  # one form: NFC
        assert ("renamed", "robert") in _changes(ra)


@pytest.mark.asyncio
async def test_blocked_contact_is_refused_before_private_work_and_unblock_restores(
    rsa_keys, tmp_path
):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        await b.send("alice", "first")
        await ra.until(lambda r: len(r.received()) == 1)
        a.block_contact("bob")
        await ra.until(lambda r: any(isinstance(e, PeerOffline) for e in r.events))
        assert a.resolve("bob").blocked and ("blocked", "bob") in _changes(ra)
        with pytest.raises(UserError, match="is blocked"):
            await a.send("bob", "to a blocked contact")
        ops = a.identity.private_ops
        await b.send("alice", "while blocked")
        # Bob keeps trying; every handshake of his is refused before any private-key work.
        await eventually(
            lambda: a.stats()["closed"].get("unknown_peer", 0) >= 2,
            what=lambda: f"Bob's handshakes refused ({a.stats()['closed']})",
        )
        assert a.identity.private_ops == ops
        assert [m.body for m in ra.received()] == ["first"]
        assert [m.body for m in a.history("bob")] == ["first"]
        a.block_contact("bob", False)
        assert not a.resolve("bob").blocked
        b.sessions.dial(bytes.fromhex(a.fingerprint))  # Bob's next try, without his backoff
        await ra.until(lambda r: len(r.received()) == 2, what="the held message after unblock")
        await a.settled()  # shown as soon as it arrived; stored a commit later
        assert [m.body for m in a.history("bob")] == ["first", "while blocked"]
        await rb.until(lambda r: len(r.states("delivered")) == 2, what="Bob's second tick")


@pytest.mark.asyncio
async def test_queued_for_a_blocked_contact_waits_and_goes_after_unblock(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        await b.stop()
        await a.send("bob", "queued before the block")
        a.block_contact("bob")
        assert a.owed("bob") == 1
        b2 = await start(tmp_path / "b", rsa_keys["bob"])
        try:
            a.add_peer(public_pem(rsa_keys["bob"]), f"127.0.0.1:{b2.address[1]}")
            assert a.stats()["queued"] == 0  # set aside while blocked: nothing dialled
            assert bytes.fromhex(b2.fingerprint) not in a.sessions.dialing
            r2 = Recorder(b2)
            a.block_contact("bob", False)
            await r2.until(lambda r: r.received(), what="the message queued before the block")
            assert [m.body for m in r2.received()] == ["queued before the block"]
            await ra.until(lambda r: r.states("delivered"))
        finally:
            await b2.stop()
        assert not rb.received()


@pytest.mark.asyncio
async def test_blocked_v1_sender_is_refused_and_nothing_stored(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    b = await start(tmp_path / "b", kb)
    try:
        b.add_peer(public_pem(ka), "127.0.0.1:9", "alice")
        b.block_contact("alice")
        rb = Recorder(b)
        ops = b.identity.private_ops
        envelope = seed_client.seal(ka, kb.public_key(), "from a blocked original client")
        await asyncio.to_thread(seed_client.send, "127.0.0.1", b.address[1], envelope)
        await eventually(lambda: b.stats()["closed"], what="the envelope's connection closed")
        await b.delivery.flush()
        assert not rb.received() and b.history("alice") == []
        assert b.identity.private_ops == ops
    finally:
        await b.stop()


@pytest.mark.asyncio
async def test_remove_drops_sessions_history_and_outbox(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        await a.send("bob", "hello")
        await ra.until(lambda r: r.states("delivered"))
        await b.stop()
        await a.send("bob", "never sent")
        assert a.owed("bob") == 1
        removed = a.remove_contact("bob")
        assert removed.fingerprint == b.fingerprint and ("removed", "bob") in _changes(ra)
        assert a.contacts() == [] and a.stats()["queued"] == 0
        with pytest.raises(UserError, match="no peer matches"):
            a.history("bob")
        assert bytes.fromhex(b.fingerprint) not in a.sessions.dialing
        # Re-adding starts afresh: no history, nothing owed.
        a.add_peer(public_pem(rsa_keys["bob"]), "127.0.0.1:9", "bob")
        assert a.history("bob") == [] and a.owed("bob") == 0
        assert [m.body for m in rb.received()] == ["hello"]


@pytest.mark.asyncio
async def test_clear_history_erases_it_from_the_file_and_keeps_the_contact(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        await b.send("alice", "MARKERWORD from bob")
        await ra.until(lambda r: r.received())
        await a.send("bob", "MARKERWORD from alice")
        await rb.until(lambda r: r.received())
        kept = [m.body for m in b.history("alice")]  # the contact keeps its copy
        await b.stop()
        await a.send("bob", "MARKERWORD still owed")
        assert a.owed("bob") == 1
        assert a.clear_history("bob") == 3
        assert a.history("bob") == [] and a.owed("bob") == 0 and a.resolve("bob")
        assert ("cleared", "bob") in _changes(ra)
        for path in (tmp_path / "a").glob("enclave.db*"):  # the database, WAL and SHM
            assert b"MARKERWORD" not in path.read_bytes(), path.name
        assert kept == ["MARKERWORD from bob", "MARKERWORD from alice"]
