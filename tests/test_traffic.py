"""Traffic on an established in-memory pair: PROTOCOL.md rows F7 and the core of F8."""

import pytest
from support.protocol_pair import T0, Pair, chats, closed_reason, received, run

from enclave.protocol.connection import Limits
from enclave.protocol.events import Acked, MessagesReceived, TypingChanged
from enclave.protocol.messages import Chat
from enclave.protocol.records import APP


def test_batches_flow_both_ways_and_acks_are_cumulative(rsa_keys):
    p = Pair(rsa_keys).handshake()
    sent = chats(p, 2500)
    assert p.i.send_chats(sent) == 0
    wire = p.i.data_to_send(T0)
    assert wire.count(b"") > 0 and len(wire) < 2500 * 300
    p.ev_r += run(p.r, p.r.receive_data(wire, T0), T0)
    batches = p.events("r", MessagesReceived)
    assert len(batches) == 3  # 1024 + 1024 + 452 messages: one frame each
    assert received(p) == sent
    assert [b.first_index for b in batches] == [0, 1024, 2048]
    p.r.ack(2499)
    p.r.send_chats(chats(p, 5, sender="r"))
    p.pump()
    assert p.events("i", Acked) == [Acked(2499)]
    assert received(p, "i") == chats(p, 5, sender="r")


def test_key_update_keeps_messages_flowing(rsa_keys):
    p = Pair(rsa_keys, limits=Limits(key_update_frames=3)).handshake()
    for k in range(20):
        p.i.send_chats(chats(p, 1, start=k))
        p.r.send_chats(chats(p, 1, sender="r", start=k))
        p.pump()
    assert received(p) == chats(p, 20)
    assert received(p, "i") == chats(p, 20, sender="r")
    assert p.i._tx.key_epoch >= 6 and p.r._tx.key_epoch >= 6
    assert p.i.established and p.r.established


@pytest.mark.parametrize("attack", ["tamper", "drop", "reorder", "duplicate", "truncate"])
def test_f7_damaged_stream_closes_and_delivers_nothing_from_it(rsa_keys, attack):
    p = Pair(rsa_keys).handshake()
    frames = []
    for k in range(3):
        p.i.send_chats(chats(p, 2, start=2 * k))
        frames.append(p.i.data_to_send(T0))
    if attack == "tamper":
        f = bytearray(frames[1])
        f[20] ^= 1
        frames[1] = bytes(f)
    elif attack == "drop":
        del frames[1]
    elif attack == "reorder":
        frames[1], frames[2] = frames[2], frames[1]
    elif attack == "duplicate":
        frames.insert(1, frames[0])
    elif attack == "truncate":
        frames[1] = frames[1][: 4 + 10]
        frames[1] = (10).to_bytes(4, "big") + frames[1][4:]
    events = run(p.r, p.r.receive_data(b"".join(frames), T0), T0)
    assert p.r.closed and closed_reason(events) in {"bad_record_mac", "bad_record_length"}
    got = [c for ev in events if isinstance(ev, MessagesReceived) for c in ev.messages]
    assert got == chats(p, 2)  # only the intact first frame was delivered


def test_f7_batch_with_one_malformed_message_delivers_none(rsa_keys):
    import msgpack

    p = Pair(rsa_keys).handshake()
    good = [
        [1, k.to_bytes(16, "big"), p.ida.fingerprint, p.idb.fingerprint, 5, "hi"] for k in range(8)
    ]
    good[4] = [1, b"short", p.ida.fingerprint, p.idb.fingerprint, 5, "hi"]
    frame = p.i._tx.seal(APP, msgpack.packb(good, use_bin_type=True), T0)
    events = run(p.r, p.r.receive_data(frame, T0), T0)
    assert closed_reason(events) == "bad_message"
    assert not any(isinstance(e, MessagesReceived) for e in events)


@pytest.mark.parametrize("field", ["sender", "recipient"])
def test_f8_misaddressed_chat_closes(rsa_keys, field):
    from enclave.errors import UsageError
    from enclave.protocol.crypto import fingerprint_of
    from enclave.protocol.messages import encode_batch

    p = Pair(rsa_keys).handshake()
    other = fingerprint_of(rsa_keys["mallory"].public_key())
    base = chats(p, 3)
    bad = Chat(
        base[1].id,
        other if field == "sender" else base[1].sender,
        other if field == "recipient" else base[1].recipient,
        1,
        "x",
    )
    with pytest.raises(UsageError):  # our own side never sends one ...
        p.i.send_chats([bad])
    # ... and a peer that does loses its session, with nothing of the batch delivered.
    frame = p.i._tx.seal(APP, encode_batch([base[0], bad, base[2]]), T0)
    events = run(p.r, p.r.receive_data(frame, T0), T0)
    assert closed_reason(events) == "misaddressed_chat"
    assert not any(isinstance(e, MessagesReceived) for e in events)


@pytest.mark.parametrize("upto", [3, 5, 100])
def test_f8_ack_beyond_what_was_sent_closes(rsa_keys, upto):
    p = Pair(rsa_keys).handshake()
    p.i.send_chats(chats(p, 3))
    p.pump()
    # Bob misbehaves: he acks more than Alice sent on this session.
    from enclave.protocol.messages import Ack, encode_batch

    frame = p.r._tx.seal(APP, encode_batch([Ack(upto)]), T0)
    events = run(p.i, p.i.receive_data(frame, T0), T0)
    assert closed_reason(events) == "bad_ack"
    assert not any(isinstance(e, Acked) for e in events)


def test_acks_must_advance(rsa_keys):
    p = Pair(rsa_keys).handshake()
    p.i.send_chats(chats(p, 3))
    p.pump()
    p.r.ack(1)
    p.pump()
    from enclave.protocol.messages import Ack, encode_batch

    frame = p.r._tx.seal(APP, encode_batch([Ack(1)]), T0)
    events = run(p.i, p.i.receive_data(frame, T0), T0)
    assert closed_reason(events) == "bad_ack"


def test_ack_of_unreceived_chats_is_local_misuse(rsa_keys):
    from enclave.errors import UsageError

    p = Pair(rsa_keys).handshake()
    with pytest.raises(UsageError):
        p.r.ack(0)


def test_typing_ping_and_close(rsa_keys):
    p = Pair(rsa_keys, limits=Limits(keepalive_interval=5, dead_after=12)).handshake()
    p.i.send_typing(True)
    p.pump()
    assert p.events("r", TypingChanged) == [TypingChanged(True)]
    # Keepalive: after 5 quiet seconds a ping goes out; the pong keeps the session alive.
    assert p.i.next_deadline() == T0 + 5
    assert p.i.handle_timer(T0 + 5) == []
    p.now = T0 + 5
    p.pump()
    assert p.i.next_deadline() == T0 + 10  # the pong counted as traffic
    # A silent peer: the ping gets no answer and the session dies at dead_after.
    p.i.handle_timer(T0 + 10)
    p.i.data_to_send(T0 + 10)  # lost on the way
    assert p.i.next_deadline() == T0 + 17
    assert closed_reason(p.i.handle_timer(T0 + 17)) == "keepalive_timeout"
    # A clean close is seen by the peer.
    q = Pair(rsa_keys).handshake()
    q.i.close(T0)
    q.pump()
    assert q.r.closed and q.r.close_reason == "peer_closed"
