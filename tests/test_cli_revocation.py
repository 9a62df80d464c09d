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


def test_revoke_tells_a_running_contact_which_refuses_the_key_from_then_on(tmp_path):
    """``enclave revoke --yes`` with no password and no node of its own: Bob's running
    node takes the certificate, lists Alice as revoked, and refuses her handshakes;
    Alice's home no longer starts a node with that key."""
    from test_cli_pairing import Home
    from test_cli_processes import enclave
    from test_cli_rotation import introduce, node

    alice, bob = Home(tmp_path, "alice"), Home(tmp_path, "bob")
    introduce(tmp_path, alice, bob)
    asked = enclave(*alice.cmd("revoke"))  # no terminal, no --yes: nothing happens
    assert asked.returncode == 2 and "--yes" in asked.stderr
    b = node(bob)
    try:
        env_free = enclave(*alice.cmd("revoke", "--yes"))  # (ENCLAVE_PASSWORD is unused)
        assert env_free.returncode == 0, env_free.stderr
        # No password: bob's name is sealed in the store, so he goes by fingerprint.
        bob_fp = keys.read_public_identity(home.Home(bob.home)).fingerprint
        assert f"Told 1 contact: {bob_fp[:16]}" in env_free.stdout
        b.event("the contact revoked", type="contact", change="revoked")
        assert "(revoked)" in enclave(*bob.cmd("peers")).stdout
        refused = enclave(*bob.cmd("send", "alice", "to a revoked key"))
        assert refused.returncode == 2 and "revoked this key" in refused.stderr
    finally:
        b.stop()
    start = enclave(*alice.cmd("listen", *alice.network()))
    assert start.returncode == 2 and "key is revoked" in start.stderr
    assert len(start.stderr.strip().splitlines()) == 1
