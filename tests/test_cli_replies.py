"""``enclave reply PEER REF MESSAGE`` and ``enclave delete PEER REF``, with and without a
running node: the #ref ``enclave history`` shows (or a full id) names the message, by the
node's own rules; a mistake is one line and changes nothing."""

import asyncio
import os
import time
from pathlib import Path

import pytest
import test_cli
from support.keyfactory import PASSWORD, make_identity
from support.nodes import Recorder, alice_and_bob
from support.stores import unlocked_store
from test_cli import assert_one_line_error, run, run_process

from enclave.faces import runner
from enclave.identity.home import Home
from enclave.node.book import open_book
from enclave.node.display import message_ref
from enclave.node.events import MessageDeleted

# test_cli's fixtures, used by name here too: alice's home (her identity at the real
# cost: the conversation is sealed) with carol as a contact
home_dir, alice = test_cli.home_dir, test_cli.alice
key_files, with_carol = test_cli.key_files, test_cli.with_carol


@pytest.fixture
def chats(with_carol, alice, key_files):
    """Alice's home with a chat from carol, one of hers still queued to carol, and one
    from bob (another conversation); the two messages with carol (Message rows)."""
    with open_book(Home(with_carol).db_path, alice.fingerprint, alice.store_key) as book:
        book.add(Path(key_files["bob"]).read_bytes(), "10.0.0.2:8000", "bob")
    now = int(time.time() * 1000)
    with unlocked_store(with_carol, PASSWORD) as store:
        carol, bob = (store.find_peers(name)[0].fingerprint for name in ("carol", "bob"))
        store.store_incoming(
            [(carol, os.urandom(16), "lunch at noon?", now, now, False),
             (bob, os.urandom(16), "bob's own question", now, now, False)]
        )  # fmt: skip
        store.enqueue_outgoing([(carol, os.urandom(16), "still on its way", now + 1)])
        return store.history(carol, 10)


def state(home: Path) -> tuple[list, list, list]:
    """What alice's home holds with carol and bob: both histories, carol's outbox."""
    with unlocked_store(home, PASSWORD) as store:
        carol, bob = (store.find_peers(name)[0].fingerprint for name in ("carol", "bob"))
        shown = [(m.id, m.body, m.reply_to) for m in store.history(carol, 50)]
        owed = [(o.id, o.body, o.reply) for o in store.outbox_for(carol)]
        return shown, owed, [m.body for m in store.history(bob, 50)]


# --- no node running: the store, after the password ---------------------------------------


def test_reply_without_a_node_waits_in_the_outbox_with_its_quote(with_carol, chats, capsys):
    question = chats[0]
    ref = message_ref(question.id)
    code, out, _ = run(capsys, "reply", "carol", ref, "yes,", "at noon")
    assert code == 0
    assert "the message to carol (#" in out and f"quoting {ref}, is queued in the outbox" in out
    shown, owed, _ = state(with_carol)
    assert owed[-1][1:] == ("yes, at noon", question.id)
    assert shown[-1] == (owed[-1][0], "yes, at noon", question.id)
    # The full id (enclave history --json) names it too, with or without its direction;
    # a #ref without its "#" and in capitals as well.
    for named in (["reply", "carol", question.id.hex()],
                  ["reply", "carol", question.id.hex().upper(), "--direction", "in"],
                  ["reply", "carol", ref[1:].upper()]):  # fmt: skip
        code, out, _ = run(capsys, *named, "again")
        assert code == 0 and f"quoting {ref}," in out
    assert [o[2] for o in state(with_carol)[1][-3:]] == [question.id] * 3
    # enclave history shows each message's #ref and the #ref a reply quotes.
    code, out, _ = run(capsys, "history", "carol")
    lines = out.splitlines()
    assert lines[0].endswith(f"carol -> you: lunch at noon?  ({ref})")
    new = message_ref(owed[-1][0])
    assert lines[2].endswith(f"you -> carol: (re {ref}) yes, at noon  ({new} queued)")


def test_delete_without_a_node_erases_it_here(with_carol, chats, capsys):
    question, queued = chats
    ref = message_ref(question.id)
    code, out, _ = run(capsys, "delete", "carol", ref)
    assert code == 0
    assert out == f"Deleted {ref} with carol on this device (carol keeps its copy)\n"
    shown, owed, _ = state(with_carol)
    assert [body for _, body, _ in shown] == ["still on its way"] and len(owed) == 1
    # Gone: its #ref names nothing now.
    assert_one_line_error(*run(capsys, "delete", "carol", ref), f"no message {ref}")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (("reply", "carol", "#zzzz", "hi"), "no message #zzzz among the last 500"),
        (("reply", "carol", "{bob}", "hi"), "no message {bob}"),
        (("reply", "carol", "{bob_id}", "hi"), "no such message in that conversation"),
        (("reply", "carol", "{id31}", "hi"), "names no message: REF is the #ref"),
        (("reply", "carol", "#k3f9; rm -rf ~", "hi"), "names no message"),
        (("reply", "carol", "{question}", " "), "the message is empty"),
        (("reply", "carol", "{question}", "hi", "--direction", "in"), "--direction goes with"),
        (("reply", "nobody", "{question}", "hi"), "no peer matches 'nobody'"),
        (("reply", "carol", "{question}"), "the following arguments are required: MESSAGE"),
        (("delete", "carol", "#zzzz"), "no message #zzzz"),
        (("delete", "carol", "{bob}"), "no message {bob}"),
        (("delete", "carol", "{id31}"), "names no message"),
        (("delete", "carol", "{queued}"), "still on its way"),
        (("delete", "carol", "{queued_id}", "--direction", "in"), "no such message"),
        (("delete", "nobody", "{question}"), "no peer matches 'nobody'"),
        (("delete", "carol"), "the following arguments are required: REF"),
    ],
)
def test_mistakes_are_one_line_and_change_nothing(with_carol, chats, capsys, argv, fragment):
    question, queued = chats
    with unlocked_store(with_carol, PASSWORD) as store:
        [bobs] = store.history(store.find_peers("bob")[0].fingerprint, 10)
    names = {
        "question": message_ref(question.id), "queued": message_ref(queued.id),
        "queued_id": queued.id.hex(), "bob": message_ref(bobs.id), "bob_id": bobs.id.hex(),
        "id31": question.id.hex()[:31],
    }  # fmt: skip
    before = state(with_carol)
    argv = [arg.format(**names) for arg in argv]
    assert_one_line_error(*run(capsys, *argv), fragment.format(**names))
    assert state(with_carol) == before


# --- through the running node --------------------------------------------------------------


@pytest.mark.asyncio
async def test_through_the_running_node(rsa_keys, tmp_path):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        make_identity(a.home, rsa_keys["alice"])  # the command checks there is one
        server = await runner.start_control(a, runner.control_path(a.home))
        try:
            ra, rb = Recorder(a), Recorder(b)
            await b.send("alice", "lunch at noon?")
            await ra.until(lambda r: r.received())
            question = a.history("bob")[-1]
            ref = message_ref(question.id)

            async def cli(*argv):
                return await asyncio.to_thread(run_process, "--home", str(a.home), *argv)

            done = await cli("reply", "bob", ref, "yes, at noon")
            assert done.returncode == 0, done.stderr
            answer = a.history("bob")[-1]
            assert answer.reply_to == question.id
            assert done.stdout.startswith(f"{message_ref(answer.id)} ")
            assert done.stdout.endswith(f"(quoting {ref})\n")
            await rb.until(lambda r: len(r.received()) == 1)
            await b.settled()  # shown as soon as it arrived; stored a commit later
            assert b.history("alice")[-1].body == "yes, at noon"
            assert b.history("alice")[-1].reply_to == question.id

            done = await cli("delete", "bob", ref)
            assert done.returncode == 0, done.stderr
            assert done.stdout == f"Deleted {ref} with bob on this device (bob keeps its copy)\n"
            deleted = [e for e in ra.events if isinstance(e, MessageDeleted)]
            assert [(e.ref, e.id) for e in deleted] == [(ref, question.id.hex())]
            assert [m.body for m in a.history("bob")] == ["yes, at noon"]
            assert [m.body for m in b.history("alice")] == ["lunch at noon?", "yes, at noon"]

            # Mistakes through the node: one line, exit 2, nothing sent or deleted.
            for argv, fragment in (
                (("reply", "bob", ref, "too late"), f"no message {ref}"),
                (("reply", "bob", "#zzzz", "hi"), "no message #zzzz"),
                (("delete", "bob", question.id.hex()), "no such message"),
                (("delete", "nobody", message_ref(answer.id)), "no peer matches 'nobody'"),
            ):
                bad = await cli(*argv)
                assert bad.returncode == 2 and bad.stdout == "", bad.stdout
                assert len(bad.stderr.splitlines()) == 1 and fragment in bad.stderr, bad.stderr
            assert [m.body for m in a.history("bob")] == ["yes, at noon"]
            assert len([e for e in ra.events if isinstance(e, MessageDeleted)]) == 1
        finally:
            server.close()
            await server.wait_closed()
