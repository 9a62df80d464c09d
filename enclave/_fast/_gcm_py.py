"""AES-256-GCM with counted nonces: the store's sealing, pure twin of ``_gcm_c``.

Rules of the module (both twins):
- A sealed value is ``nonce (12) || ciphertext || tag (16)``: exactly what
  ``AESGCM.encrypt`` gives after its nonce, so either twin opens what the other sealed.
- Nonces are a 96-bit big-endian counter that starts where the caller says (the store
  draws a random start per opening: sealing.py says why that is safe) and wraps at
  2**96. Each value takes the next one; a batch reserves its whole range at once, so
  two threads sealing together never share a nonce.
- ``seal_rows`` seals the bodies of a batch of the store's message rows in place: a
  flat list of rows of ``width`` values, each ``(rowid, peer id, message id, body,
  ...)``. Each body (a str) becomes its sealed UTF-8 bytes, under the associated data
  of a message body: ``b"m" || rowid (8) || peer id (8) || direction (1)``, big-endian
  signed as ``struct`` packs ``>qq``. Every row is checked before anything is sealed,
  and the list changes only when all of them sealed: all or nothing.
- ``open`` raises ``ValueError`` for anything that does not open (too short to hold a
  tag, a wrong tag, other data): the caller decides what a damaged value reads as.
- A value, its associated data or a body's UTF-8 over ``MAX_VALUE`` bytes (2 GiB, the
  most OpenSSL's calls take at once) raises ``OverflowError`` before anything is
  sealed (the store's values are capped far below by SQLite's 1 GB).
- ``seal_rows`` reads the rows from one copy of ``flat`` taken after its layout is
  checked: a list that another thread changes meanwhile never mixes two states (the
  compiled twin seals without the GIL).
"""

from __future__ import annotations

import struct
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE = 12
TAG = 16
MAX_VALUE = (1 << 31) - 1
_MASK = (1 << 8 * NONCE) - 1
_ROW_AD = struct.Struct(">cqq")
_INT64 = (-(1 << 63), (1 << 63) - 1)


def check_key(key) -> None:
    if type(key) is not bytes or len(key) != KEY_BYTES:
        raise ValueError(f"a store key is {KEY_BYTES} bytes")


def check_start(start) -> None:
    if type(start) is not int or not 0 <= start <= _MASK:
        raise ValueError("a nonce start is an int in [0, 2**96)")


def check_bytes(data, ad) -> None:
    if type(data) is not bytes or type(ad) is not bytes:
        raise TypeError("a value and its associated data are bytes")
    check_size(len(data))
    check_size(len(ad))


def check_size(size: int) -> None:
    if size > MAX_VALUE:
        raise OverflowError("a value or its associated data is over 2 GiB")


def check_copy(rows: list, count: int, width: int) -> None:
    """The copy of a batch's list still holds the rows its layout was checked for."""
    if len(rows) != count * width:
        raise ValueError("the flat list changed while it was being sealed")


def check_layout(flat, width, direction) -> int:
    """The number of rows in ``flat``, or the error both twins raise for its layout."""
    if type(flat) is not list:
        raise TypeError("rows are a flat list")
    if type(width) is not int or width < 4:
        raise ValueError("a message row has at least 4 values")
    if len(flat) % width:
        raise ValueError("the flat list does not hold whole rows")
    if type(direction) is not bytes or len(direction) != 1:
        raise ValueError("a direction is one byte")
    return len(flat) // width


def check_row(rowid, peer, body) -> None:
    for number in (rowid, peer):
        if type(number) is not int or not _INT64[0] <= number <= _INT64[1]:
            raise ValueError("a message row's rowid and peer id are 64-bit ints")
    if type(body) is not str:
        raise TypeError("a message body to seal is a str")
    check_size(len(body))  # its UTF-8 is at least as long: refused before encoding


def bad_value() -> ValueError:
    return ValueError("the sealed value did not open")


class CountedGcm:
    """Seals and opens values under one key, each sealed value with a fresh nonce."""

    def __init__(self, key: bytes, start: int) -> None:
        check_key(key)
        check_start(start)
        self._aead = AESGCM(key)
        self._next = start
        self._lock = threading.Lock()  # a read-then-add of Python ints is not atomic

    def _reserve(self, count: int) -> int:
        with self._lock:
            first = self._next
            self._next = (first + count) & _MASK
        return first

    def seal(self, data: bytes, ad: bytes) -> bytes:
        check_bytes(data, ad)
        nonce = self._reserve(1).to_bytes(NONCE, "big")
        return nonce + self._aead.encrypt(nonce, data, ad)

    def open(self, value: bytes, ad: bytes) -> bytes:
        check_bytes(value, ad)
        if len(value) < NONCE + TAG:
            raise bad_value()
        try:
            return self._aead.decrypt(value[:NONCE], value[NONCE:], ad)
        except InvalidTag:
            raise bad_value() from None

    def seal_rows(self, flat: list, width: int, direction: bytes) -> None:
        rows = check_layout(flat, width, direction)
        if rows == 0:
            return
        copy = flat[:]
        check_copy(copy, rows, width)
        for at in range(0, len(copy), width):
            check_row(copy[at], copy[at + 1], copy[at + 3])
        plain = [copy[at + 3].encode("utf-8") for at in range(0, len(copy), width)]
        for body in plain:
            check_size(len(body))
        first, encrypt, pack = self._reserve(rows), self._aead.encrypt, _ROW_AD.pack
        sealed = []
        for i, at in enumerate(range(0, len(copy), width)):
            nonce = ((first + i) & _MASK).to_bytes(NONCE, "big")
            ad = pack(b"m", copy[at], copy[at + 1]) + direction
            sealed.append(nonce + encrypt(nonce, plain[i], ad))
        flat[3::width] = sealed
