"""A contact's succession or revocation, judged and applied to a real store
(enclave/node/key_succession.py): the honest rotation, then each hostile variant, which
must be refused with its reason and leave the store as it was."""

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from enclave.errors import PeerError
from enclave.node.key_succession import accept_revocation, accept_succession
from enclave.protocol.crypto import Identity, spki_pem
from enclave.protocol.succession import (
    encode_revocation,
    encode_succession,
    sign_revocation,
    sign_succession,
)
from enclave.store import Store

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def ids() -> dict[str, Identity]:
    names = ("alice", "alice2", "alice3", "mallory")
    return {
        n: Identity(rsa.generate_private_key(public_exponent=65537, key_size=2048)) for n in names
    }


def hx(identity: Identity) -> str:
    return identity.fingerprint.hex()


@pytest.fixture
def store(tmp_path, ids):
    with Store.open(tmp_path / "enclave.db") as s:
        for name in ("alice", "mallory"):
            pem = spki_pem(ids[name].peer_key.key).decode()
            s.upsert_peer(hx(ids[name]), pem, None, name, 1.0)
        yield s


def statement(ids, old, new, seq=1) -> bytes:
    return encode_succession(sign_succession(ids[old], ids[new], seq, T0))


def snapshot(store) -> list:
    return [(p.fingerprint, p.public_key) for p in store.list_peers()]


def test_honest_rotation_moves_the_contact(store, ids):
    rotated = accept_succession(store, hx(ids["alice"]), statement(ids, "alice", "alice2"), 5.0)
    assert (rotated.old_fp, rotated.new_fp, rotated.seq) == (hx(ids["alice"]), hx(ids["alice2"]), 1)
    assert [p.fingerprint for p in store.list_peers()] == [hx(ids["alice2"]), hx(ids["mallory"])]
    assert store.get_peer(hx(ids["alice2"])).name == "alice"
    nxt = statement(ids, "alice2", "alice3", seq=2)
    assert accept_succession(store, hx(ids["alice2"]), nxt, 6.0).new_fp == hx(ids["alice3"])


def refused(store, reason, sender, data):
    before = snapshot(store)
    with pytest.raises(PeerError) as err:
        accept_succession(store, sender, data, 9.0)
    assert err.value.reason == reason
    assert snapshot(store) == before


def test_hostile_successions_are_refused_and_change_nothing(store, ids):
    a, m = hx(ids["alice"]), hx(ids["mallory"])
    # Mallory claims alice's key moved to hers: not her key to hand over.
    refused(store, "succession_unknown_key", m, statement(ids, "alice", "alice2"))
    # An unsigned key swap: mallory's key names itself alice's successor.
    refused(store, "succession_unknown_key", a, statement(ids, "mallory", "alice2"))
    refused(store, "succession_unknown_key", "ff" * 32, statement(ids, "alice", "alice2"))
    refused(store, "bad_succession", a, b"\x93\x01\x02\x03")
    # Mallory hands her own key over to alice's key: another contact's key.
    refused(store, "succession_conflict", m, statement(ids, "mallory", "alice"))
    good = statement(ids, "alice", "alice2")
    accept_succession(store, a, good, 5.0)
    a2 = hx(ids["alice2"])
    refused(store, "succession_replay", a2, good)
    refused(store, "succession_fork", a2, statement(ids, "alice", "alice3"))
    refused(store, "succession_sequence", a2, statement(ids, "alice2", "alice3", seq=1))
    # A contact met at pairing holds seq 0; its owner's count may be further on.
    assert accept_succession(store, a2, statement(ids, "alice2", "alice3", seq=5), 7.0).seq == 5


def test_revocation_marks_the_key_and_blocks_its_succession(store, ids):
    cert = encode_revocation(sign_revocation(ids["alice"], T0))
    forged = encode_revocation(sign_revocation(ids["alice3"], T0))
    with pytest.raises(PeerError, match="revocation_unknown_key"):
        accept_revocation(store, forged)
    assert accept_revocation(store, cert) == hx(ids["alice"])
    with pytest.raises(PeerError, match="revocation_replay"):
        accept_revocation(store, cert)
    refused(store, "succession_revoked", hx(ids["alice"]), statement(ids, "alice", "alice2"))
