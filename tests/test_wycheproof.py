"""Wycheproof vectors through the functions Enclave itself calls (enclave/protocol/crypto.py).

Every vector of each shipped file runs (tests/data/wycheproof/README.md says which files
and why the AES-GCM one is trimmed). "valid" must give the expected output, "invalid"
must be refused, and "acceptable" must match Enclave's stated policy: an X25519 result
of all zeros (low-order peer keys) is refused, any other acceptable X25519 input must
compute the RFC 7748 value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from enclave.protocol.crypto import (
    AESGCM,
    Identity,
    InvalidTag,
    PeerKey,
    hkdf_expand,
    hkdf_extract,
    x25519_shared,
)

DATA = Path(__file__).parent / "data" / "wycheproof"


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def cases(name: str) -> list:
    """(group, test) pairs, with the tcId as the pytest id."""
    doc = load(name)
    return [
        pytest.param(group, test, id=f"tc{test['tcId']}")
        for group in doc["testGroups"]
        for test in group["tests"]
    ]


def hx(value: str) -> bytes:
    return bytes.fromhex(value)


# --- RSA-OAEP-4096, SHA-256, MGF1-SHA-256 ----------------------------------------------------

OAEP = "rsa_oaep_4096_sha256_mgf1sha256_test.json"


@pytest.fixture(scope="module")
def oaep_identity() -> Identity:
    group = load(OAEP)["testGroups"][0]
    assert (group["keySize"], group["sha"], group["mgfSha"]) == (4096, "SHA-256", "SHA-256")
    key = serialization.load_pem_private_key(group["privateKeyPem"].encode(), None)
    return Identity(key)


@pytest.mark.parametrize(("group", "test"), cases(OAEP))
def test_rsa_oaep_unwrap(oaep_identity, group, test):
    ct, label = hx(test["ct"]), hx(test["label"])
    # v1 envelopes unwrap without a label, v2 handshakes with one: both are Enclave's calls.
    got = oaep_identity.unwrap_v2(ct, label) if label else oaep_identity.unwrap_v1(ct)
    if test["result"] == "valid":
        assert got == hx(test["msg"])
    else:
        assert got is None, test["comment"]


def test_rsa_oaep_label_is_bound(oaep_identity):
    """A ciphertext made with a label does not unwrap without it (v1 and v2 stay apart)."""
    labelled = [t for t in load(OAEP)["testGroups"][0]["tests"] if t["label"]]
    assert labelled
    for test in labelled:
        assert oaep_identity.unwrap_v1(hx(test["ct"])) is None


# --- RSA-PSS-4096, SHA-256, MGF1-SHA-256, salt 32 ---------------------------------------------

PSS = "rsa_pss_4096_sha256_mgf1_32_test.json"


@pytest.fixture(scope="module")
def pss_key() -> PeerKey:
    group = load(PSS)["testGroups"][0]
    assert (group["keySize"], group["sha"], group["mgfSha"], group["sLen"]) == (
        4096,
        "SHA-256",
        "SHA-256",
        32,
    )
    return PeerKey.from_pem(group["publicKeyPem"])


@pytest.mark.parametrize(("group", "test"), cases(PSS))
def test_rsa_pss_verify_v2(pss_key, group, test):
    ok = pss_key.verify_v2(hx(test["sig"]), hx(test["msg"]))
    assert ok is (test["result"] == "valid"), test["comment"]


def test_rsa_pss_salt_is_pinned(pss_key):
    """The v1 verifier (salt 478) refuses every valid salt-32 signature: no auto-detection."""
    valid = [t for t in load(PSS)["testGroups"][0]["tests"] if t["result"] == "valid"]
    assert all(not pss_key.verify_v1(hx(t["sig"]), hx(t["msg"])) for t in valid)


# --- AES-256-GCM, 96-bit IV, 128-bit tag -------------------------------------------------------

GCM = "aes_gcm_test.json"


@pytest.mark.parametrize(("group", "test"), cases(GCM))
def test_aes_256_gcm(group, test):
    assert (group["keySize"], group["ivSize"], group["tagSize"]) == (256, 96, 128)
    aead = AESGCM(hx(test["key"]))
    iv, aad, msg = hx(test["iv"]), hx(test["aad"]), hx(test["msg"])
    sealed = hx(test["ct"]) + hx(test["tag"])
    if test["result"] == "valid":
        assert aead.encrypt(iv, msg, aad or None) == sealed
        assert aead.decrypt(iv, sealed, aad or None) == msg
    else:
        with pytest.raises(InvalidTag):
            aead.decrypt(iv, sealed, aad or None)


# --- X25519 ----------------------------------------------------------------------------------

X25519 = "x25519_test.json"


@pytest.mark.parametrize(("group", "test"), cases(X25519))
def test_x25519_shared(group, test):
    assert group["curve"] == "curve25519"
    private = X25519PrivateKey.from_private_bytes(hx(test["private"]))
    got = x25519_shared(private, hx(test["public"]))
    expected = hx(test["shared"])
    if test["result"] == "invalid":
        assert got is None, test["comment"]
    elif "ZeroSharedSecret" in test["flags"]:
        assert not any(expected)
        assert got is None  # Enclave refuses low-order keys (PROTOCOL.md F11)
    else:
        assert got == expected, test["comment"]


# --- HKDF-SHA-256 ------------------------------------------------------------------------------

HKDF = "hkdf_sha256_test.json"


@pytest.mark.parametrize(("group", "test"), cases(HKDF))
def test_hkdf_sha256(group, test):
    prk = hkdf_extract(hx(test["salt"]), hx(test["ikm"]))
    if test["result"] == "valid":
        assert hkdf_expand(prk, hx(test["info"]), test["size"]) == hx(test["okm"])
    else:
        with pytest.raises(ValueError):
            hkdf_expand(prk, hx(test["info"]), test["size"])


def test_every_file_is_counted():
    """Each shipped file's numberOfTests matches its tests, so nothing was silently dropped."""
    for name in (OAEP, PSS, GCM, X25519, HKDF):
        doc = load(name)
        assert doc["numberOfTests"] == sum(len(g["tests"]) for g in doc["testGroups"]), name
