"""``enclave generate`` writes the revocation certificate next to the key: 0600, its
path printed with how to keep it offline, and it revokes the key just made."""

import stat

import pytest
from support.keyfactory import PASSWORD

from enclave.faces import cli
from enclave.identity import home, keys
from enclave.protocol.crypto import PeerKey
from enclave.protocol.succession import Chain, decode_revocation, judge_revocation


@pytest.mark.slow
def test_generate_writes_a_private_revocation_certificate(tmp_path, monkeypatch, capsys, rsa_keys):
    place = tmp_path / "home"
    monkeypatch.setenv("ENCLAVE_HOME", str(place))
    monkeypatch.setenv("ENCLAVE_PASSWORD", PASSWORD)
    monkeypatch.setattr(keys, "generate", lambda: rsa_keys["carol"])  # saves a key generation
    assert cli.main(["generate"]) == 0
    out = capsys.readouterr().out
    cert_path = place / "revocation.cert"
    assert f"Revocation certificate (no password needed to use it): {cert_path}" in out
    assert "offline" in out
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o600
    public = keys.read_public_identity(home.Home(place))
    cert = decode_revocation(cert_path.read_bytes())
    assert cert.fp.hex() == public.fingerprint
    judge_revocation(cert, Chain(PeerKey.from_pem(public.public_pem)))
