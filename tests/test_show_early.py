"""A chat is shown as soon as it is decrypted, and acked only once it is stored
(enclave/node/delivery.py, "Shown before stored").

The store's writer thread is held busy by the test (``held_writer``), so no commit can
run: what is shown meanwhile was shown before its commit, and nothing is acked before
the writer is let go. A link is "fresh" once a commit stored a new chat from it; only
then are its chats shown early, and never a copy of one already shown or stored.
"""

import asyncio
import contextlib
import threading
import time

import pytest
import pytest_asyncio
from support.attackers import RawPeer
from support.nodes import Recorder, public_pem, start

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


@pytest_asyncio.fixture
async def bob_and_carol(rsa_keys, tmp_path):
    bob = await start(tmp_path / "b", rsa_keys["bob"])
    bob.add_peer(public_pem(rsa_keys["carol"]), "127.0.0.1:9", "carol")
    peers: list[RawPeer] = []

    async def carol() -> RawPeer:
        peer = RawPeer(rsa_keys["carol"], bob, source="127.0.0.3")
        peers.append(peer)
        await peer.handshake()
        return peer

    try:
        yield bob, carol
    finally:
        for p in peers:
            await p.close()
        await bob.stop()


@pytest.mark.asyncio
async def test_a_fresh_links_chat_is_shown_before_its_commit_and_acked_after(bob_and_carol):
    bob, carol_session = bob_and_carol
    shown = Recorder(bob)
    carol = await carol_session()
    to = bytes.fromhex(bob.fingerprint)
    carol.send_chats([chat(carol, to, "first")])  # a new link: shown by its commit
    await carol.until(lambda p: Acked(0) in p.events, 20)
    assert [m.body for m in shown.received()] == ["first"]

    async with held_writer(bob):
        carol.send_chats([chat(carol, to, "second"), chat(carol, to, "third")])
        await shown.until(lambda r: len(r.received()) == 3, 20)
        assert Acked(2) not in carol.events  # shown, not stored, not acked
        assert [m.body for m in bob.history("carol")] == ["first"]
    await carol.until(lambda p: Acked(2) in p.events, 20)
    await bob.delivery.flush()
    assert [m.body for m in shown.received()] == ["first", "second", "third"]
    assert [m.body for m in bob.history("carol")] == ["first", "second", "third"]
    assert not bob.delivery._pending and not bob.delivery._early


@pytest.mark.asyncio
async def test_a_new_links_chats_wait_for_their_commit(bob_and_carol):
    """A sender resends what was unacked at the start of a session: until a commit
    finds a new chat on the link, its chats may be stored already, so they wait."""
    bob, carol_session = bob_and_carol
    shown = Recorder(bob)
    carol = await carol_session()
    to = bytes.fromhex(bob.fingerprint)
    carol.send_chats([chat(carol, to, "opening")])  # (quotas read the store first)
    await carol.until(lambda p: Acked(0) in p.events, 20)
    await carol.close()
    carol = await carol_session()
    async with held_writer(bob):
        carol.send_chats([chat(carol, to, "first"), chat(carol, to, "second")])
        await waiting(bob, 2)
        assert [m.body for m in shown.received()] == ["opening"]
    await shown.until(lambda r: len(r.received()) == 3, 20)
    assert [m.body for m in shown.received()] == ["opening", "first", "second"]


@pytest.mark.asyncio
async def test_copies_of_a_chat_waiting_for_its_commit_are_shown_once(bob_and_carol):
    """A hostile (or confused) contact sends the same chat many times, on its fresh link
    and on a second session, while none is stored: it is shown once, stored once."""
    bob, carol_session = bob_and_carol
    shown = Recorder(bob)
    carol = await carol_session()
    to = bytes.fromhex(bob.fingerprint)
    carol.send_chats([chat(carol, to, "opening")])
    await carol.until(lambda p: Acked(0) in p.events, 20)
    again = chat(carol, to, "again")
    second = await carol_session()
    async with held_writer(bob):
        carol.send_chats([again] * 50)
        second.send_chats([again] * 5)  # before its link is fresh: shown by the commit
        await waiting(bob, 55)
        carol.send_chats([again, chat(carol, to, "then")])
        await shown.until(lambda r: len(r.received()) == 3, 20)
        assert [m.body for m in shown.received()] == ["opening", "again", "then"]
    await carol.until(lambda p: Acked(52) in p.events, 20)
    await second.until(lambda p: Acked(4) in p.events, 20)
    await bob.delivery.flush()
    assert [m.body for m in shown.received()] == ["opening", "again", "then"]
    assert [m.body for m in bob.history("carol")] == ["opening", "again", "then"]
    assert bob.delivery.stats["dupes"] == 55


@pytest.mark.asyncio
async def test_a_stored_chat_sent_again_on_a_fresh_link_is_not_shown(bob_and_carol):
    bob, carol_session = bob_and_carol
    shown = Recorder(bob)
    carol = await carol_session()
    to = bytes.fromhex(bob.fingerprint)
    old = chat(carol, to, "old")
    carol.send_chats([old, chat(carol, to, "new")])
    await carol.until(lambda p: Acked(1) in p.events, 20)
    async with held_writer(bob):
        carol.send_chats([old, chat(carol, to, "newer")])
        await shown.until(lambda r: len(r.received()) == 3, 20)
    await carol.until(lambda p: Acked(3) in p.events, 20)
    await bob.delivery.flush()
    assert [m.body for m in shown.received()] == ["old", "new", "newer"]
    assert [m.body for m in bob.history("carol")] == ["old", "new", "newer"]


@pytest.mark.asyncio
async def test_a_read_receipt_names_a_chat_shown_before_its_commit(bob_and_carol):
    bob, carol_session = bob_and_carol
    bob.set_receipts("carol", True)
    carol = await carol_session()
    to = bytes.fromhex(bob.fingerprint)
    carol.send_chats([chat(carol, to, "first")])
    await carol.until(lambda p: Acked(0) in p.events, 20)
    latest = chat(carol, to, "latest")
    shown = Recorder(bob)
    async with held_writer(bob):
        carol.send_chats([latest])
        await shown.until(lambda r: len(r.received()) == 1, 20)
        bob.mark_read("carol")  # the face showed it: the receipt names it, stored or not
        assert bob.receipts._told.get(carol.fingerprint.hex()) == latest.id
