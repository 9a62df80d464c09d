"""One's own key files (enclave/node/key_rotation.py): the revocation certificate and
the rotation that keeps the old key retired next to the statement handing it over."""

import stat

import pytest
from support.keyfactory import FAST_KDF, PASSWORD, make_identity

from enclave.errors import UserError
from enclave.identity import home, keys
from enclave.node import key_rotation as kr
from enclave.protocol.crypto import PeerKey
from enclave.protocol.succession import (
    Chain,
    decode_revocation,
    decode_succession,
    judge,
    judge_revocation,
)

T0 = 1_700_000_000_000


@pytest.fixture
def place(tmp_path, rsa_keys):
    make_identity(tmp_path / "alice", rsa_keys["alice"])
    return home.Home(tmp_path / "alice")


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_revocation_certificate_is_private_and_verifies(place):
    old = keys.load_identity(place, PASSWORD, min_kdf=FAST_KDF)
    path = kr.write_revocation_certificate(place, old.private_key, T0)
    assert path == place.path / "revocation.cert" and mode(path) == 0o600
    cert = decode_revocation(path.read_bytes())
    judge_revocation(cert, Chain(PeerKey.from_pem(old.public_pem)))


def test_rotate_keeps_the_password_and_retires_the_old_key(place, rsa_keys):
    old = keys.load_identity(place, PASSWORD, min_kdf=FAST_KDF)
    new_key = rsa_keys["bob"]
    r = kr.rotate(place, PASSWORD, new_key, T0, kdf=FAST_KDF, min_kdf=FAST_KDF)
    assert (r.old_fp, r.seq) == (old.fingerprint, 1)
    now = keys.load_identity(place, PASSWORD, min_kdf=FAST_KDF)
    assert now.fingerprint == r.new_fp != old.fingerprint
    assert now.store_key == old.store_key is not None  # the same history
    retired = place.path / "retired" / f"1-{old.fingerprint}.key"
    assert mode(retired) == 0o600 and mode(retired.parent) == 0o700
    back = keys.decrypt_identity(retired.read_bytes(), PASSWORD, source="t", min_kdf=FAST_KDF)
    assert back.fingerprint == old.fingerprint
    # The statement a contact holding the old key accepts.
    statement = decode_succession(r.statement)
    assert judge(statement, Chain(PeerKey.from_pem(old.public_pem))).fingerprint.hex() == r.new_fp
    assert kr.rotations(place) == [retired.with_suffix(".succession")]


def test_a_second_rotation_continues_the_chain(place, rsa_keys):
    first = kr.rotate(place, PASSWORD, rsa_keys["bob"], T0, kdf=FAST_KDF, min_kdf=FAST_KDF)
    third_key = rsa_keys["carol"]
    second = kr.rotate(place, PASSWORD, third_key, T0 + 1, kdf=FAST_KDF, min_kdf=FAST_KDF)
    assert (first.seq, second.seq, second.old_fp) == (1, 2, first.new_fp)
    statement = decode_succession(second.statement)
    assert statement.seq == 2 and statement.old_fp.hex() == first.new_fp
    assert [p.name.split("-")[0] for p in kr.rotations(place)] == ["1", "2"]


def test_wrong_password_changes_nothing(place, rsa_keys):
    before = place.key_path.read_bytes()
    with pytest.raises(UserError):
        kr.rotate(place, "wrong", rsa_keys["bob"], T0, kdf=FAST_KDF, min_kdf=FAST_KDF)
    assert place.key_path.read_bytes() == before
    assert kr.rotations(place) == []


@pytest.mark.slow
def test_change_password_reseals_the_retired_keys_too(tmp_path, rsa_keys, monkeypatch, capsys):
    """The retired key answers contacts that have not switched: after change-password it
    must open with the new password like the identity, or those contacts are lost."""
    from enclave.faces import cli

    place = home.Home(tmp_path / "h")
    keys.save_identity(place, rsa_keys["alice"], PASSWORD)
    kr.rotate(place, PASSWORD, rsa_keys["carol"], T0)
    monkeypatch.setenv("ENCLAVE_HOME", str(place.path))
    monkeypatch.setenv("ENCLAVE_PASSWORD", PASSWORD)
    monkeypatch.setenv("ENCLAVE_NEW_PASSWORD", "a brand new password")
    assert cli.main(["change-password"]) == 0
    assert "and the 1 key it rotated away from" in capsys.readouterr().out
    unlocked = keys.load_identity(place, "a brand new password")
    [retired] = unlocked.retired
    assert retired.seq == 1 and keys.fingerprint(
        retired.private_key.public_key()
    ) == keys.fingerprint(rsa_keys["alice"].public_key())
    assert (
        mode(place.path / "retired" / f"1-{keys.fingerprint(rsa_keys['alice'].public_key())}.key")
        == 0o600
    )
