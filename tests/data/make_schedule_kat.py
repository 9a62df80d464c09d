"""Writes schedule_kat.json: known-answer vectors for the v2 key schedule.

Deliberately independent of enclave.protocol: it builds the HKDF labels by hand
from PROTOCOL.md b.3 and uses cryptography's HKDFExpand/HMAC, so a change to a
label, a length or an input order in Enclave makes tests/test_schedule.py fail.
Run it only when the protocol version changes: python tests/data/make_schedule_kat.py
"""

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand


def expand_label(secret: bytes, label: str, ctx: bytes, length: int) -> bytes:
    full = b"enclave2 " + label.encode()
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(ctx)]) + ctx
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def extract(salt: bytes, ikm: bytes) -> bytes:
    h = hmac.HMAC(salt, hashes.SHA256())
    h.update(ikm)
    return h.finalize()


def vector(seed: int) -> dict:
    dh = bytes((seed + i) % 256 for i in range(32))
    k_i = bytes((seed * 3 + i) % 256 for i in range(32))
    k_r = bytes((seed * 7 + 2 * i) % 256 for i in range(32))
    hs1 = bytes([seed]) * 1152
    hs2 = bytes([seed + 1]) * 1160
    salt0 = hashlib.sha256(b"Enclave v2 key schedule").digest()
    prk = extract(salt0, dh + k_i + k_r)
    th2 = hashlib.sha256(hs1 + hs2[:-32]).digest()
    th3 = hashlib.sha256(hs1 + hs2).digest()
    i2r = expand_label(prk, "i2r traffic", th3, 32)
    r2i = expand_label(prk, "r2i traffic", th3, 32)
    out = {
        "dh": dh,
        "k_i": k_i,
        "k_r": k_r,
        "hs1": hs1,
        "hs2": hs2,
        "prk": prk,
        "th2": th2,
        "th3": th3,
        "fk_r": expand_label(prk, "r finished", th2, 32),
        "fk_i": expand_label(prk, "i finished", th3, 32),
        "i2r": i2r,
        "r2i": r2i,
        "session_id": expand_label(prk, "session id", th3, 16),
        "i2r_key": expand_label(i2r, "key", b"", 32),
        "i2r_iv": expand_label(i2r, "iv", b"", 12),
        "r2i_key": expand_label(r2i, "key", b"", 32),
        "r2i_iv": expand_label(r2i, "iv", b"", 12),
        "i2r_next": expand_label(i2r, "traffic upd", b"", 32),
    }
    return {k: v.hex() for k, v in out.items()}


if __name__ == "__main__":
    path = Path(__file__).with_name("schedule_kat.json")
    path.write_text(json.dumps([vector(s) for s in (1, 42, 200)], indent=1) + "\n")
    print(f"wrote {path}")
