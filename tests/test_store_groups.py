"""Groups in the store (schema 6): member peers, groups and their membership records,
group posts in the commit cycle and the outbox, group pages and counters, and the
migration from schema 5."""

import hashlib
import sqlite3
from contextlib import closing

import pytest

from enclave.store import GroupLine, GroupRow, Peer, Store, migrations
from enclave.store.migrations import SCHEMA_VERSION, migrate

A = "a1" * 32
B = "b2" * 32
C = "c3" * 32
M = "d4" * 32  # a member who is not a contact
ME = "ee" * 32  # our own fingerprint (never a row of peers)
G = b"G" * 16
H = b"H" * 16


def pem(tag: str) -> str:
    body = hashlib.sha256(tag.encode()).hexdigest()
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


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
        s.add_member_peer(M, pem(M), 1000.0)
        s.create_group(G, "friends", [b"r0", b"r1"], 500)
        yield s


def post_in(fp, n, lamport, seq=1, epoch=1, group=G, body=None, created=None):
    """A received post: an incoming row with its group element."""
    created = lamport * 10 if created is None else created
    body = f"post {n}" if body is None else body
    return (fp, mid(n), body, created, created + 1, False, (group, epoch, lamport, seq))


def post_out(store, members, n, lamport, seq, epoch=1, group=G, body=None):
    """Our own post: one outgoing row per member, all with the same id."""
    body = f"mine {n}" if body is None else body
    return store.enqueue_outgoing(
        [(fp, mid(n), body, lamport * 10, (group, epoch, lamport, seq)) for fp in members]
    )


def raw(path):
    return closing(sqlite3.connect(path))


# -- migration ------------------------------------------------------------------------------


def test_version_5_store_with_data_migrates_to_groups(db_path):
    """A schema-5 file keeps every peer and message: each peer is a contact, each message
    a direct one, and groups can be made at once."""
    db = sqlite3.connect(db_path, isolation_level=None)
    migrate(db, migrations.MIGRATIONS[:5])
    for fp, name in ((A, "alice"), (B, None)):
        db.execute(
            "INSERT INTO peers (fingerprint, name, public_key, address, added_at)"
            " VALUES (?, ?, ?, '10.0.0.1:7000', 1.0)",
            (fp, name, pem(fp)),
        )
    rows = [  # rowid, peer, direction, body, state, owed
        (1, 1, "in", "hello", "received", None),
        (2, 1, "out", "delivered one", "delivered", None),
        (3, 1, "out", "still owed", "queued", 3),
        (4, 2, "in", None, "deleted", None),
        (5, 2, "in", "hi bob", "received", None),
    ]
    for rowid, peer, direction, body, state, owed in rows:
        db.execute(
            "INSERT INTO messages (rowid, peer, direction, id, body, created_ms, stored_ms,"
            " state, owed) VALUES (?, ?, ?, ?, ?, 10, 20, ?, ?)",
            (rowid, peer, direction, mid(rowid), body, state, owed),
        )
    db.close()
    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION == 14
        assert [(p.fingerprint, p.name, p.contact) for p in s.list_peers()] == [
            (A, "alice", True),
            (B, None, True),
        ]
        assert [(m.rowid, m.body, m.state) for m in s.history(A)] == [
            (1, "hello", "received"),
            (2, "delivered one", "delivered"),
            (3, "still owed", "queued"),
        ]
        assert [m.body for m in s.history(B)] == ["hi bob"]
        [owed] = s.outbox_for(A)
        assert (owed.rowid, owed.group) == (3, None)
        assert s.list_groups() == []
        s.create_group(G, "friends", [b"r0"], 30)
        [rowid] = s.enqueue_outgoing([(A, mid(9), "to the group", 40, (G, 0, 1, 1))])
        assert rowid > 5  # new rows continue after the old rowids
    with raw(db_path) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (6,)
        assert db.execute(
            "SELECT count(*) FROM messages WHERE rowid <= 5 AND grp IS NULL AND lamport IS NULL"
            " AND epoch IS NULL AND gseq IS NULL"
        ).fetchone() == (5,)
        assert db.execute("SELECT DISTINCT contact FROM peers").fetchall() == [(1,)]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_schema")}
        assert {"groups", "group_records", "messages_by_group"} <= tables
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- member peers ---------------------------------------------------------------------------


def test_members_are_peers_but_not_contacts(store):
    assert [p.fingerprint for p in store.list_peers()] == [A, B, C]
    assert [p.fingerprint for p in store.list_peers(members=True)] == [A, B, C, M]
    member = store.get_peer(M)
    assert (member.contact, member.name, member.address) == (False, None, None)
    assert store.get_peer(A).contact


def test_add_member_peer_leaves_a_known_peer_as_it_is(store):
    assert not store.add_member_peer(A, pem(A), 2000.0)
    alice = store.get_peer(A)
    assert (alice.contact, alice.name, alice.added_at) == (True, "alice", 1000.0)
    assert not store.add_member_peer(M, pem(M), 2000.0)
    assert store.get_peer(M).added_at == 1000.0
    with pytest.raises(ValueError, match="different public key"):
        store.add_member_peer(A, pem("another"), 2000.0)
    with pytest.raises(ValueError, match="different public key"):
        store.add_member_peer(M, pem("another"), 2000.0)


def test_upsert_makes_a_member_a_contact(store):
    assert not store.upsert_peer(M, pem(M), "10.0.0.4:7000", "dave", 2000.0)
    dave = store.get_peer(M)
    assert (dave.contact, dave.name, dave.address) == (True, "dave", "10.0.0.4:7000")
    assert [p.fingerprint for p in store.list_peers()] == [A, B, M, C]


def test_positional_peer_construction_still_works(store):
    alice = store.get_peer(A)
    fields = [getattr(alice, f) for f in ("fingerprint", "name", "public_key", "address")]
    again = Peer(*fields, True, "auto", False, False, 0, 1.0, None)
    assert again.contact is True and again.learned_address is None


# -- groups and their records ---------------------------------------------------------------


def test_create_and_read_groups(store):
    key = store.create_group(H, "work", [b"h0"], 600)
    assert store.get_group(H) == GroupRow(key, H, "work", "member", 600, (b"h0",))
    [g, h] = store.list_groups()
    assert (g.id, g.name, g.records) == (G, "friends", (b"r0", b"r1"))
    assert h.key == key
    assert store.get_group(b"x" * 16) is None
    with pytest.raises(sqlite3.IntegrityError):
        store.create_group(H, "again", [], 700)
    with pytest.raises(ValueError):
        store.create_group(b"short", "bad", [], 700)
    with pytest.raises(TypeError):
        store.create_group(b"y" * 16, "bad", ["not bytes"], 700)
    assert store.get_group(b"y" * 16) is None


def test_add_group_records_appends_in_order(store):
    assert store.add_group_records(G, 2, [b"r2", b"r3"]) == 2
    assert store.get_group(G).records == (b"r0", b"r1", b"r2", b"r3")
    # The same records again (an overlap) add only what is new.
    assert store.add_group_records(G, 3, [b"r3", b"r4"], name="best friends") == 1
    g = store.get_group(G)
    assert (g.name, g.records[-1], len(g.records)) == ("best friends", b"r4", 5)


def test_a_gap_or_a_conflict_changes_nothing(store):
    with pytest.raises(ValueError, match="gap"):
        store.add_group_records(G, 3, [b"r3"], name="renamed")
    with pytest.raises(ValueError, match="another record for epoch 1"):
        store.add_group_records(G, 0, [b"r0", b"changed", b"r2"], state="left")
    with pytest.raises(ValueError, match="another record for epoch 1"):
        store.add_group_records(G, 1, [b"changed"])
    g = store.get_group(G)
    assert (g.name, g.state, g.records) == ("friends", "member", (b"r0", b"r1"))
    with pytest.raises(ValueError, match="no group"):
        store.add_group_records(H, 0, [b"h0"])


def test_group_state(store):
    assert store.set_group_state(G, "left")
    assert store.get_group(G).state == "left"
    store.add_group_records(G, 2, [b"r2"], state="removed")
    assert store.get_group(G).state == "removed"
    assert not store.set_group_state(H, "left")
    with pytest.raises(ValueError):
        store.set_group_state(G, "banned")


# -- posts in the commit cycle --------------------------------------------------------------


def test_write_cycle_mixes_plain_and_group_rows_both_ways(store):
    flags = store.write_cycle(
        incoming=[
            (A, mid(1), "direct", 10, 11, False),
            post_in(B, 2, lamport=5),
            (B, mid(3), "direct too", 12, 13, False, None),  # None: a direct message
            post_in(A, 4, lamport=6),
            post_in(B, 2, lamport=5),  # the same post twice in one batch
        ],
        enqueue=[
            (store.reserve_rowid(), A, mid(7), "to alice", 20),
            (store.reserve_rowid(), A, mid(8), "ours", 70, (G, 1, 7, 1)),
            (store.reserve_rowid(), B, mid(8), "ours", 70, (G, 1, 7, 1)),
            (store.reserve_rowid(), C, mid(9), "to carol", 21, None),
        ],
    )
    assert flags == [True, True, True, True, False]
    # Resent: duplicates again, whichever way they come.
    assert store.store_incoming(
        [post_in(B, 2, lamport=5), (A, mid(1), "direct", 10, 11, False)]
    ) == [
        False,
        False,
    ]
    assert [m.body for m in store.history(A)] == ["to alice", "direct"]  # by rowid
    assert [m.body for m in store.history(B)] == ["direct too"]
    assert [m.body for m in store.history(C)] == ["to carol"]
    lines = store.group_history(G, ME)
    assert [(line.sender, line.body) for line in lines] == [
        (B, "post 2"),
        (A, "post 4"),
        (ME, "ours"),
    ]
    assert lines[-1].states == {A: "queued", B: "queued"}


def test_group_posts_keep_the_dedupe_key_of_direct_ones(store):
    assert store.store_incoming([post_in(A, 1, lamport=3, created=100)]) == [True]
    # The same id with another created_ms is another message, as for a direct one.
    assert store.store_incoming([post_in(A, 1, lamport=3, created=101)]) == [True]
    # The same (peer, created_ms, id) is a duplicate whether or not it says it is a post.
    assert store.store_incoming([(A, mid(1), "post 1", 100, 5, False)]) == [False]


def test_unknown_group_fails_the_whole_cycle(db_path, store):
    before = store.reserve_rowid()
    with pytest.raises(sqlite3.IntegrityError, match="no group"):
        store.write_cycle(
            incoming=[(A, mid(1), "direct", 10, 11, False)],
            enqueue=[
                (store.reserve_rowid(), A, mid(2), "to alice", 20),
                (store.reserve_rowid(), B, mid(3), "lost", 30, (H, 0, 1, 1)),
            ],
        )
    with pytest.raises(sqlite3.IntegrityError, match="no group"):
        store.store_incoming([(A, mid(4), "direct", 10, 11, False), post_in(A, 5, 1, group=H)])
    with raw(db_path) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    assert store.reserve_rowid() > before


def test_malformed_group_elements_are_refused(store):
    for group in ((G, 1, 2), (b"short", 1, 2, 3), (G, 1, -2, 3), (G, 1.0, 2, 3), [G, 1, 2, 3]):
        with pytest.raises((TypeError, ValueError)):
            store.enqueue_outgoing([(A, mid(1), "x", 1, group)])
    with pytest.raises(ValueError):
        store.store_incoming([(A, mid(1), "x", 1, 2, False, None, "extra")])
    assert store.outbox_peers() == []


def test_a_post_id_is_once_per_member_but_not_twice_for_one(store):
    post_out(store, [A, B, M], 1, lamport=1, seq=1)
    with pytest.raises(sqlite3.IntegrityError, match="twice"):
        post_out(store, [A, A], 2, lamport=2, seq=2)
    assert len(store.group_history(G, ME)) == 1


# -- the outbox and acks --------------------------------------------------------------------


def test_outbox_carries_the_group_after_reopening(db_path, store):
    [direct] = store.enqueue_outgoing([(A, mid(1), "direct", 10)])
    [to_a, to_m] = post_out(store, [A, M], 2, lamport=9, seq=4, epoch=3)
    key = key_of(store)
    store.close()
    with Store.open(db_path, key=key) as s:
        items = s.outbox_for(A)
        assert [(o.rowid, o.group) for o in items] == [(direct, None), (to_a, (G, 3, 9, 4))]
        assert (items[1].id, items[1].body, items[1].created_ms) == (mid(2), "mine 2", 90)
        [item] = s.outbox_for(M)
        assert (item.rowid, item.group) == (to_m, (G, 3, 9, 4))
        assert set(s.outbox_peers()) == {A, M}


def test_acks_settle_each_members_row(store):
    rowids = post_out(store, [A, B, M], 1, lamport=1, seq=1)
    store.write_cycle(delivered=[(A, [rowids[0]]), (M, [rowids[2]])], now_ms=50)
    [line] = store.group_history(G, ME)
    assert line.states == {A: "delivered", B: "queued", M: "delivered"}
    assert line.rowids == tuple(rowids)
    assert [o.rowid for o in store.outbox_for(B)] == [rowids[1]]
    assert store.outbox_for(A) == [] and store.outbox_for(M) == []
    assert store.mark_delivered(B, [rowids[1]], now_ms=60) == 1
    assert store.group_history(G, ME)[0].states == dict.fromkeys((A, B, M), "delivered")


def test_a_failed_post_is_not_a_direct_failure_and_requeue_keeps_its_group(store):
    [to_a] = post_out(store, [A], 1, lamport=2, seq=1)
    [direct] = store.enqueue_outgoing([(A, mid(2), "direct", 10)])
    store.mark_failed([to_a, direct], "timed out")
    assert [m.rowid for m in store.failed_messages()] == [direct]
    assert [m.rowid for m in store.failed_messages(A)] == [direct]
    assert store.group_history(G, ME)[0].states == {A: "failed"}
    store.requeue([to_a])
    [item] = store.outbox_for(A)
    assert (item.rowid, item.group) == (to_a, (G, 1, 2, 1))


# -- pages ----------------------------------------------------------------------------------


def test_group_history_orders_by_lamport_then_sender(store):
    store.store_incoming(
        [
            post_in(B, 1, lamport=3),
            post_in(A, 2, lamport=3),  # the same Lamport time: A's fingerprint sorts first
            post_in(C, 3, lamport=1),
            post_in(M, 4, lamport=5),
        ]
    )
    post_out(store, [A, B, C, M], 5, lamport=3, seq=1)  # ME ("ee…") after A, B and C
    post_out(store, [A, B, C, M], 6, lamport=6, seq=2)
    lines = store.group_history(G, ME)
    assert [(line.lamport, line.sender) for line in lines] == [
        (1, C),
        (3, A),
        (3, B),
        (3, ME),
        (5, M),
        (6, ME),
    ]
    mine = lines[3]
    assert mine == GroupLine(
        mid(5),
        ME,
        "out",
        "mine 5",
        30,
        30,
        3,
        1,
        1,
        dict.fromkeys((A, B, C, M), "queued"),
        mine.rowids,
    )
    assert len(mine.rowids) == 4
    received = lines[1]
    assert (received.direction, received.states, received.seq, received.epoch) == ("in", {}, 1, 1)
    assert len(received.rowids) == 1


def test_group_history_pages_through_ties(store):
    members = [A, B]
    store.store_incoming([post_in(fp, n, lamport=n // 3) for n, fp in enumerate([A, B, C] * 4)])
    post_out(store, members, 100, lamport=2, seq=1)
    everything = store.group_history(G, ME, limit=100)
    keys = [(line.lamport, line.sender) for line in everything]
    assert keys == sorted(keys) and len(keys) == 13
    # Pages of 3 (cutting through ties), newest first, join up to the whole history.
    pages, before = [], None
    while page := store.group_history(G, ME, limit=3, before=before):
        assert len(page) == 3 or len(pages) == 4
        pages.insert(0, page)
        before = (page[0].lamport, page[0].sender)
    assert [line for page in pages for line in page] == everything
    assert store.group_history(G, ME, limit=2)[-1] == everything[-1]
    assert store.group_history(G, ME, limit=0) == []
    assert store.group_history(H, ME) == []


def test_direct_history_search_and_sizes_leave_group_posts_out(store):
    store.store_incoming(
        [(A, mid(1), "hello alice", 10, 11, False), post_in(A, 2, 1, body="hello group")]
    )
    post_out(store, [A, B], 3, lamport=2, seq=1, body="hello from me")
    assert [m.body for m in store.history(A)] == ["hello alice"]
    assert store.history(B) == []
    assert [m.body for m in store.search_messages("hello")] == ["hello alice"]
    assert store.incoming_size(A) == (1, len("hello alice"))
    # Deleting the direct conversation leaves the group's posts alone.
    assert store.delete_history(A) == 1
    assert len(store.group_history(G, ME)) == 2
    assert store.group_history(G, ME)[-1].states == {A: "queued", B: "queued"}


def plans(db_path, store, call) -> list[str]:
    """The query plans of the SELECTs ``call`` runs on the store's connection."""
    statements = []
    store._db.set_trace_callback(statements.append)  # with the values bound
    try:
        call()
    finally:
        store._db.set_trace_callback(None)
    with raw(db_path) as db:
        return [
            " ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in statements
            if sql.lstrip().upper().startswith("SELECT")
        ]


def test_pages_read_through_their_indexes(db_path, store):
    store.store_incoming([(A, mid(1), "direct", 10, 11, False), post_in(A, 2, 1)])
    [direct] = plans(db_path, store, lambda: store.history(A, before_rowid=10))
    assert "messages_by_peer" in direct
    page = plans(db_path, store, lambda: store.group_history(G, ME))
    assert any("messages_by_group" in plan for plan in page)


def test_group_post_counters(store):
    assert store.group_post_counters(G, ME) == (0, 0)
    store.store_incoming([post_in(A, 1, lamport=4, seq=9)])
    assert store.group_post_counters(G, ME) == (4, 0)  # their seq is not ours
    post_out(store, [A, B], 2, lamport=5, seq=1)
    post_out(store, [A, B], 3, lamport=7, seq=2)
    store.store_incoming([post_in(B, 4, lamport=11, seq=1)])
    assert store.group_post_counters(G, ME) == (11, 2)
    assert store.group_post_counters(H, ME) == (0, 0)


def test_delete_group_takes_its_posts_and_records(db_path, store):
    store.create_group(H, "work", [b"h0"], 600)
    store.store_incoming([post_in(A, 1, 1), post_in(A, 2, 1, group=H)])
    post_out(store, [A, B], 3, lamport=2, seq=1)
    [direct] = store.enqueue_outgoing([(A, mid(4), "direct", 10)])
    assert store.delete_group(G)
    assert not store.delete_group(G)
    assert store.get_group(G) is None and [g.id for g in store.list_groups()] == [H]
    assert store.group_history(G, ME) == []
    assert [line.id for line in store.group_history(H, ME)] == [mid(2)]
    assert [o.rowid for o in store.outbox_for(A)] == [direct]
    assert store.outbox_for(B) == []
    with raw(db_path) as db:
        assert db.execute("SELECT count(*) FROM group_records").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (2,)
