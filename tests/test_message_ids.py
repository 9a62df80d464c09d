"""Our message ids: 16 bytes, never repeated, in creation order within a node."""

import os

from enclave.node.message_ids import new_id, new_ids
from enclave.store import Store


def test_ids_are_16_bytes_unique_and_ordered():
    made = [*new_ids(1000), new_id(), *new_ids(0), *new_ids(3), new_id()]
    assert all(type(i) is bytes and len(i) == 16 for i in made)
    assert len(set(made)) == len(made) == 1005
    assert made == sorted(made)


def test_the_random_half_differs_between_ids_made_together():
    tails = {i[8:] for i in new_ids(1000)}
    assert len(tails) == 1000


def test_a_burst_in_one_millisecond_is_stored_as_random_ids_are(tmp_path):
    """The receiver's dedupe still decides by (peer, created_ms, id): ordered ids of one
    millisecond, resent, are recognised; other random ids of that millisecond are new."""
    peer = "c" * 64
    with Store.open(tmp_path / "enclave.db") as store:
        store.upsert_peer(
            peer, "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----", None, None, 1.0
        )
        ids = new_ids(600)
        rows = [(peer, i, "hi", 5, 6, False) for i in ids]
        assert all(store.store_incoming(rows))
        again = rows[::7] + [(peer, os.urandom(16), "new", 5, 6, False)]
        assert store.store_incoming(again) == [False] * len(rows[::7]) + [True]
