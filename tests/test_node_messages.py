"""Deleting one message here ("delete for me") through the Node API, with real nodes:
by row id or by its short reference; gone from the history, the search and the
database file (WAL included); a tombstone keeps a contact's resend of it from showing
again; a message still on its way, a file's row, another conversation's row and
unknown references are refused with one line, and the node keeps serving."""

from __future__ import annotations

import os
import time

import pytest
from support.attackers import RawPeer
from support.nodes import Recorder, alice_and_bob, public_pem
from support.waiting import eventually

from enclave.errors import UserError
from enclave.node.display import message_ref
from enclave.node.events import MessageDeleted
from enclave.protocol.events import Acked
from enclave.protocol.messages import Chat


def _bodies(node, peer) -> list[str]:
    return [m.body for m in node.history(peer)]


@pytest.mark.asyncio
async def test_one_message_goes_from_history_search_and_file(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        for text in ("keep this one", "DELETEMARKER goes", "and this stays"):
            await a.send("bob", text)
        await rb.until(lambda r: len(r.received()) == 3)
        await ra.until(lambda r: len(r.states("delivered")) == 3)
        gone = next(m for m in b.history("alice") if "DELETEMARKER" in m.body)
        deleted = b.delete_message("alice", message_ref(gone.id))  # by its reference
        assert deleted.rowid == gone.rowid
        assert _bodies(b, "alice") == ["keep this one", "and this stays"]
        assert b.search("DELETEMARKER") == []
        assert any(isinstance(e, MessageDeleted) and e.rowid == gone.rowid for e in rb.events)
        for path in (tmp_path / "b").glob("enclave.db*"):  # the database, WAL and SHM
            assert b"DELETEMARKER" not in path.read_bytes(), path.name
        # The contact keeps its copy: deleting is local.
        assert "DELETEMARKER goes" in _bodies(a, "bob")
        # Alice deletes one of her own, delivered, by row id.
        mine = a.history("bob")[0]
        a.delete_message("bob", mine.rowid)
        assert _bodies(a, "bob") == ["DELETEMARKER goes", "and this stays"]
        # The node keeps serving.
        await a.send("bob", "after the deletes")
        await rb.until(lambda r: len(r.received()) == 4)


@pytest.mark.asyncio
async def test_what_cannot_be_deleted_is_refused_in_one_line(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        rb = Recorder(b)
        await a.send("bob", "delivered first")
        await rb.until(lambda r: r.received())
        await b.stop()
        await a.send("bob", "still queued")
        queued = a.history("bob")[-1]
        with pytest.raises(UserError, match="still on its way"):
            a.delete_message("bob", queued.rowid)
        assert [m.body for m in a.history("bob")][-1] == "still queued"
        a.add_peer(public_pem(rsa_keys["carol"]), "127.0.0.1:9", "carol")
        with pytest.raises(UserError, match="no such message in that conversation"):
            a.delete_message("carol", queued.rowid)  # another conversation's row
        for ref in ("#zzzz", "zzzz", "999999999"):
            with pytest.raises(UserError, match="no message|no such message"):
                a.delete_message("bob", ref)
        with pytest.raises(UserError, match="no peer matches"):
            a.delete_message("nobody", "#abcd")
        src = tmp_path / "report.txt"
        src.write_text("a file")
        await a.send_file("bob", str(src))
        row = next(m for m in a.history("bob") if m.file is not None)
        with pytest.raises(UserError, match="that is a file"):
            a.delete_message("bob", row.rowid)


@pytest.mark.asyncio
async def test_a_contacts_resend_of_a_deleted_message_does_not_show_again(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, _):
        a.add_peer(public_pem(rsa_keys["mallory"]), "127.0.0.1:9", "mallory")
        chat = None
        mallory = RawPeer(rsa_keys["mallory"], a, source="127.0.0.2")
        try:
            await mallory.handshake()
            now = int(time.time() * 1000)
            chat = Chat(os.urandom(16), mallory.fingerprint, a.identity.fingerprint, now, "once")
            mallory.send_chats([chat])
            await mallory.until(lambda p: any(type(e) is Acked for e in p.events), 20)
        finally:
            await mallory.close()
        a.delete_message("mallory", a.history("mallory")[0].rowid)
        again = RawPeer(rsa_keys["mallory"], a, source="127.0.0.3")
        try:
            await again.handshake()
            again.send_chats(
                [chat, Chat(os.urandom(16), chat.sender, chat.recipient, chat.created_ms, "new")]
            )
            await again.until(lambda p: any(type(e) is Acked and e.upto >= 1 for e in p.events), 20)
        finally:
            await again.close()
        await eventually(lambda: _bodies(a, "mallory") == ["new"], 10, "the new one alone")


@pytest.mark.asyncio
async def test_a_contact_reusing_one_of_our_ids_cannot_make_us_delete_ours(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, _):
        a.add_peer(public_pem(rsa_keys["mallory"]), "127.0.0.1:9", "mallory")
        await a.send("mallory", "ours, queued for mallory")
        ours = a.history("mallory")[0]
        mallory = RawPeer(rsa_keys["mallory"], a, source="127.0.0.2")
        try:
            await mallory.handshake()
            now = int(time.time() * 1000)
            copy = Chat(ours.id, mallory.fingerprint, a.identity.fingerprint, now, "theirs")
            mallory.send_chats([copy])
            await mallory.until(lambda p: any(type(e) is Acked for e in p.events), 20)
        finally:
            await mallory.close()
        await eventually(lambda: len(a.history("mallory")) == 2, 10, "both rows")
        a.delete_message("mallory", ours.id.hex(), "in")  # the page names theirs
        left = a.history("mallory")
        assert [(m.direction, m.body) for m in left] == [("out", "ours, queued for mallory")]
        with pytest.raises(UserError, match="needs its direction"):
            a.delete_message("mallory", ours.id.hex())
        # A reference made only of digits is a reference, never a row id.
        with pytest.raises(UserError, match="no message #"):
            a.delete_message("mallory", str(left[0].rowid))
