"""Key succession and revocation statements (docs/PROTOCOL.md, "Key succession" and
"Revocation certificates"). Pure: no I/O, no clock (time comes in as ``time_ms``).

Rules:
- A succession statement is one msgpack array:
      [version uint, old_fp bin32, new_fp bin32, new_key_pem bin, seq uint, time_ms uint,
       sig_old bin, sig_new bin]
  ``body`` is the canonical encoding of the first six fields. ``sig_old`` is the old
  key's RSA-PSS-SHA256 (``sign_v2``) over OLD_LABEL + body: the owner of the key a
  contact trusts names its successor. ``sig_new`` is the new key's over NEW_LABEL + body:
  the successor holds its private key (no one can name a key they do not own as theirs).
  ``seq`` is the new key's place in the chain: 1 for the first successor of a key first
  met at pairing, one more for each rotation after it.
- A revocation certificate is one msgpack array:
      [version uint, fp bin32, key_pem bin, time_ms uint, sig bin]
  signed by that key over REVOKE_LABEL + the canonical encoding of the first four
  fields. It is made when the key is made, so it can be used without the password.
- The codecs refuse, as ``PeerError("bad_succession" / "bad_revocation")``: more than
  MAX_STATEMENT_BYTES; anything but one strict msgpack array of the right arity (no
  map, no ext, no trailing bytes, no non-canonical form); an unknown version; a field of
  the wrong type or length; a key that is not a canonical SPKI PEM of an acceptable RSA
  key, or a fingerprint that is not SHA-256 of it; a succession to the same key.
- ``judge`` decides a well-formed succession against what we hold of that contact
  (``Chain``), cheapest checks first, and names the refusal: a statement whose old key we
  already left (``succession_replay`` for the very successor we applied,
  ``succession_fork`` for another); an old key revoked (``succession_revoked``); an old
  key that is not the contact's current one (``succession_unknown_key``); a seq that is
  not above the current one (``succession_sequence``: a contact met a key at pairing, seq
  0, whatever its place in its owner's chain, so only "later" is required); then the signatures
  (``succession_bad_signature``), old before new. A refused statement changes nothing;
  the caller stores only what ``judge`` returns.
- ``judge_revocation`` accepts a certificate only for the contact's current key, signed
  by it; a second one for a key already revoked is ``revocation_replay``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack

from ..errors import PeerError, UsageError
from .crypto import PeerKey, key_problem, spki_pem
from .messages import MAX_STATEMENT_BIN, strict_unpack_options

VERSION = 1
FP_LEN = 32
MAX_PEM_BYTES = 2048  # an RSA-8192 SPKI PEM is about 1,500 bytes
MAX_SIGNATURE_BYTES = 1024  # RSA-8192
MAX_STATEMENT_BYTES = MAX_STATEMENT_BIN  # 8192: two largest signatures and a PEM fit
_U64 = 1 << 64

# Domain separation in the handshake's form (handshake.CTX_SIG_I/R): 64 spaces, a
# context string naming this use, a zero byte; no other Enclave signature covers these,
# and the old key's and the new key's signatures cannot stand in for each other.
OLD_LABEL = b"\x20" * 64 + b"Enclave v2 key succession, by the old key" + b"\x00"
NEW_LABEL = b"\x20" * 64 + b"Enclave v2 key succession, by the new key" + b"\x00"
REVOKE_LABEL = b"\x20" * 64 + b"Enclave v2 key revocation" + b"\x00"
# On a node's port, a connection whose first frame starts with this carries one
# revocation certificate; the node answers REVOKE_MAGIC + RECEIVED once it has judged
# it, whatever the outcome (a stranger learns nothing of the address book), and closes.
REVOKE_MAGIC = b"ENCR"
RECEIVED = b"\x01"


@dataclass(frozen=True, slots=True)
class Succession:
    old_fp: bytes
    new_fp: bytes  # SHA-256 of new_key_pem
    new_key_pem: bytes  # canonical SPKI PEM
    seq: int  # the new key's place in the chain, from 1
    time_ms: int  # the owner's clock; shown, never judged
    sig_old: bytes = b""
    sig_new: bytes = b""
    version: int = VERSION


@dataclass(frozen=True, slots=True)
class Revocation:
    fp: bytes
    key_pem: bytes
    time_ms: int
    sig: bytes = b""
    version: int = VERSION


@dataclass(frozen=True, slots=True)
class Chain:
    """What we hold of one contact's keys: the current one, its place in the chain, the
    keys it left (old fp -> the successor we applied) and whether it is revoked."""

    key: PeerKey
    seq: int = 0
    retired: dict = field(default_factory=dict)
    revoked: bool = False


# --- field checks ----------------------------------------------------------------------


def _bin(value: object, size: int) -> bool:
    return type(value) is bytes and len(value) == size


def _uint(value: object) -> bool:
    return type(value) is int and 0 <= value < _U64


def _sig_ok(sig: object) -> bool:
    return type(sig) is bytes and 0 < len(sig) <= MAX_SIGNATURE_BYTES


def _key_problem(fp: object, pem: object) -> str | None:
    # Only a canonical PEM makes the fingerprint one value per key.
    if not _bin(fp, FP_LEN) or type(pem) is not bytes or not 0 < len(pem) <= MAX_PEM_BYTES:
        return "fingerprint or key length"
    return key_problem(fp, pem)


def succession_problem(s: object, signed: bool = True) -> str | None:
    """Why ``s`` is not a well-formed succession statement, or None."""
    if type(s) is not Succession or type(s.version) is not int or s.version != VERSION:
        return "unknown version"
    if not _bin(s.old_fp, FP_LEN) or not _uint(s.seq) or not _uint(s.time_ms) or s.seq < 1:
        return "old fingerprint, seq or time"
    if signed and not (_sig_ok(s.sig_old) and _sig_ok(s.sig_new)):
        return "signature length"
    if s.old_fp == s.new_fp:
        return "a succession to the same key"
    return _key_problem(s.new_fp, s.new_key_pem)


def revocation_problem(r: object, signed: bool = True) -> str | None:
    """Why ``r`` is not a well-formed revocation certificate, or None."""
    if type(r) is not Revocation or type(r.version) is not int or r.version != VERSION:
        return "unknown version"
    if not _uint(r.time_ms):
        return "time"
    if signed and not _sig_ok(r.sig):
        return "signature length"
    return _key_problem(r.fp, r.key_pem)


# --- encoding --------------------------------------------------------------------------


def _pack(fields: list) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def succession_body(s: Succession) -> bytes:
    """The bytes both keys sign (each after its own label)."""
    return _pack([s.version, s.old_fp, s.new_fp, s.new_key_pem, s.seq, s.time_ms])


def revocation_body(r: Revocation) -> bytes:
    return _pack([r.version, r.fp, r.key_pem, r.time_ms])


def encode_succession(s: Succession) -> bytes:
    why = succession_problem(s)
    if why is not None:
        raise UsageError(f"malformed succession: {why}")
    return _pack([s.version, s.old_fp, s.new_fp, s.new_key_pem, s.seq, s.time_ms,
                  s.sig_old, s.sig_new])  # fmt: skip


def encode_revocation(r: Revocation) -> bytes:
    why = revocation_problem(r)
    if why is not None:
        raise UsageError(f"malformed revocation: {why}")
    return _pack([r.version, r.fp, r.key_pem, r.time_ms, r.sig])


def sign_succession(old, new, seq: int, time_ms: int) -> Succession:
    """The statement by which identity ``old`` hands over to identity ``new``."""
    pem = spki_pem(new.peer_key.key)
    s = Succession(old.fingerprint, new.fingerprint, pem, seq, time_ms)
    why = succession_problem(s, signed=False)
    if why is not None:
        raise UsageError(f"malformed succession: {why}")
    body = succession_body(s)
    return Succession(s.old_fp, s.new_fp, pem, seq, time_ms,
                      old.sign_v2(OLD_LABEL + body), new.sign_v2(NEW_LABEL + body))  # fmt: skip


def sign_revocation(identity, time_ms: int) -> Revocation:
    """The certificate by which ``identity`` declares itself revoked."""
    r = Revocation(identity.fingerprint, spki_pem(identity.peer_key.key), time_ms)
    why = revocation_problem(r, signed=False)
    if why is not None:
        raise UsageError(f"malformed revocation: {why}")
    return Revocation(r.fp, r.key_pem, time_ms, identity.sign_v2(REVOKE_LABEL + revocation_body(r)))


# --- decoding: hostile bytes, even from a contact --------------------------------------


_UNPACK_OPTIONS = strict_unpack_options(max_array=8, max_bin=MAX_PEM_BYTES, max_str=0)


def _unpack(data: object, arity: int, reason: str) -> tuple:
    if type(data) is not bytes or len(data) > MAX_STATEMENT_BYTES:
        raise PeerError(reason, "not bytes, or too long")
    try:
        m = msgpack.unpackb(data, **_UNPACK_OPTIONS)
    except (ValueError, msgpack.UnpackException) as exc:
        raise PeerError(reason, f"not a strict msgpack array ({exc})"[:120]) from None
    if type(m) is not tuple or len(m) != arity:
        raise PeerError(reason, f"not an array of {arity}")
    return m


def decode_succession(data: bytes) -> Succession:
    """The statement in ``data``, or PeerError("bad_succession", detail)."""
    m = _unpack(data, 8, "bad_succession")
    s = Succession(m[1], m[2], m[3], m[4], m[5], m[6], m[7], version=m[0])
    why = succession_problem(s)
    if why is None and encode_succession(s) != data:
        why = "not the canonical encoding"  # one statement, one byte string
    if why is not None:
        raise PeerError("bad_succession", why)
    return s


def decode_revocation(data: bytes) -> Revocation:
    """The certificate in ``data``, or PeerError("bad_revocation", detail)."""
    m = _unpack(data, 5, "bad_revocation")
    r = Revocation(m[1], m[2], m[3], m[4], version=m[0])
    why = revocation_problem(r)
    if why is None and encode_revocation(r) != data:
        why = "not the canonical encoding"
    if why is not None:
        raise PeerError("bad_revocation", why)
    return r


# --- judging against what we hold -------------------------------------------------------


def judge(s: Succession, chain: Chain) -> PeerKey:
    """The contact's new key if ``s`` hands ``chain``'s current key over to it; else
    PeerError naming why (the module docstring lists the checks in order)."""
    if s.old_fp in chain.retired:
        reason = "replay" if chain.retired[s.old_fp] == s.new_fp else "fork"
        raise PeerError(f"succession_{reason}", "a key this contact already left")
    if chain.revoked:
        raise PeerError("succession_revoked", "the old key is revoked")
    if s.old_fp != chain.key.fingerprint:
        raise PeerError("succession_unknown_key", "not the contact's current key")
    if s.seq <= chain.seq:
        raise PeerError("succession_sequence", f"seq {s.seq} after {chain.seq}")
    body = succession_body(s)
    if not chain.key.verify_v2(s.sig_old, OLD_LABEL + body):
        raise PeerError("succession_bad_signature", "not signed by the old key")
    new_key = PeerKey.from_pem(s.new_key_pem)
    if not new_key.verify_v2(s.sig_new, NEW_LABEL + body):
        raise PeerError("succession_bad_signature", "not signed by the new key")
    return new_key


def judge_revocation(r: Revocation, chain: Chain) -> None:
    """Returns if ``r`` revokes ``chain``'s current key; else PeerError naming why."""
    if r.fp != chain.key.fingerprint:
        raise PeerError("revocation_unknown_key", "not the contact's current key")
    if chain.revoked:
        raise PeerError("revocation_replay", "this key is already revoked")
    if not chain.key.verify_v2(r.sig, REVOKE_LABEL + revocation_body(r)):
        raise PeerError("revocation_bad_signature", "not signed by the revoked key")
