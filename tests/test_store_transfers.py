"""File transfers in the store (schema 5): offers and their history rows, states,
chunks done across restarts, quotas and bounds, and the migration from schema 4."""

import dataclasses
import hashlib
import sqlite3
from contextlib import closing

import pytest

from enclave.store import FileOffer, OfferRefused, SourceFile, Store, migrations
from enclave.store.checks import MAX_CHUNKS, MAX_FILE_SIZE
from enclave.store.migrations import SCHEMA_VERSION, migrate

A = "a1" * 32
B = "b2" * 32
MiB = 1 << 20


def pem(tag: str) -> str:
    body = hashlib.sha256(tag.encode()).hexdigest()
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def offer(n: int = 1, size: int = 10 * MiB, chunk: int = MiB, name: str = "movie.mkv") -> FileOffer:
    chunks = -(-size // chunk)
    digests = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(chunks))
    return FileOffer(n.to_bytes(16, "big"), name, size, chunk, "sha256", b"w" * 32, digests)


SOURCE = SourceFile("/home/me/movie.mkv", 10 * MiB, 1_700_000_000_123_456_789)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "enclave.db"


KEY = bytes(range(32))  # the store key of the sealed runs


def key_of(store) -> bytes | None:
    """The key to open the fixture's file again with."""
    return KEY if store.sealed else None


@pytest.fixture(params=["clear", "sealed"])
def store(db_path, request):
    """The same tests run on a store in clear and on one that seals (store/sealing.py)."""
    with Store.open(db_path, key=KEY if request.param == "sealed" else None) as s:
        for fp, name in ((A, "alice"), (B, "bob")):
            s.upsert_peer(fp, pem(fp), "127.0.0.1:7000", name, 1000.0)
        yield s


def incoming(store, n=1, peer=A, max_open=16, **kw):
    transfer, new = store.create_incoming(peer, offer(n, **kw), 500, 1000, max_open)
    assert new
    return transfer


def raw_count(path, table) -> int:
    with closing(sqlite3.connect(path)) as raw:
        return raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -- creating ---------------------------------------------------------------------------------


def test_outgoing_file_is_a_history_row_and_not_a_chat_in_the_outbox(store):
    t = store.create_outgoing(A, offer(), SOURCE, now_ms=1000)
    assert (t.peer, t.direction, t.state, t.done, t.percent) == (A, "out", "offered", 0, 0)
    assert t.source == SOURCE and t.part_path is None and t.offer == offer()
    [row] = store.history(A)
    assert (row.rowid, row.direction, row.body, row.state) == (
        t.message,
        "out",
        "movie.mkv",
        "sent",
    )
    assert row.file is not None
    assert (row.file.key, row.file.name, row.file.size) == (t.key, "movie.mkv", 10 * MiB)
    assert (row.file.state, row.file.percent) == ("offered", 0)
    assert store.outbox_for(A) == [] and store.outbox_peers() == []  # never sent as a chat
    assert [x.key for x in store.open_transfers(A, "out")] == [t.key]


def test_chat_rows_have_no_file(store):
    store.enqueue_outgoing([(A, b"m" * 16, "hello", 5)])
    incoming(store)
    chat, file = store.history(A)
    assert chat.file is None and file.file is not None and file.file.state == "offered"


def test_incoming_offer_again_is_the_same_transfer(store):
    first = incoming(store)
    again, new = store.create_incoming(A, offer(), 600, 2000, 16)
    assert not new and again == first
    assert len(store.history(A)) == 1
    # Ids are the sender's: another peer may use the same one.
    other, new = store.create_incoming(B, offer(), 600, 2000, 16)
    assert new and other.key != first.key
    # And our own outgoing transfer with that id is another transfer.
    mine = store.create_outgoing(A, offer(), SOURCE, 3000)
    assert mine.key not in (first.key, other.key)
    assert store.find_transfer(A, "in", offer().id) == first
    assert store.find_transfer(A, "out", offer().id) == mine
    assert store.find_transfer(B, "out", offer().id) is None


def test_incoming_row_keeps_the_senders_time(store):
    t = incoming(store)
    [row] = store.history(A)
    assert (row.direction, row.state, row.created_ms, row.stored_ms) == (
        "in",
        "received",
        500,
        1000,
    )
    assert row.rowid == t.message and row.id == t.offer.id


def test_unknown_peer_writes_nothing(store, db_path):
    with pytest.raises(sqlite3.IntegrityError):
        store.create_outgoing("e5" * 32, offer(), SOURCE, 1)
    assert raw_count(db_path, "transfers") == raw_count(db_path, "messages") == 0


def test_search_finds_a_file_by_name(store):
    incoming(store, name="holiday photos.zip")
    [found] = store.search_messages("photos")
    assert found.file is not None and found.file.name == "holiday photos.zip"


# -- quotas and bounds ----------------------------------------------------------------------


def test_pending_offers_beyond_the_quota_are_refused(store, db_path):
    for n in range(3):
        incoming(store, n, max_open=3)
    assert store.open_offers(A) == 3
    with pytest.raises(OfferRefused, match="too many pending offers") as info:
        store.create_incoming(A, offer(9), 1, 1, 3)
    assert "at most 3" in info.value.reason
    assert raw_count(db_path, "transfers") == 3 and len(store.history(A)) == 3
    assert store.open_offers(B) == 0 and incoming(store, 9, peer=B, max_open=3)
    # A settled transfer frees its place; outgoing ones never count.
    store.create_outgoing(A, offer(20), SOURCE, 1)
    assert store.cancel_transfer(store.find_transfer(A, "in", offer(0).id).key, 2)
    assert store.open_offers(A) == 2
    assert incoming(store, 10, max_open=3)
    assert store.open_offers("e5" * 32) == 0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"size": MAX_FILE_SIZE + 1}, "bytes"),
        ({"size": -1}, "bytes"),
        ({"chunk_size": 0}, "chunks of"),
        ({"chunk_size": 1 << 30}, "chunks of"),
        ({"id": b"short"}, "16 bytes"),
        ({"name": ""}, "1 to 255"),
        ({"name": "x" * 256}, "1 to 255"),
        ({"name": "../etc/passwd"}, "no folder"),
        ({"name": "a\\b"}, "no folder"),
        ({"name": ".."}, "no folder"),
        ({"name": "nul\x00"}, "no folder"),
        ({"algorithm": ""}, "short name"),
        ({"algorithm": "SHA 256; DROP"}, "short name"),
        ({"digest": b"x" * 8}, "16 to 64"),
        ({"chunk_digests": b"x" * 31}, "one digest per chunk"),
    ],
)
def test_absurd_offers_are_refused_and_store_nothing(store, db_path, change, words):
    bad = dataclasses.replace(offer(), **change)
    with pytest.raises(OfferRefused, match=words):
        store.create_incoming(A, bad, 1, 1, 16)
    with pytest.raises(OfferRefused):
        store.create_outgoing(A, bad, SOURCE, 1)
    assert raw_count(db_path, "transfers") == raw_count(db_path, "messages") == 0


def test_too_many_chunks_is_refused(store):
    size = (MAX_CHUNKS + 1) * 1024
    huge = FileOffer(b"h" * 16, "many.bin", size, 1024, "sha256", b"w" * 32, b"")
    with pytest.raises(OfferRefused, match="chunks"):
        store.create_incoming(A, huge, 1, 1, 16)


def test_largest_file_and_empty_file_are_accepted(store):
    chunk = 1 << 24
    chunks = MAX_FILE_SIZE // chunk
    big = FileOffer(
        b"b" * 16, "disk.img", MAX_FILE_SIZE, chunk, "sha256", b"w" * 32, bytes(32 * chunks)
    )
    t, _ = store.create_incoming(A, big, 1, 1, 16)
    assert t.offer.chunks == MAX_CHUNKS and len(store.missing_chunks(t.key)) == MAX_CHUNKS
    empty = FileOffer(b"e" * 16, "empty.txt", 0, 1024, "sha256", b"w" * 32, b"")
    e, _ = store.create_incoming(A, empty, 1, 1, 16)
    assert e.offer.chunks == 0 and store.missing_chunks(e.key) == [] and e.percent == 0
    assert store.accept_transfer(e.key, "/d/empty.txt.part", 2)
    assert store.set_transfer_state(e.key, "delivered", 3, final_path="/d/empty.txt")
    assert store.get_transfer(e.key).percent == 100


def test_programming_errors(store):
    with pytest.raises(TypeError):
        store.create_outgoing(A, dataclasses.replace(offer(), size=1.5), SOURCE, 1)
    with pytest.raises(TypeError):
        store.create_outgoing(A, dataclasses.replace(offer(), compress=1), SOURCE, 1)
    with pytest.raises(TypeError):
        store.create_outgoing(A, offer(), ("/x", 1, 2), 1)
    with pytest.raises(TypeError):
        store.create_outgoing(A, offer(), SOURCE, 1.0)
    with pytest.raises(ValueError, match="max_open"):
        store.create_incoming(A, offer(), 1, 1, -1)


# -- chunks ---------------------------------------------------------------------------------


def test_chunks_are_marked_in_batches_and_missing_ones_listed(store):
    t = incoming(store)
    u = incoming(store, 2, size=3 * MiB)
    assert store.missing_chunks(t.key) == list(range(10))
    assert store.mark_chunks({t.key: [0, 1, 2, 7], u.key: [2]}) == {t.key: 4, u.key: 1}
    assert store.mark_chunks({t.key: [2, 7, 9, 9]}) == {t.key: 5}  # again: counted once
    assert store.missing_chunks(t.key) == [3, 4, 5, 6, 8]
    assert store.missing_chunks(u.key) == [0, 1]
    assert store.get_transfer(t.key).done == 5 and store.get_transfer(t.key).percent == 50
    [row, _] = store.history(A)
    assert row.file.percent == 50
    assert store.missing_chunks(999) == [] and store.mark_chunks({999: [0]}) == {}


def test_an_index_outside_the_file_writes_nothing_of_the_batch(store):
    t = incoming(store)
    u = incoming(store, 2)
    for bad in (10, -1, "3", 2.0, True):
        with pytest.raises(ValueError):
            store.mark_chunks({u.key: [0], t.key: [1, bad]})
    assert store.missing_chunks(t.key) == list(range(10))
    assert store.missing_chunks(u.key) == list(range(10))


def test_chunks_done_survive_a_restart(db_path, store):
    t = incoming(store)
    store.accept_transfer(t.key, "/dl/movie.mkv.part", 1100)
    store.set_transfer_state(t.key, "transferring", 1200)
    store.mark_chunks({t.key: range(0, 10, 2)})
    store.close()
    with Store.open(db_path) as again:
        back = again.get_transfer(t.key)
        assert (back.state, back.part_path, back.done) == ("transferring", "/dl/movie.mkv.part", 5)
        assert again.missing_chunks(t.key) == [1, 3, 5, 7, 9]
        assert [x.key for x in again.open_transfers(A, "in")] == [t.key]
        assert again.mark_chunks({t.key: [1, 3, 5, 7, 9]}) == {t.key: 10}
        assert again.set_transfer_state(t.key, "delivered", 1300, final_path="/dl/movie.mkv")
        assert again.get_transfer(t.key).final_path == "/dl/movie.mkv"


def test_a_gib_in_mib_chunks_keeps_a_128_byte_bitmap(store, db_path):
    t = incoming(store, size=1 << 30)
    assert t.offer.chunks == 1024
    store.mark_chunks({t.key: range(1024)})
    with closing(sqlite3.connect(db_path)) as raw:
        bitmap, done = raw.execute("SELECT bitmap, done FROM transfer_chunks").fetchone()
    assert (len(bitmap), done) == (128, 1024) and bitmap == b"\xff" * 128
    assert store.missing_chunks(t.key) == []


def test_a_settled_transfer_takes_no_chunks(store):
    t = incoming(store)
    store.cancel_transfer(t.key, 5)
    assert store.mark_chunks({t.key: [0]}) == {}
    assert store.missing_chunks(t.key) == list(range(10))


# -- states ---------------------------------------------------------------------------------


def test_the_state_moves_and_nothing_else(store):
    t = store.create_outgoing(A, offer(), SOURCE, 1)
    assert not store.set_transfer_state(t.key, "transferring", 2)  # not accepted yet
    assert not store.set_transfer_state(t.key, "delivered", 2)
    assert not store.set_transfer_state(t.key, "offered", 2)
    assert store.set_transfer_state(t.key, "accepted", 3)
    assert store.set_transfer_state(t.key, "transferring", 4)
    assert not store.set_transfer_state(t.key, "accepted", 5)
    assert store.set_transfer_state(t.key, "delivered", 6)
    for late in ("failed", "cancelled", "transferring", "delivered"):
        assert not store.set_transfer_state(t.key, late, 7, reason="late")
    assert store.cancel_transfer(t.key, 8) is None
    done = store.get_transfer(t.key)
    assert (done.state, done.updated_ms, done.created_ms) == ("delivered", 6, 1)
    [row] = store.history(A)
    assert (row.state, row.delivered_ms, row.file.state) == ("delivered", 6, "delivered")
    assert store.open_transfers() == []
    assert not store.set_transfer_state(999, "accepted", 1)


def test_failed_keeps_its_reason_and_needs_one(store):
    t = store.create_outgoing(A, offer(), SOURCE, 1)
    with pytest.raises(ValueError, match="reason"):
        store.set_transfer_state(t.key, "failed", 2)
    with pytest.raises(ValueError, match="state must be"):
        store.set_transfer_state(t.key, "paused", 2)
    with pytest.raises(ValueError, match="final path"):
        store.set_transfer_state(t.key, "failed", 2, reason="x", final_path="/y")
    assert store.set_transfer_state(t.key, "failed", 3, reason="the file changed: size")
    failed = store.get_transfer(t.key)
    assert (failed.state, failed.reason) == ("failed", "the file changed: size")
    [row] = store.history(A)
    assert (row.file.state, row.file.reason) == ("failed", "the file changed: size")
    assert row.state == "sent"  # never 'failed': /retry must not resend a file as a chat
    assert store.failed_messages(A) == []


def test_cancel_from_any_open_state_returns_the_part_to_clean(store):
    offered = incoming(store, 1)
    accepted = incoming(store, 2)
    moving = incoming(store, 3)
    for t in (accepted, moving):
        assert store.accept_transfer(t.key, f"/dl/{t.key}.part", 2)
    assert not store.accept_transfer(accepted.key, "/elsewhere", 2)  # only once
    store.set_transfer_state(moving.key, "transferring", 3)
    assert store.cancel_transfer(offered.key, 4, "cancelled by alice").part_path is None
    gone = store.cancel_transfer(moving.key, 4)
    assert (gone.state, gone.part_path, gone.reason) == (
        "cancelled",
        f"/dl/{moving.key}.part",
        None,
    )
    assert store.cancel_transfer(accepted.key, 4).part_path == f"/dl/{accepted.key}.part"
    assert store.cancel_transfer(moving.key, 5) is None  # once
    with pytest.raises(TypeError):
        store.accept_transfer(offered.key, b"/x", 1)


def test_open_transfers_by_peer_and_direction(store):
    a_in = incoming(store, 1)
    b_in = incoming(store, 2, peer=B)
    a_out = store.create_outgoing(A, offer(3), SOURCE, 1)
    store.cancel_transfer(incoming(store, 4).key, 2)
    assert [t.key for t in store.open_transfers()] == [a_in.key, b_in.key, a_out.key]
    assert [t.key for t in store.open_transfers(A)] == [a_in.key, a_out.key]
    assert [t.key for t in store.open_transfers(A, "out")] == [a_out.key]
    assert [t.key for t in store.open_transfers(direction="in")] == [a_in.key, b_in.key]


# -- removal --------------------------------------------------------------------------------


def test_removing_a_peer_takes_its_transfers_and_chunks(store, db_path):
    t = incoming(store)
    store.mark_chunks({t.key: [0]})
    store.create_outgoing(A, offer(2), SOURCE, 1)
    kept = incoming(store, 3, peer=B)
    assert store.remove_peer(A)
    assert store.get_transfer(t.key) is None and store.open_transfers(A) == []
    assert [x.key for x in store.open_transfers()] == [kept.key]
    assert raw_count(db_path, "transfers") == raw_count(db_path, "transfer_chunks") == 1
    with closing(sqlite3.connect(db_path)) as raw:
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []


def test_deleted_history_hides_file_rows(store):
    t = incoming(store)
    store.delete_history(A)
    assert store.history(A) == []
    assert store.get_transfer(t.key) is not None  # the node decides what to do with it


# -- migration ------------------------------------------------------------------------------


def test_version_4_store_with_data_migrates_to_transfers(db_path):
    """A schema-4 file with peers, history and a queue keeps all of it; its messages
    are chats (no file), and transfers can be made at once."""
    db = sqlite3.connect(db_path, isolation_level=None)
    migrate(db, migrations.MIGRATIONS[:4])
    db.execute(
        "INSERT INTO peers (fingerprint, name, public_key, address, learned_address, added_at)"
        " VALUES (?, 'alice', ?, '10.0.0.1:7000', '10.0.0.9:7000', 1.0)",
        (A, pem(A)),
    )
    rows = [  # rowid, direction, body, state, owed
        (1, "in", "hello", "received", None),
        (2, "out", "delivered one", "delivered", None),
        (3, "out", "still owed", "queued", 3),
        (4, "in", None, "deleted", None),
    ]
    for rowid, direction, body, state, owed in rows:
        db.execute(
            "INSERT INTO messages (rowid, peer, direction, id, body, created_ms, stored_ms,"
            " state, owed) VALUES (?, 1, ?, ?, ?, 10, 20, ?, ?)",
            (rowid, direction, rowid.to_bytes(16, "big"), body, state, owed),
        )
    db.close()
    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION == 14
        assert [(m.rowid, m.body, m.state, m.file) for m in s.history(A)] == [
            (1, "hello", "received", None),
            (2, "delivered one", "delivered", None),
            (3, "still owed", "queued", None),
        ]
        assert [o.rowid for o in s.outbox_for(A)] == [3]
        assert s.get_peer(A).dial_addresses == ["10.0.0.9:7000", "10.0.0.1:7000"]
        t = s.create_outgoing(A, offer(), SOURCE, 30)
        assert t.message > 4  # new rows continue after the old rowids
        assert s.history(A)[-1].file.name == "movie.mkv"
    with closing(sqlite3.connect(db_path)) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_schema")}
        assert {"transfers", "transfer_chunks", "transfers_open"} <= tables
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
