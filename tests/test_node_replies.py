"""Replies through the Node API with real nodes: a reply travels as a REPLY quoting the
answered message's id; both sides store and show the quote; a queued reply keeps its
quote through a restart; a reply to nothing of the conversation is refused in one line;
a contact's REPLY quoting an id we never had is stored and shown as a quote of a
message not held, and the node keeps serving."""

from __future__ import annotations

import os
import time

import pytest
from support.attackers import RawPeer
from support.nodes import FAST, Recorder, alice_and_bob, public_pem
from support.waiting import eventually

from enclave.errors import UserError
from enclave.node import Node
from enclave.node.display import message_ref
from enclave.protocol.events import Acked
from enclave.protocol.messages import Chat


@pytest.mark.asyncio
async def test_a_reply_quotes_the_message_on_both_sides(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        await a.send("bob", "lunch at noon?")
        await rb.until(lambda r: r.received())
        asked = b.history("alice")[0]
        await b.send("alice", "yes, noon works", reply=message_ref(asked.id))
        await ra.until(lambda r: r.received())
        got = ra.received()[0]
        assert (got.body, got.reply_to) == ("yes, noon works", asked.id)
        assert a.history("bob")[-1].reply_to == asked.id  # stored with its quote
        assert b.history("alice")[-1].reply_to == asked.id  # and on the sender's side
        # Quoting one's own message works too (by full id and direction).
        await a.send("bob", "and bring the notes", reply=asked.id.hex(), reply_direction="out")
        await rb.until(lambda r: len(r.received()) == 2)
        assert rb.received()[1].reply_to == asked.id


@pytest.mark.asyncio
async def test_a_queued_reply_keeps_its_quote_through_a_restart(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        await b.send("alice", "are you there?")
        await eventually(lambda: a.history("bob"), 10, "alice has it")
        quoted = a.history("bob")[0].id
        a_port, b_port = a.address[1], b.address[1]
        await b.stop()
        await a.send("bob", "yes, now", reply=message_ref(quoted))  # queued: bob is away
        await a.stop()  # the sender restarts: its outbox comes back from the store
        sender = Node(tmp_path / "a", rsa_keys["alice"], FAST)
        await sender.start("127.0.0.1", a_port)
        receiver = Node(tmp_path / "b", rsa_keys["bob"], FAST)
        await receiver.start("127.0.0.1", b_port)
        try:
            await eventually(lambda: receiver.history("alice")[-1].body == "yes, now", 30, "it")
            assert receiver.history("alice")[-1].reply_to == quoted
        finally:
            await sender.stop()
            await receiver.stop()


@pytest.mark.asyncio
async def test_a_reply_must_quote_this_conversation(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        rb = Recorder(b)
        a.add_peer(public_pem(rsa_keys["carol"]), "127.0.0.1:9", "carol")
        await a.send("carol", "only for carol")
        carols = a.history("carol")[0]
        for ref, direction in (
            (message_ref(carols.id), None),
            (carols.id.hex(), "out"),
            ("#zzzz", None),
        ):
            with pytest.raises(UserError, match="no message|no such message"):
                await a.send("bob", "quoting the wrong chat", reply=ref, reply_direction=direction)
        with pytest.raises(UserError, match="needs its direction"):
            await a.send("bob", "x", reply=carols.id.hex())
        assert a.history("bob") == []  # nothing was queued
        await a.send("bob", "still serving")
        await rb.until(lambda r: r.received())


@pytest.mark.asyncio
async def test_a_contacts_reply_to_an_unknown_id_is_kept_as_it_came(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, _):
        ra = Recorder(a)
        a.add_peer(public_pem(rsa_keys["mallory"]), "127.0.0.1:9", "mallory")
        mallory = RawPeer(rsa_keys["mallory"], a, source="127.0.0.2")
        stranger = os.urandom(16)
        try:
            await mallory.handshake()
            now = int(time.time() * 1000)
            me = a.identity.fingerprint
            mallory.send_chats(
                [Chat(os.urandom(16), mallory.fingerprint, me, now, "re?", stranger)]
            )
            await mallory.until(lambda p: any(type(e) is Acked for e in p.events), 20)
        finally:
            await mallory.close()
        await ra.until(lambda r: r.received())
        assert ra.received()[0].reply_to == stranger
        assert a.history("mallory")[0].reply_to == stranger
