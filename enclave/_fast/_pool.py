"""Per-peer connection bookkeeping (pure Python; the node imports it as ``enclave._fast.Pool``).

A compiled twin existed and was dropped: the node's calls (``pick`` per dispatch,
``touch`` per received batch, ``add``/``remove`` per session, ``expire`` once a
second) are a dict lookup or two each, which compiled code pays as much as this
module does; it reached 2.6-4.6x, below the 5x a compiled module must earn
(PERFORMANCE.md, "_fast twins").

Rules of the module (tests/test_fast_pool.py proves them):
- Time is passed in (``now``, seconds on a monotonic clock, never decreasing) and
  never read here, so idle expiry is deterministic in tests.
- A peer holds at most ``max_per_peer`` connections: ``add`` beyond that returns False
  and changes nothing. A connection id is registered once (ValueError otherwise).
  Unknown ids raise KeyError, except in ``remove``, which answers None.
- ``pick`` returns the peer's connection with the fewest items in flight; ties go to
  the earliest added (so an idle first connection is the answer at once).
- A connection with nothing in flight is idle. Idle connections sit in one list in
  last-used order: ``touch`` moves one to the end, ``acquire`` takes it out (a busy
  connection never expires), the ``release`` that brings it back to zero puts it at
  the end. ``expire`` therefore only looks at what it removes, plus one: its cost does
  not grow with the number of peers.
- Methods of one argument take it positionally only.
- A connection expires when ``now >= last_used + idle_timeout``. ``next_expiry``
  returns that same sum for the oldest idle connection, so a timer armed for it finds
  work when it fires (a subtraction could round the other way and spin the timer).
"""

from __future__ import annotations

import math
import operator
from collections import OrderedDict
from collections.abc import Hashable


def check_settings(max_per_peer: object, idle_timeout: object) -> tuple[int, float]:
    """Validate the pool's settings."""
    limit = operator.index(max_per_peer)  # type: ignore[arg-type]
    if limit < 1:
        raise ValueError(f"max_per_peer must be at least 1, got {limit}")
    timeout = float(idle_timeout)  # type: ignore[arg-type]
    if not 0.0 <= timeout < math.inf:
        raise ValueError(f"idle_timeout must be finite and >= 0, got {timeout}")
    return limit, timeout


def duplicate_conn(conn_id: int) -> ValueError:
    return ValueError(f"connection {conn_id} is already registered")


def release_below_zero(conn_id: int) -> ValueError:
    return ValueError(f"connection {conn_id} released more often than acquired")


class _Conn:
    __slots__ = ("peer", "conn_id", "in_flight", "last_used")

    def __init__(self, peer: Hashable, conn_id: int, now: float) -> None:
        self.peer = peer
        self.conn_id = conn_id
        self.in_flight = 0
        self.last_used = now


class Pool:
    """Connections per peer: limits, least-loaded pick, idle expiry."""

    __slots__ = ("_max_per_peer", "_idle_timeout", "_conns", "_peers", "_idle")

    def __init__(self, max_per_peer: int = 3, idle_timeout: float = 30.0) -> None:
        self._max_per_peer, self._idle_timeout = check_settings(max_per_peer, idle_timeout)
        self._conns: dict[int, _Conn] = {}
        self._peers: dict[Hashable, list[_Conn]] = {}  # each list in add order
        self._idle: OrderedDict[int, _Conn] = OrderedDict()  # least recently used first

    @property
    def max_per_peer(self) -> int:
        return self._max_per_peer

    @property
    def idle_timeout(self) -> float:
        return self._idle_timeout

    def __len__(self) -> int:
        return len(self._conns)

    def __contains__(self, conn_id: object) -> bool:
        return conn_id in self._conns

    def add(self, peer: Hashable, conn_id: int, now: float) -> bool:
        conn_id = operator.index(conn_id)
        if conn_id in self._conns:
            raise duplicate_conn(conn_id)
        conns = self._peers.get(peer)
        if conns is None:
            conns = self._peers[peer] = []
        elif len(conns) >= self._max_per_peer:
            return False
        conn = _Conn(peer, conn_id, now)
        conns.append(conn)
        self._conns[conn_id] = conn
        self._idle[conn_id] = conn
        return True

    def remove(self, conn_id: int, /) -> Hashable | None:
        conn = self._conns.get(conn_id)
        if conn is None:
            return None
        self._drop(conn)
        return conn.peer

    def pick(self, peer: Hashable, /) -> int | None:
        conns = self._peers.get(peer)
        if not conns:
            return None
        best = conns[0]
        if best.in_flight == 0:  # nothing in flight: no connection can beat the first
            return best.conn_id
        for conn in conns:
            if conn.in_flight < best.in_flight:
                best = conn
        return best.conn_id

    def acquire(self, conn_id: int, now: float) -> None:
        conn = self._conns[conn_id]
        if conn.in_flight == 0:
            del self._idle[conn.conn_id]
        conn.in_flight += 1
        conn.last_used = now

    def release(self, conn_id: int, now: float) -> None:
        conn = self._conns[conn_id]
        if conn.in_flight == 0:
            raise release_below_zero(conn.conn_id)
        conn.in_flight -= 1
        conn.last_used = now
        if conn.in_flight == 0:
            self._idle[conn.conn_id] = conn

    def touch(self, conn_id: int, now: float) -> None:
        conn = self._conns[conn_id]
        conn.last_used = now
        if conn.in_flight == 0:
            self._idle.move_to_end(conn.conn_id)

    def expire(self, now: float, /) -> list[tuple[Hashable, int]]:
        expired = []
        while self._idle:
            conn = next(iter(self._idle.values()))
            if not now >= conn.last_used + self._idle_timeout:  # NaN expires nothing
                break
            self._drop(conn)
            expired.append((conn.peer, conn.conn_id))
        return expired

    def next_expiry(self) -> float | None:
        if not self._idle:
            return None
        return next(iter(self._idle.values())).last_used + self._idle_timeout

    def in_flight(self, conn_id: int, /) -> int:
        return self._conns[conn_id].in_flight

    def peer_of(self, conn_id: int, /) -> Hashable:
        return self._conns[conn_id].peer

    def count(self, peer: Hashable, /) -> int:
        conns = self._peers.get(peer)
        return len(conns) if conns else 0

    def connections(self, peer: Hashable, /) -> list[int]:
        return [conn.conn_id for conn in self._peers.get(peer, ())]

    def _drop(self, conn: _Conn) -> None:
        del self._conns[conn.conn_id]
        if conn.in_flight == 0:
            del self._idle[conn.conn_id]
        conns = self._peers[conn.peer]
        conns.remove(conn)
        if not conns:
            del self._peers[conn.peer]
