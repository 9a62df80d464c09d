"""The store against real SQLite files: durability, refusal to overwrite, and the API
the CLI and the node rely on."""

import hashlib
import sqlite3
import stat
from contextlib import closing

import pytest

from enclave.errors import UserError
from enclave.store import Store, migrations
from enclave.store.migrations import SCHEMA_VERSION, migrate, sql_step
from enclave.store.schema import APPLICATION_ID

A = "a1" * 32
B = "b2" * 32
C = "c3" * 32


def pem(tag: str) -> str:
    body = hashlib.sha256(tag.encode()).hexdigest()
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
        for fp, name in ((A, "alice"), (B, "bob"), (C, None)):
            s.upsert_peer(fp, pem(fp), "127.0.0.1:7000", name, 1000.0)
        yield s


def incoming(fp, n, body=None, created=0, legacy=False):
    return (fp, mid(n), body if body is not None else f"msg {n}", created, created + 1, legacy)


def filled_db(path) -> None:
    """A closed database of a few dozen pages (checkpointed: no WAL left)."""
    with Store.open(path) as s:
        s.upsert_peer(A, pem(A), None, "alice", 1.0)
        s.store_incoming([incoming(A, i, body="x" * 500) for i in range(400)])


# -- the file ---------------------------------------------------------------------------


def test_create_and_reopen_keeps_data(db_path):
    with Store.open(db_path) as s:
        assert s.upsert_peer(A, pem(A), "10.0.0.1:7000", "alice", 5.0)
        s.store_incoming([incoming(A, 1)])
        [rowid] = s.enqueue_outgoing([(A, mid(2), "hi", 10)])
    with Store.open(db_path) as s:
        assert s.get_peer(A).name == "alice"
        assert [m.body for m in s.history(A)] == ["msg 1", "hi"]
        assert [o.rowid for o in s.outbox_for(A)] == [rowid]
        assert s.path == db_path


def test_file_is_private(db_path, store):
    store.store_incoming([incoming(A, 1)])  # the WAL now exists too
    for path in (db_path, db_path.with_name(db_path.name + "-wal")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_wal_and_durability_pragmas(db_path, store):
    with closing(sqlite3.connect(db_path, isolation_level=None)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    # White-box: these are per connection, and the durability promise rests on them.
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store._db.execute("PRAGMA secure_delete").fetchone()[0] == 1


def test_store_sync_normal_is_asked_for_explicitly(tmp_path):
    with Store.open(tmp_path / "n.db", sync="normal") as s:
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with pytest.raises(ValueError):
        Store.open(tmp_path / "o.db", sync="off")


def test_schema_version(store):
    assert store.schema_version == SCHEMA_VERSION == len(migrations.MIGRATIONS)


def test_empty_file_is_a_new_store(db_path):
    db_path.write_bytes(b"")
    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.list_peers() == []


def test_second_connection_sees_commits(db_path, store):
    with Store.open(db_path, key=key_of(store)) as other:
        other.store_incoming([incoming(A, 1)])
        assert store.history(A)[0].body == "msg 1"


def test_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot create"):
        Store.open(tmp_path / "nope" / "enclave.db")


# -- migrations -------------------------------------------------------------------------


@pytest.fixture
def raw_db(request):
    """An autocommit connection closed at the end of the test."""

    def connect(path):
        db = sqlite3.connect(path, isolation_level=None)
        request.addfinalizer(db.close)
        return db

    return connect


def recording_steps(log):
    def step(n):
        def run(db):
            log.append(n)
            db.execute(f"CREATE TABLE t{n} (x)")

        return run

    return [step(n) for n in range(3)]


def test_migrate_runs_steps_in_order_once(tmp_path, raw_db):
    log = []
    steps = recording_steps(log)
    db = raw_db(tmp_path / "m.db")
    assert migrate(db, steps) == 3
    assert migrate(db, steps) == 3
    assert log == [0, 1, 2]

    steps.append(sql_step("CREATE TABLE t3 (x)", "INSERT INTO t3 VALUES (1)"))
    assert migrate(db, steps) == 4
    assert log == [0, 1, 2]  # only the new step ran
    assert db.execute("SELECT x FROM t3").fetchall() == [(1,)]


def test_failed_step_leaves_last_good_version(tmp_path, raw_db):
    def broken(db):
        db.execute("CREATE TABLE half (x)")
        raise RuntimeError("step failed")

    db = raw_db(tmp_path / "m.db")
    steps = [sql_step("CREATE TABLE one (x)"), broken]
    with pytest.raises(RuntimeError):
        migrate(db, steps)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_schema")]
    assert "one" in names and "half" not in names


def test_open_migrates_an_older_store_forward(db_path, monkeypatch):
    with Store.open(db_path) as s:
        s.upsert_peer(A, pem(A), None, "alice", 1.0)
    newer = [*migrations.MIGRATIONS, sql_step("ALTER TABLE peers ADD COLUMN note TEXT")]
    monkeypatch.setattr(migrations, "MIGRATIONS", newer)
    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION + 1
        assert s.get_peer(A).name == "alice"
    with Store.open(db_path) as s:  # reopening applies nothing twice
        assert s.schema_version == SCHEMA_VERSION + 1


def test_version_1_store_with_data_migrates_to_integer_peer_ids(db_path):
    """A store written by schema 1 (fingerprints in every row, AUTOINCREMENT) keeps every
    peer, message, state, tombstone, outbox order and v1 record after the upgrade."""
    db = sqlite3.connect(db_path, isolation_level=None)
    migrate(db, migrations.MIGRATIONS[:1])
    db.execute("PRAGMA foreign_keys = ON")
    for fp, name in ((A, "alice"), (B, None)):
        db.execute(
            "INSERT INTO peers (fingerprint, name, public_key, address, verified, hwm_ms,"
            " added_at) VALUES (?, ?, ?, '10.0.0.1:7000', 1, 77, 5.0)",
            (fp, name, pem(fp)),
        )
    rows = [  # (peer, direction, id, body, state, delivered_ms, reason)
        (A, "in", mid(1), "hello", "received", None, None),
        (A, "out", mid(2), "delivered one", "delivered", 40, None),
        (A, "out", mid(3), "in flight", "sent", None, None),
        (B, "out", mid(4), "to bob", "queued", None, None),
        (A, "out", mid(5), "given up", "failed", None, "unreachable"),
        (A, "in", mid(6), None, "deleted", None, None),
        (A, "out", mid(7), "retried", "queued", None, None),
    ]
    for n, (fp, direction, i, body, state, done, reason) in enumerate(rows):
        db.execute(
            "INSERT INTO messages (peer, direction, id, body, created_ms, stored_ms, state,"
            " delivered_ms, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (fp, direction, i, body, 10 + n, 20 + n, state, done, reason),
        )
    # Outbox order is not rowid order: row 3 was put back after rows 4 and 7.
    for rowid, fp in ((4, B), (7, A), (3, A)):
        db.execute("INSERT INTO outbox (message, peer) VALUES (?, ?)", (rowid, fp))
    db.execute("INSERT INTO v1_seen VALUES (?, 'uuid-1', 9.0)", (A,))
    db.close()

    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION == 14
        alice = s.get_peer(A)
        assert (alice.name, alice.verified, alice.hwm_ms) == ("alice", True, 77)
        assert [(m.rowid, m.direction, m.body, m.state) for m in s.history(A)] == [
            (1, "in", "hello", "received"),
            (2, "out", "delivered one", "delivered"),
            (3, "out", "in flight", "sent"),
            (5, "out", "given up", "failed"),
            (7, "out", "retried", "queued"),
        ]
        assert s.history(A)[1].delivered_ms == 40
        assert [o.rowid for o in s.outbox_for(A)] == [7, 3]
        assert s.outbox_peers() == [B, A]
        assert [m.rowid for m in s.failed_messages(A)] == [5]
        assert s.v1_seen(A, "uuid-1")
        # The tombstone still refuses a resend; new rows continue after the old rowids.
        assert s.store_incoming([incoming(A, 6, created=15), incoming(A, 8)]) == [False, True]
        [new] = s.enqueue_outgoing([(B, mid(9), "after", 50)])
        assert new > 8
        assert s.mark_delivered(A, [3, 7], now_ms=60) == 2
        assert s.outbox_for(A) == [] and [o.rowid for o in s.outbox_for(B)] == [4, new]
        assert s.remove_peer(B) and s.outbox_peers() == []
    with closing(sqlite3.connect(db_path)) as raw:
        tables = {r[0]: r[1] for r in raw.execute("SELECT name, sql FROM sqlite_schema")}
        assert "peers2" not in tables and "AUTOINCREMENT" not in tables["messages"]
        assert "outbox" not in tables and "messages_owed" in tables  # schema 3
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []


def test_version_2_outbox_order_survives_and_new_messages_queue_behind_it(db_path):
    """Schema 2's outbox numbered its rows on its own (a retried message could hold a
    place past every rowid); after the move to ``messages.owed`` a new message still
    queues behind them, and acks, failures and retries keep the queue honest."""
    db = sqlite3.connect(db_path, isolation_level=None)
    migrate(db, migrations.MIGRATIONS[:2])
    db.execute(
        "INSERT INTO peers (fingerprint, public_key, added_at) VALUES (?, ?, 1.0)", (A, pem(A))
    )
    for rowid in (1, 2, 3):
        db.execute(
            "INSERT INTO messages (rowid, peer, direction, id, body, created_ms, stored_ms,"
            " state) VALUES (?, 1, 'out', ?, 'hi', 5, 5, 'queued')",
            (rowid, mid(rowid)),
        )
    for seq, rowid in ((70, 2), (90, 1), (80, 3)):
        db.execute("INSERT INTO outbox (seq, message, peer) VALUES (?, ?, 1)", (seq, rowid))
    db.close()
    with Store.open(db_path) as s:
        assert [o.rowid for o in s.outbox_for(A)] == [2, 3, 1]
        [new] = s.enqueue_outgoing([(A, mid(4), "later", 6)])
        assert [o.rowid for o in s.outbox_for(A)] == [2, 3, 1, new]
        s.mark_failed([3], "unreachable")
        assert s.mark_delivered(A, [2], now_ms=9) == 1
        assert [o.rowid for o in s.outbox_for(A)] == [1, new]
        s.requeue([3])  # a retry goes to the back
        assert [o.rowid for o in s.outbox_for(A)] == [1, new, 3]
        assert [(m.rowid, m.state) for m in s.history(A)] == [
            (1, "queued"),
            (2, "delivered"),
            (3, "queued"),
            (new, "queued"),
        ]
    with Store.open(db_path) as s:  # the counter starts past every queue place again
        [newer] = s.enqueue_outgoing([(A, mid(5), "last", 7)])
        assert [o.rowid for o in s.outbox_for(A)] == [1, new, 3, newer]


def test_version_3_address_is_kept_as_given_and_learning_keeps_it_as_fallback(db_path):
    """Schema 3 held one address per peer (given, or overwritten by a learned one): it
    becomes the given address; a learned one is kept beside it from then on."""
    db = sqlite3.connect(db_path, isolation_level=None)
    migrate(db, migrations.MIGRATIONS[:3])
    db.execute(
        "INSERT INTO peers (fingerprint, name, public_key, address, added_at)"
        " VALUES (?, 'alice', ?, '10.0.0.1:7000', 1.0)",
        (A, pem(A)),
    )
    db.close()
    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION == 14
        alice = s.get_peer(A)
        assert (alice.address, alice.learned_address) == ("10.0.0.1:7000", None)
        assert alice.dial_addresses == ["10.0.0.1:7000"]
        assert s.learn_address(A, "10.0.0.9:7000")
    with Store.open(db_path) as s:
        alice = s.get_peer(A)
        assert alice.dial_addresses == ["10.0.0.9:7000", "10.0.0.1:7000"]
        assert alice.address_text == "10.0.0.9:7000 (learned), 10.0.0.1:7000 (given)"


# -- files we must not touch --------------------------------------------------------------


def test_newer_store_is_refused_untouched(db_path):
    filled_db(db_path)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as raw:
        raw.execute("PRAGMA user_version = 99")
    before = sha(db_path)
    with pytest.raises(
        UserError, match=rf"newer Enclave \(schema 99, this one knows {SCHEMA_VERSION}\)"
    ):
        Store.open(db_path)
    assert sha(db_path) == before


def test_newer_store_with_pending_wal_is_not_checkpointed(tmp_path, db_path):
    filled_db(db_path)
    raw = sqlite3.connect(db_path, isolation_level=None)  # a newer Enclave...
    raw.execute("PRAGMA wal_autocheckpoint = 0")
    raw.execute("PRAGMA user_version = 99")
    crashed = tmp_path / "crashed.db"  # ...killed with its last commit still in the WAL
    for suffix in ("", "-wal"):
        crashed.with_name(crashed.name + suffix).write_bytes(
            db_path.with_name(db_path.name + suffix).read_bytes()
        )
    raw.close()
    before = sha(crashed)
    with pytest.raises(UserError, match="newer Enclave"):
        Store.open(crashed)
    assert sha(crashed) == before


def test_garbage_file_is_refused_untouched(db_path):
    db_path.write_bytes(b"not a database at all\n" * 200)
    before = sha(db_path)
    with pytest.raises(UserError, match="corrupt or not a database") as err:
        Store.open(db_path)
    assert str(db_path) in str(err.value) and "\n" not in str(err.value)
    assert sha(db_path) == before


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b[: 4096 * 5] + bytes(4096) + b[4096 * 6 :], id="zeroed-page"),
        pytest.param(lambda b: b"\xff" * 100 + b[100:], id="bad-header"),
    ],
)
def test_damaged_store_is_refused_untouched(db_path, damage):
    filled_db(db_path)
    db_path.write_bytes(damage(db_path.read_bytes()))
    before = sha(db_path)
    with pytest.raises(UserError, match="the file was left untouched") as err:
        Store.open(db_path)
    assert str(db_path) in str(err.value) and "\n" not in str(err.value)
    assert sha(db_path) == before


def test_foreign_sqlite_file_is_refused_untouched(db_path):
    with closing(sqlite3.connect(db_path, isolation_level=None)) as raw:
        raw.execute("CREATE TABLE peers (who TEXT)")
    before = sha(db_path)
    with pytest.raises(UserError, match="another program"):
        Store.open(db_path)
    assert sha(db_path) == before


# -- peers ------------------------------------------------------------------------------


def test_readding_a_peer_updates_what_is_given(store):
    assert not store.upsert_peer(A, pem(A), "[fe80::1]:7001", None, 2000.0)
    peer = store.get_peer(A)
    assert (peer.address, peer.name, peer.added_at) == ("[fe80::1]:7001", "alice", 1000.0)
    assert not store.upsert_peer(A, pem(A), None, "Alicia", 3000.0)
    assert (store.get_peer(A).address, store.get_peer(A).name) == ("[fe80::1]:7001", "Alicia")


def test_a_learned_address_is_dialled_first_and_the_given_one_stays(store):
    assert store.learn_address(A, "[fe80::2]:7000")
    assert not store.learn_address(A, "[fe80::2]:7000")  # unchanged
    a = store.get_peer(A)
    assert (a.address, a.learned_address) == ("127.0.0.1:7000", "[fe80::2]:7000")
    assert a.dial_addresses == ["[fe80::2]:7000", "127.0.0.1:7000"]
    # A name alone keeps both; an address from the user replaces the given one and
    # forgets the learned one.
    store.upsert_peer(A, pem(A), None, "Alicia", 2.0)
    assert store.get_peer(A).dial_addresses == ["[fe80::2]:7000", "127.0.0.1:7000"]
    store.upsert_peer(A, pem(A), "10.0.0.3:7100", None, 3.0)
    a = store.get_peer(A)
    assert (a.address, a.learned_address) == ("10.0.0.3:7100", None)
    assert a.address_text == "10.0.0.3:7100"
    store.learn_address(B, "10.0.0.4:7000")
    assert store.learn_address(B, None)  # seen at its given address again
    assert store.get_peer(B).dial_addresses == ["127.0.0.1:7000"]
    assert not store.learn_address("e5" * 32, "10.0.0.5:1")  # removed meanwhile: ignored
    with pytest.raises(UserError, match="host:port"):
        store.learn_address(A, "nohost")


def test_new_peer_defaults(store):
    p = store.get_peer(C)
    got = (p.name, p.verified, p.proto, p.v2_seen, p.blocked, p.hwm_ms, p.last_seen)
    assert got == (None, False, "auto", False, False, 0, None)


def test_name_collision_changes_nothing(store):
    d = "d4" * 32
    with pytest.raises(UserError, match=r"the name 'BOB' is already used by peer b2b2 b2b2…"):
        store.upsert_peer(d, pem(d), None, "BOB", 1.0)
    assert store.get_peer(d) is None
    with pytest.raises(UserError, match="already used"):
        store.upsert_peer(A, pem(A), "10.9.9.9:1", "bob", 1.0)
    assert (store.get_peer(A).name, store.get_peer(A).address) == ("alice", "127.0.0.1:7000")
    assert not store.upsert_peer(A, pem(A), None, "ALICE", 1.0)  # its own name, new case


def test_different_key_for_known_fingerprint_is_refused(store):
    with pytest.raises(ValueError, match="different public key"):
        store.upsert_peer(A, pem("mallory"), None, None, 1.0)
    assert store.get_peer(A).public_key == pem(A)
    assert not store.upsert_peer(A, pem(A).replace("\n", "\r\n"), None, None, 1.0)


@pytest.mark.parametrize(
    "address", ["nohost", "h:0", "h:70000", "h:x", "::1:7000", "[]:1", ":7000", "[::1:7000"]
)
def test_bad_address_is_a_user_error(store, address):
    with pytest.raises(UserError, match="host:port"):
        store.upsert_peer(A, pem(A), address, None, 1.0)


def test_bad_arguments_are_programming_errors(store):
    with pytest.raises(ValueError):
        store.upsert_peer("abc", pem("x"), None, None, 1.0)
    with pytest.raises(ValueError):
        store.upsert_peer("d4" * 32, "not a key", None, None, 1.0)
    with pytest.raises(ValueError):
        store.set_proto(A, "v3")


def test_fingerprint_is_stored_lowercase(store):
    d = "D4" * 32
    store.upsert_peer(d, pem(d), None, None, 1.0)
    assert store.get_peer(d.lower()).fingerprint == d.lower()


def test_list_peers_by_name_then_fingerprint(store):
    store.upsert_peer("01" * 32, pem("x"), None, "Carol", 1.0)
    store.upsert_peer("00" * 32, pem("y"), None, None, 1.0)
    names = [(p.name, p.fingerprint[:2]) for p in store.list_peers()]
    assert names == [("alice", "a1"), ("bob", "b2"), ("Carol", "01"), (None, "00"), (None, "c3")]


def test_find_peers(store):
    assert [p.fingerprint for p in store.find_peers("ALICE")] == [A]
    assert [p.fingerprint for p in store.find_peers(" bob ")] == [B]
    assert [p.fingerprint for p in store.find_peers("C3C3 C3C3")] == [C]
    assert [p.fingerprint for p in store.find_peers("c3:c3:c3:c3:c3")] == [C]
    assert [p.fingerprint for p in store.find_peers(C)] == [C]
    assert store.find_peers("c3c3c3c") == []  # 7 digits
    assert store.find_peers("c3c3c3c3x") == []
    assert store.find_peers("carol") == []


def test_find_peers_ambiguous_prefix_and_name_priority(store):
    one, two = "deadbeef" + "0" * 56, "deadbeef" + "1" * 56
    store.upsert_peer(one, pem(one), None, None, 1.0)
    store.upsert_peer(two, pem(two), None, None, 1.0)
    assert [p.fingerprint for p in store.find_peers("DEADBEEF")] == [one, two]
    store.upsert_peer(A, pem(A), None, "deadbeef", 1.0)
    assert [p.fingerprint for p in store.find_peers("deadbeef")] == [A]


def test_peer_flags(store):
    store.set_verified(A, True)
    store.set_proto(A, "v1")
    store.set_blocked(A, True)
    store.mark_v2_seen(A)
    store.touch_peer(A, 1234.5)
    store.raise_hwm(A, 500)
    store.raise_hwm(A, 400)
    p = store.get_peer(A)
    got = (p.verified, p.proto, p.blocked, p.v2_seen, p.last_seen, p.hwm_ms)
    assert got == (True, "v1", True, True, 1234.5, 500)
    store.set_verified(A, False)
    store.set_blocked(A, False)
    assert not store.get_peer(A).verified and not store.get_peer(A).blocked


def test_mark_peers_in_one_transaction(store):
    """The node's bookkeeping of several peers at once: the high-water mark only rises,
    None leaves a mark as it was, a peer removed meanwhile is ignored."""
    store.raise_hwm(A, 500)
    store.touch_peer(B, 7.0)
    store.mark_peers({A: (400, 12.5), B: (900, None), "e5" * 32: (1, 1.0)})
    a, b = store.get_peer(A), store.get_peer(B)
    assert (a.hwm_ms, a.last_seen, b.hwm_ms, b.last_seen) == (500, 12.5, 900, 7.0)
    store.mark_peers({A: (None, 13.0)})
    assert (store.get_peer(A).hwm_ms, store.get_peer(A).last_seen) == (500, 13.0)


def test_flags_on_a_removed_peer(store):
    gone = "e5" * 32
    with pytest.raises(UserError, match="no peer e5e5 e5e5"):
        store.set_verified(gone, True)
    store.touch_peer(gone, 1.0)  # the node's calls ignore a peer removed meanwhile
    store.raise_hwm(gone, 1)
    store.mark_v2_seen(gone)


def test_remove_peer_takes_its_history_and_outbox(store):
    store.store_incoming([incoming(A, 1)])
    store.enqueue_outgoing([(A, mid(2), "out", 1), (B, mid(2), "out", 1)])
    assert store.remove_peer(A)
    assert not store.remove_peer(A)
    assert store.get_peer(A) is None
    assert store.history(A) == [] and store.outbox_for(A) == []
    assert store.outbox_peers() == [B]


# -- incoming ---------------------------------------------------------------------------


def test_store_incoming_dedupes_across_and_within_batches(store):
    assert store.store_incoming([incoming(A, 1), incoming(A, 2)]) == [True, True]
    flags = store.store_incoming([incoming(A, 2), incoming(A, 3), incoming(A, 3), incoming(B, 2)])
    assert flags == [False, True, False, True]
    assert [m.id for m in store.history(A)] == [mid(1), mid(2), mid(3)]
    assert store.store_incoming([]) == []


def test_the_dedupe_key_is_peer_created_ms_and_id(store):
    """docs/STORE.md "Dedupe": a resend carries the same created_ms and id and is
    refused, also after the body was deleted; the same id with another created_ms is
    another message, stored once; another peer's id is its own."""
    assert store.store_incoming([incoming(A, 1, created=5)]) == [True]
    again = [incoming(A, 1, created=5), incoming(A, 1, created=6), incoming(A, 1, created=6)]
    assert store.store_incoming(again) == [False, True, False]
    assert store.store_incoming([incoming(B, 1, created=5)]) == [True]
    assert [m.created_ms for m in store.history(A)] == [5, 6]
    store.delete_history(A)
    assert store.store_incoming([incoming(A, 1, created=5), incoming(A, 1, created=6)]) == [
        False,
        False,
    ]


def test_big_batches_cross_insert_chunks_without_losing_a_row(store):
    """Batches go in as multi-row INSERTs of up to 512 rows: 1,303 rows take chunks of
    512, 512, 256, 16, 4, 2 and 1; duplicates across chunks and of earlier batches are
    still found, and every new row is stored once."""
    assert store.store_incoming([incoming(A, n) for n in (0, 600, 1302)]) == [True] * 3
    batch = [incoming(A, n) for n in range(1300)] + [incoming(A, 5), incoming(A, 1299)]
    batch.append(incoming(A, 1302))
    flags = store.store_incoming(batch)
    old = {0, 600}
    assert flags[:1300] == [n not in old for n in range(1300)]
    assert flags[1300:] == [False, False, False]
    assert len(store.history(A, limit=5000)) == 1301
    rows = [(B, mid(n), f"m{n}", n) for n in range(1303)]
    rowids = store.enqueue_outgoing(rows)
    assert [(o.rowid, o.body) for o in store.outbox_for(B)] == [
        (r, f"m{n}") for n, r in enumerate(rowids)
    ]


def test_incoming_and_outgoing_ids_do_not_collide(store):
    store.enqueue_outgoing([(A, mid(1), "mine", 1)])
    assert store.store_incoming([incoming(A, 1)]) == [True]


def test_incoming_message_fields(store):
    v1_id = b"0f8fad5b-d9cb-469f-a165-70867728950e"
    store.store_incoming([incoming(A, 1, created=5), (A, v1_id, "old", 7, 8, True)])
    first, second = store.history(A)
    got = (first.direction, first.state, first.created_ms, first.stored_ms, first.legacy)
    assert got == ("in", "received", 5, 6, False)
    assert (second.id, second.legacy) == (v1_id, True)


def test_failed_batch_stores_nothing(store):
    unknown = "f6" * 32
    batch = [incoming(A, 1), incoming(A, 2), incoming(unknown, 3), incoming(A, 4)]
    with pytest.raises(sqlite3.IntegrityError):
        store.store_incoming(batch)
    assert store.history(A) == []
    assert store.store_incoming([incoming(A, 1), incoming(A, 2)]) == [True, True]


def test_malformed_rows_store_nothing(store):
    with pytest.raises(TypeError):
        store.store_incoming([incoming(A, 1), (A, "not bytes", "x", 0, 0, False)])
    with pytest.raises(ValueError):
        store.store_incoming([incoming(A, 1), (A, b"short", "x", 0, 0, False)])
    with pytest.raises(TypeError):  # a body is text (None: a tombstone, schema 11)
        store.store_incoming([incoming(A, 1), (A, mid(2), b"x", 0, 0, False)])
    with pytest.raises(TypeError):  # times are integer milliseconds
        store.store_incoming([incoming(A, 1), (A, mid(2), "x", 1.5, 0, False)])
    with pytest.raises(TypeError):
        store.enqueue_outgoing([(A, mid(3), "x", "soon")])
    assert store.history(A) == [] and store.outbox_for(A) == []


def test_disk_full_stores_nothing_and_store_recovers(store):
    db = store._db  # white-box: cap the file size to make SQLITE_FULL deterministic
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 2}")
    batch = [incoming(A, i, body="x" * 1000) for i in range(100)]
    with pytest.raises(sqlite3.OperationalError, match="full"):
        store.store_incoming(batch)
    assert store.history(A) == []
    db.execute("PRAGMA max_page_count = 1073741823")
    assert all(store.store_incoming(batch))


# -- outgoing and the outbox -------------------------------------------------------------


def test_enqueue_fills_the_outbox_in_order(store):
    rowids = store.enqueue_outgoing(
        [(B, mid(1), "b1", 10), (A, mid(1), "a1", 11), (A, mid(2), "a2", 12)]
    )
    assert rowids == sorted(rowids)
    assert store.outbox_peers() == [B, A]
    items = store.outbox_for(A)
    assert [(o.rowid, o.body, o.state, o.created_ms) for o in items] == [
        (rowids[1], "a1", "queued", 11),
        (rowids[2], "a2", "queued", 12),
    ]
    assert [o.rowid for o in store.outbox_for(A, limit=1)] == [rowids[1]]
    assert store.enqueue_outgoing([]) == []


def test_v1_outgoing_id_is_legacy(store):
    v1_id = b"0f8fad5b-d9cb-469f-a165-70867728950e"
    store.enqueue_outgoing([(A, v1_id, "old style", 1)])
    assert store.outbox_for(A)[0].legacy


def test_duplicate_outgoing_id_is_refused_whole(store):
    with pytest.raises(sqlite3.IntegrityError):
        store.enqueue_outgoing([(A, mid(1), "x", 1), (A, mid(1), "x", 1)])
    assert store.outbox_peers() == [] and store.history(A) == []


def test_ack_marks_only_the_acking_recipients_rows(store):
    to_a = store.enqueue_outgoing([(A, mid(i), f"a{i}", i) for i in range(3)])
    [to_b] = store.enqueue_outgoing([(B, mid(0), "b0", 0)])  # same id as A's copy
    store.mark_sent([*to_a, to_b])
    assert {o.state for o in store.outbox_for(A) + store.outbox_for(B)} == {"sent"}

    assert store.mark_delivered(B, to_a, now_ms=50) == 0  # B cannot settle A's copies
    assert [o.rowid for o in store.outbox_for(A)] == to_a

    assert store.mark_delivered(A, [to_a[0], to_a[1], to_b], now_ms=60) == 2
    assert [o.rowid for o in store.outbox_for(A)] == [to_a[2]]
    assert [o.rowid for o in store.outbox_for(B)] == [to_b]
    done = store.history(A)[0]
    assert (done.state, done.delivered_ms) == ("delivered", 60)
    assert store.mark_delivered(A, [to_a[0]], now_ms=70) == 0  # a repeated ack changes nothing


def test_mark_sent_never_regresses(store):
    [r] = store.enqueue_outgoing([(A, mid(1), "x", 1)])
    store.mark_delivered(A, [r], now_ms=5)
    store.mark_sent([r])
    assert store.history(A)[0].state == "delivered"


def test_failed_and_requeue(store):
    r1, r2, r3 = store.enqueue_outgoing([(A, mid(i), f"m{i}", i) for i in range(3)])
    store.mark_sent([r1])
    store.mark_failed([r2, r1], "peer unreachable for 7 days")
    assert [o.rowid for o in store.outbox_for(A)] == [r3]
    failed = store.failed_messages()
    assert [(m.rowid, m.state, m.reason) for m in failed] == [
        (r1, "failed", "peer unreachable for 7 days"),
        (r2, "failed", "peer unreachable for 7 days"),
    ]
    assert store.failed_messages(B) == []

    store.requeue([r2, r1])
    assert [o.rowid for o in store.outbox_for(A)] == [r3, r1, r2]
    assert {o.state for o in store.outbox_for(A)} == {"queued"}
    assert store.failed_messages(A) == []
    assert store.history(A)[0].reason is None


def test_failed_skips_delivered_rows_and_requeue_skips_others(store):
    r1, r2 = store.enqueue_outgoing([(A, mid(1), "x", 1), (A, mid(2), "y", 2)])
    store.mark_delivered(A, [r1], now_ms=5)
    store.mark_failed([r1], "too late")
    store.requeue([r1, r2])  # neither is failed
    assert [m.state for m in store.history(A)] == ["delivered", "queued"]
    assert [o.rowid for o in store.outbox_for(A)] == [r2]


def test_late_ack_settles_a_failed_row(store):
    [r] = store.enqueue_outgoing([(A, mid(1), "x", 1)])
    store.mark_failed([r], "timed out")
    assert store.mark_delivered(A, [r], now_ms=9) == 1
    assert store.failed_messages() == []


# -- history ----------------------------------------------------------------------------


def test_history_pages_newest_first_returned_oldest_first(store):
    for i in range(60):
        if i % 2:
            store.enqueue_outgoing([(A, mid(i), f"m{i}", i)])
        else:
            store.store_incoming([incoming(A, i, body=f"m{i}", created=i)])
    store.store_incoming([incoming(B, 1000, body="other peer")])

    page = store.history(A, limit=25)
    assert [m.body for m in page] == [f"m{i}" for i in range(35, 60)]
    seen = list(page)
    while page:
        page = store.history(A, limit=25, before_rowid=seen[0].rowid)
        seen[:0] = page
    assert [m.body for m in seen] == [f"m{i}" for i in range(60)]
    assert {m.direction for m in seen} == {"in", "out"}


def test_search_messages(store):
    store.store_incoming([incoming(A, 1, body="Lunch at noon?"), incoming(B, 1, body="100% sure")])
    store.enqueue_outgoing([(B, mid(2), "lunch_time", 3)])
    assert [m.body for m in store.search_messages("LUNCH")] == ["Lunch at noon?", "lunch_time"]
    assert [m.body for m in store.search_messages("0%")] == ["100% sure"]
    assert [m.body for m in store.search_messages("h_t")] == ["lunch_time"]
    assert store.search_messages("h%t") == []
    assert [m.body for m in store.search_messages("u", limit=1)] == ["lunch_time"]


def test_delete_history_keeps_tombstones(store):
    store.store_incoming([incoming(A, 1, body="lunch?"), incoming(B, 1, body="keep me")])
    store.enqueue_outgoing([(A, mid(2), "yes", 2)])
    assert store.delete_history(A) == 2
    assert store.history(A) == [] and store.outbox_for(A) == []
    assert store.search_messages("lunch") == []
    assert store.store_incoming([incoming(A, 1, body="lunch?")]) == [False]  # a late resend
    assert [m.body for m in store.history(B)] == ["keep me"]
    assert store.delete_history(A) == 0


def test_incoming_size_counts_what_a_peer_sent_that_is_still_kept(store):
    """The base of a contact's stored-bytes quota: its incoming rows and the UTF-8 bytes
    of their bodies, without our outgoing rows, other peers' rows or deleted ones."""
    assert store.incoming_size(A) == (0, 0)
    store.store_incoming(
        [incoming(A, 1, body="abc"), incoming(A, 2, body="é" * 10), incoming(B, 1, body="x")]
    )
    store.enqueue_outgoing([(A, mid(3), "not counted", 3)])
    assert store.incoming_size(A) == (2, 3 + 20)
    assert store.incoming_size(B) == (1, 1)
    assert store.incoming_size("d4" * 32) == (0, 0)  # not a peer
    store.delete_history(A)
    assert store.incoming_size(A) == (0, 0)


def test_deleted_text_is_gone_from_the_files(db_path):
    secret = "the combination is 4-8-15-16-23-42"
    with Store.open(db_path) as s:
        s.upsert_peer(A, pem(A), None, None, 1.0)
        s.store_incoming([incoming(A, i, body=f"{secret} #{i}") for i in range(200)])
    with Store.open(db_path) as s:  # the text is now in the database file itself
        s.delete_history(A)
        files = [db_path, db_path.with_name(db_path.name + "-wal")]
        on_disk = b"".join(p.read_bytes() for p in files if p.exists())
    assert secret.encode() not in on_disk


# -- v1 seen tables ---------------------------------------------------------------------


UUID1 = "0f8fad5b-d9cb-469f-a165-70867728950e"
UUID2 = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def test_v1_record_and_seen(store):
    assert not store.v1_seen(A, UUID1)
    assert store.v1_record(A, UUID1, 100.0, b"k1" * 16) is None
    assert store.v1_seen(A, UUID1)
    assert not store.v1_seen(B, UUID1)
    assert store.v1_record(A, UUID1, 100.0, b"k1" * 16) == A  # the same envelope again: a replay


def test_v1_record_detects_resigning(db_path, store):
    store.v1_record(A, UUID1, 100.0, b"k1" * 16)
    assert store.v1_record(B, UUID2, 101.0, b"k1" * 16) == A
    assert not store.v1_seen(B, UUID2)  # nothing inserted for the second sender
    with Store.open(db_path) as reopened:  # and it survives a restart
        assert reopened.v1_seen(A, UUID1)
        assert reopened.v1_record(C, UUID2, 102.0, b"k1" * 16) == A


def test_v1_prune(store):
    store.v1_record(A, UUID1, 100.0, b"k1" * 16)
    store.v1_record(A, UUID2, 2000.0, b"k2" * 16)
    assert store.v1_prune(1000.0) == 1
    assert not store.v1_seen(A, UUID1) and store.v1_seen(A, UUID2)
    assert store.v1_record(B, UUID1, 2100.0, b"k1" * 16) is None  # its key hash went too
    assert store.v1_prune(1000.0) == 0


def test_v1_prune_is_bounded_and_goes_oldest_first(store):
    """The node prunes in bounded steps (its upkeep task): each call removes at most
    ``limit`` entries of each table, the oldest first; newer entries stay."""
    uuids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(5)]
    for n, uuid in enumerate(uuids):
        store.v1_record(A, uuid, 100.0 + n, bytes([n]) * 32)
    store.v1_record(B, UUID1, 5000.0, b"k" * 32)
    assert store.v1_prune(1000.0, limit=2) == 2
    assert [store.v1_seen(A, u) for u in uuids] == [False, False, True, True, True]
    assert store.v1_prune(1000.0, limit=2) == 2
    assert store.v1_prune(1000.0, limit=2) == 1
    assert store.v1_prune(1000.0, limit=2) == 0
    assert not any(store.v1_seen(A, u) for u in uuids) and store.v1_seen(B, UUID1)
    assert store.v1_record(C, uuids[0], 6000.0, bytes([0]) * 32) is None  # its key hash went
    assert store.v1_record(C, UUID2, 6000.0, b"k" * 32) == B  # the fresh one did not
