"""Pool (pure Python: a compiled twin did not pay, see PERFORMANCE.md)."""

import pytest

from enclave._fast import Pool

A = b"A" * 32  # peers are 32-byte fingerprints in practice
B = b"B" * 32


def test_add_respects_max_per_peer():
    pool = Pool(max_per_peer=2)
    assert pool.add(A, 1, 0.0) and pool.add(A, 2, 0.0)
    assert pool.add(A, 3, 0.0) is False
    assert 3 not in pool and pool.count(A) == 2 and len(pool) == 2
    assert pool.add(B, 3, 0.0)  # another peer has its own allowance
    assert pool.remove(1) == A
    assert pool.add(A, 4, 0.0)
    assert pool.connections(A) == [2, 4]


def test_duplicate_conn_id_is_a_value_error():
    pool = Pool()
    pool.add(A, 1, 0.0)
    with pytest.raises(ValueError):
        pool.add(B, 1, 0.0)
    assert pool.count(B) == 0 and pool.peer_of(1) == A


def test_duplicate_conn_id_is_reported_even_when_the_peer_is_full():
    pool = Pool(max_per_peer=1)
    pool.add(A, 1, 0.0)
    with pytest.raises(ValueError):
        pool.add(A, 1, 0.0)


@pytest.mark.parametrize("bad", ["1", 1.0, None])
def test_conn_id_must_be_an_int(bad):
    with pytest.raises(TypeError):
        Pool().add(A, bad, 0.0)


def test_unhashable_peer():
    with pytest.raises(TypeError):
        Pool().add([A], 1, 0.0)


def test_pick_least_loaded_ties_to_earliest():
    pool = Pool()
    assert pool.pick(A) is None
    for conn_id in (7, 3, 5):
        pool.add(A, conn_id, 0.0)
    assert pool.pick(A) == 7
    pool.acquire(7, 1.0)
    assert pool.pick(A) == 3
    pool.acquire(3, 1.0)
    pool.acquire(5, 1.0)
    assert pool.pick(A) == 7  # all at one: the earliest added
    pool.acquire(7, 1.0)
    pool.acquire(3, 1.0)
    assert pool.pick(A) == 5
    pool.release(3, 2.0)
    pool.release(3, 2.0)
    assert pool.pick(A) == 3


def test_pick_after_remove():
    pool = Pool()
    pool.add(A, 1, 0.0)
    pool.add(A, 2, 0.0)
    pool.remove(1)
    assert pool.pick(A) == 2
    pool.remove(2)
    assert pool.pick(A) is None and pool.count(A) == 0 and pool.connections(A) == []


def test_acquire_release_counts():
    pool = Pool()
    pool.add(A, 1, 0.0)
    pool.acquire(1, 1.0)
    pool.acquire(1, 1.0)
    assert pool.in_flight(1) == 2
    pool.release(1, 2.0)
    pool.release(1, 2.0)
    assert pool.in_flight(1) == 0
    with pytest.raises(ValueError):
        pool.release(1, 3.0)
    assert pool.in_flight(1) == 0


@pytest.mark.parametrize("call", ["acquire", "release", "touch"])
def test_unknown_conn_id_is_a_key_error(call):
    pool = Pool()
    with pytest.raises(KeyError):
        getattr(pool, call)(99, 0.0)


def test_unknown_conn_id_queries():
    pool = Pool()
    with pytest.raises(KeyError):
        pool.in_flight(99)
    with pytest.raises(KeyError):
        pool.peer_of(99)
    assert pool.remove(99) is None
    assert 99 not in pool
    assert pool.count(A) == 0 and pool.connections(A) == []


def test_expire_oldest_first():
    pool = Pool(idle_timeout=10.0)
    pool.add(A, 1, 0.0)
    pool.add(B, 2, 1.0)
    pool.add(A, 3, 2.0)
    assert pool.expire(9.9) == []
    assert pool.expire(11.0) == [(A, 1), (B, 2)]
    assert pool.expire(12.0) == [(A, 3)]
    assert len(pool) == 0 and pool.count(A) == 0


def test_expire_boundary_is_inclusive():
    pool = Pool(idle_timeout=10.0)
    pool.add(A, 1, 5.0)
    assert pool.expire(14.999999) == []
    assert pool.expire(15.0) == [(A, 1)]


def test_touch_moves_to_the_end():
    pool = Pool(idle_timeout=10.0)
    pool.add(A, 1, 0.0)
    pool.add(A, 2, 1.0)
    pool.touch(1, 2.0)
    assert pool.expire(11.0) == [(A, 2)]
    assert pool.expire(12.0) == [(A, 1)]


def test_busy_connection_never_expires():
    pool = Pool(idle_timeout=10.0)
    pool.add(A, 1, 0.0)
    pool.add(A, 2, 0.0)
    pool.acquire(1, 1.0)
    pool.touch(1, 2.0)  # traffic on a busy connection keeps it busy
    assert pool.expire(1000.0) == [(A, 2)]
    assert pool.next_expiry() is None
    pool.release(1, 1001.0)  # back to idle, last used now
    assert pool.expire(1010.0) == []
    assert pool.expire(1011.0) == [(A, 1)]


def test_release_to_zero_goes_behind_older_idle_connections():
    pool = Pool(idle_timeout=10.0)
    pool.add(A, 1, 0.0)
    pool.acquire(1, 0.0)
    pool.add(A, 2, 1.0)
    pool.release(1, 2.0)
    assert pool.expire(100.0) == [(A, 2), (A, 1)]


def test_partial_release_keeps_it_busy():
    pool = Pool(idle_timeout=1.0)
    pool.add(A, 1, 0.0)
    pool.acquire(1, 0.0)
    pool.acquire(1, 0.0)
    pool.release(1, 1.0)
    assert pool.expire(100.0) == [] and pool.next_expiry() is None


def test_next_expiry():
    pool = Pool(idle_timeout=30.0)
    assert pool.next_expiry() is None
    pool.add(A, 1, 5.0)
    pool.add(B, 2, 7.0)
    assert pool.next_expiry() == 35.0
    pool.touch(1, 8.0)
    assert pool.next_expiry() == 37.0
    pool.acquire(2, 9.0)
    assert pool.next_expiry() == 38.0
    pool.remove(1)
    assert pool.next_expiry() is None


@pytest.mark.parametrize("start", [0.1, 0.7, 1e9 + 0.1, 12345.678])
def test_a_timer_armed_at_next_expiry_finds_work(start):
    # next_expiry and expire use the same sum, so rounding can never leave a timer
    # that fires at next_expiry() with nothing to do.
    pool = Pool(idle_timeout=0.2)
    pool.add(A, 1, start)
    when = pool.next_expiry()
    assert pool.expire(when) == [(A, 1)]


def test_remove_returns_the_peer_and_forgets_the_connection():
    pool = Pool(idle_timeout=10.0)
    pool.add(A, 1, 0.0)
    pool.add(A, 2, 0.0)
    pool.acquire(2, 0.0)
    assert pool.remove(1) == A
    assert pool.remove(2) == A  # a busy connection can be removed too
    assert pool.remove(1) is None
    assert pool.expire(100.0) == [] and len(pool) == 0


def test_queries():
    pool = Pool(max_per_peer=3, idle_timeout=5.0)
    pool.add(A, 10, 0.0)
    pool.add(B, 11, 0.0)
    pool.add(A, 12, 0.0)
    assert len(pool) == 3
    assert 10 in pool and 13 not in pool
    assert pool.connections(A) == [10, 12] and pool.connections(B) == [11]
    assert pool.count(A) == 2 and pool.peer_of(11) == B
    assert pool.max_per_peer == 3 and pool.idle_timeout == 5.0


def test_settings_are_read_only():
    pool = Pool()
    assert (pool.max_per_peer, pool.idle_timeout) == (3, 30.0)
    with pytest.raises(AttributeError):
        pool.max_per_peer = 5
    with pytest.raises(AttributeError):
        pool.idle_timeout = 5.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_per_peer": 0},
        {"idle_timeout": -1.0},
        {"idle_timeout": float("nan")},
        {"idle_timeout": float("inf")},
    ],
)
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Pool(**kwargs)


def test_zero_timeout_expires_idle_connections_at_once():
    pool = Pool(idle_timeout=0.0)
    pool.add(A, 1, 3.0)
    assert pool.expire(3.0) == [(A, 1)]


class CountingPeer:
    """A peer key that counts how often the pool hashes or compares it."""

    calls = 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        CountingPeer.calls += 1
        return hash(self.n)

    def __eq__(self, other: object) -> bool:
        CountingPeer.calls += 1
        return isinstance(other, CountingPeer) and other.n == self.n


def peer_work_of_expire(peers: int) -> tuple[list, int]:
    """Expire the oldest two of ``peers`` idle connections; count the peer touches."""
    pool = Pool(max_per_peer=1, idle_timeout=10.0)
    keys = [CountingPeer(n) for n in range(peers)]
    for n, key in enumerate(keys):
        pool.add(key, n, float(n))
    CountingPeer.calls = 0
    expired = pool.expire(11.0)  # connections 0 and 1 were last used at 0.0 and 1.0
    nothing = pool.expire(11.5)
    assert nothing == [] and len(pool) == peers - 2
    return [(k.n, c) for k, c in expired], CountingPeer.calls


def test_expire_work_does_not_grow_with_the_pool():
    small, small_calls = peer_work_of_expire(10)
    large, large_calls = peer_work_of_expire(10_000)
    assert small == large == [(0, 0), (1, 1)]
    assert small_calls == large_calls <= 4


def test_ten_thousand_peers_expire_in_last_used_order():
    pool = Pool(max_per_peer=3, idle_timeout=60.0)
    for n in range(10_000):
        pool.add(n.to_bytes(32, "big"), n, float(n))
    for n in range(0, 10_000, 2):
        pool.touch(n, 20_000.0)  # the even ones become the newest
    assert pool.next_expiry() == 61.0
    first = pool.expire(100.0)  # odd ids last used at 1..39
    assert [c for _, c in first] == list(range(1, 40, 2))
    rest = pool.expire(20_000.0 + 60.0)
    assert [c for _, c in rest] == list(range(41, 10_000, 2)) + list(range(0, 10_000, 2))
    assert len(pool) == 0
