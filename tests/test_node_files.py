"""File transfer between real nodes on loopback: offers, pulls, checks, resumption,
and what a hostile contact's file messages get."""

import asyncio
import hashlib
import os

import pytest
from support.nodes import FAST, Recorder, alice_and_bob, introduce, small_key, start
from support.waiting import eventually

from enclave.errors import UserError
from enclave.node.events import FileChanged
from enclave.node.settings import Settings
from enclave.protocol import files as files_protocol

pytestmark = pytest.mark.asyncio
MiB = 1 << 20
TAKE_ALL = Settings(file_auto_accept_bytes=1 << 40, file_disk_margin_bytes=0)


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            h.update(block)
    return h.hexdigest()


def files(rec: Recorder, *states: str) -> list[FileChanged]:
    return [
        e for e in rec.events if isinstance(e, FileChanged) and (not states or e.state in states)
    ]


def settled(rec: Recorder) -> list[FileChanged]:
    return files(rec, "delivered", "failed", "cancelled")


def make(path, size: int):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n
    return path


async def transfer(a, b, src):
    ra, rb = Recorder(a), Recorder(b)
    sent = await a.send_file("bob", str(src))
    await rb.until(settled, what="bob's side settled")
    await ra.until(settled, what="alice's side settled")
    return sent, settled(ra)[0], settled(rb)[0]


async def test_a_file_arrives_whole_under_its_own_name(tmp_path, rsa_keys):
    src = make(tmp_path / "photo.bin", 3 * MiB + 123)
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        sent, mine, theirs = await transfer(a, b, src)
        assert sent.state == "offered" and sent.size == src.stat().st_size
        assert (mine.state, theirs.state) == ("delivered", "delivered")
        assert os.path.basename(theirs.path) == "photo.bin"
        assert sha256(theirs.path) == sha256(src)
        assert not os.path.exists(theirs.path + ".part")
        assert os.path.dirname(theirs.path) == str(tmp_path / "b" / "downloads")
        history = b.history("alice")
        assert history[-1].file is not None and history[-1].file.state == "delivered"


async def test_the_second_file_of_a_name_gets_a_number_and_empty_files_work(tmp_path, rsa_keys):
    src = make(tmp_path / "notes.txt", 1000)
    empty = make(tmp_path / "empty.dat", 0)
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        whole_a, whole_b = Recorder(a), Recorder(b)
        _, _, first = await transfer(a, b, src)
        _, _, second = await transfer(a, b, src)
        _, _, nothing = await transfer(a, b, empty)
    # Each side told each end once, however its progress and state moves interleaved.
    for rec in (whole_a, whole_b):
        ends = [e.key for e in settled(rec)]
        assert len(ends) == 3 == len(set(ends))
    assert os.path.basename(first.path) == "notes.txt"
    assert os.path.basename(second.path) == "notes (1).txt"
    assert sha256(second.path) == sha256(src)
    assert nothing.state == "delivered" and os.path.getsize(nothing.path) == 0


async def test_a_large_offer_waits_for_the_user_then_accept_or_decline(tmp_path, rsa_keys):
    small_limit = Settings(file_auto_accept_bytes=MiB)
    big = make(tmp_path / "big.iso", 2 * MiB)
    async with alice_and_bob(tmp_path, rsa_keys, bob_settings=small_limit) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        await a.send_file("bob", str(big))
        await rb.until(lambda r: [e for e in files(r) if e.waiting], what="a waiting offer")
        folder = tmp_path / "b" / "downloads"
        assert not folder.exists() or not os.listdir(folder)  # nothing written before yes
        await b.accept_file()
        await rb.until(settled, what="delivered after accept")
        assert sha256(settled(rb)[0].path) == sha256(big)
        await a.send_file("bob", str(big))
        await rb.until(lambda r: len([e for e in files(r) if e.waiting]) >= 2, what="second offer")
        await b.decline_file()
        await ra.until(lambda r: len(settled(r)) >= 2, what="alice hears the decline")
        assert settled(ra)[-1].state == "cancelled" and "declined" in settled(ra)[-1].reason
        with pytest.raises(UserError, match="no file waits"):
            await b.accept_file()


async def test_chunks_asked_on_a_session_that_closes_are_asked_again_on_another(tmp_path, rsa_keys):
    """Two sessions to one contact (both dialled at once, or a pool of them): the one
    carrying the receiver's requests closes while the other stays up. The receiver asks
    again on the one left, not only when some new session comes up."""
    src = make(tmp_path / "clip.bin", 24 * MiB)
    asks = Settings(file_auto_accept_bytes=0)
    async with alice_and_bob(tmp_path, rsa_keys, bob_settings=asks) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        await a.send_file("bob", str(src))
        await rb.until(lambda r: [e for e in files(r) if e.waiting], what="a waiting offer")
        alice = bytes.fromhex(a.fingerprint)
        s = b.sessions
        assert await s.dialer._dial_at(alice, s.policy.keys[alice], f"127.0.0.1:{a.address[1]}")
        assert s.pool.count(alice) >= 2
        await b.accept_file()
        (incoming,) = b.files.recv.inc.values()
        (asked_on,) = set(incoming.requested.values())
        s.links[asked_on].close("test")
        await rb.until(settled, what="bob's side settled")
        assert settled(rb)[0].state == "delivered"
        assert sha256(settled(rb)[0].path) == sha256(src)
        await ra.until(settled, what="alice's side settled")


async def test_a_chunk_being_read_when_its_session_closes_still_leaves(tmp_path, rsa_keys):
    """The sender is reading a chunk for a session that closes; the receiver asks for it
    again on another session before the read is done. The chunk must leave on that one
    (it was once dropped there as "already queued" and then as "its session went")."""
    import threading

    src = make(tmp_path / "slow.bin", 6 * MiB)
    async with alice_and_bob(tmp_path, rsa_keys, bob_settings=TAKE_ALL) as (a, b):
        alice_fp, bob_fp = bytes.fromhex(a.fingerprint), bytes.fromhex(b.fingerprint)
        s = b.sessions
        if s.pool.count(alice_fp) < 2:
            addr = f"127.0.0.1:{a.address[1]}"
            assert await s.dialer._dial_at(alice_fp, s.policy.keys[alice_fp], addr)
        held, reading = threading.Event(), threading.Event()
        reader = a.files.reader
        original = reader.pieces

        def pieces(*args):
            if args[4] == 2:  # chunk 2 (path, size, mtime, offer, index...) waits
                reading.set()
                held.wait(30)
            return original(*args)

        reader.pieces = pieces
        rb = Recorder(b)
        await a.send_file("bob", str(src))
        await eventually(reading.is_set, what="chunk 2 being read")
        (o,) = a.files.send.out.values()
        o.link.close("test")  # the session chunk 2 is read for goes
        (incoming,) = b.files.recv.inc.values()
        await eventually(
            lambda: 2 in incoming.requested and incoming.requested[2] in s.links,
            what="bob asks for chunk 2 again on the session left",
        )
        await eventually(lambda: o.link is not None and o.link.id in a.sessions.links,
                         what="alice serves the transfer on that session")  # fmt: skip
        held.set()
        await rb.until(settled, what="bob's side settled")
        assert settled(rb)[0].state == "delivered"
        assert sha256(settled(rb)[0].path) == sha256(src)
        assert a.sessions.pool.count(bob_fp) >= 1


async def test_cancel_by_the_receiver_removes_the_part(tmp_path, rsa_keys):
    src = make(tmp_path / "video.mp4", 48 * MiB)
    async with alice_and_bob(tmp_path, rsa_keys, bob_settings=TAKE_ALL) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        await a.send_file("bob", str(src))
        await rb.until(lambda r: files(r, "accepted"), what="accepted")
        gone = await b.cancel_file(files(rb, "accepted")[0].key)
        assert gone.state == "cancelled"
        await ra.until(settled, what="alice hears the cancel")
        assert settled(ra)[0].state == "cancelled"
        folder = tmp_path / "b" / "downloads"
        await asyncio.get_running_loop().run_in_executor(b.files.write_pool, lambda: None)
        assert [p for p in os.listdir(folder) if p.endswith(".part")] == []


async def test_a_receiver_restart_moves_only_the_missing_chunks(tmp_path, rsa_keys):
    size = 64 * MiB
    src = make(tmp_path / "disk.img", size)
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a = await start(tmp_path / "a", ka)
    b = await start(tmp_path / "b", kb, TAKE_ALL)
    try:
        introduce(a, b, ka, kb)
        ra, rb = Recorder(a), Recorder(b)
        await a.send_file("bob", str(src))
        await rb.until(lambda r: files(r, "transferring"), what="chunks recorded")
        await b.stop()
        b = await start(tmp_path / "b", kb, TAKE_ALL)
        key = files(rb, "transferring")[0].key
        held = 64 - len(b.store.missing_chunks(key))
        assert 0 < held < 64, held
        rb = Recorder(b)
        await rb.until(settled, timeout=60, what="delivered after the restart")
        done = settled(rb)[0]
        assert done.state == "delivered" and sha256(done.path) == sha256(src)
        moved = b.stats()["file_bytes_received"]
        assert moved <= (64 - held) * MiB + 2 * MiB, (moved, held)
        await ra.until(settled, what="alice hears done")
        assert settled(ra)[0].state == "delivered"
    finally:
        await a.stop()
        await b.stop()


async def test_a_file_changed_after_its_offer_fails_with_a_reason(tmp_path, rsa_keys):
    src = make(tmp_path / "draft.txt", 3 * MiB)
    async with alice_and_bob(
        tmp_path, rsa_keys, bob_settings=Settings(file_auto_accept_bytes=0)
    ) as (a, b):
        ra, rb = Recorder(a), Recorder(b)
        await a.send_file("bob", str(src))
        await rb.until(lambda r: [e for e in files(r) if e.waiting], what="offer waits")
        with open(src, "r+b") as f:
            f.seek(MiB)
            f.write(b"edited")
        await b.accept_file()
        await ra.until(settled, what="alice's side fails")
        assert settled(ra)[0].state == "failed" and "changed" in settled(ra)[0].reason
        await rb.until(settled, what="bob's side fails")
        assert settled(rb)[0].state in ("failed", "cancelled")
        await asyncio.get_running_loop().run_in_executor(b.files.write_pool, lambda: None)
        assert [p for p in os.listdir(tmp_path / "b" / "downloads") if p.endswith(".part")] == []


async def test_files_need_a_v2_contact_and_a_regular_file(tmp_path, rsa_keys):
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        with pytest.raises(UserError, match="no such file"):
            await a.send_file("bob", str(tmp_path / "nope"))
        with pytest.raises(UserError, match="is a folder"):
            await a.send_file("bob", str(tmp_path))
        a.set_protocol("bob", "v1", force=True)
        src = make(tmp_path / "x.txt", 10)
        with pytest.raises(UserError, match=r"original protocol \(v1\)"):
            await a.send_file("bob", str(src))


async def test_a_file_to_an_offline_contact_leaves_when_it_comes_online(tmp_path, rsa_keys):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    src = make(tmp_path / "later.bin", 2 * MiB)
    a = await start(tmp_path / "a", ka)
    b = await start(tmp_path / "b", kb)
    introduce(a, b, ka, kb)
    port = b.address[1]
    await b.stop()
    try:
        ra = Recorder(a)
        sent = await a.send_file("bob", str(src))
        assert sent.state == "offered"
        b = await _start_at(tmp_path / "b", kb, port)
        rb = Recorder(b)
        await rb.until(settled, timeout=30, what="delivered once bob is back")
        assert sha256(settled(rb)[0].path) == sha256(src)
        await ra.until(settled, what="alice hears done")
    finally:
        await a.stop()
        await b.stop()


async def _start_at(home, key, port):
    from enclave.node import Node

    node = Node(home, key, FAST)
    await node.start("127.0.0.1", port)
    return node


async def test_one_file_to_ten_contacts_is_read_once_per_chunk(tmp_path, rsa_keys):
    """The reader keeps a chunk until the slowest recipient has taken it: with the whole
    spread inside the cache (24 chunks, 10 x WINDOW_CHUNKS kept) no chunk is read twice,
    however the recipients' pace differs (no timing luck: nothing is evicted early)."""
    src = make(tmp_path / "slides.pdf", 24 * MiB)
    names = [f"peer{i}" for i in range(10)]
    a = await start(tmp_path / "a", rsa_keys["alice"])
    keys = [small_key() for _ in names]
    others = [await start(tmp_path / n, k, TAKE_ALL) for n, k in zip(names, keys, strict=True)]
    try:
        for n, node, key in zip(names, others, keys, strict=True):
            introduce(a, node, rsa_keys["alice"], key, names=("alice", n))
        recorders = [Recorder(node) for node in others]
        sent = await a.send_file_to_many(names, str(src))
        assert len(sent) == 10 and len({f.key for f in sent}) == 10
        for r in recorders:
            await r.until(settled, timeout=60, what="each copy settled")
            assert settled(r)[0].state == "delivered" and sha256(settled(r)[0].path) == sha256(src)
        reads = a.stats()["file_chunk_reads"]
        assert 24 <= reads <= 24 * 1.1, reads  # once per chunk, not once per recipient
        assert a.files.reader.peak <= 24 * MiB
    finally:
        await a.stop()
        for node in others:
            await node.stop()


async def test_a_stopped_recipient_holds_up_nobody_and_pins_a_bounded_cache(tmp_path, rsa_keys):
    """Mallory's node stops as her copy starts: the others' copies go on to the end, the
    cache never holds more than a window per recipient of the file (3 x 8 chunks) while
    her place is kept, and nothing once the others are done and she is away."""
    src = make(tmp_path / "talk.mkv", 48 * MiB)
    names = ("bob", "carol", "mallory")
    a = await start(tmp_path / "a", rsa_keys["alice"])
    others = [await start(tmp_path / n, rsa_keys[n], TAKE_ALL) for n in names]
    try:
        for n, node in zip(names, others, strict=True):
            introduce(a, node, rsa_keys["alice"], rsa_keys[n], names=("alice", n))
        ra, recorders = Recorder(a), [Recorder(node) for node in others]
        await a.send_file_to_many(list(names), str(src))
        await recorders[2].until(files, what="mallory's copy starts")
        await others[2].stop()
        for r in recorders[:2]:
            await r.until(settled, timeout=60, what="bob's and carol's copies settled")
            assert settled(r)[0].state == "delivered" and sha256(settled(r)[0].path) == sha256(src)
        await ra.until(lambda r: len(files(r, "delivered")) == 2, what="alice hears both")
        assert a.files.reader.peak <= 3 * files_protocol.WINDOW_CHUNKS * MiB, a.files.reader.peak
        (hers,) = a.files.send.out.values()
        await eventually(lambda: hers.away, what="alice sees mallory's session go")
        await asyncio.get_running_loop().run_in_executor(a.files.read_pool, lambda: None)
        assert a.files.reader.held == 0 and a.files.reader.cached_chunks == 0
    finally:
        await a.stop()
        for node in others:
            await node.stop()  # mallory's again: a no-op


async def test_a_file_renamed_just_before_a_crash_is_recorded_at_the_next_start(tmp_path, rsa_keys):
    """Every chunk recorded, the .part already renamed, the crash before the store said
    delivered: the next start checks the named file against the offer and records it."""
    from enclave.node.files import to_store
    from enclave.protocol import files as wire_files
    from enclave.store import Store

    data = os.urandom(2 * MiB + 9)
    offer = wire_files.make_offer(os.urandom(16), "done.bin", data)
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        alice_fp = a.fingerprint
    folder = tmp_path / "b" / "downloads"
    folder.mkdir(exist_ok=True)
    (folder / "done.bin").write_bytes(data)
    with Store.open(tmp_path / "b" / "enclave.db") as store:
        t, _ = store.create_incoming(alice_fp, to_store(offer, "done.bin"), 1, 1, 16)
        store.accept_transfer(t.key, str(folder / "done.bin.part"), 2)
        store.mark_chunks({t.key: range(3)})
    b = await start(tmp_path / "b", rsa_keys["bob"])
    try:
        done = await eventually(lambda: b.file(t.key).state == "delivered" and b.file(t.key),
                                what="recorded as delivered")  # fmt: skip
        assert done.path == str(folder / "done.bin")
        assert os.listdir(folder) == ["done.bin"]
    finally:
        await b.stop()


async def test_an_offer_cancelled_by_its_sender_stops_waiting_on_the_receiver(tmp_path, rsa_keys):
    src = make(tmp_path / "maybe.zip", 2 * MiB)
    asks = Settings(file_auto_accept_bytes=0)
    async with alice_and_bob(tmp_path, rsa_keys, bob_settings=asks) as (a, b):
        rb = Recorder(b)
        sent = await a.send_file("bob", str(src))
        await rb.until(lambda r: [e for e in files(r) if e.waiting], what="offer waits")
        await a.cancel_file(sent.key)
        await rb.until(settled, what="bob hears the cancel")
        assert settled(rb)[0].state == "cancelled" and "sender" in settled(rb)[0].reason
        assert b.files_of("alice") == []  # nothing open any more


async def test_a_compressible_file_moves_fewer_bytes_and_arrives_exact(tmp_path, rsa_keys):
    text = b"".join(
        b"line %d of a log that repeats itself a lot\n" % (k % 500) for k in range(200_000)
    )
    src = tmp_path / "server.log"
    src.write_bytes(text)
    random = make(tmp_path / "noise.bin", len(text))
    async with alice_and_bob(tmp_path, rsa_keys) as (a, b):
        _, _, landed = await transfer(a, b, src)
        assert sha256(landed.path) == sha256(src)
        packed = b.stats()["file_piece_bytes_received"]
        assert packed * 10 <= len(text) * 9, (packed, len(text))  # saved at least 10%
        _, _, plain = await transfer(a, b, random)
        assert sha256(plain.path) == sha256(random)
        assert b.stats()["file_piece_bytes_received"] - packed == len(text)  # sent as it is
