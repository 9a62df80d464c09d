"""A chat is shown as soon as it is decrypted, and acked only once it is stored
(enclave/node/delivery.py, "Shown before stored").

The store's writer thread is held busy by the test (``held_writer``), so no commit can
run: what is shown meanwhile was shown before its commit, and nothing is acked before
the writer is let go. A chat is shown early only when it is certainly new and in order:
above the highest (created_ms, id) its sender had stored (read at the sender's first
commit of the run), with no copy of it waiting and nothing of its sender waiting
unshown before it. The honest sender's resends, a contact replaying an old id with new
words, TIMERs and sessions that end mid-commit are the cases here.
"""

import asyncio
import contextlib
import threading
import time

import pytest
import pytest_asyncio
from support.attackers import RawPeer
from support.nodes import Recorder, public_pem, start

from enclave._fast import ReplayRing
from enclave.node.events import MessageReceived, TimerChanged
from enclave.node.message_ids import new_id
from enclave.protocol.events import Acked
from enclave.protocol.messages import Chat


@contextlib.asynccontextmanager
async def held_writer(node):
    """The store's writer thread waits until the block ends: commits queue behind it."""
    go, busy = threading.Event(), threading.Event()

    def hold() -> None:
        busy.set()
        go.wait(30)

    loop = asyncio.get_running_loop()
    job = loop.run_in_executor(node.delivery.writer, hold)
    await asyncio.to_thread(busy.wait, 30)
    try:
        yield
    finally:
        go.set()
        await job


def chat(peer: RawPeer, to: bytes, body: str, created_ms: int | None = None) -> Chat:
    created = int(time.time() * 1000) if created_ms is None else created_ms
    return Chat(new_id(), peer.fingerprint, to, created, body)


async def waiting(node, count: int) -> None:
    """Until ``count`` chats wait for a commit (they were decrypted and admitted)."""
    for _ in range(2000):
        if sum(node.delivery._pending.values()) >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{count} chats never reached delivery")


@contextlib.asynccontextmanager
async def bob_run(rsa_keys, home):
    """One run of Bob (a node process's life) and Carol's sessions to it."""
    bob = await start(home, rsa_keys["bob"])
    if not any(p.name == "carol" for p in bob.contacts()):
        bob.add_peer(public_pem(rsa_keys["carol"]), "127.0.0.1:9", "carol")
    peers: list[RawPeer] = []

    async def session() -> RawPeer:
        peer = RawPeer(rsa_keys["carol"], bob, source="127.0.0.3")
        peers.append(peer)
        await peer.handshake()
        return peer

    try:
        yield bob, session
    finally:
        for p in peers:
            await p.close()
        await bob.stop()


@pytest_asyncio.fixture
async def bob_and_carol(rsa_keys, tmp_path):
    async with bob_run(rsa_keys, tmp_path / "b") as (bob, carol):
        yield bob, carol


async def opened(carol_session, to) -> RawPeer:
    """A session whose first chat is stored: Bob knows Carol's mark from then on."""
    carol = await carol_session()
    carol.send_chats([chat(carol, to, "opening")])
    await carol.until(lambda p: Acked(0) in p.events, 20)
    return carol


@pytest.mark.asyncio
async def test_a_chat_is_shown_before_its_commit_and_acked_after(bob_and_carol):
    bob, carol_session = bob_and_carol
    shown = Recorder(bob)
    to = bytes.fromhex(bob.fingerprint)
    carol = await opened(carol_session, to)  # the first of a run: shown by its commit
    assert [m.body for m in shown.received()] == ["opening"]
    async with held_writer(bob):
        carol.send_chats([chat(carol, to, "second"), chat(carol, to, "third")])
        await shown.until(lambda r: len(r.received()) == 3, 20)
        assert Acked(2) not in carol.events  # shown, not stored, not acked
        assert [m.body for m in bob.history("carol")] == ["opening"]
    await carol.until(lambda p: Acked(2) in p.events, 20)
    await bob.delivery.flush()
    assert [m.body for m in shown.received()] == ["opening", "second", "third"]
    assert [m.body for m in bob.history("carol")] == ["opening", "second", "third"]
    assert not (bob.delivery._pending or bob.delivery._early or bob.delivery._held)


@pytest.mark.asyncio
async def test_a_senders_first_chats_of_a_run_wait_for_their_commit(rsa_keys, tmp_path):
    """Until a commit has read what Carol had stored, nothing says her chat is new: the
    first of a run is stored when it is shown; then the next one is shown at once."""
    async with bob_run(rsa_keys, tmp_path / "b") as (bob, carol_session):
        to = bytes.fromhex(bob.fingerprint)
        await opened(carol_session, to)
    async with bob_run(rsa_keys, tmp_path / "b") as (bob, carol_session):  # a new run
        stored_when_shown = {}

        def on_event(event) -> None:
            if isinstance(event, MessageReceived):
                history = [m.body for m in bob.history("carol")]
                stored_when_shown[event.body] = event.body in history

        bob.subscribe(on_event)
        shown = Recorder(bob)
        carol = await carol_session()
        carol.send_chats([chat(carol, to, "first")])
        await shown.until(lambda r: len(r.received()) == 1, 20)
        async with held_writer(bob):  # her mark is known now: the next one goes at once
            carol.send_chats([chat(carol, to, "second")])
            await shown.until(lambda r: len(r.received()) == 2, 20)
        await carol.until(lambda p: Acked(1) in p.events, 20)
        assert stored_when_shown == {"first": True, "second": False}


@pytest.mark.asyncio
async def test_copies_of_a_chat_waiting_for_its_commit_are_shown_once(bob_and_carol):
    """A hostile (or confused) contact sends the same chat many times, on two sessions,
    while none is stored: it is shown once, stored once, and what follows the copies
    keeps its order."""
    bob, carol_session = bob_and_carol
    shown = Recorder(bob)
    to = bytes.fromhex(bob.fingerprint)
    carol = await opened(carol_session, to)
    again = chat(carol, to, "again")
    second = await carol_session()
    async with held_writer(bob):
        carol.send_chats([again] * 50)
        second.send_chats([again] * 5)
        await waiting(bob, 55)
        carol.send_chats([again, chat(carol, to, "then")])
        await shown.until(lambda r: len(r.received()) == 2, 20)
        assert [m.body for m in shown.received()] == ["opening", "again"]
    await carol.until(lambda p: Acked(52) in p.events, 20)
    await second.until(lambda p: Acked(4) in p.events, 20)
    await bob.delivery.flush()
    assert [m.body for m in shown.received()] == ["opening", "again", "then"]
    assert [m.body for m in bob.history("carol")] == ["opening", "again", "then"]
    assert bob.delivery.stats["dupes"] == 55
    assert not (bob.delivery._pending or bob.delivery._early or bob.delivery._held)


@pytest.mark.asyncio
async def test_a_resend_of_a_stored_chat_is_not_shown_even_once_the_ring_forgot_it(
    bob_and_carol,
):
    """Carol's ack was lost: her node resends a stored chat on another session, after
    the ring has forgotten it (other contacts' traffic). It is at or below her mark:
    the commit decides, and finds it stored."""
    bob, carol_session = bob_and_carol
    shown = Recorder(bob)
    to = bytes.fromhex(bob.fingerprint)
    carol = await opened(carol_session, to)
    stored = chat(carol, to, "stored")
    other = await carol_session()
    other.send_chats([stored])
    await other.until(lambda p: Acked(0) in p.events, 20)
    await other.close()
    bob.delivery.ring = ReplayRing(4, digests=True)  # it remembers nothing of Carol now
    async with held_writer(bob):
        carol.send_chats([stored, chat(carol, to, "next")])
        await waiting(bob, 2)
        assert [m.body for m in shown.received()] == ["opening", "stored"]
    await carol.until(lambda p: Acked(2) in p.events, 20)
    await bob.delivery.flush()
    assert [m.body for m in shown.received()] == ["opening", "stored", "next"]
    assert [m.body for m in bob.history("carol")] == ["opening", "stored", "next"]


@pytest.mark.asyncio
async def test_a_contact_replaying_an_old_id_with_new_words_shows_nothing(rsa_keys, tmp_path):
    """After a restart (an empty ring), Carol sends the time and id of a message Bob
    stored with other words: it is a duplicate, acked, never shown, and the history
    keeps what was stored."""
    async with bob_run(rsa_keys, tmp_path / "b") as (bob, carol_session):
        to = bytes.fromhex(bob.fingerprint)
        carol = await carol_session()
        old = chat(carol, to, "I owe you 100")
        carol.send_chats([old])
        await carol.until(lambda p: Acked(0) in p.events, 20)
    async with bob_run(rsa_keys, tmp_path / "b") as (bob, carol_session):
        shown = Recorder(bob)
        carol = await opened(carol_session, to)
        forged = Chat(old.id, old.sender, old.recipient, old.created_ms, "I owe you 1,000,000")
        carol.send_chats([forged, chat(carol, to, "after it")])
        await carol.until(lambda p: Acked(2) in p.events, 20)
        await bob.delivery.flush()
        assert [m.body for m in shown.received()] == ["opening", "after it"]
        assert [m.body for m in bob.history("carol")] == ["I owe you 100", "opening", "after it"]


@pytest.mark.asyncio
async def test_an_unshown_chat_keeps_its_place_before_later_ones_on_another_session(
    bob_and_carol,
):
    """Carol's carrier session ends while a TIMER and a chat after it wait for Bob's
    commit (neither is shown yet); her node resends both, then a new chat, on another
    session: the new one waits too, so all are shown in her order."""
    bob, carol_session = bob_and_carol
    shown = Recorder(bob)
    to = bytes.fromhex(bob.fingerprint)
    carol = await opened(carol_session, to)
    carrier = await carol_session()
    now = int(time.time() * 1000)
    timer = Chat(new_id(), carol.fingerprint, to, now, "", timer_s=3600)
    first, then = chat(carol, to, "m1", now + 1), chat(carol, to, "m2", now + 2)
    async with held_writer(bob):
        carrier.send_chats([timer, first])
        await waiting(bob, 2)
        await carrier.close()
        carol.send_chats([timer, first, then])
        await waiting(bob, 5)
        assert [m.body for m in shown.received()] == ["opening"]
    await carol.until(lambda p: Acked(3) in p.events, 20)
    await bob.delivery.flush()
    assert [m.body for m in shown.received()] == ["opening", "m1", "m2"]
    assert not (bob.delivery._pending or bob.delivery._early or bob.delivery._held)


@pytest.mark.asyncio
async def test_a_timer_is_shown_before_the_chats_after_it(bob_and_carol):
    bob, carol_session = bob_and_carol
    events = Recorder(bob)
    to = bytes.fromhex(bob.fingerprint)
    carol = await opened(carol_session, to)
    now = int(time.time() * 1000)
    timer = Chat(new_id(), carol.fingerprint, to, now, "", timer_s=3600)
    async with held_writer(bob):
        carol.send_chats([timer, chat(carol, to, "under the timer", now + 1)])
        await waiting(bob, 2)
        assert len(events.received()) == 1  # both wait: the TIMER, and what follows it
    await carol.until(lambda p: Acked(2) in p.events, 20)
    await bob.delivery.flush()
    order = [
        type(e).__name__ for e in events.events if isinstance(e, TimerChanged | MessageReceived)
    ]
    assert order == ["MessageReceived", "TimerChanged", "MessageReceived"]


@pytest.mark.asyncio
async def test_sessions_that_end_mid_commit_leave_nothing_behind(bob_and_carol):
    bob, carol_session = bob_and_carol
    to = bytes.fromhex(bob.fingerprint)
    await opened(carol_session, to)
    for k in range(5):
        carol = await carol_session()
        async with held_writer(bob):
            carol.send_chats([chat(carol, to, f"x{k}")])
            await waiting(bob, 1)
            await carol.close()
        await bob.delivery.flush()
    assert not (bob.delivery._pending or bob.delivery._early or bob.delivery._held)
    assert [m.body for m in bob.history("carol")] == ["opening", *(f"x{k}" for k in range(5))]


@pytest.mark.asyncio
async def test_a_read_receipt_names_a_chat_shown_before_its_commit(bob_and_carol):
    bob, carol_session = bob_and_carol
    bob.set_receipts("carol", True)
    to = bytes.fromhex(bob.fingerprint)
    carol = await opened(carol_session, to)
    latest = chat(carol, to, "latest")
    shown = Recorder(bob)
    async with held_writer(bob):
        carol.send_chats([latest])
        await shown.until(lambda r: len(r.received()) == 1, 20)
        bob.mark_read("carol")  # the face showed it: the receipt names it, stored or not
        assert bob.receipts._told.get(carol.fingerprint.hex()) == latest.id
