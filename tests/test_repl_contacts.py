"""The REPL's /rename, /block, /unblock, /remove, driven through prompt-toolkit."""

import re

import pytest
import test_repl
from support.nodes import Recorder, public_pem
from support.waiting import eventually
from test_repl import repl

from enclave.node.display import message_ref

pair = test_repl.pair  # the fixture, used by name


@pytest.mark.asyncio
async def test_rename_block_unblock_in_the_repl(pair, tmp_path):
    a, b = pair
    rb = Recorder(b)
    async with repl(a, tmp_path) as r:
        out = await r.run("/rename bob robert", "is now called robert")
        assert a.resolve("robert").fingerprint == b.fingerprint and "error" not in out
        await r.run("/rename robert", "error: usage: /rename PEER NEW")
        await r.run("/rename nobody x", "error: no peer matches 'nobody'")
        await r.run("/block robert", "robert is blocked")
        assert a.resolve("robert").blocked
        await r.run("/send robert hi", "error: robert is blocked; unblock it to send")
        await r.run("/peers", "robert (blocked)")
        await r.run("/unblock robert", "robert is unblocked")
        await r.run("/send robert back again", "you -> robert: back again")
        await rb.until(lambda rec: [m.body for m in rec.received()] == ["back again"])


@pytest.mark.asyncio
async def test_remove_asks_and_says_what_goes(pair, tmp_path):
    a, b = pair
    await b.stop()
    await a.send("bob", "owed")
    async with repl(a, tmp_path) as r:
        r.pipe.send_text("/remove bob\r")
        r.pipe.send_text("n\r")
        await r.screen.shows("bob was not removed")
        assert a.contacts()
        r.pipe.send_text("/remove bob\r")
        r.pipe.send_text("y\r")
        await r.screen.shows("bob was removed with its history")
        assert a.contacts() == [] and a.stats()["queued"] == 0
        await r.run("/remove bob", "error: no peer matches 'bob'")


@pytest.mark.asyncio
async def test_a_change_made_elsewhere_shows_in_the_repl(pair, tmp_path):
    a, _ = pair
    async with repl(a, tmp_path) as r:
        await r.run("/fingerprint", "Your fingerprint")  # the REPL is listening
        a.block_contact("bob")  # as the page or ``enclave block`` would
        await r.screen.shows("bob is blocked")


@pytest.mark.asyncio
async def test_a_contacts_rotation_shows_the_audit_line_and_the_chat_follows(
    pair, tmp_path, rsa_keys
):
    """Bob's node rotates its key while Alice's REPL is open on him: one audit line with
    both fingerprints' starts, no warning, and /send bob goes to the new key."""
    from enclave.identity import home, keys

    a, b = pair
    keys.save_identity(home.Home(b.home), rsa_keys["bob"], "repl rotation pw")
    async with repl(a, tmp_path) as r:
        await r.run("/fingerprint", "Your fingerprint")
        old = keys.group(b.fingerprint, 2)
        done = await b.rotate_key("repl rotation pw", new_key=rsa_keys["carol"])
        new = keys.group(done.new_fp, 2)
        out = await r.screen.shows("bob rotated their key, signed by their previous key")
        assert f"({old}... -> {new}...)" in out and "warning" not in out
        await r.run("/send bob on the new key", "you -> bob: on the new key")
        assert a.resolve("bob").fingerprint == done.new_fp


@pytest.mark.asyncio
async def test_a_revoked_contact_shows_why_and_cannot_be_written_to(pair, tmp_path, rsa_keys):
    from enclave.node.key_rotation import send_revocation
    from enclave.protocol import succession as sc
    from enclave.protocol.crypto import Identity

    a, b = pair
    cert = sc.encode_revocation(sc.sign_revocation(Identity(rsa_keys["bob"]), 1000))
    async with repl(a, tmp_path) as r:
        await r.run("/fingerprint", "Your fingerprint")
        told = await send_revocation(b.home / "enclave.db", cert, 5)
        assert told.told == ["alice"]
        await r.screen.shows("bob revoked their key: messages to and from it are refused")
        await r.run("/send bob anyone there", "error: bob revoked this key")
        await r.run("/peers", "revoked")


@pytest.mark.asyncio
async def test_clear_asks_then_erases_the_history_here(pair, tmp_path):
    a, b = pair
    rb = Recorder(b)
    await a.send("bob", "soon forgotten")
    await rb.until(lambda r: r.received())
    async with repl(a, tmp_path) as r:
        r.pipe.send_text("/clear bob\r")
        r.pipe.send_text("n\r")
        await r.screen.shows("the history with bob was kept")
        assert [m.body for m in a.history("bob")] == ["soon forgotten"]
        r.pipe.send_text("/clear bob\r")
        r.pipe.send_text("y\r")
        await r.screen.shows("the history with bob was erased on this device")
        assert a.history("bob") == [] and a.resolve("bob")
        await r.run("/clear", "error: usage: /clear PEER")


@pytest.mark.asyncio
async def test_delete_takes_one_message_by_the_reference_history_shows(pair, tmp_path):
    a, b = pair
    ra, rb = Recorder(a), Recorder(b)
    await b.send("alice", "this one goes")
    await b.send("alice", "this one stays")
    await ra.until(lambda r: len(r.received()) == 2)
    await rb.until(lambda r: len(r.states("delivered")) == 2)
    async with repl(a, tmp_path) as r:
        shown = await r.run("/history bob", "this one stays")
        ref = re.search(r"bob: this one goes  \((#[0-9a-z]{4})\)", shown).group(1)
        await r.run(f"/delete bob {ref}", f"{ref} was deleted from your history with bob")
        assert [m.body for m in a.history("bob")] == ["this one stays"]
        await r.run(f"/delete bob {ref}", f"error: no message {ref}")
        await r.run("/delete bob", "error: usage: /delete PEER REF")
        await r.run("/send bob still here", "you -> bob: still here")


@pytest.mark.asyncio
async def test_names_with_spaces_work_quoted_or_as_they_are(pair, tmp_path, rsa_keys):
    a, b = pair
    rb = Recorder(b)
    a.rename_contact("bob", "Bob Smith")
    assert test_repl._complete(a, "/send Bo") == ['"Bob Smith" ']
    async with repl(a, tmp_path) as r:
        await r.run("/send Bob Smith hello  there", "you -> Bob Smith: hello  there")
        await r.run('/send "Bob Smith" quoted', "you -> Bob Smith: quoted")
        await rb.until(lambda rec: len(rec.received()) == 2)
        assert [m.body for m in rb.received()] == ["hello  there", "quoted"]
        await r.run('/rename "Bob Smith" Robert Smith Jr', "is now called Robert Smith Jr")
        await r.run("/history Robert Smith Jr 1", "you -> Robert Smith Jr: quoted")
        await r.run("/block Robert Smith Jr", "Robert Smith Jr is blocked")
        await r.run('/unblock "Robert Smith Jr"', "Robert Smith Jr is unblocked")
        await r.run('/send "Robert Smith hi', "error: a quoted name needs its closing quote")
        await r.run("/rename Robert Smith Jr bad\u202ename", "error: invalid peer name")
        # Two contacts the words could name: the REPL asks for quotes, never guesses.
        a.rename_contact("Robert Smith Jr", "Robert")
        a.add_peer(public_pem(rsa_keys["carol"]), "127.0.0.1:9", "Robert Smith")
        await r.run("/send Robert Smith hi", "error: the text fits more than one contact")
        await r.run('/send "Robert" Smith hi', "you -> Robert: Smith hi")
    assert a.resolve("Robert").fingerprint == b.fingerprint


@pytest.mark.asyncio
async def test_receipts_on_both_sides_show_what_bob_read(pair, tmp_path):
    a, b = pair
    ra, rb = Recorder(a), Recorder(b)
    b.set_receipts("alice", True)
    async with repl(a, tmp_path) as r:
        await r.run("/receipts bob on", "read receipts with bob are on")
        await r.run("/send bob did you read this", "you -> bob: did you read this")
        await rb.until(lambda rec: rec.received())
        await ra.until(lambda rec: rec.states("delivered"))
        b.mark_read("alice")
        ref = re.search(r"\((#[0-9a-z]{4})\)", r.screen.text).group(1)
        await r.screen.shows(f"bob read your messages up to {ref}")
        await r.run("/receipts bob off", "read receipts with bob are off")
        await r.run("/receipts bob maybe", "error: usage: /receipts PEER on|off")


@pytest.mark.asyncio
async def test_reply_quotes_a_message_by_the_reference_history_shows(pair, tmp_path):
    a, b = pair
    ra = Recorder(a)
    await b.send("alice", "coffee later?")
    await ra.until(lambda rec: rec.received())
    async with repl(a, tmp_path) as r:
        shown = await r.run("/history bob", "coffee later?")
        ref = re.search(r"bob: coffee later\?  \((#[0-9a-z]{4})\)", shown).group(1)
        await r.run(f"/reply bob {ref} sure, at four", "you -> bob: sure, at four")
        await eventually(lambda: b.history("alice")[-1].body == "sure, at four", 10, "it")
        assert b.history("alice")[-1].reply_to == a.history("bob")[0].id
        await r.run("/history bob", f"(re {ref}) sure, at four")
        await r.run("/reply bob #zzzz hello", "error: no message #zzzz")
        await r.run("/reply bob", "error: usage: /reply PEER REF MESSAGE")
        mine = a.history("bob")[-1].id  # bob answers alice's reply: shown live, quoted
        await b.send("alice", "and you?", reply=message_ref(mine))
        await r.screen.shows(f"bob: (re {message_ref(mine)}) and you?")


@pytest.mark.asyncio
async def test_history_off_shows_messages_live_and_keeps_none(pair, tmp_path):
    a, b = pair
    ra, rb = Recorder(a), Recorder(b)
    async with repl(a, tmp_path) as r:
        await r.run("/history bob off", "history with bob is off: new messages are shown")
        assert a.resolve("bob").keep_history is False
        await b.send("alice", "seen once, then gone")
        await r.screen.shows("bob: seen once, then gone")  # shown live
        await r.run("/send bob mine too", "you -> bob: mine too")
        await rb.until(lambda rec: rec.received())
        await ra.until(lambda rec: rec.states("delivered"))
        out = await r.run("/history bob", "-- history is off with bob")
        assert "No messages with bob kept" in out.split("-- history is off with bob")[-1]
        await r.run("/history bob on", "history with bob is on: new messages are kept")
        await r.run("/history bob sometimes", "error: N must be a whole number")
        await r.run("/history bob off extra", "error: usage: /history PEER [N], or /history")
        await r.run("/history nobody off", "error: no peer matches 'nobody'")
