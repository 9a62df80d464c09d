"""Keys and identities for the key and CLI tests.

RSA-4096 keys come from conftest's session fixture ``rsa_keys`` (generated once).
Identities are written with ``FAST_KDF`` so that a test does not pay scrypt's real
0.5 s: Enclave itself always writes ``keys.DEFAULT_KDF`` and refuses to *decrypt* a file
below ``keys.MIN_KDF``, so tests that decrypt pass ``min_kdf=FAST_KDF``. Commands that
need no password (--fingerprint, --public-key, --add-peer, --peers) read such files as is.
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


@functools.cache
def small_rsa(bits: int, exponent: int = 65537) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=exponent, key_size=bits)


@functools.cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()
