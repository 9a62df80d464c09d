"""Keys and identities for the key and CLI tests.

RSA-4096 keys come from conftest's session fixture ``rsa_keys`` (generated once).
Identities are written with ``FAST_KDF`` so that a test does not pay scrypt's real
0.5 s: Enclave itself always writes ``keys.DEFAULT_KDF`` and refuses to *decrypt* a file
below ``keys.MIN_KDF``, so tests that decrypt pass ``min_kdf=FAST_KDF``. Commands that
need no password (--fingerprint, --public-key, status) read such files as is; the
command line refuses to unlock them, so a test whose command unlocks (contact names
are sealed, docs/STORE.md) writes its identity with ``real_cost_identity``.
"""

import functools
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from enclave.identity import home, keys

FAST_KDF = keys.KdfCost(n=2**10, r=8, p=1)
PASSWORD = "correct horse battery staple"


def public_pem(key) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(key, password: bytes | None = None) -> bytes:
    """The original client's way: PKCS8 PEM under ``BestAvailableEncryption``."""
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def make_identity(path: Path, key, password: str = PASSWORD, kdf=FAST_KDF) -> keys.Identity:
    """Write an identity into the home folder ``path`` (created 0700 by Enclave)."""
    return keys.save_identity(home.Home(path), key, password, kdf=kdf)


_REAL_COST: dict[tuple[str, str], tuple[bytes, keys.Identity]] = {}


def real_cost_identity(path: Path, key, password: str = PASSWORD) -> keys.Identity:
    """``make_identity`` at Enclave's own cost (``keys.DEFAULT_KDF``), which the command
    line unlocks. Written once per key and password, copied after that: only unlocking
    it costs scrypt's 0.5 s. The ``store_key`` returned opens the home's store."""
    fp = keys.fingerprint(key.public_key())
    place = home.Home(path)
    if (fp, password) not in _REAL_COST:
        identity = keys.save_identity(place, key, password)
        _REAL_COST[fp, password] = place.key_path.read_bytes(), identity
        return identity
    sealed, identity = _REAL_COST[fp, password]
    home.prepare(place)
    home.write_atomic(place.key_path, sealed, home.KEY_MODE)
    home.write_atomic(place.pub_path, identity.public_pem, home.PUB_MODE)
    return identity


@functools.cache
def small_rsa(bits: int, exponent: int = 65537) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=exponent, key_size=bits)


@functools.cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()
