"""Replay-ID ring, pure-Python twin of ``_ring_c``.

Rules of the module (both twins keep them; the same tests prove it):
- A fixed-capacity set of recent IDs. ``check_and_insert`` answers "new?" and records
  the key in one O(1) step; ``key in ring`` only asks.
- When the ring is full, a new key evicts the oldest inserted key (first in, first
  out); a key seen again is not refreshed: a replay changes nothing.
- A key is bytes, bytearray or memoryview, or a str, which is the same key as its
  UTF-8 bytes. Keys are 1..MAX_KEY_LEN bytes (ValueError otherwise); anything else is
  a TypeError.
- ``ReplayRing(capacity, digests=True)``: every key is already a secret, uniformly
  random hash, e.g. a truncated SHA-256 over a per-process secret and the ID: exact
  ``bytes`` (not a subclass: TypeError) of MIN_DIGEST_LEN..MAX_KEY_LEN bytes
  (ValueError). The compiled twin then takes the key's first 8 bytes as its table hash
  instead of hashing the key; membership is still decided on the key's full contents,
  and eviction order is the same. A caller whose keys a peer can predict or choose
  must keep ``digests=False`` (the default), where the key is hashed with the
  process's keyed SipHash.
- ``check_and_insert`` takes its key positionally only (the compiled twin's call is
  cheapest so).
- Only IDs that have authenticated may enter: the ring is the in-memory front of the
  store's unique (peer, ID) check, never a substitute for it.
- The limits below are defined here once; the compiled twin imports them.
"""

from __future__ import annotations

import operator
from collections import deque

MAX_KEY_LEN = 64  # the compiled twin sizes its fixed-width slots by this
MAX_CAPACITY = 1 << 20  # bounds the one allocation of the compiled twin (~100 MB)
MIN_DIGEST_LEN = 8  # digests=True: the compiled twin's table hash is the first 8 bytes


def check_capacity(value: object) -> int:
    capacity = operator.index(value)  # type: ignore[arg-type]
    if not 1 <= capacity <= MAX_CAPACITY:
        raise ValueError(f"capacity must be in 1..{MAX_CAPACITY}, got {capacity}")
    return capacity


def bad_key_length(size: int) -> ValueError:
    return ValueError(f"replay key must be 1..{MAX_KEY_LEN} bytes, got {size}")


def bad_key_type(key: object) -> TypeError:
    return TypeError(
        f"replay key must be bytes, bytearray, memoryview or str, not {type(key).__name__}"
    )


def bad_digest_type(key: object) -> TypeError:
    return TypeError(f"replay key must be bytes (digests=True), not {type(key).__name__}")


def bad_digest_length(size: int) -> ValueError:
    return ValueError(
        f"replay key must be {MIN_DIGEST_LEN}..{MAX_KEY_LEN} bytes (digests=True), got {size}"
    )


def _digest(key: object) -> bytes:
    if type(key) is not bytes:  # a subclass too: it may hash or compare otherwise
        raise bad_digest_type(key)
    if not MIN_DIGEST_LEN <= len(key) <= MAX_KEY_LEN:
        raise bad_digest_length(len(key))
    return key


def _normalize(key: object) -> bytes:
    if type(key) is bytes:
        raw = key
    elif isinstance(key, bytes):  # a subclass may hash or compare otherwise
        raw = bytes(key)
    elif isinstance(key, str):
        raw = key.encode("utf-8")
    elif isinstance(key, bytearray):
        raw = bytes(key)
    elif isinstance(key, memoryview):
        if not key.c_contiguous:  # what the compiled twin's buffer request refuses
            raise BufferError("replay key must be a contiguous buffer")
        raw = key.tobytes()
    else:
        raise bad_key_type(key)
    if not 0 < len(raw) <= MAX_KEY_LEN:
        raise bad_key_length(len(raw))
    return raw


class ReplayRing:
    """Fixed-capacity FIFO set of recently seen message IDs."""

    __slots__ = ("_capacity", "_digests", "_seen", "_order")

    def __init__(self, capacity: int = 10000, *, digests: bool = False) -> None:
        self._capacity = check_capacity(capacity)
        self._digests = bool(digests)
        self._seen: set[bytes] = set()
        self._order: deque[bytes] = deque()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def digests(self) -> bool:
        return self._digests

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        if self._digests:
            return _digest(key) in self._seen
        return _normalize(key) in self._seen

    def check_and_insert(self, key: bytes | bytearray | memoryview | str, /) -> bool:
        raw = _digest(key) if self._digests else _normalize(key)
        if raw in self._seen:
            return False
        if len(self._order) == self._capacity:
            self._seen.remove(self._order.popleft())
        self._seen.add(raw)
        self._order.append(raw)
        return True

    def clear(self) -> None:
        self._seen.clear()
        self._order.clear()
