"""Delivery edges at the node (PROTOCOL.md c.3, row F8 node parts): duplicates,
tombstones, a full disk, and broadcast to 20 peers."""

import asyncio
import contextlib
import os
import shutil
import threading
import time
from collections import deque

import pytest
from support.attackers import RawPeer
from support.nodes import Recorder, alice_and_bob, introduce, public_pem, small_key, start

from enclave.node.delivery import hold_back
from enclave.node.events import NodeProblem
from enclave.node.outgoing import Out
from enclave.protocol.events import Acked
from enclave.protocol.messages import Chat


def chat(raw: RawPeer, node, body: str, id_: bytes) -> Chat:
    return Chat(id_, raw.fingerprint, node.identity.fingerprint, int(time.time() * 1000), body)


async def acked(raw: RawPeer, upto: int) -> None:
    await raw.until(lambda p: any(type(e) is Acked and e.upto >= upto for e in p.events))


@pytest.mark.asyncio
async def test_duplicate_is_reacked_and_never_shown_twice(rsa_keys, tmp_path):
    b = await start(tmp_path / "b", rsa_keys["bob"])
    b.add_peer(public_pem(rsa_keys["alice"]), "127.0.0.1:9", "alice")
    rb = Recorder(b)
    first = RawPeer(rsa_keys["alice"], b, source="127.0.0.1")
    second = RawPeer(rsa_keys["alice"], b, source="127.0.0.1")
    try:
        await first.handshake()
        x = chat(first, b, "once", os.urandom(16))
        first.send_chats([x, x])  # the same ID twice in one session
        await acked(first, 1)
        await second.handshake()  # a resend on a new session, as after a lost ack
        second.send_chats([x])
        await acked(second, 0)
        assert [m.body for m in rb.received()] == ["once"]
        assert [m.body for m in b.history("alice")] == ["once"]
        assert b.stats()["dupes"] == 2
    finally:
        await first.close()
        await second.close()
        await b.stop()


@pytest.mark.asyncio
async def test_late_resend_after_history_was_deleted_is_not_shown_again(rsa_keys, tmp_path):
    b = await start(tmp_path / "b", rsa_keys["bob"])
    b.add_peer(public_pem(rsa_keys["alice"]), "127.0.0.1:9", "alice")
    rb = Recorder(b)
    first = RawPeer(rsa_keys["alice"], b, source="127.0.0.1")
    late = RawPeer(rsa_keys["alice"], b, source="127.0.0.1")
    try:
        await first.handshake()
        x = chat(first, b, "delete me", os.urandom(16))
        first.send_chats([x])
        await acked(first, 0)
        assert b.store.delete_history(b.resolve("alice").fingerprint) == 1
        await late.handshake()
        late.send_chats([x])
        await acked(late, 0)  # acked, so the sender stops resending ...
        assert len(rb.received()) == 1  # ... and never shown again
        assert b.history("alice") == []
    finally:
        await first.close()
        await late.close()
        await b.stop()


@pytest.mark.asyncio
async def test_full_disk_acks_nothing_then_stores_everything_once(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    loop = asyncio.get_running_loop()
    try:
        introduce(a, b, ka, kb)
        ra, rb = Recorder(a), Recorder(b)
        await a.send("bob", "before")
        await ra.until(lambda r: len(r.states("delivered")) == 1)

        def pragma(sql):
            return b.store._db.execute(sql).fetchone()[0]

        # The disk fills up: the store cannot grow past its current pages.
        pages = await loop.run_in_executor(b.delivery.writer, pragma, "PRAGMA page_count")
        await loop.run_in_executor(b.delivery.writer, pragma, f"PRAGMA max_page_count = {pages}")
        bodies = [f"while full {k} " + "x" * 400 for k in range(300)]
        for body in bodies:
            await a.send("bob", body)
        await rb.until(lambda r: any(isinstance(e, NodeProblem) for e in r.events))
        # Whatever fitted was stored and acked; nothing that did not fit was acked. What
        # arrived may be shown already (shown before stored), in order, each once.
        await b.delivery.flush()
        stored = len(b.history("alice", 1000))
        shown = [m.body for m in rb.received()]
        assert stored < 301 and len(shown) >= stored
        assert shown == ["before", *bodies][: len(shown)]
        assert len(ra.states("delivered")) <= stored
        assert len([e for e in rb.events if isinstance(e, NodeProblem)]) == 1  # told once
        # Space comes back: the waiting messages are stored, shown once and acked.
        await loop.run_in_executor(b.delivery.writer, pragma, "PRAGMA max_page_count = 1073741823")
        await ra.until(lambda r: len(r.states("delivered")) == 301, timeout=30)
        assert [m.body for m in rb.received()] == ["before", *bodies]
        assert [m.body for m in b.history("alice", 1000)] == ["before", *bodies]
    finally:
        await a.stop()
        await b.stop()


@pytest.fixture(scope="module")
def twenty_keys():
    return [small_key() for _ in range(20)]


@pytest.mark.asyncio
async def test_broadcast_to_twenty_peers(rsa_keys, tmp_path, twenty_keys):
    ka = rsa_keys["alice"]
    a = await start(tmp_path / "a", ka)
    peers = [await start(tmp_path / f"p{k}", key) for k, key in enumerate(twenty_keys)]
    try:
        for k, (p, key) in enumerate(zip(peers, twenty_keys, strict=True)):
            introduce(a, p, ka, key, names=("alice", f"peer{k:02d}"))
        ra = Recorder(a)
        recs = [Recorder(p) for p in peers]
        sent = await a.broadcast("all hands")
        assert len({s.peer for s in sent}) == 20 and len({s.id for s in sent}) == 20
        await ra.until(lambda r: len(r.states("delivered")) == 20, timeout=60)
        for rec in recs:
            assert [m.body for m in rec.received()] == ["all hands"]
        # Per-recipient states: each recipient's copy was delivered by that recipient.
        by_rowid = {s.rowid: s.peer for s in sent}
        assert all(by_rowid[e.rowid] == e.peer for e in ra.states("delivered"))
        assert {m.state for p in peers for m in a.history(f"peer{peers.index(p):02d}")} == {
            "delivered"
        }
    finally:
        await a.stop()
        for p in peers:
            await p.stop()


@pytest.mark.asyncio
async def test_stop_while_the_disk_is_full_does_not_hang(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    loop = asyncio.get_running_loop()
    try:
        introduce(a, b, ka, kb)
        rb = Recorder(b)
        await a.send("bob", "hello")
        await rb.until(lambda r: r.received())

        def full():
            pages = b.store._db.execute("PRAGMA page_count").fetchone()[0]
            b.store._db.execute(f"PRAGMA max_page_count = {pages}")

        await loop.run_in_executor(b.delivery.writer, full)
        for k in range(300):
            await a.send("bob", f"{k} " + "y" * 400)
        await rb.until(lambda r: any(isinstance(e, NodeProblem) for e in r.events))
        await asyncio.wait_for(b.stop(), 10)
        assert a.stats()["queued"] > 0  # the sender still owes what was not acknowledged
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_far_future_created_time_is_stored_and_nothing_stalls(rsa_keys, tmp_path):
    """A valid but absurd created_ms (2**64 - 1) is clamped for the store (the same
    value for every resend: it is part of the dedupe key) and published as unknown
    (None); later messages keep flowing and the node stops promptly."""
    b = await start(tmp_path / "b", rsa_keys["bob"])
    b.add_peer(public_pem(rsa_keys["alice"]), "127.0.0.1:9", "alice")
    rb = Recorder(b)
    raw = RawPeer(rsa_keys["alice"], b, source="127.0.0.1")
    try:
        await raw.handshake()
        odd = Chat(
            os.urandom(16),
            raw.fingerprint,
            b.identity.fingerprint,
            2**64 - 1,
            "from the far future",
        )
        raw.send_chats([odd, chat(raw, b, "next", os.urandom(16))])
        await acked(raw, 1)
        assert [m.body for m in rb.received()] == ["from the far future", "next"]
        assert rb.received()[0].created_ms is None and rb.received()[1].created_ms is not None
        stored = [m for m in b.history("alice") if m.body == "from the far future"]
        assert [m.created_ms for m in stored] == [2**63 - 1]
    finally:
        await raw.close()
        await asyncio.wait_for(b.stop(), 10)


@pytest.mark.asyncio
async def test_sender_with_a_full_store_is_told_at_once(rsa_keys, tmp_path):
    from enclave.errors import UserError

    a = await start(tmp_path / "a", rsa_keys["alice"])
    loop = asyncio.get_running_loop()
    try:
        a.add_peer(public_pem(rsa_keys["bob"]), "127.0.0.1:9", "bob")

        def full():
            pages = a.store._db.execute("PRAGMA page_count").fetchone()[0]
            a.store._db.execute(f"PRAGMA max_page_count = {pages}")

        await loop.run_in_executor(a.delivery.writer, full)
        with pytest.raises(UserError, match="refuses writes"):
            for k in range(200):
                await asyncio.wait_for(a.send("bob", f"{k} " + "z" * 400), 10)
    finally:
        await asyncio.wait_for(a.stop(), 10)


@pytest.mark.asyncio
async def test_stop_leaves_no_dialing_or_links_behind(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    introduce(a, b, ka, kb)
    ra = Recorder(a)
    await a.send("bob", "one")
    await ra.until(lambda r: r.states("delivered"))
    await b.stop()
    await a.send("bob", "two, while bob is away")
    sessions = a.sessions
    await asyncio.wait_for(a.stop(), 10)
    await asyncio.sleep(0)
    assert not sessions.dialing and sessions.links == {}


@pytest.mark.asyncio
async def test_a_failing_subscriber_does_not_break_the_node(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    try:
        introduce(a, b, ka, kb)

        def broken(event):
            raise BrokenPipeError("the log reader went away")

        a.subscribe(broken)
        b.subscribe(broken)
        ra, rb = Recorder(a), Recorder(b)
        await a.send("bob", "still delivered")
        await ra.until(lambda r: r.states("delivered"))
        assert [m.body for m in rb.received()] == ["still delivered"]
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_idle_expiry_keeps_the_last_session_and_the_peer_online(rsa_keys, tmp_path):
    from enclave.node.events import PeerOffline
    from enclave.node.settings import Settings

    quick = Settings(idle_timeout=0.5)
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka, quick), await start(tmp_path / "b", kb, quick)
    try:
        introduce(a, b, ka, kb)
        ra = Recorder(a)
        await a.send("bob", "hi")
        await ra.until(lambda r: r.states("delivered"))
        # An observation window, not synchronisation: the once-a-second expiry runs a
        # few times, and no PeerOffline may appear meanwhile.
        await asyncio.sleep(2.5)
        assert not any(isinstance(e, PeerOffline) for e in ra.events)
        assert a.sessions.online(bytes.fromhex(b.fingerprint))
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_store_sync_normal_delivers_everything_once_both_ways(rsa_keys, tmp_path):
    """With store_sync "normal" (no fsync per commit): the same outcome."""
    from enclave.node.settings import Settings

    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    normal = Settings(store_sync="normal")
    a, b = await start(tmp_path / "a", ka, normal), await start(tmp_path / "b", kb, normal)
    try:
        introduce(a, b, ka, kb)
        ra, rb = Recorder(a), Recorder(b)
        for k in range(150):  # one at a time, then a burst
            await a.send("bob", f"a{k}")
            await b.send("alice", f"b{k}")
        await a.submit_many(bytes.fromhex(b.fingerprint), [f"a{k}" for k in range(150, 3000)])
        await ra.until(lambda r: len(r.states("delivered")) == 3000)
        await rb.until(lambda r: len(r.states("delivered")) == 150)
        assert [m.body for m in rb.received()] == [f"a{k}" for k in range(3000)]
        assert [m.body for m in ra.received()] == [f"b{k}" for k in range(150)]
        assert {m.state for m in a.history("bob", 5000)} == {"delivered", "received"}
        assert a.stats()["queued"] == 0 and b.stats()["dupes"] == 0
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_sent_before_its_commit_is_reported_delivered_only_once_stored(rsa_keys, tmp_path):
    """A message goes to its link while its outbox row is being committed. If that commit
    fails (a full store), the peer may already have it: it stays, and is reported
    queued and delivered only once its row is on disk, never before."""
    from enclave.node.events import DeliveryChanged

    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    loop = asyncio.get_running_loop()
    try:
        introduce(a, b, ka, kb)
        ra, rb = Recorder(a), Recorder(b)
        warm = await a.send("bob", "warm")
        await ra.until(lambda r: len(r.states("delivered")) == 1)

        def problem(r):
            return any(isinstance(e, NodeProblem) for e in r.events)

        def limit(pages):
            db = a.store._db
            count = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages or count}")

        await loop.run_in_executor(a.delivery.writer, limit, 0)
        bob = bytes.fromhex(b.fingerprint)
        futures = []
        for k in range(100):  # until a commit fails (freed pages may take the first ones)
            # Each goes to the live session at once, while its row is being committed.
            futures.append(a.submit(bob, f"big{k:03d} " + "z" * 9000))
            await ra.until(lambda r, f=futures[-1]: f.done() or problem(r))
            if problem(ra):
                break
        # The store refuses writes now; one more goes to Bob at once all the same.
        futures.append(a.submit(bob, "big-after " + "z" * 9000))
        pending = [f for f in futures if not f.done()]
        assert pending and problem(ra)
        await rb.until(lambda r: len(r.received()) == 1 + len(futures))  # Bob has them all
        on_disk = {f.result().rowid for f in futures if f.done()} | {warm.rowid}
        reported = {e.rowid for e in ra.events if isinstance(e, DeliveryChanged)}
        assert reported <= on_disk  # nothing said about a row not yet written
        assert len(a.history("bob", 500)) == len(on_disk)

        await loop.run_in_executor(a.delivery.writer, limit, 1_000_000)
        for f in pending:
            await asyncio.wait_for(f, 10)
        await ra.until(lambda r: len(r.states("delivered")) == 1 + len(futures))
        for f in pending:
            states = [
                e.state
                for e in ra.events
                if type(e) is DeliveryChanged and e.rowid == f.result().rowid
            ]
            assert states[0] == "queued" and states[-1] == "delivered"
        assert {m.state for m in a.history("bob", 500)} == {"delivered"}
        assert len(rb.received()) == 1 + len(futures)  # each shown once
    finally:
        await a.stop()
        await b.stop()


@contextlib.asynccontextmanager
async def writer_held(node):
    """The node's store writer is busy (its commits wait) until the block ends."""
    loop = asyncio.get_running_loop()
    entered, gate = threading.Event(), threading.Event()

    def hold():
        entered.set()
        gate.wait(30)

    job = loop.run_in_executor(node.delivery.writer, hold)
    try:
        await loop.run_in_executor(None, entered.wait)
        yield
    finally:
        gate.set()
        await job


@pytest.mark.asyncio
async def test_a_message_sent_before_its_commit_survives_its_sender_crashing(rsa_keys, tmp_path):
    """Alice's message reaches Bob while her commit of it is held back. Her home as a
    crash leaves it then (copied as it is), started again, puts the message back in her
    outbox with its id and sends it again: Bob's dedupe acks it and shows nothing twice."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb)
    again = None
    try:
        introduce(a, b, ka, kb)
        ra, rb = Recorder(a), Recorder(b)
        await a.send("bob", "warm")
        await ra.until(lambda r: len(r.states("delivered")) == 1)
        async with writer_held(a):
            sent = a.submit(bytes.fromhex(b.fingerprint), "typed just before the crash")
            await rb.until(lambda r: len(r.received()) == 2)  # shown at Bob, not stored at Alice
            shutil.copytree(tmp_path / "a", tmp_path / "crashed")  # the files a kill -9 leaves
        message = await asyncio.wait_for(sent, 10)
        await a.stop()
        a = None

        again = await start(tmp_path / "crashed", ka)
        mine = [m for m in again.history("bob") if m.direction == "out"]
        assert [(m.body, m.id) for m in mine] == [("warm", mine[0].id), (message.body, message.id)]
        await Recorder(again).until(lambda r: len(r.states("delivered")) == 1)
        assert [m.state for m in again.history("bob")] == ["delivered", "delivered"]
        assert [m.body for m in rb.received()] == ["warm", "typed just before the crash"]
        assert [m.body for m in b.history("alice")] == ["warm", "typed just before the crash"]
        assert b.stats()["dupes"] == 1  # the resend, taken as the same message
    finally:
        for node in (a, again, b):
            if node is not None:
                await node.stop()


@pytest.mark.asyncio
async def test_while_the_sending_log_fails_new_messages_wait_for_their_commit(rsa_keys, tmp_path):
    """Nothing goes out ahead of its commit unless it is in the sending log: with the log
    refusing writes, a new message is held until its row is committed, then delivered."""
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        await a.send("bob", "warm")
        await ra.until(lambda r: len(r.states("delivered")) == 1)
        log = a.store.sending
        fd, log._fd = log._fd, os.open(os.devnull, os.O_RDONLY)  # writes fail (EBADF)
        bob = bytes.fromhex(b.fingerprint)
        async with writer_held(a):
            sent = a.submit(bob, "held for its commit")
            assert a.delivery.queued_for(bob) == 0  # not listed: nothing on the link
        await asyncio.wait_for(sent, 10)
        await ra.until(lambda r: len(r.states("delivered")) == 2)
        os.close(log._fd)
        log._fd = fd  # the log writes again: the next message goes out at once
        async with writer_held(a):
            sent = a.submit(bob, "ahead of its commit")
            assert a.delivery.queued_for(bob) == 1  # on the link before its commit
            await rb.until(lambda r: len(r.received()) == 3)
        await asyncio.wait_for(sent, 10)
        await ra.until(lambda r: len(r.states("delivered")) == 3)
        assert [m.body for m in b.history("alice")] == [
            "warm", "held for its commit", "ahead of its commit"
        ]  # fmt: skip


def test_held_back_are_only_the_messages_neither_committed_nor_logged():
    """When the log refuses, what was committed or logged before still goes, and stays
    listed (else its commit would list it a second time); the rest waits, unlisted."""

    def out(rowid, durable=False, logged=False):
        o = Out(rowid, b"p" * 32, os.urandom(16), f"m{rowid}", 1, durable)
        o.listed, o.logged = True, logged
        return o

    committed, logged, fresh = out(1, durable=True), out(2, logged=True), out(3)
    later_committed, later_fresh = out(4, durable=True), out(5)
    queue = deque([later_fresh, later_committed])
    assert hold_back(queue, [committed, logged, fresh]) == [committed, logged]
    assert list(queue) == [later_committed]
    assert [o.listed for o in (committed, logged, fresh, later_committed, later_fresh)] == [
        True, True, False, True, False
    ]  # fmt: skip
