"""Legacy version-1 sealed envelope: the original client's format (PROTOCOL.md d).

Wire: one envelope per TCP connection; the transport strips the 4-byte length prefix
and these functions see only the payload. The payload is a msgpack map (binary type
on) with exactly these keys, in this order:

    version 1 | message_id (canonical uuid string) | timestamp (float seconds)
    sender_fingerprint (64 lowercase hex) | encrypted_key (OAEP, no label, of a fresh
    32-byte AES key) | ciphertext (AES-256-GCM, tag stripped, no AAD) | nonce (12)
    tag (16) | signature

``signature`` is RSA-PSS-SHA256 with the maximum salt (emLen - 34 = 478 bytes for
RSA-4096) over ``packb`` of the first eight entries in the same order. v1 has no
forward secrecy and binds the sender weakly (F10): anyone who holds an envelope can
re-sign it under their own name, because the signature covers only opaque ciphertext.

Rules:
- Sans-IO: no sockets, no clock (``now`` comes in), no store. Policy lives in the node.
- Cheap before expensive. ``parse``, ``check_time`` and ``verify`` never touch the
  private key; ``open_text`` is the only private operation on receive (one unwrap).
- Strict: anything the original client would not emit byte for byte is refused.
  ``packb(unpackb(frame)) == frame`` rejects duplicate keys and every non-canonical
  encoding, so the bytes verified are the bytes received.
- Every refusal of wire input is ``PeerError(reason)``; no other exception escapes
  ``parse`` for any input bytes. Local misuse (bad text to ``seal``, the wrong key
  handed to ``verify``) is ``ValueError``/``TypeError``/``UsageError``.
- v1 uses only the ``_v1`` methods of crypto.py (salt pinned to the maximum, OAEP
  without a label); it shares no signing, verifying or wrapping function with v2.

Receive, in order (the numbers are PROTOCOL.md d's steps):
   1. frame <= 48 KiB ............................ transport limit, then ``parse``
   2. msgpack under limits, 9 keys, exact types .. ``parse``
   3. canonical encoding ......................... ``parse``
   4. sender known, v1-eligible, not self ........ node: look up ``env.sender``
   5. |timestamp - now| <= 300 ................... ``check_time``
   6. (sender, message_id) not seen (check only) . node: persistent seen table
   7. per-IP and global verify buckets ........... node
   8. PSS verify, salt pinned to emLen - 34 ...... ``verify`` (public operation)
   9. record (sender, message_id, ts) as seen, and ``env.key_hash`` -> sender;
      a second sender with the same key_hash is a re-signing attempt: refuse
      and warn ................................... node
  10. per-sender private-op bucket ............... node
  11. unwrap, GCM, strict UTF-8, <= 10,000 chars . ``open_text`` (1 private op)
  12. store as legacy, commit, then close ........ node
Send (peers marked v1 only): ``seal``; retry only with the same bytes, within 5 min.
"""

import math
import re
import uuid
from dataclasses import dataclass, field

import msgpack

from ..errors import PeerError, UsageError
from .crypto import AESGCM, Identity, InvalidTag, PeerKey, random_bytes, sha256

__all__ = [
    "FIELDS",
    "MAX_CIPHERTEXT",
    "MAX_ENVELOPE",
    "MAX_SKEW",
    "MAX_TEXT_CHARS",
    "Envelope",
    "check_time",
    "open_text",
    "parse",
    "seal",
    "verify",
]

MAX_ENVELOPE = 48 * 1024
MAX_TEXT_CHARS = 10_000
MAX_CIPHERTEXT = 40_000  # 10,000 characters of at most 4 UTF-8 bytes each
MAX_SKEW = 300  # seconds, either way
VERSION = 1
AES_KEY_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16

# The seed's key order; the signature covers the first eight.
FIELDS = (
    "version",
    "message_id",
    "timestamp",
    "sender_fingerprint",
    "encrypted_key",
    "ciphertext",
    "nonce",
    "tag",
    "signature",
)

_UNPACK_LIMITS = {
    "raw": False,
    "strict_map_key": True,
    "max_map_len": len(FIELDS),
    "max_array_len": 0,
    "max_str_len": MAX_CIPHERTEXT,
    "max_bin_len": MAX_CIPHERTEXT,
    "max_ext_len": 0,
}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Envelope:
    """A parsed, well-formed v1 envelope. Not yet authenticated: see ``verify``."""

    message_id: str
    timestamp: float  # seconds; an int when the sender encoded one
    sender: str  # hex fingerprint, as on the wire
    encrypted_key: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    tag: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    signed: bytes = field(repr=False)  # the exact bytes the signature covers

    @property
    def key_hash(self) -> bytes:
        """H(encrypted_key): the re-signing detector's key (PROTOCOL.md d.9).

        OAEP is non-malleable and OpenSSL refuses ciphertexts >= n, so one wrapped
        AES key has exactly one accepted encoding: a re-signed copy of an envelope
        carries the same key_hash whatever name it claims.
        """
        return sha256(self.encrypted_key)


def _pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


# ---------------------------------------------------------------- send


def seal(
    identity: Identity,
    recipient: PeerKey,
    text: str,
    now: float,
    message_id: str | None = None,
) -> bytes:
    """Build the seed's exact envelope to ``recipient``: one private op (the signature)."""
    plaintext = _encode_text(text)
    if not math.isfinite(now):
        raise ValueError("now must be a finite number of seconds")
    if message_id is None:
        message_id = str(uuid.uuid4())
    elif not (isinstance(message_id, str) and _UUID.fullmatch(message_id)):
        raise ValueError("message_id must be a canonical lowercase UUID string")
    key = random_bytes(AES_KEY_LEN)
    nonce = random_bytes(NONCE_LEN)
    sealed = AESGCM(key).encrypt(nonce, plaintext, None)
    body = {
        "version": VERSION,
        "message_id": message_id,
        "timestamp": float(now),
        "sender_fingerprint": identity.fingerprint.hex(),
        "encrypted_key": recipient.wrap_v1(key),
        "ciphertext": sealed[:-TAG_LEN],
        "nonce": nonce,
        "tag": sealed[-TAG_LEN:],
    }
    body["signature"] = identity.sign_v1(_pack(body))
    frame = _pack(body)
    if len(frame) > MAX_ENVELOPE:
        raise ValueError(f"envelope of {len(frame)} bytes exceeds {MAX_ENVELOPE}")
    return frame


def _encode_text(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError("text must be a str")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"text longer than {MAX_TEXT_CHARS} characters")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (lone surrogate)") from None


# ---------------------------------------------------------------- receive


def parse(frame: bytes, own_modulus_bytes: int) -> Envelope:
    """Steps 1-3: size, msgpack under limits, exact keys and types, canonical bytes.

    Public work only (a few microseconds); raises PeerError for any other input.
    """
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise UsageError("parse takes the frame payload as bytes")
    frame = bytes(frame)
    if len(frame) > MAX_ENVELOPE:
        raise PeerError("v1_too_large", f"{len(frame)} bytes, limit {MAX_ENVELOPE}")
    try:
        obj = msgpack.unpackb(frame, **_UNPACK_LIMITS)
    except (ValueError, msgpack.UnpackException, RecursionError) as exc:
        raise PeerError("v1_bad_msgpack", type(exc).__name__) from None
    if _pack_or_none(obj) != frame:
        raise PeerError("v1_noncanonical", "re-encoding differs (or duplicate keys)")
    if type(obj) is not dict or tuple(obj) != FIELDS:
        raise PeerError("v1_bad_structure", "not a map of exactly the seed's 9 keys in order")
    _check_fields(obj, own_modulus_bytes)
    signed = _pack({name: obj[name] for name in FIELDS[:-1]})
    # Implied by the canonical check; kept so the verified bytes are provably the
    # received bytes: fixmap 9 -> fixmap 8 and the same eight entries.
    if signed[0] != 0x88 or frame[0] != 0x89 or frame[1 : len(signed)] != signed[1:]:
        raise PeerError("v1_noncanonical", "signed prefix differs from the frame")
    return Envelope(
        message_id=obj["message_id"],
        timestamp=obj["timestamp"],
        sender=obj["sender_fingerprint"],
        encrypted_key=obj["encrypted_key"],
        ciphertext=obj["ciphertext"],
        nonce=obj["nonce"],
        tag=obj["tag"],
        signature=obj["signature"],
        signed=signed,
    )


def _pack_or_none(obj: object) -> bytes | None:
    try:
        return _pack(obj)
    except (ValueError, TypeError, OverflowError, msgpack.PackException):
        return None


def _check_fields(obj: dict, own_modulus_bytes: int) -> None:
    version = obj["version"]
    if type(version) is not int or version != VERSION:
        _bad("version", "must be the integer 1")
    mid = obj["message_id"]
    if type(mid) is not str or not _UUID.fullmatch(mid):
        _bad("message_id", "not a canonical lowercase UUID string")
    ts = obj["timestamp"]
    if type(ts) not in (float, int) or not math.isfinite(ts):
        _bad("timestamp", "not a finite number")
    fp = obj["sender_fingerprint"]
    if type(fp) is not str or not _HEX64.fullmatch(fp):
        _bad("sender_fingerprint", "not 64 lowercase hex digits")
    _check_bin(obj, "encrypted_key", own_modulus_bytes, own_modulus_bytes)
    _check_bin(obj, "ciphertext", 0, MAX_CIPHERTEXT)
    _check_bin(obj, "nonce", NONCE_LEN, NONCE_LEN)
    _check_bin(obj, "tag", TAG_LEN, TAG_LEN)
    _check_bin(obj, "signature", 1, MAX_CIPHERTEXT)  # exact length: ``verify``


def _check_bin(obj: dict, name: str, low: int, high: int) -> None:
    value = obj[name]
    if type(value) is not bytes:
        _bad(name, "not binary")
    if not low <= len(value) <= high:
        _bad(name, f"length {len(value)} outside {low}..{high}")


def _bad(name: str, why: str) -> None:
    raise PeerError("v1_bad_field", f"{name}: {why}")


def check_time(env: Envelope, now: float) -> None:
    """Step 5: the envelope's timestamp is within MAX_SKEW seconds of ``now``."""
    if not abs(env.timestamp - now) <= MAX_SKEW:
        raise PeerError("v1_stale", f"timestamp {env.timestamp!r} vs now {now!r}")


def verify(env: Envelope, sender: PeerKey) -> None:
    """Step 8: the PSS signature (salt pinned to the maximum) by ``sender``. Public only.

    ``sender`` must be the key the node found for ``env.sender``; handing in another
    key is a bug of the caller (UsageError), not something a peer can cause.
    """
    if sender.fingerprint.hex() != env.sender:
        raise UsageError("verify was given a key other than the envelope's sender")
    if len(env.signature) != sender.modulus_bytes:
        raise PeerError("v1_bad_signature", f"length {len(env.signature)}")
    if not sender.verify_v1(env.signature, env.signed):
        raise PeerError("v1_bad_signature", "PSS verification failed")


def open_text(identity: Identity, env: Envelope) -> str:
    """Step 11: unwrap (the one private op), decrypt, decode. Only after ``verify``."""
    if len(env.encrypted_key) != identity.modulus_bytes:
        raise UsageError("envelope was parsed for another identity's modulus")
    key = identity.unwrap_v1(env.encrypted_key)
    if key is None:
        raise PeerError("v1_decrypt_failed", "key unwrap failed")
    if len(key) != AES_KEY_LEN:
        raise PeerError("v1_decrypt_failed", f"unwrapped key of {len(key)} bytes")
    try:
        plaintext = AESGCM(key).decrypt(env.nonce, env.ciphertext + env.tag, None)
    except InvalidTag:
        raise PeerError("v1_decrypt_failed", "GCM tag mismatch") from None
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise PeerError("v1_bad_text", "not valid UTF-8") from None
    if len(text) > MAX_TEXT_CHARS:
        raise PeerError("v1_bad_text", f"{len(text)} characters")
    return text
