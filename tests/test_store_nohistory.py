"""History off per conversation in the store (schema 11): what a contact sends is kept
only as a tombstone from the start, what we send is erased as it settles, and nothing
of either text is left in the files."""

import sqlite3
from contextlib import closing

from enclave.store import Store, migrations
from enclave.store.migrations import SCHEMA_VERSION, migrate
from tests.test_store import A, B, incoming, mid, pem

SECRET = "the-marker-word-zebracorn"


def _open(path) -> Store:
    s = Store.open(path)
    s.upsert_peer(A, pem(A), "127.0.0.1:7000", "alice", 1.0)
    s.upsert_peer(B, pem(B), "127.0.0.1:7001", "bob", 1.0)
    return s


def _rows(s: Store, fp: str):
    sql = (
        "SELECT m.direction, m.id, m.body, m.state, m.reply_to, m.delivered_ms FROM messages m"
        " JOIN peers p ON p.id = m.peer WHERE p.fingerprint = ? ORDER BY m.rowid"
    )
    return s._rows(sql, (fp,))


def test_the_setting_is_on_by_default_and_kept(tmp_path):
    with closing(_open(tmp_path / "e.db")) as s:
        assert s.get_peer(A).keep_history is True
        s.set_keep_history(A, False)
        assert [p.keep_history for p in s.list_peers()] == [False, True]
    with closing(Store.open(tmp_path / "e.db")) as s:
        assert s.get_peer(A).keep_history is False
        s.set_keep_history(A, True)
        assert s.get_peer(A).keep_history is True


def test_an_incoming_row_without_a_body_is_a_tombstone_that_still_dedupes(tmp_path):
    with closing(_open(tmp_path / "e.db")) as s:
        gone = (A, mid(1), None, 10, 11, False)
        reply = (A, mid(2), None, 12, 13, False, None, mid(9))
        kept = incoming(B, 3, body="kept", created=14)
        assert s.store_incoming([gone, reply, kept]) == [True, True, True]
        assert _rows(s, A) == [
            ("in", mid(1), None, "deleted", None, None),
            ("in", mid(2), None, "deleted", None, None),  # no quote either
        ]
        assert s.history(A) == [] and [m.body for m in s.history(B)] == ["kept"]
        # A resend (same peer, created_ms and id) is a duplicate, tombstone or not.
        assert s.store_incoming([gone, (A, mid(1), "again", 10, 20, False)]) == [False, False]
        assert s.store_incoming([gone, gone]) == [False, False]
        assert s.incoming_size(A) == (0, 0)  # the stored-bytes quota counts no body
        assert len(_rows(s, A)) == 2


def test_a_batch_of_tombstones_and_bodies_from_many_peers_in_one_cycle(tmp_path):
    with closing(_open(tmp_path / "e.db")) as s:
        rows = [(A, mid(i), None, i, i, False) for i in range(600)]
        rows += [incoming(B, i, created=i) for i in range(600)]
        assert s.write_cycle(incoming=rows) == [True] * 1200
        assert s.history(A) == [] and len(s.history(B, 1000)) == 600


def test_an_outgoing_message_stays_queued_across_a_restart_then_is_erased_at_its_ack(tmp_path):
    path = tmp_path / "e.db"
    with closing(_open(path)) as s:
        s.set_keep_history(A, False)
        [r1, r2] = s.enqueue_outgoing([(A, mid(1), f"{SECRET} one", 5), (A, mid(2), "two", 6)])
        [rb] = s.enqueue_outgoing([(B, mid(3), "to bob", 7)])
    with closing(Store.open(path)) as s:  # queued: the body is needed until delivered
        assert [(o.rowid, o.body) for o in s.outbox_for(A)] == [(r1, f"{SECRET} one"), (r2, "two")]
        s.write_cycle(delivered=[(A, [r1, r2]), (B, [rb])], now_ms=99, forget={A})
        assert s.outbox_for(A) == [] and s.outbox_for(B) == []
        assert _rows(s, A) == [
            ("out", mid(1), None, "deleted", None, 99),
            ("out", mid(2), None, "deleted", None, 99),
        ]
        assert [(m.body, m.state) for m in s.history(B)] == [("to bob", "delivered")]
        assert s.history(A) == []


def test_acks_out_of_order_erase_row_by_row(tmp_path):
    with closing(_open(tmp_path / "e.db")) as s:
        rowids = s.enqueue_outgoing([(A, mid(i), f"m{i}", i) for i in range(1, 5)])
        s.write_cycle(delivered=[(A, [rowids[0], rowids[2]])], now_ms=5, forget={A})
        states = [(r[2], r[3]) for r in _rows(s, A)]
        assert states == [(None, "deleted"), ("m2", "queued"), (None, "deleted"), ("m4", "queued")]


def test_a_legacy_envelope_settled_with_history_off_is_erased(tmp_path):
    with closing(_open(tmp_path / "e.db")) as s:
        sent, failed, kept = s.enqueue_outgoing(
            [(A, b"u" * 36, "v1 sent", 1), (A, b"v" * 36, "v1 failed", 2), (A, b"w" * 36, "k", 3)]
        )
        s.mark_legacy_sent([sent], erase=True)
        s.mark_failed([failed], "unreachable", erase=True)
        s.mark_failed([kept], "unreachable")
        assert [(r[2], r[3]) for r in _rows(s, A)] == [
            (None, "deleted"),
            (None, "deleted"),
            ("k", "failed"),
        ]
        assert [m.rowid for m in s.failed_messages(A)] == [kept]


def test_no_text_of_a_conversation_with_history_off_reaches_the_files(tmp_path):
    """secure_delete zeroes what an erased outgoing body left in the pages; ``scrub``
    (a truncating checkpoint) drops the WAL's copies. Incoming text is never written."""
    path = tmp_path / "e.db"
    with closing(_open(path)) as s:
        s.set_keep_history(A, False)
        s.write_cycle(incoming=[(A, mid(i), None, i, i, False) for i in range(300)])
        rowids = s.enqueue_outgoing([(A, mid(1000 + i), f"{SECRET} {i}", i) for i in range(300)])
        s.store_incoming([incoming(B, i, body="x" * 300, created=i) for i in range(300)])
        s._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # the bodies in the file
        s.write_cycle(delivered=[(A, rowids)], now_ms=1, forget={A})
        s.scrub()
        files = [path, path.with_name(path.name + "-wal")]
        on_disk = b"".join(p.read_bytes() for p in files if p.exists())
    assert SECRET.encode() not in on_disk
    assert b"x" * 300 in on_disk  # (the grep sees what is kept)


def test_version_10_store_migrates_with_history_on_everywhere(tmp_path):
    path = tmp_path / "e.db"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, migrations.MIGRATIONS[:10])
    db.execute(
        "INSERT INTO peers (fingerprint, public_key, added_at, receipts) VALUES (?, ?, 1.0, 1)",
        (A, pem(A)),
    )
    db.close()
    with closing(Store.open(path)) as s:
        assert s.schema_version == SCHEMA_VERSION == 13
        peer = s.get_peer(A)
        assert peer.keep_history is True and peer.receipts is True
