"""What people wrote is sealed before it reaches the disk (AES-256-GCM under the store
key); what the store needs to work (fingerprints, times, sizes, states) stays in clear.

Rules:
- The store key is 32 random bytes, wrapped in ``identity.key`` under the same
  password-derived key as the identity (docs/KEYFILE.md, version 2): whoever can unlock
  the identity can read the history, and nobody else.
- A sealed value is ``nonce (12) || ciphertext || tag (16)`` in a BLOB column; the
  associated data names the row (its table, rowid, peer and direction), so a value
  copied to another row, or a row edited to another peer or direction, fails to open.
- A value is sealed or clear by its SQLite type: TEXT is clear (written before sealing
  existed, or by a store opened without the key), BLOB is sealed. So sealing an old
  store is resumable: each batch seals the next clear rows in one transaction.
- A store that was ever opened with its key holds a key check (schema 13): opening it
  with another key is refused, and opening it without a key gives a ``Locked`` sealer,
  which reads every sealed value as ``LOCKED`` and refuses to write a new one.
- A value that fails to open (a tampered or swapped row) reads as ``DAMAGED``: one bad
  row must not make a conversation unreadable.
- Nonces count up from a random 96-bit start, drawn each time a store is opened: unique
  within an opening (a batch reserves its range at once, so the loop and the writer
  thread may both seal), and two openings' ranges overlap only if their starts fall
  within the count of values sealed, a chance of about 2^-60 for a billion values over
  a million openings. It spares a system call per value.
- The AEAD itself is ``enclave._fast.CountedGcm``: the writer thread seals a batch's
  message bodies in one call (``seal_rows``), which the compiled twin does in C with
  the GIL released, so sealing costs the event loop nothing.
"""

from __future__ import annotations

import os
import struct

from enclave._fast import CountedGcm
from enclave.errors import UserError

KEY_BYTES = 32
NONCE = 12
OVERHEAD = NONCE + 16  # nonce and tag: what sealing adds to a value's UTF-8 bytes
LOCKED = "(encrypted: unlock with the password to read)"
DAMAGED = "(this message could not be decrypted: the store was altered)"
_CHECK = b"enclave store key check"
_CHECK_AD = b"enclave-store/check"
_ROW = struct.Struct(">cqqc")  # table, rowid, peer id, direction
_PEER = struct.Struct(">cq")  # "p", peers.id
_DIRECTIONS = {"in": b"i", "out": b"o"}


def message_ad(rowid: int, peer: int, direction: str) -> bytes:
    """The associated data of a ``messages.body``."""
    return _ROW.pack(b"m", rowid, peer, _DIRECTIONS[direction])


def file_name_ad(message: int, peer: int, direction: str) -> bytes:
    """The associated data of a ``transfers.name`` (named by its history row)."""
    return _ROW.pack(b"t", message, peer, _DIRECTIONS[direction])


def record_ad(group_id: bytes, epoch: int) -> bytes:
    """The associated data of a ``group_records.record`` (its group and epoch)."""
    return b"r" + group_id + epoch.to_bytes(8, "big")


# A group's membership records are bytes either way: a sealed one starts with this
# (an encoded record is a msgpack array, which never starts with 0xff).
RECORD_MAGIC = b"\xffENC"


def group_name_ad(group_id: bytes) -> bytes:
    """The associated data of a ``groups.name`` (named by the group's random id)."""
    return b"g" + group_id


def peer_name_ad(peer: int) -> bytes:
    """The associated data of a ``peers.name``: named by ``peers.id``, which a key
    rotation keeps (the fingerprint changes in place)."""
    return _PEER.pack(b"p", peer)


class Sealer:
    """Seals and opens values under the store key."""

    sealed = True  # new values are written sealed

    def __init__(self, key: bytes) -> None:
        self._gcm = CountedGcm(key, int.from_bytes(os.urandom(NONCE), "big"))

    def seal(self, text: str, ad: bytes) -> bytes:
        return self._gcm.seal(text.encode("utf-8"), ad)

    def seal_rows(self, flat: list, width: int, direction: str) -> None:
        """Seal, in place, the bodies of a flat list of message rows (``rowid, peer
        id, message id, body, ...``), each under its ``message_ad``."""
        self._gcm.seal_rows(flat, width, _DIRECTIONS[direction])

    def open(self, value, ad: bytes):
        """The text of a stored value: clear TEXT as it is, a sealed BLOB opened."""
        if type(value) is not bytes:
            return value  # None (erased) or clear text
        try:
            return self._gcm.open(value, ad).decode("utf-8")
        except ValueError:  # a wrong tag, too short, or not UTF-8
            return DAMAGED

    def seal_record(self, record: bytes, ad: bytes) -> bytes:
        return RECORD_MAGIC + self._gcm.seal(record, ad)

    def seal_bytes(self, data: bytes, ad: bytes) -> bytes:
        return self._gcm.seal(data, ad)

    def open_bytes(self, value: bytes, ad: bytes) -> bytes | None:
        """``value`` opened; None when it does not open (altered, another key)."""
        try:
            return self._gcm.open(value, ad)
        except ValueError:
            return None

    def open_record(self, value: bytes, ad: bytes) -> bytes:
        """A record as stored: a clear one as it is; a sealed one opened (one that does
        not open is returned as stored: the group's log check refuses it)."""
        if not value.startswith(RECORD_MAGIC):
            return value
        try:
            return self._gcm.open(value[len(RECORD_MAGIC) :], ad)
        except ValueError:
            return value

    def key_check(self) -> bytes:
        return self.seal(_CHECK.decode(), _CHECK_AD)

    def checks(self, stored: bytes) -> bool:
        return self.open(stored, _CHECK_AD) == _CHECK.decode()


class Clear:
    """A store never opened with its key (tests, tools): values stay text."""

    sealed = False

    def seal(self, text: str, ad: bytes) -> str:
        return text

    def seal_rows(self, flat: list, width: int, direction: str) -> None:
        return None

    def open(self, value, ad: bytes):
        return value

    def seal_record(self, record: bytes, ad: bytes) -> bytes:
        return record

    def open_record(self, value: bytes, ad: bytes) -> bytes:
        return value

    def seal_bytes(self, data: bytes, ad: bytes) -> bytes:
        return data

    def open_bytes(self, value: bytes, ad: bytes) -> bytes | None:
        return value


class Locked(Clear):
    """A sealed store opened without its key: it reads what is in clear and refuses to
    write new text (it would lie in clear beside the sealed rows)."""

    def seal(self, text: str, ad: bytes) -> str:
        raise UserError("the history is encrypted: this needs the password")

    def seal_rows(self, flat: list, width: int, direction: str) -> None:
        raise UserError("the history is encrypted: this needs the password")

    def open(self, value, ad: bytes):
        return LOCKED if type(value) is bytes else value

    def seal_record(self, record: bytes, ad: bytes) -> bytes:
        raise UserError("the history is encrypted: this needs the password")

    def seal_bytes(self, data: bytes, ad: bytes) -> bytes:
        raise UserError("the history is encrypted: this needs the password")


def for_store(key: bytes | None, stored_check: bytes | None, path) -> Sealer | Clear:
    """The sealer of a store, given the key it was opened with and its key check."""
    if key is None:
        return Clear() if stored_check is None else Locked()
    sealer = Sealer(key)
    if stored_check is not None and not sealer.checks(stored_check):
        raise UserError(
            f"{path} was encrypted under another identity's key file; it was left"
            " untouched (restore the key file it belongs to, or move it away)"
        )
    return sealer
