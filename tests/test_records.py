"""AEAD records (PROTOCOL.md c.1, c.2; findings F3 and F7).

Frames are crafted independently of records.py where a test needs bytes a correct
sender never produces (a KEY_UPDATE with a body, a CLOSE of two bytes, an unknown type).
"""

import gc
import os
import struct
import types

import pytest

from enclave.errors import PeerError, UsageError
from enclave.protocol.crypto import AESGCM
from enclave.protocol.records import (
    APP,
    CLOSE,
    FILE,
    KEY_UPDATE,
    MAX_RECORD,
    MAX_RECORD_BODY,
    RecordReceiver,
    RecordSender,
)
from enclave.protocol.schedule import next_secret, traffic_iv, traffic_key

I2R = bytes(range(32))
R2I = bytes(range(100, 132))


def split(wire: bytes) -> list[bytes]:
    """Frame payloads of a byte stream (what the frame splitter yields)."""
    payloads = []
    while wire:
        (size,) = struct.unpack(">I", wire[:4])
        payloads.append(wire[4 : 4 + size])
        wire = wire[4 + size :]
    return payloads


def nonce_for(secret: bytes, seq: int) -> bytes:
    iv = traffic_iv(secret)
    return bytes(
        a ^ b for a, b in zip(iv, (0).to_bytes(4, "big") + seq.to_bytes(8, "big"), strict=True)
    )


def craft(secret: bytes, seq: int, plaintext: bytes) -> bytes:
    """A frame payload sealed by hand under the key/nonce the receiver expects."""
    aad = struct.pack(">I", len(plaintext) + 16)
    return AESGCM(traffic_key(secret)).encrypt(nonce_for(secret, seq), plaintext, aad)


def pair(secret: bytes = I2R, **limits) -> tuple[RecordSender, RecordReceiver]:
    return RecordSender(secret, 0.0, **limits), RecordReceiver(secret, 0.0)


def deliver(rx: RecordReceiver, wire: bytes) -> list[tuple[int, bytes]]:
    return [rx.open(payload) for payload in split(wire)]


def assert_dead(rx: RecordReceiver, good_payload: bytes, reason: str) -> None:
    with pytest.raises(PeerError) as err:
        rx.open(good_payload)
    assert err.value.reason == reason


def reachable(root: object) -> list[object]:
    """Everything reachable from ``root`` through gc referents, classes and code excluded."""
    seen: set[int] = set()
    found = []
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        found.append(obj)
        if isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        stack.extend(gc.get_referents(obj))
    return found


def holds_value(root: object, value: object) -> bool:
    return any(type(obj) is type(value) and obj == value for obj in reachable(root))


# --- round trips and the wire format ---


@pytest.mark.parametrize(
    "rtype,body",
    [(APP, b"\x91\x92\x02\x00"), (APP, b""), (APP, bytes(range(256)) * 40), (CLOSE, b"\x07")],
)
def test_round_trip(rtype, body):
    tx, rx = pair()
    wire = tx.seal(rtype, body, 0.0)
    assert deliver(rx, wire) == [(rtype, body)]


def test_key_update_round_trip_through_seal():
    tx, rx = pair()
    wire = tx.seal(APP, b"a", 0.0) + tx.seal(KEY_UPDATE, b"", 0.0) + tx.seal(APP, b"b", 0.0)
    assert deliver(rx, wire) == [(APP, b"a"), (KEY_UPDATE, b""), (APP, b"b")]
    assert tx.key_epoch == rx.key_epoch == 1
    assert tx.frames_sent == rx.frames_received == 1


def test_wire_format_matches_the_spec():
    tx, _ = pair()
    for seq, body in enumerate([b"x", b"", b"hello" * 50]):
        wire = tx.seal(APP, body, 0.0)
        assert struct.unpack(">I", wire[:4])[0] == len(wire) - 4 == 1 + len(body) + 16
        assert wire[4:] == craft(I2R, seq, b"\x01" + body)


def test_largest_body_fills_exactly_one_mib():
    tx, rx = pair()
    body = b"\x00" * MAX_RECORD_BODY
    wire = tx.seal(APP, body, 0.0)
    assert len(wire) == 4 + MAX_RECORD
    assert rx.open(wire[4:]) == (APP, body)


def test_seal_many_is_the_same_as_sealing_one_by_one():
    bodies = [bytes([i]) * i for i in range(1, 40)]
    one, _ = pair()
    many, rx = pair()
    wire = many.seal_many(APP, bodies, 0.0)
    assert wire == b"".join(one.seal(APP, body, 0.0) for body in bodies)
    assert deliver(rx, wire) == [(APP, body) for body in bodies]


def led(body: bytes) -> bytearray:
    return bytearray(b"\xff" + body)  # the free byte seal_led overwrites with the type


@pytest.mark.parametrize("rtype", [APP, FILE])
def test_seal_led_is_the_same_wire_as_sealing_one_by_one(rtype):
    bodies = [os.urandom(n) for n in (0, 1, 255, 70_000, MAX_RECORD_BODY)]
    one, _ = pair()
    led_tx, rx = pair()
    parts = led_tx.seal_led(rtype, [led(b) for b in bodies], 0.0)
    wire = b"".join(parts)
    assert wire == b"".join(one.seal(rtype, body, 0.0) for body in bodies)
    assert [(t, bytes(b)) for t, b in deliver(rx, wire)] == [(rtype, b) for b in bodies]
    assert (led_tx.seq, led_tx.bytes_sent) == (one.seq, one.bytes_sent)


@pytest.mark.parametrize("limits", [{"max_frames": 3}, {"max_bytes": 500}])
def test_a_key_update_inside_a_led_batch_falls_where_the_frame_path_puts_it(limits):
    bodies = [bytes([n]) * 100 for n in range(10)]
    one, _ = pair(**limits)
    led_tx, rx = pair(**limits)
    wire = b"".join(led_tx.seal_led(APP, [led(b) for b in bodies], 0.0))
    assert wire == b"".join(one.seal(APP, body, 0.0) for body in bodies)
    arrived = deliver(rx, wire)
    assert [body for rtype, body in arrived if rtype == APP] == bodies
    assert rx.key_epoch >= 1


def test_seal_led_refuses_what_seal_refuses():
    tx, _ = pair()
    with pytest.raises(UsageError):
        tx.seal_led(CLOSE, [led(b"\x00")], 0.0)
    with pytest.raises(UsageError):
        tx.seal_led(FILE, [led(b"\x00" * (MAX_RECORD_BODY + 1))], 0.0)
    assert tx.seq == 0  # nothing was sealed
    tx.seal(CLOSE, b"\x00", 0.0)
    with pytest.raises(UsageError):
        tx.seal_led(APP, [led(b"x")], 0.0)


def test_nonces_never_repeat_across_frames_and_keys():
    tx, rx = pair(max_frames=50)
    pairs_seen = set()
    secret, seq = I2R, 0
    for _ in range(2000):
        for payload in split(tx.seal(APP, b"same body", 0.0)):
            pairs_seen.add((traffic_key(secret), nonce_for(secret, seq)))
            rtype, _ = rx.open(payload)
            seq += 1
            if rtype == KEY_UPDATE:
                secret, seq = next_secret(secret), 0
    assert tx.key_epoch == rx.key_epoch == 39  # before frames 50, 100, ..., 1950
    assert len(pairs_seen) == 2000 + tx.key_epoch


def test_identical_bodies_give_distinct_ciphertexts():
    tx, _ = pair()
    frames = {tx.seal(APP, b"same", 0.0) for _ in range(5000)}
    assert len(frames) == 5000


# --- direction independence and reflection (F3) ---


def test_directions_are_independent():
    tx_i2r, _ = pair(I2R)
    _, rx_r2i = pair(R2I)
    with pytest.raises(PeerError) as err:
        rx_r2i.open(tx_i2r.seal(APP, b"hi", 0.0)[4:])
    assert err.value.reason == "bad_record_mac"


def test_reflected_frame_fails_the_tag():
    initiator_tx, initiator_rx = RecordSender(I2R, 0.0), RecordReceiver(R2I, 0.0)
    responder_tx = RecordSender(R2I, 0.0)
    own_frame = initiator_tx.seal(APP, b"to the responder", 0.0)
    with pytest.raises(PeerError) as err:
        initiator_rx.open(own_frame[4:])
    assert err.value.reason == "bad_record_mac"
    assert_dead(initiator_rx, responder_tx.seal(APP, b"genuine", 0.0)[4:], "bad_record_mac")


# --- tampering, loss, order, replay (F7) ---


def test_tampering_any_ciphertext_or_tag_byte_kills_the_receiver():
    tx, _ = pair()
    wire = tx.seal(APP, b"attack at dawn" * 3, 0.0)
    payload = wire[4:]
    for index in range(len(payload)):
        rx = RecordReceiver(I2R, 0.0)
        bad = bytearray(payload)
        bad[index] ^= 0x01
        with pytest.raises(PeerError) as err:
            rx.open(bytes(bad))
        assert err.value.reason == "bad_record_mac"
        assert rx.frames_received == 0
        assert_dead(rx, payload, "bad_record_mac")


def test_tampering_the_length_prefix_never_delivers():
    tx, _ = pair()
    stream = b"".join(tx.seal(APP, bytes([n]) * 30, 0.0) for n in range(3))
    for bit in range(32):
        rx = RecordReceiver(I2R, 0.0)
        bad = bytearray(stream)
        bad[bit // 8] ^= 0x80 >> (bit % 8)
        (size,) = struct.unpack(">I", bad[:4])
        if 4 + size > len(bad):
            continue  # the splitter would wait for bytes that never come: nothing delivered
        with pytest.raises(PeerError) as err:
            rx.open(bytes(bad[4 : 4 + size]))
        assert err.value.reason in ("bad_record_mac", "bad_record_length")


def test_payload_with_a_byte_removed_or_added_fails():
    tx, _ = pair()
    payload = tx.seal(APP, b"x" * 40, 0.0)[4:]
    for bad in (payload[:-1], payload[1:], payload + b"\x00", b"\x00" + payload):
        with pytest.raises(PeerError) as err:
            RecordReceiver(I2R, 0.0).open(bad)
        assert err.value.reason == "bad_record_mac"


@pytest.mark.parametrize("size", [0, 1, 16])
def test_short_payload_is_refused(size):
    rx = RecordReceiver(I2R, 0.0)
    with pytest.raises(PeerError) as err:
        rx.open(b"\x00" * size)
    assert err.value.reason == "bad_record_length"
    assert_dead(rx, pair()[0].seal(APP, b"ok", 0.0)[4:], "bad_record_length")


def test_oversized_payload_is_refused():
    with pytest.raises(PeerError) as err:
        RecordReceiver(I2R, 0.0).open(b"\x00" * (MAX_RECORD + 1))
    assert err.value.reason == "bad_record_length"


def frames(count: int, **limits) -> list[bytes]:
    tx = RecordSender(I2R, 0.0, **limits)
    return [tx.seal(APP, bytes([n]), 0.0)[4:] for n in range(count)]


@pytest.mark.parametrize(
    "order",
    [[1], [0, 2], [1, 0], [0, 0], [0, 1, 1], [0, 1, 0]],
    ids=["drop-first", "drop-middle", "reorder", "duplicate", "replay-last", "replay-old"],
)
def test_drop_reorder_duplicate_kill_the_session(order):
    sealed = frames(3)
    rx = RecordReceiver(I2R, 0.0)
    delivered = []
    with pytest.raises(PeerError) as err:
        for index in order:
            delivered.append(rx.open(sealed[index])[1])
    assert err.value.reason == "bad_record_mac"
    good_prefix = [bytes([n]) for n in range(len(delivered))]
    assert delivered == good_prefix  # only the in-order frames before the fault
    assert rx.frames_received == len(delivered)  # the failed frame did not advance seq
    for payload in sealed:
        with pytest.raises(PeerError):
            rx.open(payload)


# --- key update (F7) ---


def run(tx: RecordSender, rx: RecordReceiver, count: int, now: float = 0.0):
    """Send ``count`` APP frames one per seal; return what arrived and the update count."""
    bodies, updates = [], 0
    for n in range(count):
        for rtype, body in deliver(rx, tx.seal(APP, n.to_bytes(4, "big"), now)):
            if rtype == KEY_UPDATE:
                updates += 1
            else:
                bodies.append(body)
    return bodies, updates


def test_key_update_by_frame_count():
    tx, rx = pair(max_frames=5)
    bodies, updates = run(tx, rx, 23)
    assert bodies == [n.to_bytes(4, "big") for n in range(23)]
    assert updates == tx.key_epoch == rx.key_epoch == 4  # before frames 5, 10, 15, 20
    assert tx.frames_sent == rx.frames_received == 3  # seq restarted at 0 for frame 20


def test_key_update_frame_is_sealed_under_the_old_key_then_seq_resets():
    tx, _ = pair(max_frames=2)
    tx.seal(APP, b"a", 0.0)
    tx.seal(APP, b"b", 0.0)
    update, first = split(tx.seal(APP, b"c", 0.0))
    assert update == craft(I2R, 2, b"\x02")
    assert first == craft(next_secret(I2R), 0, b"\x01c")


def test_key_update_within_seal_many():
    tx, rx = pair(max_frames=3)
    wire = tx.seal_many(APP, [bytes([n]) for n in range(10)], 0.0)
    arrived = deliver(rx, wire)
    assert [body for rtype, body in arrived if rtype == APP] == [bytes([n]) for n in range(10)]
    assert [rtype for rtype, _ in arrived].count(KEY_UPDATE) == 3 == rx.key_epoch


def test_key_update_by_bytes():
    tx, rx = pair(max_bytes=1000)
    body = b"b" * 300  # 301 plaintext bytes per frame, type byte included
    for _ in range(4):
        assert deliver(rx, tx.seal(APP, body, 0.0)) == [(APP, body)]
    assert tx.bytes_sent == rx.bytes_received == 4 * 301
    wire = tx.seal(APP, body, 0.0)
    assert split(wire) == [craft(I2R, 4, b"\x02"), craft(next_secret(I2R), 0, b"\x01" + body)]
    assert deliver(rx, wire) == [(KEY_UPDATE, b""), (APP, body)]
    assert tx.key_epoch == rx.key_epoch == 1
    assert tx.bytes_sent == rx.bytes_received == 301


def test_key_update_by_age():
    tx, rx = pair(max_age=10.0)
    assert deliver(rx, tx.seal(APP, b"a", 9.99)) == [(APP, b"a")]
    arrived = deliver(rx, tx.seal(APP, b"b", 10.0))
    assert arrived == [(KEY_UPDATE, b""), (APP, b"b")]
    assert deliver(rx, tx.seal(APP, b"c", 19.99)) == [
        (APP, b"c")
    ]  # the new key's clock began at 10
    assert deliver(rx, tx.seal(APP, b"d", 20.0)) == [(KEY_UPDATE, b""), (APP, b"d")]
    assert tx.key_epoch == rx.key_epoch == 2


def test_forced_update_key_and_many_updates_in_a_row():
    tx, rx = pair()
    for _ in range(5):
        assert deliver(rx, tx.update_key(0.0)) == [(KEY_UPDATE, b"")]
    assert deliver(rx, tx.seal(APP, b"still flowing", 0.0)) == [(APP, b"still flowing")]
    assert tx.key_epoch == rx.key_epoch == 5


def test_default_limit_at_two_to_the_23_frames():
    tx, rx = pair()
    tx.seq = rx.seq = (1 << 23) - 1  # counters forced near the limit
    assert deliver(rx, tx.seal(APP, b"last", 0.0)) == [(APP, b"last")]
    assert deliver(rx, tx.seal(APP, b"next", 0.0)) == [(KEY_UPDATE, b""), (APP, b"next")]
    assert tx.frames_sent == rx.frames_received == 1


def test_receiver_hard_frame_limit():
    tx = RecordSender(I2R, 0.0)
    rx = RecordReceiver(I2R, 0.0, hard_frames=3)
    for n in range(3):
        rx.open(tx.seal(APP, bytes([n]), 0.0)[4:])
    with pytest.raises(PeerError) as err:
        rx.open(tx.seal(APP, b"one too many", 0.0)[4:])
    assert err.value.reason == "record_limit"


def test_receiver_hard_limit_resets_with_each_key():
    tx = RecordSender(I2R, 0.0, max_frames=2)
    rx = RecordReceiver(I2R, 0.0, hard_frames=3)  # 2 frames + the KEY_UPDATE fit
    bodies, updates = run(tx, rx, 12)
    assert len(bodies) == 12 and updates == 5


def test_receiver_default_hard_frame_limit():
    tx, rx = pair(max_frames=1 << 30)  # a sender that updates far too late
    tx.seq = rx.seq = 1 << 24
    with pytest.raises(PeerError) as err:
        rx.open(tx.seal(APP, b"x", 0.0)[4:])
    assert err.value.reason == "record_limit"


def test_receiver_hard_byte_limit():
    tx = RecordSender(I2R, 0.0)
    rx = RecordReceiver(I2R, 0.0, hard_bytes=1000)
    for _ in range(3):
        rx.open(tx.seal(APP, b"b" * 300, 0.0)[4:])
    assert rx.bytes_received == 903
    with pytest.raises(PeerError) as err:
        rx.open(tx.seal(APP, b"b" * 300, 0.0)[4:])
    assert err.value.reason == "record_limit"


# --- record types that a correct sender never produces ---


@pytest.mark.parametrize("body", [b"\x00", b"\x01\x91\x92\x02\x00", b"\x02" * 64])
def test_key_update_with_a_body_is_refused(body):
    rx = RecordReceiver(I2R, 0.0)
    with pytest.raises(PeerError) as err:
        rx.open(craft(I2R, 0, b"\x02" + body))
    assert err.value.reason == "bad_key_update"
    assert rx.key_epoch == 0


@pytest.mark.parametrize("body", [b"", b"\x01\x02", b"\x00" * 100])
def test_close_must_carry_exactly_one_byte(body):
    rx = RecordReceiver(I2R, 0.0)
    with pytest.raises(PeerError) as err:
        rx.open(craft(I2R, 0, b"\x03" + body))
    assert err.value.reason == "bad_close"


@pytest.mark.parametrize("rtype", [0, 5, 0x7F, 0xFF])
def test_unknown_record_type_is_refused(rtype):
    rx = RecordReceiver(I2R, 0.0)
    with pytest.raises(PeerError) as err:
        rx.open(craft(I2R, 0, bytes([rtype]) + b"body"))
    assert err.value.reason == "bad_record_type"
    assert rx.frames_received == 0


def test_nothing_is_accepted_after_close():
    tx, rx = pair()
    wire = tx.seal(CLOSE, b"\x01", 0.0)
    assert deliver(rx, wire) == [(CLOSE, b"\x01")]
    with pytest.raises(PeerError) as err:
        rx.open(craft(I2R, 1, b"\x01more"))
    assert err.value.reason == "record_after_close"
    with pytest.raises(UsageError):
        tx.seal(APP, b"more", 0.0)
    with pytest.raises(UsageError):
        tx.update_key(0.0)


# --- local misuse ---


@pytest.mark.parametrize(
    "rtype,body",
    [
        (APP, b"x" * (MAX_RECORD_BODY + 1)),
        (KEY_UPDATE, b"x"),
        (CLOSE, b""),
        (CLOSE, b"ab"),
        (FILE, b"x" * (MAX_RECORD_BODY + 1)),
        (0, b""),
        (5, b"x"),
    ],
)
def test_sender_refuses_what_the_receiver_would_refuse(rtype, body):
    tx, _ = pair()
    with pytest.raises(UsageError):
        tx.seal(rtype, body, 0.0)
    assert tx.frames_sent == 0


def test_seal_many_checks_every_body_before_sealing_any():
    tx, _ = pair()
    with pytest.raises(UsageError):
        tx.seal_many(CLOSE, [b"a", b"b", b"too long"], 0.0)
    assert tx.frames_sent == 0
    with pytest.raises(UsageError):
        tx.seal_many(KEY_UPDATE, [b""], 0.0)
    with pytest.raises(UsageError):
        tx.seal_many(CLOSE, [b"a", b"b"], 0.0)
    assert tx.frames_sent == 0


@pytest.mark.parametrize("secret", [b"", b"x" * 31, b"x" * 33, bytearray(32)])
def test_secret_must_be_32_bytes(secret):
    with pytest.raises(UsageError):
        RecordSender(secret, 0.0)
    with pytest.raises(UsageError):
        RecordReceiver(secret, 0.0)


# --- memory: raw keys while idle, erased secrets after an update ---


def test_drop_cipher_releases_the_cipher_and_traffic_continues():
    tx, rx = pair()
    deliver(rx, tx.seal(APP, b"busy", 0.0))
    assert any(isinstance(obj, AESGCM) for obj in reachable(tx))
    tx.drop_cipher()
    rx.drop_cipher()
    assert not any(isinstance(obj, AESGCM) for obj in reachable(tx))
    assert not any(isinstance(obj, AESGCM) for obj in reachable(rx))
    assert deliver(rx, tx.seal(APP, b"again", 0.0)) == [(APP, b"again")]


def old_generation(secret: bytes) -> list[object]:
    return [secret, traffic_key(secret), int.from_bytes(traffic_iv(secret), "big")]


def test_old_secret_is_unreachable_after_an_update():
    tx, rx = pair()
    deliver(rx, tx.seal(APP, b"before", 0.0))
    for obj in (tx, rx):
        assert all(holds_value(obj, value) for value in old_generation(I2R))  # the walk sees it
    deliver(rx, tx.update_key(0.0) + tx.seal(APP, b"after", 0.0))
    for obj in (tx, rx):
        assert not any(holds_value(obj, value) for value in old_generation(I2R))
        assert holds_value(obj, next_secret(I2R))


def test_keys_are_dropped_when_a_direction_ends():
    tx, rx = pair()
    deliver(rx, tx.seal(CLOSE, b"\x00", 0.0))
    assert not any(holds_value(obj, I2R) or holds_value(obj, traffic_key(I2R)) for obj in (tx, rx))
    failed = RecordReceiver(R2I, 0.0)
    with pytest.raises(PeerError):
        failed.open(b"\x00" * 40)
    assert not holds_value(failed, R2I) and not holds_value(failed, traffic_key(R2I))
    assert not any(isinstance(obj, AESGCM) for obj in reachable(failed))


def test_file_records_open_like_app_records():
    tx, rx = pair()
    assert deliver(rx, tx.seal(FILE, b"\x92\x0b\xc4\x00", 0.0)) == [(FILE, b"\x92\x0b\xc4\x00")]
    assert rx.frames_received == 1
