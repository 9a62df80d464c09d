"""What people wrote is sealed in the store file (store/sealing.py): the bytes on disk,
rows altered or swapped by someone holding the file, the wrong key, no key, and sealing
a store an older Enclave wrote in clear (resumable)."""

import hashlib
import sqlite3
from contextlib import closing

import pytest

from enclave.errors import UserError
from enclave.store import Store
from enclave.store.records import FileOffer, SourceFile
from enclave.store.sealing import (
    DAMAGED,
    LOCKED,
    NONCE,
    OVERHEAD,
    RECORD_MAGIC,
    Sealer,
    message_ad,
)

A, B, C, D = "a1" * 32, "b2" * 32, "c3" * 32, "d4" * 32
KEY, OTHER_KEY = bytes(range(32)), bytes(range(1, 33))
MARKER = "Zanzibar-marker-7f3"
G = b"g" * 16


def pem(tag: str) -> str:
    return f"-----BEGIN PUBLIC KEY-----\n{hashlib.sha256(tag.encode()).hexdigest()}\n-----END PUBLIC KEY-----\n"


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def with_peers(store: Store) -> Store:
    store.upsert_peer(A, pem(A), "127.0.0.1:7000", "alice", 1.0)
    store.upsert_peer(B, pem(B), "127.0.0.1:7001", "bob", 1.0)
    return store


def chat(store: Store, n: int = 1) -> None:
    """Direct messages both ways, a group post both ways and a file offer, each with the
    marker word."""
    store.store_incoming([(A, mid(n), f"in {MARKER} {n}", n, n + 1, False)])
    store.enqueue_outgoing([(A, mid(n + 1000), f"out {MARKER} {n}", n)])
    if store.get_group(G) is None:
        store.create_group(G, f"crew {MARKER}", [b"r0"], 5)
    store.store_incoming([(B, mid(n + 2000), f"post {MARKER}", 7, 8, False, (G, 0, n, n))])
    store.enqueue_outgoing([(B, mid(n + 3000), f"mine {MARKER}", 9, (G, 0, n, n))])
    size = 1 << 20
    digest = hashlib.sha256(b"0").digest()
    offer = FileOffer(mid(n + 4000), f"{MARKER}.pdf", size, size, "sha256", digest, digest)
    store.create_outgoing(A, offer, SourceFile("/tmp/x.pdf", size, 1), 10)


def on_disk(path) -> bytes:
    """Every byte Enclave's store keeps: the database, its WAL, shared memory, sending log."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def bodies(store: Store) -> list[str]:
    return [m.body for fp in (A,) for m in store.history(fp)]


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "enclave.db"


def test_sealed_text_never_reaches_the_file_and_reads_back(db_path):
    with with_peers(Store.open(db_path, key=KEY)) as store:
        chat(store)
        assert MARKER.encode() not in on_disk(db_path)  # the WAL holds the new pages
        assert bodies(store) == [f"in {MARKER} 1", f"out {MARKER} 1", f"{MARKER}.pdf"]
        assert [o.body for o in store.outbox_for(A)] == [f"out {MARKER} 1"]
        posts = store.group_history(G, B)
        assert {p.body for p in posts} == {f"post {MARKER}", f"mine {MARKER}"}
        assert store.get_group(G).name == store.list_groups()[0].name == f"crew {MARKER}"
        [t] = store.transfers_of(A)
        assert store.get_transfer(t.key).offer.name == t.offer.name == f"{MARKER}.pdf"
        assert [m.file.name for m in store.history(A) if m.file] == [f"{MARKER}.pdf"]
        assert [m.body for m in store.search_messages(MARKER.upper())] == bodies(store)
    with closing(sqlite3.connect(db_path)) as raw:
        kinds = {t for (t,) in raw.execute("SELECT DISTINCT typeof(body) FROM messages")}
    assert kinds == {"blob"}
    assert MARKER.encode() not in on_disk(db_path)


@pytest.mark.parametrize("count", [3, 300])  # 300: the compiled twin lets the GIL go
def test_a_batch_is_sealed_row_by_row_and_each_row_reads_alone(db_path, count):
    texts = [f"{MARKER} {i} " + "é✓" * (i % 5) for i in range(count)]
    with with_peers(Store.open(db_path, key=KEY)) as store:
        store.write_cycle(
            enqueue=[(store.reserve_rowid(), A, mid(i), t, i) for i, t in enumerate(texts)],
            incoming=[(B, mid(i), t, i, i, False) for i, t in enumerate(texts)],
        )
        assert [m.body for m in store.history(A, count)] == texts
        assert [m.body for m in store.history(B, count)] == texts
    with closing(sqlite3.connect(db_path)) as raw:
        nonces = [bytes(b[:NONCE]) for (b,) in raw.execute("SELECT body FROM messages")]
        raw.execute(  # one outgoing body moved onto another row: it must not open there
            "UPDATE messages SET body = (SELECT body FROM messages WHERE direction = 'out'"
            " ORDER BY rowid LIMIT 1 OFFSET 1) WHERE rowid = (SELECT min(rowid) FROM"
            " messages WHERE direction = 'out')"
        )
        raw.commit()
    assert len(set(nonces)) == len(nonces) == 2 * count
    assert MARKER.encode() not in on_disk(db_path)
    with Store.open(db_path, key=KEY) as store:
        got = [m.body for m in store.history(A, count)]
    assert got == [DAMAGED] + texts[1:]


@pytest.mark.parametrize("key", [None, KEY], ids=["clear", "sealed"])
@pytest.mark.parametrize("group", [None, (G, 0, 1, 1)], ids=["chat", "post"])
def test_a_rowid_not_an_int_is_refused_alike_in_clear_and_sealed(db_path, key, group):
    with with_peers(Store.open(db_path, key=key)) as store:
        store.create_group(G, "crew", [b"r0"], 5)
        good = (store.reserve_rowid(), A, mid(1), "fine", 1)
        bad = (True, A, mid(2), "not fine", 2) + ((group,) if group else ())
        with pytest.raises(TypeError, match="rowid is an int"):
            store.write_cycle(enqueue=[good, bad])
        assert store.history(A) == []  # nothing of the batch was written


def test_quota_counts_the_text_not_the_seal(db_path, tmp_path):
    sizes = []
    for key, path in ((None, db_path), (KEY, tmp_path / "sealed.db")):
        with with_peers(Store.open(path, key=key)) as store:
            store.store_incoming([(A, mid(i), "é" * i, i, i, False) for i in range(1, 20)])
            sizes.append(store.incoming_size(A))
    assert sizes[0] == sizes[1] == (19, 2 * sum(range(1, 20)))
    assert OVERHEAD == 28


@pytest.mark.parametrize(
    ("change", "what"),
    [
        # Another row's sealed body pasted over this one.
        ("UPDATE messages SET body = (SELECT body FROM messages WHERE rowid = {other})"
         " WHERE rowid = {row}", "swapped"),
        # The row moved to another contact, or to the other direction.
        ("UPDATE messages SET peer = (SELECT id FROM peers WHERE fingerprint = '" + B + "')"
         " WHERE rowid = {row}", "moved"),
        ("UPDATE messages SET direction = 'out' WHERE rowid = {row}", "turned"),
        ("UPDATE messages SET body = substr(body, 1, 20) WHERE rowid = {row}", "truncated"),
        ("UPDATE messages SET body = x'00' WHERE rowid = {row}", "shorter than a tag"),
        ("UPDATE messages SET body = CAST(body || x'00' AS BLOB) WHERE rowid = {row}", "grown"),
    ],
)  # fmt: skip
def test_an_altered_row_reads_as_damaged_and_the_rest_still_reads(db_path, change, what):
    with with_peers(Store.open(db_path, key=KEY)) as store:
        store.store_incoming(
            [(A, mid(1), "first", 1, 1, False), (A, mid(2), "second", 2, 2, False)]
        )
        row, other = (m.rowid for m in store.history(A))
    with closing(sqlite3.connect(db_path)) as raw:
        raw.execute(change.format(row=row, other=other))
        raw.commit()
    with Store.open(db_path, key=KEY) as store:
        everything = [m.body for fp in (A, B) for m in store.history(fp)]
    assert sorted(everything) == [DAMAGED, "second"], what


def test_the_wrong_key_is_refused_and_the_file_left_as_it_was(db_path):
    with with_peers(Store.open(db_path, key=KEY)) as store:
        chat(store)
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    with pytest.raises(UserError, match="encrypted under another identity's key file"):
        Store.open(db_path, key=OTHER_KEY)
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before


def test_without_the_key_a_sealed_store_reads_locked_and_writes_nothing_in_clear(db_path):
    with with_peers(Store.open(db_path, key=KEY)) as store:
        chat(store)
    with Store.open(db_path) as store:
        assert not store.sealed
        assert set(bodies(store)) == {LOCKED}
        assert [p.name for p in store.list_peers()] == [LOCKED, LOCKED]
        assert [p.fingerprint for p in store.list_peers()] == [A, B]  # the rest works
        assert store.find_peers("alice") == store.find_peers(LOCKED) == []
        assert [p.fingerprint for p in store.find_peers(A[:8])] == [A]
        store.set_blocked(B, True)
        with pytest.raises(UserError, match="needs the password"):
            store.set_name(A, f"clear {MARKER}")
        with pytest.raises(UserError, match="needs the password"):
            store.upsert_peer(C, pem(C), None, f"clear {MARKER}", 2.0)
        assert store.get_peer(C) is None  # nothing of it was written
        with pytest.raises(UserError, match="needs the password"):
            store.enqueue_outgoing([(A, mid(77), f"clear {MARKER}", 5)])
        with pytest.raises(UserError, match="needs the password"):
            store.store_incoming([(A, mid(78), f"clear {MARKER}", 5, 5, False)])
    assert MARKER.encode() not in on_disk(db_path)


def test_a_clear_store_is_sealed_at_the_first_open_with_the_key(db_path):
    with with_peers(Store.open(db_path)) as store:  # as an older Enclave wrote it
        store.upsert_peer(C, pem(C), None, f"Dr {MARKER}", 1.0)
        for n in range(1, 40):
            chat(store, n)
        clear = {fp: [(m.rowid, m.body) for m in store.history(fp, 500)] for fp in (A, B)}
        posts = store.group_history(G, B, 500)
    assert MARKER.encode() in on_disk(db_path)
    seen = []
    with Store.open(db_path, key=KEY, progress=lambda d, t: seen.append((d, t))) as store:
        assert {fp: [(m.rowid, m.body) for m in store.history(fp, 500)] for fp in (A, B)} == clear
        assert store.group_history(G, B, 500) == posts
        assert [p.name for p in store.list_peers()] == ["alice", "bob", f"Dr {MARKER}"]
        assert store.seal_clear() == 0  # nothing left
    assert seen[-1] == (39 * 5, 39 * 5)  # five rows a chat: two direct, two posts, a file
    assert MARKER.encode() not in on_disk(db_path)  # nor in the WAL or freed pages
    with closing(sqlite3.connect(db_path)) as raw:
        assert {t for (t,) in raw.execute("SELECT DISTINCT typeof(name) FROM peers")} == {"blob"}


def test_names_alone_in_clear_are_sealed_at_the_first_open(db_path):
    """A store of the first sealed version: bodies sealed, contact names in clear."""
    with with_peers(Store.open(db_path, key=KEY)) as store:
        chat(store)
    with closing(sqlite3.connect(db_path)) as raw:
        raw.execute("UPDATE peers SET name = ? WHERE fingerprint = ?", (f"Dr {MARKER}", A))
        raw.commit()
    assert MARKER.encode() in on_disk(db_path)
    with Store.open(db_path, key=KEY) as store:
        assert MARKER.encode() not in on_disk(db_path)  # while it is open: checkpointed
        assert store.get_peer(A).name == f"Dr {MARKER}"


def named(store: Store) -> Store:
    """``with_peers``, a contact whose name is the marker, and a group member with none."""
    with_peers(store).upsert_peer(C, pem(C), None, MARKER, 1.0)
    store.add_member_peer(D, pem(D), 1.0)
    return store


def test_contact_names_are_sealed_and_still_found_listed_and_renamed(db_path):
    with named(Store.open(db_path, key=KEY)) as store:
        assert MARKER.encode() not in on_disk(db_path)
        everyone = store.list_peers(members=True)
        assert [p.name for p in everyone] == ["alice", "bob", MARKER, None]
        assert [p.name for p in store.list_peers()] == ["alice", "bob", MARKER]
        assert store.find_peers(f"  {MARKER.upper()} ") == [store.get_peer(C)]
        assert [p.fingerprint for p in store.find_peers("Alice")] == [A]
        assert [p.fingerprint for p in store.find_peers(C[:8].upper())] == [C]
        assert store.find_peers("carol") == []
        store.set_name(C, f"Aardvark {MARKER}")  # now first in the list
        store.upsert_peer(B, pem(B), None, f"Bob {MARKER}", 2.0)  # a known peer renamed
        assert store.upsert_peer(D, pem(D), None, None, 2.0) is False  # made a contact
        assert [p.fingerprint for p in store.list_peers()] == [C, A, B, D]
        for lookalike in ("ALICE", "ａｌｉｃｅ", f"aardvark {MARKER.lower()}"):
            with pytest.raises(UserError, match="already used"):
                store.set_name(D, lookalike)
            with pytest.raises(UserError, match="already used"):
                store.upsert_peer(D, pem(D), None, lookalike, 3.0)
        store.set_name(A, "ALICE")  # its own name, in another case
        store.set_name(B, None)
        assert MARKER.encode() not in on_disk(db_path)
    with closing(sqlite3.connect(db_path)) as raw:
        kinds = dict(raw.execute("SELECT fingerprint, typeof(name) FROM peers"))
    assert kinds == {A: "blob", B: "null", C: "blob", D: "null"}
    with Store.open(db_path, key=KEY) as store:
        assert [p.name for p in store.list_peers()] == [f"Aardvark {MARKER}", "ALICE", None, None]
    assert MARKER.encode() not in on_disk(db_path)


def test_a_name_keeps_its_peer_across_a_key_rotation(db_path):
    new = "e5" * 32
    with named(Store.open(db_path, key=KEY)) as store:
        store.apply_succession(C, new, pem(new), 1, b"statement", 2.0)
    with Store.open(db_path, key=KEY) as store:
        assert store.get_peer(new).name == MARKER
        assert [p.fingerprint for p in store.find_peers(MARKER)] == [new]


@pytest.mark.parametrize(
    "change",
    [
        # alice's and carol's sealed names swapped (names are unique: through NULL).
        (
            "UPDATE peers SET name = NULL WHERE fingerprint = '{A}'",
            "UPDATE peers SET name = x'{a}' WHERE fingerprint = '{C}'",
            "UPDATE peers SET name = x'{c}' WHERE fingerprint = '{A}'",
        ),
        # alice's row (and her name) moved to another id.
        ("UPDATE peers SET id = 77 WHERE fingerprint = '{A}'",),
        ("UPDATE peers SET name = substr(name, 1, 20) WHERE fingerprint = '{A}'",),
    ],
)
def test_a_swapped_or_moved_name_reads_as_damaged(db_path, change):
    with named(Store.open(db_path, key=KEY)) as store:
        pass
    with closing(sqlite3.connect(db_path)) as raw:
        sealed = dict(raw.execute("SELECT fingerprint, name FROM peers"))
        for sql in change:
            raw.execute(sql.format(A=A, C=C, a=sealed[A].hex(), c=sealed[C].hex()))
        raw.commit()
    with Store.open(db_path, key=KEY) as store:
        names = {p.fingerprint: p.name for p in store.list_peers(members=True)}
        swapped = len(change) > 1
        assert names == {A: DAMAGED, B: "bob", C: DAMAGED if swapped else MARKER, D: None}
        assert [p.fingerprint for p in store.find_peers("bob")] == [B]
        assert store.find_peers("alice") == store.find_peers(DAMAGED) == []
        store.set_name(A, "alice")  # renaming mends it
        assert store.get_peer(A).name == "alice"


def test_sealing_an_old_store_resumes_after_a_crash(db_path):
    count = 5000  # three batches
    with with_peers(Store.open(db_path)) as store:
        store.store_incoming([(A, mid(i), f"{MARKER} {i}", i, i, False) for i in range(count)])

    class Killed(Exception):
        pass

    def killed_after_the_first_batch(done, total):
        raise Killed

    with pytest.raises(Killed):
        Store.open(db_path, key=KEY, progress=killed_after_the_first_batch)
    with closing(sqlite3.connect(db_path)) as raw:
        kinds = dict(raw.execute("SELECT typeof(body), count(*) FROM messages GROUP BY 1"))
    assert kinds == {"blob": 2048, "text": count - 2048}  # the first batch holds
    with Store.open(db_path, key=KEY) as store:
        assert [m.body for m in store.history(A, count)] == [f"{MARKER} {i}" for i in range(count)]
    assert MARKER.encode() not in on_disk(db_path)


def test_a_groups_membership_records_are_sealed_and_read_back(db_path):
    """The records hold the group's name and its members' names (group_log.py)."""
    first, second = b"\x92\xa4" + MARKER.encode(), b"\x92\xa5" + MARKER.encode() + b"2"
    with with_peers(Store.open(db_path)) as store:  # an older store: records in clear
        store.create_group(G, "crew", [first], 5)
    assert MARKER.encode() in on_disk(db_path)
    with Store.open(db_path, key=KEY) as store:
        assert store.get_group(G).records == (first,)
        assert store.add_group_records(G, 0, [first, second]) == 1  # the same first: kept
        with pytest.raises(ValueError, match="another record for epoch 1"):
            store.add_group_records(G, 1, [first])
        assert store.get_group(G).records == store.list_groups()[0].records == (first, second)
    assert MARKER.encode() not in on_disk(db_path)
    with Store.open(db_path) as store:  # no key: nothing of them reads
        assert all(r.startswith(RECORD_MAGIC) for r in store.get_group(G).records)
        with pytest.raises(UserError, match="needs the password"):
            store.add_group_records(G, 2, [b"\x90"])


def test_nonces_never_repeat_within_an_opening_and_openings_start_apart():
    """Nonces count up from a random start (sealing.py's rules): every value sealed by
    one ``Sealer`` has its own nonce, whether sealed alone or in a batch of rows, and
    another opening starts elsewhere (wrapping past 2^96: tests/test_fast_gcm.py)."""
    key = bytes(range(32))
    first, second = Sealer(key), Sealer(key)
    values = [first.seal("x", b"ad") for _ in range(5000)]
    values += [first.seal_record(b"r", b"ad")[len(RECORD_MAGIC) :] for _ in range(5000)]
    rows = [field for i in range(5000) for field in (i, 7, b"id", "x", 0)]
    first.seal_rows(rows, 5, "in")
    values += rows[3::5]
    nonces = [v[:NONCE] for v in values]
    assert len(set(nonces)) == len(nonces) == 15000
    assert all(first.open(v, b"ad") == "x" for v in values[:5000])
    assert all(first.open(v, message_ad(i, 7, "in")) == "x" for i, v in enumerate(rows[3::5]))
    assert second.seal("x", b"ad")[:NONCE] not in set(nonces)
