"""Budgets that keep a flood from turning into work: token buckets, slots, connection caps.

These are the counters behind PROTOCOL.md b.4 (and d for v1): connection caps (check 1),
the per-source and global verify buckets (check 8), the per-peer authenticated bucket and
the private-op slots (check 11); and behind the receive quotas (``enclave.node.quotas``), the
per-peer chat and byte buckets, whose ``time_until`` says how long a refused batch waits.
Settings (``enclave.node.settings``) gives their sizes.

Rules of the module:
- Time is passed in (``now``, float seconds on a monotonic clock) and never read here, so
  every budget is deterministic in tests. A ``now`` earlier than one already seen counts
  as no time passed: a bucket never loses or gains tokens by going back in time.
- Nothing here waits. Every question is answered at once with True (granted, and counted)
  or False (refused, nothing changed), and the caller closes or sends ALERT busy.
- Memory is bounded: ``KeyedBuckets`` tracks at most ``max_keys`` keys and
  ``ConnectionCaps`` at most ``total`` addresses.
- Misuse by the caller (a negative rate, releasing what was never taken) raises
  ValueError; it is a bug, never the peer's fault.
- No asyncio, no imports beyond the standard library.

``KeyedBuckets`` and the eviction trade-off. One bucket per key (a source address, a peer
fingerprint); a key not seen before starts full. A bucket that has refilled to full carries
no information (a new bucket would be identical), so it may be forgotten at any time; that
is the only eviction there is. When ``max_keys`` keys are tracked and none of them is full
again, a take for an untracked key is refused (False) rather than evicting someone's
partly drained bucket. The alternative, evicting the least recently used bucket, would let
an attacker who rotates through ``max_keys`` fresh keys push a victim's drained bucket out
and have it come back full: a free refill of someone else's budget. Refusing instead costs
this: while the table is full of non-full buckets, sources that were not already tracked
are turned away. That lock-out ends as soon as the first tracked bucket refills (at most
``burst / rate`` seconds after the attacker's last take on it), so holding it costs the
attacker a take on every one of ``max_keys`` buckets every ``burst / rate`` seconds or
faster, spread over ``max_keys`` distinct keys. Tracked keys, and so every honest source
already known, keep their own budgets throughout. Callers choose keys that are costly to
multiply: an IPv4 address, an IPv6 /64 rather than a full IPv6 address, a fingerprint
only after it was found in the address book.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable

# Refills add small floats; a sum that should be exactly 1.0 may land a hair below it.
_EPSILON = 1e-9


def _check_rate_burst(rate: object, burst: object) -> tuple[float, float]:
    rate_f = float(rate)  # type: ignore[arg-type]
    burst_f = float(burst)  # type: ignore[arg-type]
    if not 0.0 <= rate_f < math.inf:
        raise ValueError(f"rate must be finite and >= 0, got {rate_f}")
    if not 0.0 < burst_f < math.inf:
        raise ValueError(f"burst must be finite and > 0, got {burst_f}")
    return rate_f, burst_f


def _check_n(n: float) -> None:
    if not 0.0 < n < math.inf:
        raise ValueError(f"a take must be finite and > 0, got {n}")


class TokenBucket:
    """``burst`` tokens at most, ``rate`` new tokens a second; starts full."""

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = _check_rate_burst(rate, burst)
        self._tokens = self.burst
        self._last = float(now)

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def take(self, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens if there are that many now; otherwise change nothing.

        ``n`` larger than ``burst`` never succeeds."""
        _check_n(n)
        self._refill(now)
        if n > self.burst or self._tokens + _EPSILON < n:
            return False
        self._tokens = max(0.0, self._tokens - n)
        return True

    def peek(self, now: float) -> float:
        """Tokens available at ``now`` (refills, takes nothing)."""
        self._refill(now)
        return self._tokens


class _Entry:
    __slots__ = ("tokens", "last", "stamp")

    def __init__(self, tokens: float, last: float, stamp: int) -> None:
        self.tokens = tokens
        self.last = last
        self.stamp = stamp  # matches the live heap entry; older heap entries are stale


class KeyedBuckets:
    """One token bucket per key, all with the same ``rate`` and ``burst``, bounded memory.

    See the module docstring for the eviction rule: only buckets that are full again are
    forgotten; with ``max_keys`` non-full buckets tracked, an untracked key is refused.
    Cost: O(log n) amortised per take.
    """

    __slots__ = ("rate", "burst", "max_keys", "_entries", "_heap", "_stamp")

    def __init__(self, rate: float, burst: float, *, max_keys: int = 4096) -> None:
        self.rate, self.burst = _check_rate_burst(rate, burst)
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError(f"max_keys must be an integer >= 1, got {max_keys!r}")
        self.max_keys = max_keys
        self._entries: dict[Hashable, _Entry] = {}
        # (time the bucket is full again, stamp, key): a min-heap, stale entries skipped.
        self._heap: list[tuple[float, int, Hashable]] = []
        self._stamp = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def _full_at(self, entry: _Entry) -> float:
        missing = self.burst - entry.tokens
        if missing <= 0.0:
            return entry.last
        if self.rate == 0.0:
            return math.inf
        return entry.last + missing / self.rate

    def _refill(self, entry: _Entry, now: float) -> None:
        if now > entry.last:
            entry.tokens = min(self.burst, entry.tokens + (now - entry.last) * self.rate)
            entry.last = now

    def _push(self, key: Hashable, entry: _Entry) -> None:
        self._stamp += 1
        entry.stamp = self._stamp
        heapq.heappush(self._heap, (self._full_at(entry), self._stamp, key))
        if len(self._heap) > 2 * len(self._entries) + 64:
            self._heap = [(self._full_at(e), e.stamp, k) for k, e in self._entries.items()]
            heapq.heapify(self._heap)

    def _evict_full(self, now: float, until: int) -> None:
        """Forget buckets that are full at ``now`` until at most ``until`` keys remain."""
        heap, entries = self._heap, self._entries
        while heap and len(entries) > until:
            full_at, stamp, key = heap[0]
            entry = entries.get(key)
            if entry is None or entry.stamp != stamp:
                heapq.heappop(heap)  # stale: the key was taken from again, or forgotten
                continue
            if full_at > now:
                return  # the earliest bucket to refill is not full yet: none is
            heapq.heappop(heap)
            del entries[key]

    def take(self, key: Hashable, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens from ``key``'s bucket; False (and no change) if it cannot."""
        _check_n(n)
        entry = self._entries.get(key)
        if entry is None:
            if n > self.burst:
                return False
            if len(self._entries) >= self.max_keys:
                self._evict_full(now, self.max_keys - 1)
                if len(self._entries) >= self.max_keys:
                    return False  # every tracked bucket still matters: refuse the newcomer
            entry = _Entry(self.burst - n, float(now), 0)
            self._entries[key] = entry
            self._push(key, entry)
            return True
        self._refill(entry, now)
        if n > self.burst or entry.tokens + _EPSILON < n:
            return False
        entry.tokens = max(0.0, entry.tokens - n)
        self._push(key, entry)
        return True

    def peek(self, key: Hashable, now: float) -> float:
        """Tokens ``key`` could take at ``now`` (``burst`` for an untracked key; whether a
        new key would be admitted at all is ``take``'s answer)."""
        entry = self._entries.get(key)
        if entry is None:
            return self.burst
        self._refill(entry, now)
        return entry.tokens

    def time_until(self, key: Hashable, now: float, n: float = 1.0) -> float:
        """Seconds from ``now`` until ``key``'s bucket holds ``n`` tokens: 0.0 if it does
        now (an untracked key starts full), ``math.inf`` if it never will (``n`` over
        ``burst``, or no refill). Takes nothing; whether an untracked key would be
        admitted at all is ``take``'s answer."""
        _check_n(n)
        if n > self.burst:
            return math.inf
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        self._refill(entry, now)
        missing = n - entry.tokens
        if missing <= _EPSILON:
            return 0.0
        return math.inf if self.rate == 0.0 else missing / self.rate

    def prune(self, now: float) -> int:
        """Forget every bucket that is full at ``now`` (housekeeping); returns how many."""
        before = len(self._entries)
        self._evict_full(now, 0)
        return before - len(self._entries)


class Slots:
    """A counting semaphore that refuses rather than waits (private-op jobs in flight)."""

    __slots__ = ("_capacity", "_in_use")

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1, got {capacity!r}")
        self._capacity = capacity
        self._in_use = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def in_use(self) -> int:
        return self._in_use

    def try_acquire(self) -> bool:
        """Take a slot if one is free; False when all ``capacity`` are held."""
        if self._in_use >= self._capacity:
            return False
        self._in_use += 1
        return True

    def release(self) -> None:
        """Give back a slot; ValueError if none is held."""
        if self._in_use <= 0:
            raise ValueError("Slots.release() without a slot held")
        self._in_use -= 1


class ConnectionCaps:
    """Admission of connections: at most ``total`` open, at most ``per_address`` from one
    source address. The caller releases each admitted connection exactly once, when it
    closes. ``address`` is whatever key the caller chooses for a source (see the module
    docstring: an IPv6 /64 rather than a full address)."""

    __slots__ = ("_total", "_per_address", "_open", "_by_address")

    def __init__(self, total: int, per_address: int) -> None:
        for name, value in (("total", total), ("per_address", per_address)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self._total = total
        self._per_address = per_address
        self._open = 0
        self._by_address: dict[str, int] = {}

    @property
    def total(self) -> int:
        return self._total

    @property
    def per_address(self) -> int:
        return self._per_address

    @property
    def total_open(self) -> int:
        return self._open

    def open_from(self, address: str) -> int:
        return self._by_address.get(address, 0)

    def admit(self, address: str) -> bool:
        """Count one more connection from ``address`` if both caps allow; else False."""
        if self._open >= self._total:
            return False
        count = self._by_address.get(address, 0)
        if count >= self._per_address:
            return False
        self._by_address[address] = count + 1
        self._open += 1
        return True

    def release(self, address: str) -> None:
        """One connection from ``address`` closed; ValueError if none was admitted."""
        count = self._by_address.get(address, 0)
        if count <= 0:
            raise ValueError(f"ConnectionCaps.release({address!r}) without an open connection")
        if count == 1:
            del self._by_address[address]
        else:
            self._by_address[address] = count - 1
        self._open -= 1
