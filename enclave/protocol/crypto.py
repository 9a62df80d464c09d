"""Every cryptographic call the protocol makes goes through this module.

Rules:
- Long-term RSA keys live in ``Identity`` (ours) and ``PeerKey`` (theirs). Every RSA
  private operation is a method of ``Identity`` and bumps its ``private_ops``
  counter, so a node (one Identity each) can prove that unauthenticated input cost
  it nothing, and can decide which thread runs the work.
- Version 2 and legacy version 1 share no signing, verifying or wrapping function.
  v2: PSS salt exactly 32, OAEP with a direction label. v1 (the original client's
  envelope): PSS salt pinned to the maximum (emLen - 34 = 478 for RSA-4096),
  OAEP without a label. The salts are pinned on verify, never auto-detected.
- Symmetric work (AES-256-GCM, X25519, HKDF, HMAC) is plain functions; the caller
  keeps raw key bytes and builds cipher objects only while it needs them.
"""

import hashlib
import hmac
import os
import threading

from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "AESGCM",
    "Identity",
    "InvalidTag",
    "PeerKey",
    "X25519Keypair",
    "fingerprint_of",
    "hkdf_expand",
    "hkdf_extract",
    "hmac_sha256",
    "random_bytes",
    "sha256",
    "x25519_shared",
]

V2_PSS_SALT = 32
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192  # keeps every handshake frame under the 4 KiB pre-authentication limit
_SHA256 = hashes.SHA256()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def spki_pem(public_key: rsa.RSAPublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint_of(public_key: rsa.RSAPublicKey) -> bytes:
    """Raw 32-byte fingerprint: SHA-256 of the canonical SPKI PEM (as the seed computes)."""
    return sha256(spki_pem(public_key))


def _v1_salt(key_size_bits: int) -> int:
    # RFC 8017 9.1.1: emLen = ceil((modBits - 1) / 8); the maximum salt is emLen - hLen - 2.
    em_len = (key_size_bits - 1 + 7) // 8
    return em_len - 32 - 2


def _oaep(label: bytes | None) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(_SHA256), algorithm=_SHA256, label=label)


def _pss(salt: int) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=salt)


class PeerKey:
    """A peer's RSA public key: public operations only (verify, wrap)."""

    __slots__ = ("key", "fingerprint", "modulus_bytes", "_v1_salt")

    def __init__(self, public_key: rsa.RSAPublicKey) -> None:
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise TypeError("an RSA public key is required")
        numbers = public_key.public_numbers()
        if numbers.e != 65537 or not MIN_RSA_BITS <= public_key.key_size <= MAX_RSA_BITS:
            raise ValueError(
                f"RSA keys need e = 65537 and {MIN_RSA_BITS}..{MAX_RSA_BITS} bits "
                f"(got e = {numbers.e}, {public_key.key_size} bits)"
            )
        self.key = public_key
        self.fingerprint = fingerprint_of(public_key)
        self.modulus_bytes = (public_key.key_size + 7) // 8
        self._v1_salt = _v1_salt(public_key.key_size)

    @classmethod
    def from_pem(cls, pem: bytes | str) -> "PeerKey":
        if isinstance(pem, str):
            pem = pem.encode()
        return cls(serialization.load_pem_public_key(pem))

    def verify_v2(self, signature: bytes, data: bytes) -> bool:
        try:
            self.key.verify(signature, data, _pss(V2_PSS_SALT), _SHA256)
        except InvalidSignature:
            return False
        return True

    def wrap_v2(self, secret: bytes, label: bytes) -> bytes:
        return self.key.encrypt(secret, _oaep(label))

    def verify_v1(self, signature: bytes, data: bytes) -> bool:
        try:
            self.key.verify(signature, data, _pss(self._v1_salt), _SHA256)
        except InvalidSignature:
            return False
        return True

    def wrap_v1(self, secret: bytes) -> bytes:
        return self.key.encrypt(secret, _oaep(None))


class Identity:
    """Our long-term RSA key. Each private operation is counted in ``private_ops``.

    The methods are safe to call from worker threads: they touch only the key and
    the counter, never connection state. The counter's lock is the protocol core's one
    use of threading (the package docstring states it): the node runs these methods on
    its crypto threads, and ``+=`` on a shared int is not atomic.
    """

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise TypeError("an RSA private key is required")
        self._key = private_key
        self.peer_key = PeerKey(private_key.public_key())
        self.fingerprint = self.peer_key.fingerprint
        self.modulus_bytes = self.peer_key.modulus_bytes
        self._lock = threading.Lock()
        self._private_ops = 0

    @property
    def private_ops(self) -> int:
        return self._private_ops

    def _count(self) -> None:
        with self._lock:
            self._private_ops += 1

    def sign_v2(self, data: bytes) -> bytes:
        self._count()
        return self._key.sign(data, _pss(V2_PSS_SALT), _SHA256)

    def unwrap_v2(self, ciphertext: bytes, label: bytes) -> bytes | None:
        """OAEP-decrypt a v2 wrap; None when it does not decrypt under this label."""
        self._count()
        try:
            return self._key.decrypt(ciphertext, _oaep(label))
        except ValueError:
            return None

    def sign_v1(self, data: bytes) -> bytes:
        self._count()
        return self._key.sign(data, _pss(_v1_salt(self._key.key_size)), _SHA256)

    def unwrap_v1(self, ciphertext: bytes) -> bytes | None:
        self._count()
        try:
            return self._key.decrypt(ciphertext, _oaep(None))
        except ValueError:
            return None


class X25519Keypair:
    """An ephemeral X25519 key for one handshake; dropped as soon as it has served."""

    __slots__ = ("_private", "public")

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()
        self.public = self._private.public_key().public_bytes_raw()

    def exchange(self, peer_public: bytes) -> bytes | None:
        return x25519_shared(self._private, peer_public)


def x25519_shared(private: X25519PrivateKey, peer_public: bytes) -> bytes | None:
    """The shared secret, or None for a low-order peer key (an all-zero result)."""
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        return None
    if not any(shared):
        return None
    return shared


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac_sha256(salt, ikm)


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand with SHA-256."""
    if length > 255 * 32:
        raise ValueError("HKDF-Expand length too large")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac_sha256(prk, block + info + bytes([counter]))
        out += block
        counter += 1
    return out[:length]


def key_problem(fp: bytes, pem: bytes) -> str | None:
    """Why ``pem`` is not a key a record may carry under fingerprint ``fp``, or None.
    Only a canonical SPKI PEM of an acceptable RSA key (``PeerKey``): the fingerprint is
    SHA-256 of the PEM, so one key must have one spelling to have one fingerprint."""
    try:
        key = PeerKey.from_pem(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return "key not an acceptable RSA SPKI PEM"
    if spki_pem(key.key) != pem:
        return "key PEM not canonical"
    return None if sha256(pem) == fp else "fingerprint does not match the key"
