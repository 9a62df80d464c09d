"""Version 2 handshake messages (PROTOCOL.md b.2) and the pure steps around them.

Rules:
- Fixed layouts, big-endian, exact lengths. A parse function checks only what the
  bytes alone can tell; policy (known peers, budgets, seen IDs) is the caller's.
- Transcript inputs are the exact payloads as sent and received; nothing is
  re-encoded. The signature over HS1 covers HS1[0 : 128 + nR]; over HS2 it covers
  HS1 || HS2[0 : 104 + nI]; TH2 runs through sig_R and TH3 through fin_R.
- No function here does RSA private work: signing and unwrapping happen in jobs the
  connection hands to its owner (see connection.py).

HS1  0 magic "ENC2" | 4 type=1 | 5 flags=0 | 6 ver_min=2 | 7 ver_max=2 | 8 ts u64 ms
     16 hs_id 16 | 32 fp_I 32 | 64 fp_R 32 | 96 e_I 32 | 128 wrap_I nR | sig_I nI
HS2  0 "ENC2" | 4 type=2 | 5 flags=0 | 6 ver=2 | 7 zero | 8 fp_R | 40 fp_I | 72 e_R
     104 wrap_R nI | sig_R nR | fin_R 32
HS3  0 "ENC2" | 4 type=3 | 5 zero 3 | 8 fin_I 32
ALERT "ENC2" | 0x7F | code | 0 | 0        (unauthenticated, advisory only)
"""

import struct
from dataclasses import dataclass

from ..errors import PeerError
from .crypto import hmac_sha256, sha256

MAGIC = b"ENC2"
VERSION = 2
T_HS1, T_HS2, T_HS3, T_ALERT = 1, 2, 3, 0x7F
HS1_FIXED = 128
HS2_FIXED = 104
HS3_LEN = 40
ALERT_LEN = 8
ALERT_GENERIC, ALERT_SKEW, ALERT_BUSY = 1, 2, 3

CTX_SIG_I = b"\x20" * 64 + b"Enclave v2 handshake, initiator signature" + b"\x00"
CTX_SIG_R = b"\x20" * 64 + b"Enclave v2 handshake, responder signature" + b"\x00"
LABEL_I = b"Enclave v2 wrap, initiator to responder"
LABEL_R = b"Enclave v2 wrap, responder to initiator"

_HS1_HEAD = struct.Struct(">4sBBBBQ16s32s32s32s")
_HS2_HEAD = struct.Struct(">4sBBBB32s32s32s")


@dataclass(frozen=True, slots=True)
class Hs1Head:
    ts_ms: int
    hs_id: bytes
    fp_i: bytes
    fp_r: bytes
    e_i: bytes


@dataclass(frozen=True, slots=True)
class Hs2Head:
    fp_r: bytes
    fp_i: bytes
    e_r: bytes


def alert(code: int) -> bytes:
    return MAGIC + bytes([T_ALERT, code, 0, 0])


def frame_type(frame: bytes) -> int | None:
    """The handshake type of a v2 frame, or None if it does not start with the magic."""
    if len(frame) < 5 or frame[:4] != MAGIC:
        return None
    return frame[4]


def alert_code(frame: bytes) -> int:
    if len(frame) != ALERT_LEN or frame[6:8] != b"\0\0":
        raise PeerError("bad_alert")
    return frame[5]


# --- HS1 -------------------------------------------------------------------------


def hs1_body(
    ts_ms: int, hs_id: bytes, fp_i: bytes, fp_r: bytes, e_i: bytes, wrap_i: bytes
) -> bytes:
    """HS1 up to (not including) sig_I: everything the initiator signs."""
    return _HS1_HEAD.pack(MAGIC, T_HS1, 0, VERSION, VERSION, ts_ms, hs_id, fp_i, fp_r, e_i) + wrap_i


def hs1_signed_data(hs1_prefix: bytes) -> bytes:
    return CTX_SIG_I + sha256(hs1_prefix)


def parse_hs1_head(frame: bytes) -> Hs1Head:
    """Check 3 of PROTOCOL.md b.4: length floor, type, flags, version range."""
    if len(frame) < HS1_FIXED:
        raise PeerError("bad_hs1", "short")
    magic, typ, flags, vmin, vmax, ts, hs_id, fp_i, fp_r, e_i = _HS1_HEAD.unpack_from(frame)
    if magic != MAGIC or typ != T_HS1:
        raise PeerError("bad_hs1", "type")
    if flags != 0:
        raise PeerError("bad_hs1", "flags")
    if not vmin <= VERSION <= vmax:
        raise PeerError("bad_version", f"peer offers {vmin}..{vmax}")
    return Hs1Head(ts, hs_id, fp_i, fp_r, e_i)


def split_hs1(frame: bytes, n_r: int, n_i: int) -> tuple[bytes, bytes, bytes]:
    """(signed prefix, wrap_I, sig_I), after checking the exact length."""
    if len(frame) != HS1_FIXED + n_r + n_i:
        raise PeerError("bad_hs1", "length")
    end = HS1_FIXED + n_r
    return frame[:end], frame[HS1_FIXED:end], frame[end:]


# --- HS2 -------------------------------------------------------------------------


def hs2_body(fp_r: bytes, fp_i: bytes, e_r: bytes, wrap_r: bytes) -> bytes:
    """HS2 up to (not including) sig_R."""
    return _HS2_HEAD.pack(MAGIC, T_HS2, 0, VERSION, 0, fp_r, fp_i, e_r) + wrap_r


def hs2_signed_data(hs1: bytes, hs2_prefix: bytes) -> bytes:
    return CTX_SIG_R + sha256(hs1 + hs2_prefix)


def parse_hs2(frame: bytes, n_i: int, n_r: int) -> tuple[Hs2Head, bytes, bytes, bytes]:
    """(head, signed prefix, sig_R, fin_R) after the exact length and header checks."""
    if len(frame) != HS2_FIXED + n_i + n_r + 32:
        raise PeerError("bad_hs2", "length")
    magic, typ, flags, ver, zero, fp_r, fp_i, e_r = _HS2_HEAD.unpack_from(frame)
    if magic != MAGIC or typ != T_HS2 or flags != 0 or ver != VERSION or zero != 0:
        raise PeerError("bad_hs2", "header")
    end = HS2_FIXED + n_i
    return Hs2Head(fp_r, fp_i, e_r), frame[:end], frame[end : end + n_r], frame[end + n_r :]


def wrap_r_of(frame: bytes, n_i: int) -> bytes:
    return frame[HS2_FIXED : HS2_FIXED + n_i]


# --- HS3 -------------------------------------------------------------------------


def hs3(fin_i: bytes) -> bytes:
    return MAGIC + bytes([T_HS3, 0, 0, 0]) + fin_i


def parse_hs3(frame: bytes) -> bytes:
    if len(frame) != HS3_LEN or frame[:5] != MAGIC + bytes([T_HS3]) or frame[5:8] != b"\0\0\0":
        raise PeerError("bad_hs3")
    return frame[8:]


# --- transcript hashes and Finished MACs -----------------------------------------


def transcript(*parts: bytes) -> bytes:
    return sha256(b"".join(parts))


def finished(key: bytes, transcript_hash: bytes) -> bytes:
    return hmac_sha256(key, transcript_hash)
