"""Disappearing messages in the store (schema 12): the newest TIMER holds, expiries are
fixed when a row is written, and expired rows are erased (bodies gone from the file)."""

import sqlite3

import pytest
from test_store import A, B, incoming, mid, pem

from enclave.store import Store


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "enclave.db"


@pytest.fixture
def store(db_path):
    with Store.open(db_path) as s:
        for fp, name in ((A, "alice"), (B, "bob")):
            s.upsert_peer(fp, pem(fp), "127.0.0.1:7000", name, 1000.0)
        yield s


HOUR = 3600


def timer_in(fp, n, seconds, created):
    """A TIMER's incoming row (9th element: its seconds)."""
    return (fp, mid(n), "", created, created + 1, False, None, None, seconds)


def timer_out(s, fp, n, seconds, created):
    """Our TIMER's outgoing row (8th element: its seconds)."""
    return (s.reserve_rowid(), fp, mid(n), "", created, None, None, seconds)


def chat_out(s, fp, n, body, created, expires=None):
    return (s.reserve_rowid(), fp, mid(n), body, created, None, None, None, expires)


def test_a_contacts_timer_applies_and_later_chats_expire(store):
    store.write_cycle(incoming=[incoming(A, 1, created=10)])  # before any timer: never expires
    store.write_cycle(incoming=[timer_in(A, 2, HOUR, 100), incoming(A, 3, created=200)])
    assert store.get_peer(A).disappear_s == HOUR
    assert store.get_peer(B).disappear_s == 0
    by_id = {m.id: m for m in store.history(A)}
    assert by_id[mid(1)].expires_ms is None
    assert by_id[mid(2)].timer_s == HOUR and by_id[mid(2)].expires_ms is None  # the system line
    assert by_id[mid(3)].expires_ms == 200 + HOUR * 1000  # min(created, stored) + timer
    store.write_cycle(incoming=[incoming(A, 4, created=300)])  # a later commit: fast path
    assert store.message(A, mid=mid(4), direction="in").expires_ms == 300 + HOUR * 1000
    store.write_cycle(incoming=[incoming(B, 5, created=300)])  # another contact: none
    assert store.message(B, mid=mid(5), direction="in").expires_ms is None


def test_a_chat_before_the_timer_in_the_same_commit_keeps_none(store):
    store.write_cycle(incoming=[incoming(A, 1, created=50), timer_in(A, 2, HOUR, 60)])
    assert store.message(A, mid=mid(1), direction="in").expires_ms is None


def test_the_newest_timer_holds_whatever_order_they_arrive_in(store, db_path):
    ours = timer_out(store, A, 7, 60, 1000)  # we set 1 minute at t=1000
    theirs = timer_in(A, 8, HOUR, 2000)  # they set 1 hour at t=2000
    store.write_cycle(incoming=[theirs])
    store.write_cycle(enqueue=[ours])  # ours is older: its row stays, the timer does not change
    assert store.get_peer(A).disappear_s == HOUR
    assert {m.timer_s for m in store.history(A)} == {60, HOUR}
    other = db_path.parent / "other.db"
    with Store.open(other) as s2:  # the other side sees them the other way round
        s2.upsert_peer(A, pem(A), None, "alice", 1.0)
        s2.write_cycle(incoming=[timer_in(A, 7, 60, 1000)])
        s2.write_cycle(enqueue=[timer_out(s2, A, 8, HOUR, 2000)])
        assert s2.get_peer(A).disappear_s == HOUR
    # Same time: the greater id wins.
    store.write_cycle(incoming=[timer_in(A, 9, 0, 2000)])
    assert store.get_peer(A).disappear_s == 0


def test_a_duplicate_timer_changes_nothing(store):
    store.write_cycle(incoming=[timer_in(A, 1, HOUR, 100)])
    store.write_cycle(enqueue=[timer_out(store, A, 2, 0, 200)])
    assert store.get_peer(A).disappear_s == 0
    assert store.write_cycle(incoming=[timer_in(A, 1, HOUR, 100)]) == [False]
    assert store.get_peer(A).disappear_s == 0


def test_our_messages_keep_the_expiry_they_were_sent_with(store):
    store.write_cycle(enqueue=[chat_out(store, A, 1, "bye", 100, expires=100 + 60_000)])
    assert store.message(A, mid=mid(1), direction="out").expires_ms == 100 + 60_000
    assert store.next_expiry() == 100 + 60_000


def test_expire_due_erases_bodies_and_takes_them_out_of_the_outbox(store, db_path):
    secret = "the launch code is 8437"
    store.write_cycle(enqueue=[chat_out(store, A, 1, secret, 100, expires=5_000)])
    store.write_cycle(incoming=[timer_in(A, 2, HOUR, 100)])
    store.write_cycle(incoming=[incoming(A, 3, body=secret + " (theirs)", created=200)])
    store.write_cycle(enqueue=[chat_out(store, A, 4, "stays", 100)])
    assert store.expire_due(4_999) == []
    gone = store.expire_due(5_000)
    assert gone == [(A, gone[0][1], mid(1), "out", None)]
    assert [m.id for m in store.outbox_for(A)] == [mid(4)]  # queued and expired: never sent
    assert [(e.peer, e.id, e.direction) for e in store.expire_due(200 + HOUR * 1000)] == [
        (A, mid(3), "in")
    ]
    assert [m.body for m in store.history(A)] == ["", "stays"]  # the system line stays
    assert store.next_expiry() is None
    # A resend of an expired message is a duplicate: the tombstone keeps it out.
    assert store.write_cycle(incoming=[incoming(A, 3, body="again", created=200)]) == [False]
    wal = db_path.parent / "enclave.db-wal"
    raw = db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert secret.encode() not in raw  # overwritten in the file and the WAL, not unlinked


def test_a_failed_commit_forgets_the_timer_it_applied(store):
    store.write_cycle(incoming=[timer_in(A, 1, HOUR, 100)])
    with pytest.raises(sqlite3.IntegrityError):  # the same outgoing id twice: rolled back
        store.write_cycle(enqueue=[timer_out(store, A, 2, 0, 200), timer_out(store, A, 2, 0, 200)])
    assert store.get_peer(A).disappear_s == HOUR
    store.write_cycle(incoming=[incoming(A, 3, created=300)])
    assert store.message(A, mid=mid(3), direction="in").expires_ms == 300 + HOUR * 1000


def test_the_outbox_carries_a_timer_through_restarts(store):
    store.write_cycle(enqueue=[timer_out(store, A, 1, HOUR, 100)])
    (item,) = store.outbox_for(A)
    assert item.timer == HOUR and item.body == ""
    assert store.disappear_timers() == {A: HOUR}
