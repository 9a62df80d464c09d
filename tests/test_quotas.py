"""The receive quotas' accounting (enclave.node.quotas.ReceiveQuotas): time is passed in."""

import pytest

from enclave.node.quotas import ROW_OVERHEAD, STORAGE_RETRY, ReceiveQuotas, size_of
from enclave.node.settings import Settings
from enclave.protocol.messages import THROTTLE_RATE, THROTTLE_STORAGE, THROTTLE_VOLUME, Chat

P, Q = b"p" * 32, b"q" * 32


def quotas(rate=100.0, burst=1024.0, bytes_rate=1e6, bytes_burst=4e6, stored=10_000_000):
    return ReceiveQuotas(rate, burst, bytes_rate, bytes_burst, stored)


def chat(body: str) -> Chat:
    return Chat(bytes(16), P, Q, 0, body)


def test_a_chat_costs_its_utf8_body_and_a_row():
    assert ROW_OVERHEAD == 64
    assert size_of([chat("")]) == 64
    assert size_of([chat("abc"), chat("é" * 10), chat("\U0001f600")]) == 3 * 64 + 3 + 20 + 4


def test_defaults_come_from_the_settings():
    q = ReceiveQuotas.from_settings(Settings())
    assert (q.chats.rate, q.chats.burst) == (1000.0, 4096.0)
    assert (q.volume.rate, q.volume.burst) == (1 << 20, 8 << 20)
    assert q.stored_max == 1 << 30


def test_batches_pass_within_the_rate_and_wait_the_refill_time_beyond_it():
    q = quotas()
    assert q.admit(P, 1024, 1000, now=0.0) is None  # the whole burst
    reason, wait = q.admit(P, 100, 1000, now=0.0)
    assert reason == THROTTLE_RATE and wait == pytest.approx(1.0)
    assert q.admit(P, 100, 1000, now=0.5) == (THROTTLE_RATE, pytest.approx(0.5))
    assert q.admit(P, 100, 1000, now=1.0) is None
    assert q.admit(Q, 1024, 1000, now=1.0) is None  # another contact has its own


def test_a_refused_batch_takes_nothing():
    q = quotas(bytes_burst=2e6)
    assert q.admit(P, 10, 1_900_000, now=0.0) is None
    reason, wait = q.admit(P, 10, 1_000_000, now=0.0)  # the bytes are short, not the chats
    assert reason == THROTTLE_VOLUME and wait == pytest.approx(0.9)
    assert q.chats.peek(P, 0.0) == pytest.approx(1014)  # the refusal took no chat token
    assert q.usage(P) == 1_900_000


def test_the_stored_bytes_quota_counts_base_commits_and_pending():
    q = quotas(stored=10_000)
    assert not q.known(P)
    q.loaded(P, messages=10, body_bytes=1_000)  # 1,000 + 10 rows of 64
    assert q.known(P) and q.usage(P) == 1_640
    assert q.admit(P, 5, 5_000, now=0.0) is None
    assert q.usage(P) == 6_640  # pending
    q.committed(P, admitted=5_000, stored=4_000)  # a duplicate took no new room
    assert q.usage(P) == 5_640
    assert q.admit(P, 5, 4_361, now=100.0) == (THROTTLE_STORAGE, STORAGE_RETRY)
    assert q.admit(P, 5, 4_360, now=100.0) is None  # exactly full is allowed
    assert q.usage(P) == 10_000


def test_the_base_read_replaces_what_commits_counted_before_it():
    q = quotas()
    assert q.admit(P, 1, 100, now=0.0) is None
    q.committed(P, admitted=100, stored=100)
    assert q.usage(P) == 100
    q.loaded(P, messages=1, body_bytes=36)  # the read saw that commit: 36 + 64
    assert q.usage(P) == 100


def test_a_held_link_never_waits_as_long_as_a_dead_session():
    assert ReceiveQuotas.from_settings(Settings()).hold_max == 10.0
    quick = Settings(keepalive_interval=2.0, dead_after=6.0)
    assert ReceiveQuotas.from_settings(quick).hold_max == 3.0
