"""A contact's key succession or revocation, judged and applied to the store.

Rules:
- A succession statement counts only on a session with the contact it concerns: it is
  judged against the chain of ``sender`` (the session's authenticated peer), so a
  contact can hand over only its own key, and a statement of a key this contact already
  left is a replay or a fork, never a fresh hand-over.
- A revocation certificate is judged against the chain of the key it names: it needs no
  session, because its owner may send it without the password (no handshake possible).
- Every refusal is a ``PeerError`` whose reason the caller logs and counts; nothing is
  stored and the node keeps serving. What is accepted is stored before it is reported
  (the store's transaction), so a crash between the two loses no key change.
"""

from __future__ import annotations

from typing import NamedTuple

from enclave.errors import PeerError
from enclave.protocol import succession as sc
from enclave.protocol.crypto import PeerKey


class Rotated(NamedTuple):
    """A contact moved from ``old_fp`` to ``new_fp`` (hex), signed by the old key."""

    old_fp: str
    new_fp: str
    seq: int
    time_ms: int


def _chain(store, fp_hex: str, reason: str) -> sc.Chain:
    held = store.key_chain(fp_hex)
    if held is None:
        raise PeerError(reason, "not a contact's current key")
    retired = {bytes.fromhex(o): bytes.fromhex(n) for o, n in held.retired.items()}
    return sc.Chain(PeerKey.from_pem(held.public_key), held.seq, retired, held.revoked)


def accept_succession(store, sender_fp: str, data: bytes, now: float) -> Rotated:
    """Judge the statement ``data`` that contact ``sender_fp`` (hex) sent and apply it;
    PeerError naming why it is refused."""
    statement = sc.decode_succession(data)
    chain = _chain(store, sender_fp, "succession_unknown_key")
    new_key = sc.judge(statement, chain)
    old_hex, new_hex = statement.old_fp.hex(), new_key.fingerprint.hex()
    try:
        store.apply_succession(
            old_hex, new_hex, statement.new_key_pem.decode(), statement.seq, data, now
        )
    except ValueError as err:  # e.g. the new key is another contact's
        raise PeerError("succession_conflict", str(err)) from None
    return Rotated(old_hex, new_hex, statement.seq, statement.time_ms)


def accept_revocation(store, data: bytes) -> str:
    """Judge the certificate ``data`` and mark its key revoked; the revoked fingerprint
    (hex), or PeerError naming why it is refused."""
    cert = sc.decode_revocation(data)
    fp_hex = cert.fp.hex()
    sc.judge_revocation(cert, _chain(store, fp_hex, "revocation_unknown_key"))
    if not store.set_revoked(fp_hex, data):
        raise PeerError("revocation_replay", "this key is already revoked")
    return fp_hex
