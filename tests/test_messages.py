"""The strict message codec (PROTOCOL.md c.1, c.3; finding F7's all-or-nothing batches).

Hostile batches are built with plain ``msgpack.packb`` so that they can break every rule
the codec enforces; the fuzz tests' one claim is that only PeerError escapes decoding.
"""

import dataclasses

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzzing import fuzz

from enclave.errors import PeerError, UsageError
from enclave.protocol.messages import (
    MAX_BATCH,
    MAX_BODY_CHARS,
    MAX_GROUP_RECORD_BIN,
    MAX_GROUP_RECORDS,
    MAX_RETRY_AFTER_MS,
    MAX_STATEMENT_BIN,
    THROTTLE_RATE,
    THROTTLE_STORAGE,
    THROTTLE_VOLUME,
    Ack,
    Chat,
    GroupHead,
    GroupPost,
    GroupRecords,
    KeySuccession,
    Ping,
    Pong,
    Read,
    Throttle,
    Typing,
    decode_batch,
    encode_batch,
    encode_chat_batch,
)

ID = bytes(range(16))
ALICE = bytes(range(32))
BOB = bytes(range(32, 64))
U64_MAX = (1 << 64) - 1
GROUP = bytes(range(100, 116))
HEAD = bytes(range(200, 232))


def chat(body: str = "hello", created_ms: int = 1_700_000_000_000, mid: bytes = ID) -> Chat:
    return Chat(mid, ALICE, BOB, created_ms, body)


def chat_fields(**changes) -> list:
    fields = {"code": 1, "id": ID, "from": ALICE, "to": BOB, "ms": 5, "body": "hi"}
    fields.update(changes)
    return list(fields.values())


def pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def refused(body: bytes, reason: str | None = None) -> PeerError:
    with pytest.raises(PeerError) as err:
        decode_batch(body)
    if reason is not None:
        assert err.value.reason == reason, err.value
    return err.value


# --- round trips ---

EVERY_TYPE = [
    chat(),
    Ack(0),
    Ack(U64_MAX),
    Ping(b"\x00" * 8),
    Pong(b"pongpong"),
    Typing(True),
    Typing(False),
    Chat(ID, ALICE, BOB, 0, ""),
    Chat(ID, ALICE, BOB, U64_MAX, "x"),
    Throttle(THROTTLE_RATE, 0),
    Throttle(THROTTLE_VOLUME, 1500),
    Throttle(THROTTLE_STORAGE, MAX_RETRY_AFTER_MS),
    GroupPost(ID, ALICE, BOB, 5, GROUP, 1, 2, 3, "to the group"),
    GroupPost(ID, ALICE, BOB, U64_MAX, GROUP, U64_MAX, U64_MAX, U64_MAX, ""),
    GroupPost(ID, ALICE, BOB, 0, GROUP, 0, 0, 0, "x" * MAX_BODY_CHARS),
    GroupHead(GROUP, 0, bytes(32)),
    GroupHead(GROUP, U64_MAX, HEAD),
    GroupRecords(GROUP, 0, (b"r",)),
    GroupRecords(GROUP, U64_MAX, (b"last",)),
    GroupRecords(GROUP, 7, tuple(bytes([n]) * (n + 1) for n in range(MAX_GROUP_RECORDS))),
    Read(ID),
    Read(b"\xff" * 16),
    Chat(ID, ALICE, BOB, 5, "a reply", b"q" * 16),
    Chat(ID, ALICE, BOB, U64_MAX, "", ID),
    Chat(ID, ALICE, BOB, 5, "", None, 0),
    Chat(ID, ALICE, BOB, U64_MAX, "", None, 86400),
]


@pytest.mark.parametrize("message", EVERY_TYPE, ids=repr)
def test_round_trip_each_type(message):
    assert decode_batch(encode_batch([message])) == [message]


def test_round_trip_mixed_batch_keeps_order():
    assert decode_batch(encode_batch(EVERY_TYPE)) == EVERY_TYPE


def test_decoded_messages_are_exact_frozen_instances():
    decoded = decode_batch(encode_batch(EVERY_TYPE))
    for original, copy in zip(EVERY_TYPE, decoded, strict=True):
        assert type(copy) is type(original)
        assert hash(copy) == hash(original)
        assert dataclasses.astuple(copy) == dataclasses.astuple(original)
        field = dataclasses.fields(copy)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(copy, field, None)


def test_chat_fields_are_what_the_fast_decoder_sets():
    # decode_batch builds Chats through the slot descriptors: a new field, a default or a
    # __post_init__ would be skipped there, so this pins the shape it relies on.
    assert [f.name for f in dataclasses.fields(Chat)] == [
        "id",
        "sender",
        "recipient",
        "created_ms",
        "body",
        "reply_to",  # set to None by the fast path (a REPLY is decoded apart)
        "timer_s",  # likewise (a TIMER is decoded apart)
    ]
    assert not hasattr(Chat, "__post_init__")
    assert Chat.__slots__ == (
        "id", "sender", "recipient", "created_ms", "body", "reply_to", "timer_s",
    )  # fmt: skip
    (fast,) = decode_batch(encode_batch([chat("plain")]))
    assert fast.reply_to is None and fast.timer_s is None  # the fast path sets the defaults


def test_wire_layout():
    raw = msgpack.unpackb(encode_batch([chat("b", 7), Ack(3), Ping(b"p" * 8), Typing(True)]))
    assert raw == [[1, ID, ALICE, BOB, 7, "b"], [2, 3], [3, b"p" * 8], [5, True]]


def test_throttle_wire_layout():
    # PROTOCOL.md, "Receive quotas": [6, reason (1 rate, 2 volume, 3 storage), retry_after_ms]
    raw = msgpack.unpackb(encode_batch([Throttle(1, 250), Throttle(2, 0), Throttle(3, 300_000)]))
    assert raw == [[6, 1, 250], [6, 2, 0], [6, 3, 300_000]]
    assert MAX_RETRY_AFTER_MS == 3_600_000


def test_largest_batch_and_longest_bodies():
    assert len(decode_batch(encode_batch([Ack(n) for n in range(MAX_BATCH)]))) == MAX_BATCH
    for body in ("a" * MAX_BODY_CHARS, "é" * MAX_BODY_CHARS, "\U0001f600" * MAX_BODY_CHARS):
        assert decode_batch(encode_batch([chat(body)])) == [chat(body)]


def test_fast_chat_encoder_matches_the_general_one():
    chats = [chat(str(n) * n, n, bytes([n]) * 16) for n in range(200)]
    assert encode_chat_batch(chats) == encode_batch(chats)


# --- all or nothing ---


def test_a_bad_fifth_message_refuses_the_whole_batch():
    good = [chat_fields(id=bytes([n]) * 16) for n in range(10)]
    good[4] = chat_fields(id=b"short")
    err = refused(pack(good), "bad_message")
    assert "message 4" in err.detail


def test_a_bad_last_message_refuses_the_whole_batch():
    refused(pack([[2, n] for n in range(MAX_BATCH - 1)] + [[2, -1]]), "bad_message")


# --- each message rule ---

BAD_MESSAGES = {
    # CHAT arity and fields
    "chat-5": chat_fields()[:5],
    "chat-7": chat_fields() + [None],
    "chat-id-15": chat_fields(id=b"x" * 15),
    "chat-id-17": chat_fields(id=b"x" * 17),
    "chat-id-str": chat_fields(id="x" * 16),
    "chat-from-31": chat_fields(**{"from": b"x" * 31}),
    "chat-from-33": chat_fields(**{"from": b"x" * 33}),
    "chat-to-31": chat_fields(to=b"x" * 31),
    "chat-to-str": chat_fields(to="x" * 32),
    "chat-ms-negative": chat_fields(ms=-1),
    "chat-ms-min": chat_fields(ms=-(1 << 63)),
    "chat-ms-float": chat_fields(ms=5.0),
    "chat-ms-true": chat_fields(ms=True),
    "chat-ms-false": chat_fields(ms=False),
    "chat-ms-str": chat_fields(ms="5"),
    "chat-ms-nil": chat_fields(ms=None),
    "chat-body-bin": chat_fields(body=b"hi"),
    "chat-body-nil": chat_fields(body=None),
    "chat-body-long": chat_fields(body="a" * (MAX_BODY_CHARS + 1)),
    "chat-body-long-2byte": chat_fields(body="é" * (MAX_BODY_CHARS + 1)),
    "chat-nested-body": chat_fields(body=["hi"]),
    "chat-nested-id": chat_fields(id=[ID]),
    # TIMER: exact arity, 0 or 30 s..4 weeks, an int (not a bool or a float)
    "timer-5": [19, ID, ALICE, BOB, 0],
    "timer-7": [19, ID, ALICE, BOB, 0, 60, ""],
    "timer-29": [19, ID, ALICE, BOB, 0, 29],
    "timer-1": [19, ID, ALICE, BOB, 0, 1],
    "timer-over-4-weeks": [19, ID, ALICE, BOB, 0, 28 * 86400 + 1],
    "timer-2^64-1": [19, ID, ALICE, BOB, 0, U64_MAX],
    "timer-negative": [19, ID, ALICE, BOB, 0, -60],
    "timer-true": [19, ID, ALICE, BOB, 0, True],
    "timer-float": [19, ID, ALICE, BOB, 0, 60.0],
    "timer-str": [19, ID, ALICE, BOB, 0, "1d"],
    "timer-nil": [19, ID, ALICE, BOB, 0, None],
    "timer-id-15": [19, b"x" * 15, ALICE, BOB, 0, 60],
    "timer-ms-negative": [19, ID, ALICE, BOB, -1, 60],
    # ACK
    "ack-0": [2],
    "ack-2": [2, 1, 2],
    "ack-negative": [2, -1],
    "ack-true": [2, True],
    "ack-false": [2, False],
    "ack-float": [2, 1.0],
    "ack-str": [2, "1"],
    "ack-nested": [2, [1]],
    # PING / PONG
    "ping-7": [3, b"x" * 7],
    "ping-9": [3, b"x" * 9],
    "ping-str": [3, "x" * 8],
    "ping-arity": [3, b"x" * 8, b"x" * 8],
    "ping-65": [3, b"x" * 65],
    "pong-7": [4, b"x" * 7],
    "pong-int": [4, 8],
    # TYPING: an int is not a bool
    "typing-1": [5, 1],
    "typing-0": [5, 0],
    "typing-nil": [5, None],
    "typing-str": [5, "true"],
    "typing-arity": [5],
    # THROTTLE: a known reason, a retry time of at most an hour, exact arity
    "throttle-2": [6, 1],
    "throttle-4": [6, 1, 0, 0],
    "throttle-reason-0": [6, 0, 0],
    "throttle-reason-4": [6, 4, 0],
    "throttle-reason-true": [6, True, 0],
    "throttle-reason-float": [6, 1.0, 0],
    "throttle-reason-str": [6, "rate", 0],
    "throttle-retry-negative": [6, 1, -1],
    "throttle-retry-over-an-hour": [6, 1, MAX_RETRY_AFTER_MS + 1],
    "throttle-retry-huge": [6, 1, U64_MAX],
    "throttle-retry-true": [6, 1, True],
    "throttle-retry-float": [6, 1, 1.5],
    "throttle-retry-nil": [6, 1, None],
    "throttle-nested": [6, [1], 0],
    # type codes
    "code-true": [True, 7],
    "code-true-chat": [True, *chat_fields()[1:]],
    "code-false": [False],
    "code-0": [0, 1],
    "code-7": [7, 1],
    "code-7-three": [7, 1, 0],
    "code-11-group-shaped": [11, GROUP, 0, (b"r",)],
    "code-15-group-shaped": [15, GROUP, 0, (b"r",)],
    "code-negative": [-1, 1],
    "code-huge": [U64_MAX, 1],
    "code-float": [2.0, 1],
    "code-str": ["2", 1],
    "code-nil": [None, 1],
    "code-bin": [b"\x02", 1],
    # not an array
    "empty-array": [],
    "int": 2,
    "nil": None,
    "str": "hi",
    "bin": b"\x02\x01",
    "bool": True,
    "float": 1.5,
    "depth-3": [[2, 1]],
}


@pytest.mark.parametrize("message", BAD_MESSAGES.values(), ids=BAD_MESSAGES.keys())
def test_each_message_rule(message):
    refused(pack([[2, 0], message]), "bad_message")


# --- batch rules ---

BAD_BATCHES = {
    "empty-input": b"",
    "empty-batch": pack([]),
    "too-many": pack([[2, n] for n in range(MAX_BATCH + 1)]),
    "not-an-array-int": pack(2),
    "not-an-array-bin": pack(b"x"),
    "top-map": pack({"a": 1}),
    "top-empty-map": pack({}),
    "map-as-message": pack([{}]),
    "map-in-message": pack([[2, {}]]),
    "map-in-chat": pack([chat_fields(body={"a": "b"})]),
    "ext": pack([[2, msgpack.ExtType(5, b"x")]]),
    "ext-empty": b"\x91\x92\x02\xc7\x00\x05",
    "ext-timestamp": pack([[2, msgpack.Timestamp(1)]]),
    "ext-top": pack(msgpack.ExtType(1, b"")),
    "trailing-byte": pack([[2, 0]]) + b"\x00",
    "trailing-batch": pack([[2, 0]]) * 2,
    "truncated": pack([[2, 0], [2, 1]])[:-1],
    "reserved-byte": b"\x91\xc1",
    "bad-utf8": pack([chat_fields(body="")])[:-1] + b"\xa1\xff",  # body = 1 byte, 0xff
    "body-over-40000-bytes": pack([chat_fields(body="\U0001f600" * (MAX_BODY_CHARS + 1))]),
    # Bins are capped at a group record's size (longer short bins are bad messages).
    "bin-over-a-group-record": pack([[3, b"x" * (MAX_GROUP_RECORD_BIN + 1)]]),
    "deep-nesting": b"\x91" * 5000 + b"\xc0",
    "huge-array-header": b"\xdd\xff\xff\xff\xff",
    "huge-str-header": b"\x91\xdb\xff\xff\xff\xff",
}


@pytest.mark.parametrize("body", BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
def test_each_batch_rule(body):
    refused(body, "bad_batch")


def test_a_bare_message_is_not_a_batch():
    refused(pack([2, 0]), "bad_message")


def test_nested_depth_three_inside_a_batch():
    refused(pack([[2, 0], [[5, True]]]), "bad_message")
    refused(pack([[[[2, 0]]]]), "bad_message")


def test_uint64_bounds():
    assert decode_batch(pack([[2, U64_MAX]])) == [Ack(U64_MAX)]
    assert decode_batch(pack([chat_fields(ms=U64_MAX)]))[0].created_ms == U64_MAX
    refused(pack([[2, -(1 << 63)]]), "bad_message")


def test_non_canonical_but_valid_encodings_are_accepted():
    # An int in a wider format than needed decodes to the same value: the AEAD
    # authenticates the peer, and only decoded values are used.
    assert decode_batch(b"\xdc\x00\x01\x92\xcf" + (2).to_bytes(8, "big") + b"\x07") == [Ack(7)]


# --- local misuse on encode ---

BAD_LOCAL = {
    "empty": [],
    "too-many": [Ack(0)] * (MAX_BATCH + 1),
    "id-15": [Chat(b"x" * 15, ALICE, BOB, 0, "")],
    "id-bytearray": [Chat(bytearray(16), ALICE, BOB, 0, "")],
    "from-31": [Chat(ID, b"x" * 31, BOB, 0, "")],
    "to-str": [Chat(ID, ALICE, "x" * 32, 0, "")],
    "ms-negative": [Chat(ID, ALICE, BOB, -1, "")],
    "ms-2^64": [Chat(ID, ALICE, BOB, 1 << 64, "")],
    "ms-bool": [Chat(ID, ALICE, BOB, True, "")],
    "ms-float": [Chat(ID, ALICE, BOB, 1.0, "")],
    "body-long": [chat("a" * (MAX_BODY_CHARS + 1))],
    "body-bytes": [Chat(ID, ALICE, BOB, 0, b"hi")],
    "body-surrogate": [chat("\ud800")],
    "ack-negative": [Ack(-1)],
    "ack-bool": [Ack(True)],
    "ping-7": [Ping(b"x" * 7)],
    "pong-str": [Pong("x" * 8)],
    "typing-int": [Typing(1)],
    "read-15": [Read(b"x" * 15)],
    "reply-to-15": [Chat(ID, ALICE, BOB, 0, "", b"x" * 15)],
    "reply-to-str": [Chat(ID, ALICE, BOB, 0, "", "x" * 16)],
    "read-str": [Read("x" * 16)],
    "timer-29s": [Chat(ID, ALICE, BOB, 0, "", None, 29)],
    "timer-over-4-weeks": [Chat(ID, ALICE, BOB, 0, "", None, 28 * 86400 + 1)],
    "timer-negative": [Chat(ID, ALICE, BOB, 0, "", None, -1)],
    "timer-bool": [Chat(ID, ALICE, BOB, 0, "", None, True)],
    "timer-with-body": [Chat(ID, ALICE, BOB, 0, "hi", None, 60)],
    "timer-with-quote": [Chat(ID, ALICE, BOB, 0, "", ID, 60)],
    "throttle-reason-0": [Throttle(0, 0)],
    "throttle-reason-bool": [Throttle(True, 0)],
    "throttle-retry-negative": [Throttle(1, -1)],
    "throttle-retry-over-an-hour": [Throttle(1, MAX_RETRY_AFTER_MS + 1)],
    "throttle-retry-float": [Throttle(1, 1.0)],
    "not-a-message": [("chat", "hi")],
    "a-dict": [{"type": 2, "upto": 0}],
}


@pytest.mark.parametrize("messages", BAD_LOCAL.values(), ids=BAD_LOCAL.keys())
def test_encode_refuses_local_misuse(messages):
    with pytest.raises(UsageError):
        encode_batch(messages)
    if all(type(m) is Chat for m in messages):
        with pytest.raises(UsageError):
            encode_chat_batch(messages)


def test_fast_chat_encoder_refuses_other_messages():
    with pytest.raises(UsageError):
        encode_chat_batch([chat(), Ack(0)])


# --- property tests ---

chats = st.builds(
    Chat,
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.integers(0, U64_MAX),
    st.text(max_size=60),
)
messages = st.one_of(
    chats,
    st.builds(Ack, st.integers(0, U64_MAX)),
    st.builds(Ping, st.binary(min_size=8, max_size=8)),
    st.builds(Pong, st.binary(min_size=8, max_size=8)),
    st.builds(Typing, st.booleans()),
    st.builds(Throttle, st.sampled_from([1, 2, 3]), st.integers(0, MAX_RETRY_AFTER_MS)),
    st.builds(
        GroupPost,
        st.binary(min_size=16, max_size=16),
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=32, max_size=32),
        st.integers(0, U64_MAX),
        st.binary(min_size=16, max_size=16),
        st.integers(0, U64_MAX),
        st.integers(0, U64_MAX),
        st.integers(0, U64_MAX),
        st.text(max_size=60),
    ),
    st.one_of(
        st.builds(GroupHead, st.binary(min_size=16, max_size=16), st.just(0), st.just(bytes(32))),
        st.builds(
            GroupHead,
            st.binary(min_size=16, max_size=16),
            st.integers(1, U64_MAX),
            st.binary(min_size=32, max_size=32).filter(any),
        ),
    ),
    st.builds(
        GroupRecords,
        st.binary(min_size=16, max_size=16),
        st.integers(0, U64_MAX - MAX_GROUP_RECORDS),
        st.lists(st.binary(min_size=1, max_size=80), min_size=1, max_size=8).map(tuple),
    ),
)
batches = st.lists(messages, min_size=1, max_size=40)

# Any msgpack value, biased toward message-like arrays that start with a type code.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), U64_MAX)
    | st.integers(0, 15)
    | st.sampled_from([MAX_RETRY_AFTER_MS, MAX_RETRY_AFTER_MS + 1])
    | st.sampled_from([GROUP, HEAD, bytes(32), U64_MAX - 1])
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=70)
    | st.sampled_from([ID, ALICE, BOB, b"p" * 8])
)
valid_raw = messages.map(lambda message: msgpack.unpackb(encode_batch([message]))[0])
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=7)
        | st.tuples(st.integers(0, 15), inner)
        | st.tuples(st.integers(0, 15), inner, inner)
        | st.tuples(st.integers(0, 15), inner, inner, inner)
        | st.tuples(st.integers(0, 15), inner, inner, inner, inner, inner)
        | st.tuples(st.integers(12, 14), *[inner] * 9)
        | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=40,
)


def decode_or_peer_error(body: bytes) -> list | None:
    try:
        decoded = decode_batch(body)
    except PeerError:
        return None
    # Whatever is accepted is a valid batch: it re-encodes and decodes to itself.
    assert 1 <= len(decoded) <= MAX_BATCH
    assert decode_batch(encode_batch(decoded)) == decoded
    return decoded


@fuzz(1000)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_peer_error(body):
    decode_or_peer_error(body)


def is_uint64(value) -> bool:
    return type(value) is int and 0 <= value <= U64_MAX


def is_bin(value, size: int) -> bool:
    return type(value) is bytes and len(value) == size


def expected(message):
    """The rules of PROTOCOL.md c.3, written out independently of the codec."""
    if not isinstance(message, list | tuple) or not message or type(message[0]) is not int:
        return None
    code, fields = message[0], tuple(message[1:])
    if code == 1 and len(fields) == 5:
        mid, sender, recipient, created_ms, body = fields
        if (
            is_bin(mid, 16)
            and is_bin(sender, 32)
            and is_bin(recipient, 32)
            and is_uint64(created_ms)
            and type(body) is str
            and len(body) <= MAX_BODY_CHARS
        ):
            return Chat(*fields)
    elif code in (12, 13, 14):
        return expected_group(code, fields)
    elif code == 6 and len(fields) == 2:
        reason, retry_after_ms = fields
        if reason in (1, 2, 3) and type(reason) is int and is_uint64(retry_after_ms):
            if retry_after_ms <= 3_600_000:
                return Throttle(reason, retry_after_ms)
        return None
    elif len(fields) != 1:
        return None
    elif code == 2 and is_uint64(fields[0]):
        return Ack(fields[0])
    elif code in (3, 4) and is_bin(fields[0], 8):
        return (Ping if code == 3 else Pong)(fields[0])
    elif code == 5 and type(fields[0]) is bool:
        return Typing(fields[0])
    elif code == 15 and type(fields[0]) is bytes and 0 < len(fields[0]) <= MAX_STATEMENT_BIN:
        return KeySuccession(fields[0])
    return None


def expected_group(code: int, fields: tuple):
    """The GROUP_* rules of PROTOCOL.md "Groups: messages and catch-up", written out."""
    if code == 12 and len(fields) == 9:
        mid, sender, recipient, created_ms, group_id, epoch, lamport, seq, body = fields
        if (
            is_bin(mid, 16)
            and is_bin(sender, 32)
            and is_bin(recipient, 32)
            and is_bin(group_id, 16)
            and all(is_uint64(n) for n in (created_ms, epoch, lamport, seq))
            and type(body) is str
            and len(body) <= MAX_BODY_CHARS
        ):
            return GroupPost(*fields)
    elif code == 13 and len(fields) == 3:
        group_id, count, head = fields
        if is_bin(group_id, 16) and is_uint64(count) and is_bin(head, 32):
            if (count == 0) == (head == bytes(32)):
                return GroupHead(*fields)
    elif code == 14 and len(fields) == 3:
        group_id, first, records = fields
        if (
            is_bin(group_id, 16)
            and is_uint64(first)
            and isinstance(records, list | tuple)
            and 1 <= len(records) <= MAX_GROUP_RECORDS
            and first + len(records) - 1 <= U64_MAX
            and all(type(r) is bytes and 1 <= len(r) <= MAX_GROUP_RECORD_BIN for r in records)
        ):
            return GroupRecords(group_id, first, tuple(records))
    return None


@fuzz(1000)
@given(st.lists(values | valid_raw, max_size=6))
def test_random_structures_raise_only_peer_error(batch):
    decoded = decode_or_peer_error(msgpack.packb(batch, use_bin_type=True))
    wanted = [expected(message) for message in batch]
    if batch and None not in wanted:
        assert decoded == wanted
    else:
        assert decoded is None


@fuzz(1000)
@given(batches, st.data())
def test_mutated_valid_batches_raise_only_peer_error(batch, data):
    body = bytearray(encode_batch(batch))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(body)))
        action = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if action == "insert":
            body[position:position] = data.draw(st.binary(min_size=1, max_size=9))
        elif position == len(body):
            continue
        elif action == "flip":
            body[position] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "set":
            body[position] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del body[position]
        else:
            del body[position:]
    decode_or_peer_error(bytes(body))


@fuzz(1000)
@given(batches)
def test_random_valid_batches_round_trip(batch):
    assert decode_batch(encode_batch(batch)) == batch


@fuzz(1000)
@given(st.lists(chats, min_size=1, max_size=40))
def test_random_chat_batches_encode_alike(batch):
    assert encode_chat_batch(batch) == encode_batch(batch)
