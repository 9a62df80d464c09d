"""A contact's chain of keys in the store (enclave/store/key_chain.py): a succession
moves the peer row to its new fingerprint in place, keeps its history and outbox, is
remembered across reopen, and refuses what would break the chain; schema 6 migrates."""

import hashlib
import sqlite3

import pytest

from enclave.store import Store, migrations
from enclave.store.migrations import migrate

A, A2, A3, B = "a1" * 32, "a2" * 32, "a3" * 32, "b2" * 32


def pem(tag: str) -> str:
    body = hashlib.sha256(tag.encode()).hexdigest()
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "enclave.db"


@pytest.fixture
def store(db_path):
    with Store.open(db_path) as s:
        s.upsert_peer(A, pem(A), "127.0.0.1:7000", "alice", 1000.0)
        s.upsert_peer(B, pem(B), "127.0.0.1:7001", "bob", 1000.0)
        yield s


def test_succession_moves_the_row_in_place_and_keeps_history(store, db_path):
    store.store_incoming([(A, mid(1), "before", 0, 1, False)])
    [queued] = store.enqueue_outgoing([(A, mid(2), "queued", 10)])
    store.apply_succession(A, A2, pem(A2), 1, b"statement-1", 2000.0)
    assert store.get_peer(A) is None
    peer = store.get_peer(A2)
    assert (peer.name, peer.public_key) == ("alice", pem(A2))
    assert [m.body for m in store.history(A2)] == ["before", "queued"]
    assert [i.rowid for i in store.outbox_for(A2)] == [queued]
    assert [p.fingerprint for p in store.list_peers()] == [A2, B]
    chain = store.key_chain(A2)
    assert (chain.seq, chain.retired, chain.revoked) == (1, {A: A2}, False)
    store.close()
    with Store.open(db_path) as again:
        assert again.key_history(A2) == [(1, A, A2, 2000.0)]
        assert again.succession_statement(A) == b"statement-1"
        again.apply_succession(A2, A3, pem(A3), 2, b"statement-2", 3000.0)
        assert again.key_chain(A3).retired == {A: A2, A2: A3}
        assert [m.body for m in again.history(A3)] == ["before", "queued"]


@pytest.mark.parametrize(
    "args, why",
    [
        ((A2, A3, 1), "no contact holds the old key"),
        ((A, A2, 0), "does not follow"),
        ((A, B, 1), "already another contact's"),
    ],
)
def test_refusals_change_nothing(store, args, why):
    old, new, seq = args
    with pytest.raises(ValueError, match=why):
        store.apply_succession(old, new, pem(new), seq, b"s", 1.0)
    assert store.get_peer(A).public_key == pem(A)
    assert store.key_history(A) == []


def test_an_old_key_has_one_successor(store):
    store.apply_succession(A, A2, pem(A2), 1, b"s", 1.0)
    # A second row re-paired with the old key cannot be handed over again: the key left.
    store.upsert_peer(A, pem(A), None, "alice-old", 2.0)
    with pytest.raises(ValueError, match="already has a successor"):
        store.apply_succession(A, A3, pem(A3), 1, b"fork", 3.0)
    assert store.get_peer(A3) is None


def test_revocation_is_kept_once(store, db_path):
    assert store.set_revoked(A, b"cert")
    assert not store.set_revoked(A, b"cert again")
    assert store.is_revoked(A) and not store.is_revoked(B)
    assert store.key_chain(A).revoked
    store.close()
    with Store.open(db_path) as again:
        assert again.is_revoked(A)


def test_schema_6_store_migrates_with_its_peers(db_path):
    db = sqlite3.connect(db_path, isolation_level=None)
    migrate(db, migrations.MIGRATIONS[:6])
    db.execute(
        "INSERT INTO peers (fingerprint, name, public_key, added_at) VALUES (?, 'alice', ?, 1)",
        (A, pem(A)),
    )
    db.close()
    with Store.open(db_path) as s:
        assert s.schema_version == migrations.SCHEMA_VERSION
        assert s.key_chain(A) == (A, pem(A), 0, {}, False)
        s.apply_succession(A, A2, pem(A2), 1, b"s", 1.0)
        assert s.get_peer(A2).name == "alice"


def test_a_rotation_is_owed_by_every_contact_of_its_time_once(store, db_path):
    assert store.begin_handover(1, 5.0) == 2
    assert store.begin_handover(1, 6.0) == 0  # a restart makes no second set of rows
    assert (store.handover_pending(A), store.handover_pending(B)) == (1, 1)
    store.begin_handover(2, 7.0)
    assert store.handover_waiting() == {1: 2, 2: 2}
    assert store.handover_done(A, upto=1) == 1  # A applied the first statement only
    assert store.handover_pending(A) == 2
    assert store.handover_done(B) == 2  # a session under our current key: all of them
    with Store.open(db_path) as again:
        assert again.handover_pending(B) is None and again.handover_pending(A) == 2
        again.upsert_peer(A3, pem(A3), None, "carol", 8.0)  # met after the rotations
        assert again.begin_handover(2, 9.0) == 0 and again.handover_pending(A3) is None
        assert again.handover_waiting() == {2: 1}


def test_a_removed_contact_owes_nothing(store):
    store.begin_handover(1, 5.0)
    store.remove_peer(A)
    assert store.handover_waiting() == {1: 1}
