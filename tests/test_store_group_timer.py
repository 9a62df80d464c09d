"""A group's disappearing-messages timer in the store (schema 14): the timer mirrored
with the records that set it, posts that expire by the timer of their epoch (ours on
every member's copy, a member's from min(created, stored)), and expire_due erasing
them (bodies gone from the file, sealed or not; a copy still owed never leaves)."""

import sqlite3

from test_store_groups import A, B, G, H, M, db_path, key_of, mid, post_in, raw, store  # noqa: F401

from enclave.store import Store, migrations
from enclave.store.migrations import migrate

HOUR = 3600


def timed_post_in(fp, n, lamport, seconds, created=None):
    """A member's post with its group's timer at its epoch (the 10th element)."""
    return (*post_in(fp, n, lamport, created=created), None, None, seconds)


def timed_post_out(store, members, n, lamport, expires, body=None):  # noqa: F811
    """Our post to ``members``: one row each, all with the same expiry."""
    body = f"mine {n}" if body is None else body
    return [
        (store.reserve_rowid(), fp, mid(n), body, lamport * 10, (G, 1, lamport, 1), None, None,
         expires)
        for fp in members
    ]  # fmt: skip


def expires(store, n):  # noqa: F811
    with store._lock:
        return store._db.execute(
            "SELECT expires_ms FROM messages WHERE id = ?", (mid(n),)
        ).fetchone()[0]


def test_the_timer_is_kept_with_the_records_that_set_it(store):  # noqa: F811
    assert store.get_group(G).disappear_s == 0
    store.add_group_records(G, 2, [b"r2"], disappear_s=HOUR)
    assert store.get_group(G).disappear_s == HOUR
    store.add_group_records(G, 3, [b"r3"])  # a record that is not a TIMER: unchanged
    assert store.get_group(G).disappear_s == HOUR
    assert store.group_timers() == {G: HOUR}
    store.create_group(H, "work", [b"h0", b"h1"], 600, disappear_s=60)
    assert {g.id: g.disappear_s for g in store.list_groups()} == {G: HOUR, H: 60}
    store.add_group_records(G, 4, [b"r4"], disappear_s=0)
    assert store.group_timers() == {H: 60}


def test_a_members_post_expires_by_the_timer_of_its_epoch(store):  # noqa: F811
    store.write_cycle(incoming=[post_in(A, 1, 1)])  # no timer: stays
    store.write_cycle(incoming=[timed_post_in(A, 2, 2, HOUR, created=500)])
    store.write_cycle(incoming=[timed_post_in(B, 3, 3, 0, created=600)])  # an epoch with none
    assert [expires(store, n) for n in (1, 2, 3)] == [None, 500 + HOUR * 1000, None]
    # A sender's clock ahead of ours keeps nothing longer: min(created, stored).
    ahead = (A, mid(4), "from the future", 10**12, 700, False, (G, 1, 4, 2), None, None, 60)
    store.write_cycle(incoming=[ahead])
    assert expires(store, 4) == 700 + 60_000


def test_our_post_and_a_members_post_are_erased_with_their_group(store, db_path):  # noqa: F811
    secret = "the safe is behind the painting"
    store.write_cycle(enqueue=timed_post_out(store, [A, B, M], 1, 1, 5_000, body=secret))
    theirs = timed_post_in(A, 2, 2, 60, created=100)
    store.write_cycle(incoming=[(*theirs[:2], secret + " (theirs)", *theirs[3:])])
    assert len(store.outbox_for(B)) == 1
    assert store.expire_due(4_999) == []
    gone = store.expire_due(100_000)
    assert sorted((e.peer, e.direction, e.group) for e in gone) == [
        (A, "in", G), (A, "out", G), (B, "out", G), (M, "out", G),
    ]  # fmt: skip
    assert {e.id for e in gone} == {mid(1), mid(2)}
    assert store.outbox_for(B) == [] and store.outbox_for(M) == []  # owed, never sent
    assert store.group_history(G, "ee" * 32) == []
    assert store.next_expiry() is None
    # A resend of the erased post is a duplicate: the tombstone keeps it out.
    assert store.write_cycle(incoming=[timed_post_in(A, 2, 2, 60, created=100)]) == [False]
    wal = db_path.parent / "enclave.db-wal"
    raw_bytes = db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert b"behind the painting" not in raw_bytes
    with Store.open(db_path, key=key_of(store)) as again:
        assert again.get_group(G).disappear_s == 0


def test_version_13_store_migrates_to_group_timers(db_path):  # noqa: F811
    db = sqlite3.connect(db_path, isolation_level=None)
    migrate(db, migrations.MIGRATIONS[:13])
    db.execute(
        "INSERT INTO groups (id, name, state, created_ms) VALUES (?, 'friends', 'member', 1)",
        (G,),
    )
    db.close()
    with Store.open(db_path) as s:
        assert s.schema_version == 14
        assert s.get_group(G).disappear_s == 0
    with raw(db_path) as db:
        assert db.execute("SELECT disappear_s FROM groups").fetchall() == [(0,)]
