"""Budgets: token buckets, keyed buckets with bounded memory, slots, connection caps.

Time is always passed in, so nothing here sleeps or measures.
"""

import pytest

from enclave.node.budgets import ConnectionCaps, KeyedBuckets, Slots, TokenBucket

# -- TokenBucket ---------------------------------------------------------------------------


def test_bucket_starts_full_and_drains():
    bucket = TokenBucket(rate=0.1, burst=6, now=100.0)
    assert bucket.peek(100.0) == 6.0
    assert all(bucket.take(100.0) for _ in range(6))
    assert not bucket.take(100.0)
    assert bucket.peek(100.0) == 0.0


def test_bucket_refills_at_rate():
    bucket = TokenBucket(rate=0.1, burst=6, now=0.0)
    for _ in range(6):
        assert bucket.take(0.0)
    assert not bucket.take(9.9)  # 0.99 tokens
    assert bucket.take(10.0)  # 1 token, 1 per 10 s
    assert not bucket.take(10.0)
    assert bucket.peek(15.0) == pytest.approx(0.5)


def test_bucket_refill_in_small_steps_adds_up():
    bucket = TokenBucket(rate=0.1, burst=1, now=0.0)
    assert bucket.take(0.0)
    for step in range(1, 101):  # 100 steps of 0.1 s make 10 s
        now = step * 0.1
        if step < 100:
            assert bucket.peek(now) < 1.0
    assert bucket.take(now)


def test_bucket_is_capped_at_burst():
    bucket = TokenBucket(rate=50, burst=100, now=0.0)
    assert bucket.peek(1_000_000.0) == 100.0
    assert all(bucket.take(1_000_000.0) for _ in range(100))
    assert not bucket.take(1_000_000.0)


def test_more_than_burst_never_succeeds():
    bucket = TokenBucket(rate=1000, burst=5, now=0.0)
    assert not bucket.take(0.0, 5.5)
    assert not bucket.take(1e9, 5.0001)
    assert bucket.peek(1e9) == 5.0  # the refused take changed nothing
    assert bucket.take(1e9, 5.0)


def test_refused_take_changes_nothing():
    bucket = TokenBucket(rate=1, burst=3, now=0.0)
    assert bucket.take(0.0, 2.5)
    assert not bucket.take(0.0, 1.0)
    assert bucket.peek(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5, 1.0)


def test_time_going_backwards_adds_no_tokens():
    bucket = TokenBucket(rate=1, burst=2, now=10.0)
    assert bucket.take(10.0, 2)
    assert not bucket.take(5.0)
    assert bucket.peek(10.0) == 0.0
    assert bucket.take(11.0)


def test_zero_rate_never_refills():
    bucket = TokenBucket(rate=0, burst=1, now=0.0)
    assert bucket.take(0.0)
    assert not bucket.take(1e12)


@pytest.mark.parametrize(
    ("rate", "burst"), [(-1, 1), (1, 0), (1, -1), (float("inf"), 1), (1, float("nan"))]
)
def test_bucket_rejects_bad_parameters(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, now=0.0)


@pytest.mark.parametrize("n", [0, -1, float("nan"), float("inf")])
def test_bucket_rejects_bad_take(n):
    bucket = TokenBucket(1, 1, now=0.0)
    with pytest.raises(ValueError):
        bucket.take(0.0, n)


# -- KeyedBuckets --------------------------------------------------------------------------


def test_keyed_new_key_starts_full_and_keys_are_independent():
    buckets = KeyedBuckets(rate=0.1, burst=6)
    assert all(buckets.take("alice", 0.0) for _ in range(6))
    assert not buckets.take("alice", 0.0)
    assert all(buckets.take("bob", 0.0) for _ in range(6))
    assert buckets.peek("carol", 0.0) == 6.0
    assert "carol" not in buckets
    assert len(buckets) == 2
    assert buckets.take("alice", 10.0)


def test_keyed_refused_take_for_new_key_tracks_nothing():
    buckets = KeyedBuckets(rate=1, burst=2)
    assert not buckets.take("a", 0.0, 3)
    assert len(buckets) == 0


def test_keyed_memory_is_bounded():
    buckets = KeyedBuckets(rate=1, burst=1, max_keys=50)
    for i in range(10_000):
        buckets.take(f"k{i}", i * 0.001)
        assert len(buckets) <= 50


def test_keyed_evicts_full_buckets_for_newcomers():
    buckets = KeyedBuckets(rate=1, burst=2, max_keys=3)
    for key in "abc":
        assert buckets.take(key, 0.0)
    assert not buckets.take("d", 0.5)  # a, b, c hold 1.5 tokens: none is full again
    assert len(buckets) == 3
    assert buckets.take("d", 1.0)  # all three refilled at 1.0; one is forgotten
    assert len(buckets) == 3
    assert "d" in buckets


def test_keyed_evicts_the_bucket_that_is_full_not_the_oldest():
    buckets = KeyedBuckets(rate=1, burst=10, max_keys=2)
    assert buckets.take("old", 0.0, 1)  # full again at 1.0
    assert buckets.take("drained", 0.5, 10)  # full again at 10.5
    assert buckets.take("new", 2.0)
    assert "drained" in buckets and "old" not in buckets
    assert buckets.peek("drained", 2.0) == pytest.approx(1.5)


def test_keyed_refuses_newcomers_while_every_bucket_is_non_full():
    buckets = KeyedBuckets(rate=0.1, burst=6, max_keys=4)
    for key in "abcd":
        assert buckets.take(key, 0.0)
    for t in (0.0, 5.0, 9.99):
        assert not buckets.take("late", t)
    assert buckets.take("late", 10.0)  # one bucket is full again: forgotten, room made
    assert len(buckets) == 4


def test_attacker_rotating_keys_cannot_refill_a_drained_victim():
    buckets = KeyedBuckets(rate=0.1, burst=6, max_keys=100)
    for _ in range(6):
        assert buckets.take("victim", 0.0)
    assert not buckets.take("victim", 0.0)
    admitted = 0
    for i in range(10_000):
        now = i * 0.0005  # the whole rotation takes 5 s
        admitted += buckets.take(f"attacker-{i}", now)
        assert "victim" in buckets
        assert len(buckets) <= 100
    assert admitted == 99  # the rest were refused, not made room for
    assert buckets.peek("victim", 5.0) == pytest.approx(0.5)
    assert not buckets.take("victim", 5.0)
    assert buckets.take("victim", 10.0)  # exactly the honest refill
    assert not buckets.take("victim", 10.0)


def test_attacker_with_refilling_keys_cannot_refill_a_drained_victim():
    # Attacker keys that refill get evicted and replaced; the victim's never does.
    buckets = KeyedBuckets(rate=10, burst=1, max_keys=10)
    assert buckets.take("victim", 0.0)
    for i in range(10_000):
        buckets.take(f"attacker-{i}", 0.0)
        assert "victim" in buckets
    assert not buckets.take("victim", 0.0)
    assert buckets.take("victim", 0.1)


def test_keyed_prune_forgets_only_full_buckets():
    buckets = KeyedBuckets(rate=1, burst=5)
    buckets.take("a", 0.0, 1)  # full at 1
    buckets.take("b", 0.0, 4)  # full at 4
    buckets.take("c", 0.0, 2)  # full at 2
    assert buckets.prune(0.5) == 0
    assert buckets.prune(2.0) == 2
    assert "b" in buckets and len(buckets) == 1
    assert buckets.prune(4.0) == 1
    assert len(buckets) == 0


def test_keyed_repeated_takes_keep_internal_state_small():
    buckets = KeyedBuckets(rate=1000, burst=1000, max_keys=8)
    for i in range(100_000):
        assert buckets.take(i % 4, i * 0.01)
    assert len(buckets) == 4
    assert len(buckets._heap) <= 2 * 4 + 65


@pytest.mark.parametrize("max_keys", [0, -1, True, 2.5])
def test_keyed_rejects_bad_max_keys(max_keys):
    with pytest.raises(ValueError):
        KeyedBuckets(1, 1, max_keys=max_keys)


def test_keyed_time_until_is_when_the_take_succeeds():
    buckets = KeyedBuckets(rate=100.0, burst=1024)
    assert buckets.time_until("p", 0.0, 1024) == 0.0  # an untracked key starts full
    assert buckets.take("p", 0.0, 1000)
    assert buckets.time_until("p", 0.0, 24) == 0.0
    wait = buckets.time_until("p", 0.0, 524)  # 24 there, 500 missing at 100/s
    assert wait == pytest.approx(5.0)
    assert not buckets.take("p", wait - 0.01, 524)
    assert buckets.take("p", wait, 524)
    assert buckets.peek("p", wait) == pytest.approx(0.0)


def test_keyed_time_until_takes_nothing_and_knows_never():
    buckets = KeyedBuckets(rate=1.0, burst=10)
    assert buckets.take("p", 0.0, 10)
    assert buckets.time_until("p", 0.0, 3) == pytest.approx(3.0)
    assert buckets.time_until("p", 0.0, 3) == pytest.approx(3.0)  # asking is free
    assert buckets.time_until("p", 0.0, 11) == float("inf")  # over the burst
    frozen = KeyedBuckets(rate=0.0, burst=10)
    assert frozen.take("p", 0.0, 10)
    assert frozen.time_until("p", 100.0, 1) == float("inf")
    with pytest.raises(ValueError):
        buckets.time_until("p", 0.0, 0)


# -- Slots -----------------------------------------------------------------------------------


def test_slots_refuse_when_full_and_free_on_release():
    slots = Slots(2)
    assert slots.capacity == 2 and slots.in_use == 0
    assert slots.try_acquire() and slots.try_acquire()
    assert not slots.try_acquire()
    assert slots.in_use == 2
    slots.release()
    assert slots.in_use == 1
    assert slots.try_acquire()
    assert not slots.try_acquire()


def test_slots_release_without_acquire_is_an_error():
    slots = Slots(1)
    with pytest.raises(ValueError):
        slots.release()
    assert slots.try_acquire()
    slots.release()
    with pytest.raises(ValueError):
        slots.release()
    assert slots.in_use == 0


@pytest.mark.parametrize("capacity", [0, -3, True, 1.5])
def test_slots_reject_bad_capacity(capacity):
    with pytest.raises(ValueError):
        Slots(capacity)


# -- ConnectionCaps --------------------------------------------------------------------------


def test_caps_per_address():
    caps = ConnectionCaps(total=10, per_address=2)
    assert caps.admit("10.0.0.1") and caps.admit("10.0.0.1")
    assert not caps.admit("10.0.0.1")
    assert caps.open_from("10.0.0.1") == 2
    assert caps.admit("10.0.0.2")
    assert caps.total_open == 3
    caps.release("10.0.0.1")
    assert caps.open_from("10.0.0.1") == 1
    assert caps.admit("10.0.0.1")


def test_caps_total():
    caps = ConnectionCaps(total=3, per_address=2)
    assert caps.admit("a") and caps.admit("b") and caps.admit("c")
    assert not caps.admit("d")
    assert caps.open_from("d") == 0
    assert caps.total_open == 3
    caps.release("b")
    assert caps.admit("d")
    assert not caps.admit("e")


def test_caps_release_errors_and_forgets_closed_addresses():
    caps = ConnectionCaps(total=4, per_address=4)
    with pytest.raises(ValueError):
        caps.release("a")
    caps.admit("a")
    caps.release("a")
    assert caps.open_from("a") == 0
    assert caps._by_address == {}
    with pytest.raises(ValueError):
        caps.release("a")
    assert caps.total_open == 0


@pytest.mark.parametrize(("total", "per_address"), [(0, 1), (1, 0), (True, 1), (1, 2.0)])
def test_caps_reject_bad_parameters(total, per_address):
    with pytest.raises(ValueError):
        ConnectionCaps(total, per_address)
