"""The sending log (store/sending.py): rows sent before their commit come back after a
kill -9 with their ids; nothing committed, deleted, altered, torn or foreign comes back;
one process logs at a time; the file stays small, private and sealed."""

import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave.errors import UserError
from enclave.store import Store, sending

A, B = "a1" * 32, "b2" * 32
KEY, OTHER_KEY = bytes(range(32)), bytes(range(1, 33))
SECRET = "Zanzibar-sending-4c1"


def pem(tag: str) -> str:
    return f"-----BEGIN PUBLIC KEY-----\n{hashlib.sha256(tag.encode()).hexdigest()}\n-----END PUBLIC KEY-----\n"


def opened(path, key=KEY) -> Store:
    store = Store.open(path, key=key)
    if store.get_peer(A) is None:
        store.upsert_peer(A, pem(A), "127.0.0.1:7000", "alice", 1.0)
    return store


def row(store: Store, n: int, peer: str = A, body: str | None = None) -> tuple:
    """An outgoing row as delivery logs it: (rowid, peer, id, body, created, group,
    reply, timer, expires)."""
    rowid = store.reserve_rowid()
    body = f"{SECRET} {n}" if body is None else body
    return (
        rowid,
        bytes.fromhex(peer),
        n.to_bytes(16, "big"),
        body,
        1000 + n,
        None,
        None,
        None,
        None,
    )


def log(store: Store, rows: list[tuple]) -> bool:
    """Log rows to one peer as delivery does (by column; extras for rows that have any)."""
    extras = [(k, *r[5:]) for k, r in enumerate(rows) if any(x is not None for x in r[5:])]
    columns = [[r[i] for r in rows] for i in (0, 2, 3, 4)]
    return store.sending.append(rows[0][1], *columns, extras)


def commit(store: Store, rows: list[tuple]) -> None:
    """What delivery's commit writes for these rows."""
    store.write_cycle(enqueue=[(r[0], r[1].hex(), r[2], r[3], r[4]) for r in rows])


def owed(store: Store, peer: str = A) -> list[tuple]:
    return [(o.rowid, o.id, o.body, o.created_ms, o.state) for o in store.outbox_for(peer)]


def log_path(tmp_path):
    return sending.path_for(tmp_path / "s.db")


def test_rows_logged_and_never_committed_come_back_queued_with_their_ids(tmp_path):
    store = opened(tmp_path / "s.db")
    first = [row(store, 1), row(store, 2)]
    later = [row(store, 3)]
    assert log(store, first) and log(store, later)
    commit(store, first)  # the commit of 3 never happened
    store.close()  # what a kill leaves (the log is not emptied while rows wait)

    store = opened(tmp_path / "s.db")
    try:
        assert owed(store) == [
            (first[0][0], first[0][2], f"{SECRET} 1", 1001, "queued"),
            (first[1][0], first[1][2], f"{SECRET} 2", 1002, "queued"),
            (later[0][0], later[0][2], f"{SECRET} 3", 1003, "queued"),
        ]
        assert store.reserve_rowid() > later[0][0]  # the counter went past what came back
        assert log_path(tmp_path).stat().st_size == 0  # taken: the next opening adds nothing
    finally:
        store.close()
    assert not log_path(tmp_path).exists()  # closed with nothing waiting: removed
    with opened(tmp_path / "s.db") as store:
        assert len(owed(store)) == 3


def test_a_kill_9_right_after_logging_loses_nothing(tmp_path):
    """A real process: it logs a row, says so, and is killed before any commit."""
    script = textwrap.dedent(
        f"""
        import sys
        from enclave.store import Store
        store = Store.open(sys.argv[1], key=bytes(range(32)))
        store.upsert_peer({A!r}, {pem(A)!r}, "127.0.0.1:7000", "alice", 1.0)
        rowid = store.reserve_rowid()
        assert store.sending.append(bytes.fromhex({A!r}), [rowid], [b"k" * 16], ["typed, then killed"], [5])
        print(rowid, flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "s.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        rowid = int(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    with Store.open(tmp_path / "s.db", key=KEY) as store:
        assert owed(store) == [(rowid, b"k" * 16, "typed, then killed", 5, "queued")]


def test_committed_rows_never_come_back_even_once_their_contact_was_removed(tmp_path):
    """Removing a contact deletes its rows outright (no tombstone); added again, a kill
    must not bring back what was sent to it before: the mark says it was committed."""
    store = opened(tmp_path / "s.db")
    done, waiting = [row(store, 1)], [row(store, 2)]
    assert log(store, done) and log(store, waiting)
    commit(store, done)  # a mark: everything below row 2 is committed
    assert store.remove_peer(A)
    store.upsert_peer(A, pem(A), "127.0.0.1:7000", "alice", 1.0)
    store.close()  # row 2 still waits: the log stays
    with opened(tmp_path / "s.db") as store:
        assert [o[0] for o in owed(store)] == [waiting[0][0]]  # only the uncommitted one


def test_a_row_the_store_holds_is_not_written_twice(tmp_path):
    """A kill between a commit and its mark: the log still names committed rows."""
    store = opened(tmp_path / "s.db")
    rows = [row(store, 1), row(store, 2)]
    assert log(store, rows)
    store.sending.committed = lambda upto: None  # the mark never written
    commit(store, rows[:1])
    store.close()
    with opened(tmp_path / "s.db") as store:
        assert [(o[0], o[2]) for o in owed(store)] == [(r[0], r[3]) for r in rows]


def test_rows_to_an_unknown_contact_are_dropped_and_the_rest_come_back(tmp_path):
    store = opened(tmp_path / "s.db")
    rows = [row(store, 1), row(store, 2, peer=B), row(store, 3)]
    assert all(log(store, [r]) for r in rows)  # a record per peer, as delivery's dispatch
    store.close()
    with opened(tmp_path / "s.db") as store:
        assert [o[1] for o in owed(store)] == [rows[0][2], rows[2][2]]
        assert store.outbox_for(B) == []


def test_an_altered_record_is_skipped_and_a_torn_tail_ends_the_reading(tmp_path, caplog):
    store = opened(tmp_path / "s.db")
    kept, altered, torn = [row(store, 1)], [row(store, 2)], [row(store, 3)]
    for rows in (kept, altered, torn):
        assert log(store, rows)
    store.close()
    data = bytearray(log_path(tmp_path).read_bytes())
    size = len(data) // 3  # three records of the same size
    data[size + size // 2] ^= 1  # a bit of the second record's ciphertext
    log_path(tmp_path).write_bytes(bytes(data[: 3 * size - 5]))  # the third cut short
    with opened(tmp_path / "s.db") as store:
        assert [o[0] for o in owed(store)] == [kept[0][0]]
    assert "does not open" in caplog.text


def test_another_key_opens_no_record(tmp_path, caplog):
    store = opened(tmp_path / "s.db")
    assert log(store, [row(store, 1)])
    store.close()
    log_path(tmp_path).rename(tmp_path / "kept")
    other = opened(tmp_path / "o.db", key=OTHER_KEY)
    other.close()
    (tmp_path / "kept").rename(tmp_path / "o.db-sending")  # a log moved beside another store
    with opened(tmp_path / "o.db", key=OTHER_KEY) as other:
        assert owed(other) == []
    assert "does not open" in caplog.text


def test_opened_without_its_key_the_log_waits_for_the_key(tmp_path):
    store = opened(tmp_path / "s.db")
    rows = [row(store, 1)]
    assert log(store, rows)
    store.close()
    before = log_path(tmp_path).read_bytes()
    with Store.open(tmp_path / "s.db") as locked:  # a tool without the password
        assert locked.locked and not log(locked, [row(locked, 9, body="x")])
        locked.scrub()
    assert log_path(tmp_path).read_bytes() == before
    with opened(tmp_path / "s.db") as store:
        assert [o[0] for o in owed(store)] == [rows[0][0]]


def test_a_second_opening_neither_takes_nor_writes_the_log(tmp_path):
    first = opened(tmp_path / "s.db")
    try:
        rows = [row(first, 1)]
        assert log(first, rows)
        with opened(tmp_path / "s.db") as second:  # the same file, another opening
            assert owed(second) == []
            assert not log(second, [row(second, 2)])
        assert log_path(tmp_path).stat().st_size > 0  # still the first one's
        commit(first, rows)
    finally:
        first.close()
    assert not log_path(tmp_path).exists()  # nothing waited: removed
    with opened(tmp_path / "s.db") as store:
        assert [o[0] for o in owed(store)] == [rows[0][0]]


def test_the_file_is_private_sealed_and_removed_once_nothing_waits(tmp_path):
    store = opened(tmp_path / "s.db")
    path = log_path(tmp_path)
    try:
        rows = [row(store, 1), row(store, 2)]
        assert log(store, rows)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert SECRET.encode() not in path.read_bytes()
        commit(store, rows[:1])
        assert store.sending.waiting  # row 2 waits (behind a mark)
        commit(store, rows[1:])
        assert not store.sending.waiting
        assert store.sending.read()[1] == rows[1][0] + 1  # the last mark
    finally:
        store.close()
    assert not path.exists()


def test_a_store_without_its_key_logs_in_clear_as_it_stores(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        store.upsert_peer(A, pem(A), "127.0.0.1:7000", "alice", 1.0)
        rows = [row(store, 1)]
        assert log(store, rows)
        assert SECRET.encode() in log_path(tmp_path).read_bytes()
    with Store.open(tmp_path / "s.db") as store:
        assert [o[2] for o in owed(store)] == [f"{SECRET} 1"]


def test_compaction_keeps_what_waits_and_scrub_drops_erased_bodies(tmp_path, monkeypatch):
    monkeypatch.setattr(sending, "COMPACT_BYTES", 600)
    store = opened(tmp_path / "s.db")
    try:
        rows = [row(store, 1, body="gone 1 " + "x" * 100)]
        assert log(store, rows)
        for n in range(2, 12):  # each commit runs while the next row is logged
            ahead = [row(store, n, body="still waiting" if n == 11 else f"gone {n} " + "x" * 100)]
            assert log(store, ahead)
            commit(store, rows)
            rows = ahead
        data = log_path(tmp_path).read_bytes()
        assert len(data) < 600 + 200  # compacted on the way: ten records and marks are more
        logged, _ = store.sending.read()
        assert logged[-1][3] == "still waiting" and len(logged) < 5
        store.close()
        store = opened(tmp_path / "s.db")
        assert [o[2] for o in owed(store)][-1] == "still waiting"
        assert len(owed(store)) == 11  # the committed ones, and the one put back
        erased = [row(store, 20, body="deleted by its user")]
        assert log(store, erased)
        commit(store, erased)
        later = [row(store, 21, body="later")]
        assert log(store, later)  # waits: the log cannot be emptied
        store.mark_delivered(A, [erased[0][0]], 2000)
        assert store.delete_message(A, erased[0][0])  # an erasure compacts the log
        rows, mark = store.sending.read()
        assert [r[3] for r in rows] == ["later"] and mark > erased[0][0]
    finally:
        store.close()


def test_a_write_that_fails_logs_nothing_and_says_so_once(tmp_path, caplog):
    store = opened(tmp_path / "s.db")
    try:
        os.close(store.sending._fd)  # the descriptor gone: writes fail with EBADF
        store.sending._fd = os.open(os.devnull, os.O_RDONLY)
        assert not log(store, [row(store, 1)])
        assert not log(store, [row(store, 2)])
        assert caplog.text.count("wait for their commit") == 1
        assert not store.sending.waiting
    finally:
        store.close()


@pytest.mark.parametrize("junk", [b"", b"\x00\x00\x00", b"\x00\x00\x00\x00", b"\xff" * 9])
def test_junk_logs_put_nothing_back(tmp_path, junk):
    opened(tmp_path / "s.db").close()
    log_path(tmp_path).write_bytes(junk)
    with opened(tmp_path / "s.db") as store:
        assert owed(store) == []


_VALUES = st.recursive(
    st.none() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=7),
    max_leaves=30,
)


# A record of the right outer shape (peer, then columns): mostly columns of one length
# and sound values, among lengths and values that are not.
@st.composite
def _shaped(draw) -> list:
    n = draw(st.integers(0, 3))

    def column(values):
        return draw(st.lists(values, min_size=n, max_size=n) | st.lists(_VALUES, max_size=3))

    return [
        draw(st.sampled_from([bytes.fromhex(A), bytes.fromhex(B), b""])),
        column(st.integers(1, 1000) | st.integers(-5, 0) | st.integers(2**63 - 2**33, 2**64 - 1)),
        column(st.binary(min_size=16, max_size=16) | st.binary(max_size=40)),
        column(st.text(max_size=10)),
        column(st.integers(0, 2**41) | st.integers(-(2**63), 2**64 - 1)),
        draw(
            st.lists(st.tuples(st.integers(-2, 4), _VALUES, _VALUES, _VALUES, _VALUES), max_size=2)
        ),
    ]


_SHAPED = _shaped()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(_VALUES | _SHAPED, max_size=4), junk=st.binary(max_size=60))
def test_any_log_content_opens_the_store_and_puts_back_only_whole_rows(tmp_path, records, junk):
    """A log in clear (a store without its key) holds whatever someone wrote there:
    opening never fails on it, and only rows of the right shape to a known contact
    come back."""
    path = tmp_path / "c.db"
    for name in ("c.db", "c.db-wal", "c.db-shm", "c.db-sending"):
        (tmp_path / name).unlink(missing_ok=True)
    with Store.open(path) as store:
        store.upsert_peer(A, pem(A), "127.0.0.1:7000", "alice", 1.0)
    data = b"".join(
        len(body).to_bytes(4, "big") + body
        for body in (b"R" + msgpack.packb(r, use_bin_type=True) for r in records)
    )
    sending.path_for(path).write_bytes(data + junk)
    with Store.open(path) as store:
        for o in store.outbox_for(A):
            assert type(o.body) is str and o.state == "queued"


def test_a_compaction_cut_short_by_a_kill_leaves_the_log_whole(tmp_path):
    """A kill between writing the compacted copy and renaming it: the log is the old
    one, whole, and the stale copy goes at the next opening."""
    store = opened(tmp_path / "s.db")
    rows = [row(store, 1)]
    assert log(store, rows)
    store.close()
    stale = log_path(tmp_path).with_name("s.db-sending.tmp")
    stale.write_bytes(b"\x00\x00\x00\x09M" + (10**9).to_bytes(8, "big"))  # a mark past all
    with opened(tmp_path / "s.db") as store:
        assert [o[0] for o in owed(store)] == [rows[0][0]]
    assert not stale.exists()


def test_rows_logged_after_their_commit_are_not_kept(tmp_path):
    """A dispatch may log rows whose commit already ran (the node hears of it later):
    nothing waits for them, and a compaction leaves no copy of them."""
    store = opened(tmp_path / "s.db")
    try:
        rows = [row(store, 1, body="committed first")]
        commit(store, rows)
        assert log(store, rows) and not store.sending.waiting
        store.scrub()
        assert log_path(tmp_path).stat().st_size == 0
    finally:
        store.close()


def test_a_put_back_the_disk_refuses_fails_the_opening_and_keeps_the_log(tmp_path, monkeypatch):
    store = opened(tmp_path / "s.db")
    rows = [row(store, 1)]
    assert log(store, rows)
    store.close()
    before = log_path(tmp_path).read_bytes()

    def full(self, *args, **kw):
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as m:
        m.setattr(Store, "write_cycle", full)
        with pytest.raises(UserError, match="disk is full"):
            Store.open(tmp_path / "s.db", key=KEY)
    assert log_path(tmp_path).read_bytes() == before  # kept for the next opening
    with opened(tmp_path / "s.db") as store:
        assert [o[0] for o in owed(store)] == [rows[0][0]]


def test_a_link_in_place_of_the_log_is_left_alone(tmp_path, caplog):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"someone else's file")
    opened(tmp_path / "s.db").close()
    log_path(tmp_path).symlink_to(target)
    with opened(tmp_path / "s.db") as store:
        assert not store.sending.usable and not log(store, [row(store, 1)])
    assert target.read_bytes() == b"someone else's file"
    assert "cannot open" in caplog.text


def test_a_mark_that_could_not_be_written_is_written_at_the_next_commit(tmp_path):
    store = opened(tmp_path / "s.db")
    try:
        first, second = [row(store, 1)], [row(store, 2)]
        assert log(store, first) and log(store, second)
        fd, store.sending._fd = store.sending._fd, os.open(os.devnull, os.O_RDONLY)
        commit(store, first)  # its mark fails
        os.close(store.sending._fd)
        store.sending._fd = fd
        assert store.sending.read()[1] == 0
        third = [row(store, 3)]
        commit(store, second + third)  # (row 3 never logged)
        assert store.sending.read()[1] == third[0][0] + 1
    finally:
        store.close()
