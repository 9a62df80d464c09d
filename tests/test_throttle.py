"""THROTTLE on an established in-memory pair (PROTOCOL.md, "Receive quotas and THROTTLE").

The receiver refuses a batch for now: it says why and when to retry, acks nothing past
what it stored, and takes the same chats later; the sender hears ``Throttled``.
"""

import pytest
from support.protocol_pair import T0, Pair, chats, closed_reason, received, run

from enclave.errors import UsageError
from enclave.protocol.events import Acked, MessagesReceived, Throttled
from enclave.protocol.messages import (
    MAX_RETRY_AFTER_MS,
    THROTTLE_RATE,
    THROTTLE_STORAGE,
    THROTTLE_VOLUME,
    Throttle,
    encode_batch,
)
from enclave.protocol.records import APP


@pytest.mark.parametrize("reason", [THROTTLE_RATE, THROTTLE_VOLUME, THROTTLE_STORAGE])
def test_throttle_reaches_the_sender_as_an_event(rsa_keys, reason):
    p = Pair(rsa_keys).handshake()
    p.r.send_throttle(reason, 1500)
    p.pump()
    assert p.events("i", Throttled) == [Throttled(reason, 1500)]
    assert p.i.established and p.r.established  # advisory: the session goes on


def test_a_throttled_batch_is_not_acked_and_passes_later(rsa_keys):
    """Bob takes Alice's first batch, refuses the second for now (no ack past the first),
    then takes it: one cumulative ack covers both, and nothing is received twice."""
    p = Pair(rsa_keys).handshake()
    first, second = chats(p, 3), chats(p, 4, start=3)
    p.i.send_chats(first)
    p.pump()
    p.i.send_chats(second)
    p.pump()
    batches = p.events("r", MessagesReceived)
    assert [b.first_index for b in batches] == [0, 3]
    p.r.ack(batches[0].first_index + batches[0].chat_count - 1)  # the first is stored
    p.r.send_throttle(THROTTLE_RATE, 250)  # the second waits, unstored
    p.pump()
    assert p.events("i", Acked) == [Acked(2)]
    assert p.events("i", Throttled) == [Throttled(THROTTLE_RATE, 250)]
    p.now += 0.25
    p.r.ack(6)  # the second batch passed and was stored
    p.pump()
    assert p.events("i", Acked) == [Acked(2), Acked(6)]
    assert received(p) == first + second
    assert p.i.established and p.r.established


def test_throttle_uses_no_chat_index(rsa_keys):
    p = Pair(rsa_keys).handshake()
    p.r.send_throttle(THROTTLE_VOLUME, 10)
    p.r.send_chats(chats(p, 2, sender="r"))
    p.pump()
    assert [b.first_index for b in p.events("i", MessagesReceived)] == [0]
    assert p.r.chats_sent == 2


@pytest.mark.parametrize(
    ("reason", "retry_after_ms"),
    [(0, 10), (4, 10), (True, 10), (1, -1), (1, MAX_RETRY_AFTER_MS + 1), (1, 0.5)],
)
def test_sending_a_malformed_throttle_is_local_misuse(rsa_keys, reason, retry_after_ms):
    p = Pair(rsa_keys).handshake()
    with pytest.raises(UsageError):
        p.r.send_throttle(reason, retry_after_ms)
    assert p.r.data_to_send(T0) == b""  # nothing was queued


def test_throttle_before_establishment_is_local_misuse(rsa_keys):
    p = Pair(rsa_keys)
    with pytest.raises(UsageError):
        p.r.send_throttle(THROTTLE_RATE, 10)


@pytest.mark.parametrize("fields", [[6, 9, 10], [6, 1, MAX_RETRY_AFTER_MS + 1], [6, 1]])
def test_a_malformed_throttle_from_the_peer_closes_the_session(rsa_keys, fields):
    import msgpack

    p = Pair(rsa_keys).handshake()
    frame = p.r._tx.seal(APP, msgpack.packb([fields]), T0)
    events = run(p.i, p.i.receive_data(frame, T0), T0)
    assert closed_reason(events) == "bad_message"
    assert not any(isinstance(e, Throttled) for e in events)


def test_throttle_rides_with_other_messages_all_or_nothing(rsa_keys):
    """A THROTTLE in a batch whose other message is bad is not acted on either."""
    p = Pair(rsa_keys).handshake()
    body = encode_batch([Throttle(THROTTLE_RATE, 5)])[:-4]  # cut: not a whole batch
    events = run(p.i, p.i.receive_data(p.r._tx.seal(APP, body, T0), T0), T0)
    assert closed_reason(events) == "bad_batch"
    assert not any(isinstance(e, Throttled) for e in events)


def test_throttle_and_ack_then_close_reach_the_peer_in_order(rsa_keys):
    """A receiver that ends the session over its quota says THROTTLE and acks what it
    stored right before CLOSE: the peer reads all three, in order, and no record is lost
    (a lost record would close the peer with bad_record_mac instead)."""
    p = Pair(rsa_keys).handshake()
    p.i.send_chats(chats(p, 3))
    p.pump()
    p.r.ack(2)
    p.r.send_throttle(THROTTLE_STORAGE, 300_000)
    p.r.close(T0, "throttled")
    p.pump()
    assert p.events("i", Acked) == [Acked(2)]
    assert p.events("i", Throttled) == [Throttled(THROTTLE_STORAGE, 300_000)]
    assert p.i.close_reason == "peer_closed"
