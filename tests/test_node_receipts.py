"""Read receipts through the Node API with real nodes (node/receipts.py): off until both
sides allow them; then reading a chat tells the contact, whose messages show read; a
receipt owed while the contact is offline goes at its next session; a hostile contact's
flood of READs costs one store write per second, and a READ where receipts are off is
ignored; the broadcast mark of a message sent to everyone."""

from __future__ import annotations

import pytest
from support.attackers import RawPeer
from support.nodes import FAST, Recorder, alice_and_bob, public_pem
from support.waiting import eventually

from enclave.node import Node
from enclave.node.events import MessagesRead
from enclave.protocol.messages import Read


def _read_events(rec: Recorder) -> list[MessagesRead]:
    return [e for e in rec.events if isinstance(e, MessagesRead)]


def _read_rows(node, peer) -> list[bool]:
    return [m.read_ms is not None for m in node.history(peer)]


@pytest.mark.asyncio
async def test_receipts_need_both_sides_then_reading_tells_the_sender(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        await a.send("bob", "one")
        await a.send("bob", "two")
        await rb.until(lambda r: len(r.received()) == 2)
        await ra.until(lambda r: len(r.states("delivered")) == 2)
        b.mark_read("alice")  # bob has not allowed them: nothing is told
        a.set_receipts("bob", True)  # alice alone allows them: still nothing
        b.mark_read("alice")
        assert _read_rows(a, "bob") == [False, False]
        assert b.set_receipts("alice", True).receipts  # allowing tells what is read already
        await ra.until(lambda r: _read_events(r), 10)
        assert _read_rows(a, "bob") == [True, True]
        assert _read_events(ra)[0].peer == b.fingerprint
        # A message sent after the receipt is not read until bob reads again.
        await a.send("bob", "three")
        await rb.until(lambda r: len(r.received()) == 3)
        await ra.until(lambda r: len(r.states("delivered")) == 3)
        assert _read_rows(a, "bob") == [True, True, False]
        b.mark_read("alice")
        await eventually(lambda: _read_rows(a, "bob") == [True, True, True], 10, "all read")
        # Turned off on one side: nothing more is told or shown.
        a.set_receipts("bob", False)
        await a.send("bob", "four")
        await rb.until(lambda r: len(r.received()) == 4)
        b.mark_read("alice")
        await b.send("alice", "after my read")  # the session carries it after the READ
        await ra.until(lambda r: r.received())
        assert _read_rows(a, "bob")[3] is False
        # (and not merely pending: the READ was dropped on arrival, nothing waits to apply)
        assert b.fingerprint not in a.receipts._heard


@pytest.mark.asyncio
async def test_a_receipt_owed_while_offline_goes_at_the_next_session(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        a.set_receipts("bob", True)
        b.set_receipts("alice", True)
        await a.send("bob", "read me later")
        await rb.until(lambda r: r.received())
        await ra.until(lambda r: r.states("delivered"))
        port = a.address[1]
        await a.stop()
        b.mark_read("alice")  # alice is away: the receipt is owed
        again = Node(tmp_path / "a", rsa_keys["alice"], FAST)
        await again.start("127.0.0.1", port)
        try:
            await eventually(lambda: _read_rows(again, "bob") == [True], 30, "the owed receipt")
        finally:
            await again.stop()


@pytest.mark.asyncio
async def test_a_hostile_contact_cannot_flood_receipts(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        a.add_peer(public_pem(rsa_keys["mallory"]), "127.0.0.1:9", "mallory")
        writes = []
        real = a.store.mark_read

        def counted(*args):
            writes.append(args)
            return real(*args)

        a.store.mark_read = counted
        mallory = RawPeer(rsa_keys["mallory"], a, source="127.0.0.2")
        try:
            await mallory.handshake()
            mallory.send_crafted([Read(bytes(16))])  # not allowed with mallory: ignored
            a.set_receipts("mallory", True)
            for i in range(2000):  # growing, repeated and stale READs, as fast as it can
                mallory.send_crafted([Read(i.to_bytes(16, "big")), Read(bytes(16))])
            last = (1999).to_bytes(16, "big")
            await eventually(lambda: writes and writes[-1][1] == last, 10, "the flood applied")
            # 4,000 READs: the first applied at once, then one write a second at most.
            assert len(writes) <= 5, len(writes)
        finally:
            await mallory.close()
        assert not _read_events(ra)  # mallory was sent nothing: nothing of ours was read
        await a.send("bob", "the node keeps serving")
        await rb.until(lambda r: r.received())


@pytest.mark.asyncio
async def test_a_broadcast_marks_each_copy(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        rb = Recorder(b)
        await a.send("bob", "just to bob")
        await a.broadcast("to everyone")
        await rb.until(lambda r: len(r.received()) == 2)
        assert [(m.body, m.broadcast) for m in a.history("bob")] == [
            ("just to bob", False),
            ("to everyone", True),
        ]
