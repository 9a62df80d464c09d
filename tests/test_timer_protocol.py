"""TIMER (disappearing messages) on an established in-memory pair: counted and ordered
with the chats around it, acked like them; hostile values close the session cleanly."""

import msgpack
import pytest
from support.protocol_pair import T0, Pair, chats, closed_reason, received, run

from enclave.errors import UsageError
from enclave.protocol.events import Acked, MessagesReceived
from enclave.protocol.messages import MAX_TIMER_S, MIN_TIMER_S, TIMER, Chat, timer_allowed
from enclave.protocol.records import APP


class _Out:
    """An outbox row as ``send_outgoing`` takes it."""

    def __init__(self, mid, created_ms, body="", timer=None):
        self.id, self.created_ms, self.body = mid, created_ms, body
        self.group, self.reply, self.timer = None, None, timer


def test_a_timer_is_counted_in_order_with_chats_and_acked(rsa_keys):
    p = Pair(rsa_keys).handshake()
    ids = [k.to_bytes(16, "big") for k in range(3)]
    first = p.i.send_outgoing(
        [_Out(ids[0], 10, "before"), _Out(ids[1], 11, timer=3600), _Out(ids[2], 12, "after")]
    )
    assert first == 0
    p.pump()
    got = received(p)
    assert [c.body for c in got] == ["before", "", "after"]
    assert [c.timer_s for c in got] == [None, 3600, None]
    assert got[1] == Chat(ids[1], p.ida.fingerprint, p.idb.fingerprint, 11, "", None, 3600)
    (batch,) = p.events("r", MessagesReceived)
    assert batch.first_index == 0 and batch.chat_count == 3
    p.r.ack(2)  # the timer takes a session index like a chat: three acked
    p.pump()
    assert p.events("i", Acked) == [Acked(2)]


def test_turning_the_timer_off_travels_as_zero(rsa_keys):
    p = Pair(rsa_keys).handshake()
    p.i.send_outgoing([_Out(b"t" * 16, 10, timer=0)])
    p.pump()
    assert [c.timer_s for c in received(p)] == [0]


@pytest.mark.parametrize(
    "seconds", [0, MIN_TIMER_S, 300, 86400, MAX_TIMER_S], ids=lambda s: f"{s}s"
)
def test_allowed_timers(seconds):
    assert timer_allowed(seconds)


@pytest.mark.parametrize(
    "seconds",
    [1, MIN_TIMER_S - 1, MAX_TIMER_S + 1, 2**64 - 1, -30, True, 60.0, "1d", None],
    ids=repr,
)
def test_our_own_bad_timer_is_refused_before_it_goes_out(rsa_keys, seconds):
    p = Pair(rsa_keys).handshake()
    assert not timer_allowed(seconds)
    with pytest.raises(UsageError):
        p.i.send_outgoing([_Out(b"t" * 16, 10, timer=seconds)])
        if seconds is None:  # None is a plain chat: say so for the table's sake
            raise UsageError("a plain chat")


@pytest.mark.parametrize(
    "seconds", [1, MIN_TIMER_S - 1, MAX_TIMER_S + 1, 2**64 - 1, -1, True, 1.5, "1d", None, b""]
)
def test_a_hostile_timer_closes_the_session_and_delivers_nothing(rsa_keys, seconds):
    p = Pair(rsa_keys).handshake()
    own, peer = p.ida.fingerprint, p.idb.fingerprint
    batch = [
        [1, b"a" * 16, own, peer, 5, "hi"],
        [TIMER, b"b" * 16, own, peer, 5, seconds],
        [1, b"c" * 16, own, peer, 5, "there"],
    ]
    frame = p.i._tx.seal(APP, msgpack.packb(batch, use_bin_type=True), T0)
    events = run(p.r, p.r.receive_data(frame, T0), T0)
    assert closed_reason(events) == "bad_message"
    assert not any(isinstance(e, MessagesReceived) for e in events)


def test_a_timer_from_someone_else_is_misaddressed(rsa_keys):
    from enclave.protocol.crypto import fingerprint_of

    p = Pair(rsa_keys).handshake()
    other = fingerprint_of(rsa_keys["mallory"].public_key())
    batch = [[TIMER, b"b" * 16, other, p.idb.fingerprint, 5, 3600]]
    frame = p.i._tx.seal(APP, msgpack.packb(batch, use_bin_type=True), T0)
    events = run(p.r, p.r.receive_data(frame, T0), T0)
    assert closed_reason(events) == "misaddressed_chat"


def test_a_flood_of_timer_changes_is_just_counted_traffic(rsa_keys):
    # The core bounds nothing more than it does for chats: a flood of TIMERs costs the
    # sender its receive quota at the node, like chats; here each one is one message.
    p = Pair(rsa_keys).handshake()
    outs = [_Out(k.to_bytes(16, "big"), k, timer=30 + k) for k in range(2000)]
    p.i.send_outgoing(outs)
    p.pump()
    got = received(p)
    assert len(got) == 2000 and got[-1].timer_s == 2029
    assert all(c.body == "" for c in got)


def test_timers_mixed_with_plain_chats_keep_indices(rsa_keys):
    p = Pair(rsa_keys).handshake()
    p.i.send_chats(chats(p, 2))
    p.i.send_outgoing([_Out(b"t" * 16, 10, timer=MIN_TIMER_S)])
    p.i.send_chats(chats(p, 2, start=2))
    p.pump()
    firsts = [b.first_index for b in p.events("r", MessagesReceived)]
    assert firsts == [0] and [c.timer_s for c in received(p)] == [None, None, 30, None, None]
