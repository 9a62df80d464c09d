"""The v2 key schedule (PROTOCOL.md b.3): HKDF-SHA256 with TLS 1.3-style labels.

ExpandLabel(S, label, ctx, L) = HKDF-Expand(S, uint16(L) || uint8(len(l)) || l ||
uint8(len(ctx)) || ctx, L) with l = "enclave2 " || label. Known-answer vectors in
tests/data pin every label and every input order: change one and a test fails.
"""

import struct

from .crypto import hkdf_expand, hkdf_extract, sha256

LABEL_PREFIX = b"enclave2 "
SALT0 = sha256(b"Enclave v2 key schedule")


def expand_label(secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    full = LABEL_PREFIX + label
    info = struct.pack(">HB", length, len(full)) + full + bytes([len(context)]) + context
    return hkdf_expand(secret, info, length)


def handshake_prk(dh: bytes, k_i: bytes, k_r: bytes) -> bytes:
    """PRK = HKDF-Extract(SALT0, dh || k_I || k_R): 96 bytes of input in a fixed order."""
    return hkdf_extract(SALT0, dh + k_i + k_r)


def finished_key_r(prk: bytes, th2: bytes) -> bytes:
    return expand_label(prk, b"r finished", th2, 32)


def finished_key_i(prk: bytes, th3: bytes) -> bytes:
    return expand_label(prk, b"i finished", th3, 32)


def traffic_secrets(prk: bytes, th3: bytes) -> tuple[bytes, bytes]:
    """(initiator-to-responder, responder-to-initiator) first traffic secrets."""
    return (
        expand_label(prk, b"i2r traffic", th3, 32),
        expand_label(prk, b"r2i traffic", th3, 32),
    )


def session_id(prk: bytes, th3: bytes) -> bytes:
    return expand_label(prk, b"session id", th3, 16)


def traffic_key(secret: bytes) -> bytes:
    return expand_label(secret, b"key", b"", 32)


def traffic_iv(secret: bytes) -> bytes:
    return expand_label(secret, b"iv", b"", 12)


def next_secret(secret: bytes) -> bytes:
    """S_{n+1} = ExpandLabel(S_n, "traffic upd", "", 32) (RFC 8446 7.2)."""
    return expand_label(secret, b"traffic upd", b"", 32)
