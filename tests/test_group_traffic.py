"""Group messages on the wire and on a session (PROTOCOL.md, "Groups: messages and
catch-up"): GROUP_POST counted like a CHAT, GROUP_HEAD and GROUP_RECORDS uncounted and
delivered before the posts of their batch, and the strict codec's refusals."""

from types import SimpleNamespace

import msgpack
import pytest
from support.protocol_pair import T0, Pair, chats, closed_reason, received, run

from enclave.errors import PeerError, UsageError
from enclave.protocol.crypto import fingerprint_of
from enclave.protocol.events import (
    Acked,
    GroupHeadReceived,
    GroupRecordsReceived,
    MessagesReceived,
)
from enclave.protocol.messages import (
    MAX_BODY_CHARS,
    MAX_GROUP_RECORD_BIN,
    MAX_GROUP_RECORDS,
    ZERO_HEAD,
    Chat,
    GroupHead,
    GroupPost,
    GroupRecords,
    decode_batch,
    encode_batch,
)
from enclave.protocol.records import APP

GROUP = bytes(range(100, 116))
HEAD = bytes(range(200, 232))
ALICE = bytes(range(32))
BOB = bytes(range(32, 64))
ID = bytes(range(16))
U64_END = 1 << 64


def posts(p: Pair, n: int, sender="i", start=0, body="p" * 50) -> list[GroupPost]:
    """``n`` GroupPosts from one side of ``p`` to the other, numbered from ``start``."""
    a, b = (p.ida, p.idb) if sender == "i" else (p.idb, p.ida)
    return [_post(a, b, k, body) for k in range(start, start + n)]


def _post(a, b, k: int, body: str) -> GroupPost:
    mid = ((1 << 120) + k).to_bytes(16, "big")
    return GroupPost(mid, a.fingerprint, b.fingerprint, 2000 + k, GROUP, 3, 10 + k, k, body)


def order(events: list) -> list[type]:
    return [type(e) for e in events]


def pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def refused(body: bytes) -> PeerError:
    with pytest.raises(PeerError) as err:
        decode_batch(body)
    return err.value


# --- counted like a CHAT -------------------------------------------------------------------


def test_posts_and_chats_share_indices_acks_and_order(rsa_keys):
    p = Pair(rsa_keys).handshake()
    c, g = chats(p, 3), posts(p, 3)
    assert p.i.send_chats(c[:2]) == 0
    assert p.i.send_group_posts(g[:2]) == 2
    assert p.i.send_chats(c[2:]) == 4
    assert p.i.send_group_posts(g[2:]) == 5
    assert p.i.chats_sent == 6
    p.pump()
    (batch,) = p.events("r", MessagesReceived)
    assert list(batch.messages) == c[:2] + g[:2] + c[2:] + g[2:]
    assert (batch.first_index, batch.chat_count) == (0, 6)
    p.r.ack(5)  # one ack covers chats and posts alike
    p.pump()
    assert p.events("i", Acked) == [Acked(5)]
    # The next batch goes on counting from where both left off.
    p.i.send_group_posts(posts(p, 1, start=9))
    p.pump()
    assert p.events("r", MessagesReceived)[-1].first_index == 6
    with pytest.raises(UsageError):
        p.r.ack(7)


def test_send_outgoing_makes_group_posts_of_items_with_a_group(rsa_keys):
    p = Pair(rsa_keys).handshake()

    def item(k: int, group):
        return SimpleNamespace(
            id=k.to_bytes(16, "big"),
            created_ms=500 + k,
            body=f"m{k}",
            group=group,
            reply=None,
            timer=None,
        )

    items = [
        item(0, None),
        item(1, (GROUP, 4, 77, 0)),
        item(2, None),
        item(3, (HEAD[:16], 0, U64_END - 1, U64_END - 1)),
    ]
    assert p.i.send_outgoing(items) == 0
    p.pump()
    a, b = p.ida.fingerprint, p.idb.fingerprint
    assert received(p) == [
        Chat(items[0].id, a, b, 500, "m0"),
        GroupPost(items[1].id, a, b, 501, GROUP, 4, 77, 0, "m1"),
        Chat(items[2].id, a, b, 502, "m2"),
        GroupPost(items[3].id, a, b, 503, HEAD[:16], 0, U64_END - 1, U64_END - 1, "m3"),
    ]
    assert [type(m) for m in received(p)] == [Chat, GroupPost, Chat, GroupPost]


@pytest.mark.parametrize(
    "group",
    [
        (GROUP, 1, 2),  # three parts
        [GROUP, 1, 2, 3],  # a list
        (GROUP[:15], 1, 2, 3),
        (GROUP, -1, 2, 3),
        (GROUP, 1, U64_END, 3),
        (GROUP, 1, 2, True),
        "group",
    ],
    ids=repr,
)
def test_send_outgoing_refuses_a_bad_group_and_queues_nothing(rsa_keys, group):
    p = Pair(rsa_keys).handshake()
    good = SimpleNamespace(id=ID, created_ms=1, body="ok", group=None, reply=None, timer=None)
    bad = SimpleNamespace(id=ID, created_ms=1, body="ok", group=group, reply=None, timer=None)
    with pytest.raises(UsageError):
        p.i.send_outgoing([good, bad])
    assert p.i.chats_sent == 0 and p.i.data_to_send(T0) == b""


def test_our_own_misaddressed_or_malformed_posts_are_refused(rsa_keys):
    p = Pair(rsa_keys).handshake()
    good = posts(p, 1)[0]
    other = fingerprint_of(rsa_keys["mallory"].public_key())
    for bad in (
        GroupPost(ID, other, good.recipient, 1, GROUP, 0, 0, 0, "x"),
        GroupPost(ID, good.sender, other, 1, GROUP, 0, 0, 0, "x"),
        GroupPost(ID, good.sender, good.recipient, 1, GROUP, 0, 0, -1, "x"),
    ):
        with pytest.raises(UsageError):
            p.i.send_group_posts([good, bad])
    with pytest.raises(UsageError):
        p.i.send_group_posts(chats(p, 1))  # a Chat is not a post
    assert p.i.chats_sent == 0


# --- GROUP_HEAD and GROUP_RECORDS ------------------------------------------------------------


def test_head_and_records_round_trip(rsa_keys):
    p = Pair(rsa_keys).handshake()
    records = (b"\x98" + b"r" * 40, b"s" * MAX_GROUP_RECORD_BIN)
    p.i.send_group_head(GROUP, 0, ZERO_HEAD)
    p.i.send_group_head(GROUP, 12, HEAD)
    p.i.send_group_records(GROUP, 10, list(records))
    p.pump()
    assert p.events("r", GroupHeadReceived) == [
        GroupHeadReceived(GROUP, 0, ZERO_HEAD),
        GroupHeadReceived(GROUP, 12, HEAD),
    ]
    assert p.events("r", GroupRecordsReceived) == [GroupRecordsReceived(GROUP, 10, records)]
    assert p.events("r", MessagesReceived) == []  # uncounted: nothing to ack
    assert p.r._chats_received == 0
    with pytest.raises(UsageError):
        p.r.ack(0)


def test_records_queued_before_posts_reach_the_owner_first(rsa_keys):
    p = Pair(rsa_keys).handshake()
    p.i.send_group_posts(posts(p, 1))
    p.i.send_group_records(GROUP, 0, [b"create"])
    p.i.send_group_posts(posts(p, 2, start=1))
    p.i.send_group_head(GROUP, 1, HEAD)
    wire = p.i.data_to_send(T0)
    events = run(p.r, p.r.receive_data(wire, T0), T0)
    # One frame: its records and head come before its MessagesReceived, in batch order.
    assert order(events) == [GroupRecordsReceived, GroupHeadReceived, MessagesReceived]
    assert events[2].messages == tuple(posts(p, 3))


def test_records_too_large_to_share_a_frame_go_first_in_their_own(rsa_keys):
    p = Pair(rsa_keys).handshake()
    p.i.send_chats(chats(p, 1000, body="c" * 150))  # ~720 KiB by the flush's estimate
    big = (b"a" * MAX_GROUP_RECORD_BIN,)
    p.i.send_group_records(GROUP, 0, big)
    p.i.send_group_posts(posts(p, 2))
    wire = p.i.data_to_send(T0)
    events = run(p.r, p.r.receive_data(wire, T0), T0)
    assert order(events) == [MessagesReceived, GroupRecordsReceived, MessagesReceived]
    assert events[1].records == big
    assert len(events[0].messages) == 1000 and events[2].messages == tuple(posts(p, 2))
    assert events[2].first_index == 1000


def test_records_over_one_frame_are_refused_here(rsa_keys):
    p = Pair(rsa_keys).handshake()
    with pytest.raises(UsageError):
        p.i.send_group_records(GROUP, 0, [b"a" * MAX_GROUP_RECORD_BIN] * 2)
    assert p.i.data_to_send(T0) == b""


@pytest.mark.parametrize(
    "send",
    [
        lambda c: c.send_group_head(GROUP, 0, HEAD),  # none held, yet a hash
        lambda c: c.send_group_head(GROUP, 1, ZERO_HEAD),
        lambda c: c.send_group_head(GROUP[:15], 1, HEAD),
        lambda c: c.send_group_head(GROUP, True, HEAD),
        lambda c: c.send_group_head(GROUP, U64_END, HEAD),
        lambda c: c.send_group_records(GROUP, 0, []),
        lambda c: c.send_group_records(GROUP, 0, [b"r"] * (MAX_GROUP_RECORDS + 1)),
        lambda c: c.send_group_records(GROUP, 0, ["r"]),
        lambda c: c.send_group_records(GROUP, 0, [b""]),
        lambda c: c.send_group_records(GROUP, 0, b"r"),
        lambda c: c.send_group_records(GROUP, -1, [b"r"]),
        lambda c: c.send_group_records(GROUP, U64_END - 1, [b"r", b"s"]),
    ],
)
def test_our_own_bad_head_or_records_are_refused(rsa_keys, send):
    p = Pair(rsa_keys).handshake()
    with pytest.raises(UsageError):
        send(p.i)
    assert p.i.data_to_send(T0) == b""


# --- a hostile peer ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["sender", "recipient"])
def test_misaddressed_post_closes_and_delivers_nothing(rsa_keys, field):
    p = Pair(rsa_keys).handshake()
    other = fingerprint_of(rsa_keys["mallory"].public_key())
    good = posts(p, 3)
    bad = GroupPost(
        good[1].id,
        other if field == "sender" else good[1].sender,
        other if field == "recipient" else good[1].recipient,
        1,
        GROUP,
        0,
        0,
        0,
        "x",
    )
    batch = [GroupRecords(GROUP, 0, (b"r",)), good[0], chats(p, 1)[0], bad, good[2]]
    frame = p.i._tx.seal(APP, encode_batch(batch), T0)
    events = run(p.r, p.r.receive_data(frame, T0), T0)
    assert closed_reason(events) == "misaddressed_chat"
    assert order(events)[:-1] == []  # no records, no messages: only the close


def test_a_bad_group_message_fifth_delivers_nothing_and_a_fresh_pair_still_works(rsa_keys):
    p = Pair(rsa_keys).handshake()
    good = [msgpack.unpackb(encode_batch([m]))[0] for m in posts(p, 4)]
    body = pack(good + [[14, GROUP, 0, []]] + good)
    err = refused(body)
    assert err.reason == "bad_message" and "message 4" in err.detail
    events = run(p.r, p.r.receive_data(p.i._tx.seal(APP, body, T0), T0), T0)
    assert closed_reason(events) == "bad_message"
    assert order(events)[:-1] == []
    q = Pair(rsa_keys).handshake()
    q.i.send_group_records(GROUP, 0, [b"r"])
    q.i.send_group_posts(posts(q, 4))
    q.pump()
    assert received(q) == posts(q, 4)
    assert q.events("r", GroupRecordsReceived) == [GroupRecordsReceived(GROUP, 0, (b"r",))]


def post_fields(**changes) -> list:
    fields = {
        "code": 12,
        "id": ID,
        "from": ALICE,
        "to": BOB,
        "ms": 5,
        "group": GROUP,
        "epoch": 1,
        "lamport": 2,
        "seq": 3,
        "body": "hi",
    }
    fields.update(changes)
    return list(fields.values())


def head_fields(**changes) -> list:
    fields = {"code": 13, "group": GROUP, "count": 1, "head": HEAD}
    fields.update(changes)
    return list(fields.values())


def records_fields(**changes) -> list:
    fields = {"code": 14, "group": GROUP, "first": 0, "records": [b"r"]}
    fields.update(changes)
    return list(fields.values())


def bad_values(kind: str, shape: dict) -> dict:
    """A wrong type, length or range for each field of ``shape`` (name -> kind)."""
    cases = {}
    for name, what in shape.items():
        if what.startswith("bin"):
            size = int(what[3:])
            cases |= {
                f"{name}-short": {name: b"x" * (size - 1)},
                f"{name}-long": {name: b"x" * (size + 1)},
                f"{name}-int": {name: 7},
                f"{name}-str": {name: "x" * size},
                f"{name}-nil": {name: None},
                f"{name}-nested": {name: [b"x" * size]},
            }
        elif what == "uint":
            cases |= {
                f"{name}-true": {name: True},
                f"{name}-false": {name: False},
                f"{name}-negative": {name: -1},
                f"{name}-float": {name: 1.0},
                f"{name}-bin": {name: b"\x01"},
                f"{name}-str": {name: "1"},
            }
        elif what == "str":
            cases |= {
                f"{name}-bin": {name: b"hi"},
                f"{name}-int": {name: 1},
                f"{name}-long": {name: "a" * (MAX_BODY_CHARS + 1)},
            }
    return {f"{kind}-{label}": change for label, change in cases.items()}


POST_SHAPE = {
    "id": "bin16",
    "from": "bin32",
    "to": "bin32",
    "ms": "uint",
    "group": "bin16",
    "epoch": "uint",
    "lamport": "uint",
    "seq": "uint",
    "body": "str",
}
BAD_GROUP_MESSAGES = {
    **{k: post_fields(**v) for k, v in bad_values("post", POST_SHAPE).items()},
    **{
        k: head_fields(**v)
        for k, v in bad_values("head", {"group": "bin16", "count": "uint", "head": "bin32"}).items()
    },
    **{
        k: records_fields(**v)
        for k, v in bad_values("records", {"group": "bin16", "first": "uint"}).items()
    },
    "post-9": post_fields()[:9],
    "post-11": post_fields() + [None],
    "head-3": head_fields()[:3],
    "head-5": head_fields() + [0],
    "head-none-with-a-hash": head_fields(count=0),
    "head-some-with-zero-hash": head_fields(head=ZERO_HEAD),
    "records-3": records_fields()[:3],
    "records-5": records_fields() + [0],
    "records-empty": records_fields(records=[]),
    "records-65": records_fields(records=[b"r"] * (MAX_GROUP_RECORDS + 1)),
    "records-str": records_fields(records=["r"]),
    "records-int": records_fields(records=[1]),
    "records-nil": records_fields(records=[None]),
    "records-empty-record": records_fields(records=[b""]),
    "records-nested": records_fields(records=[[b"r"]]),
    "records-not-an-array": records_fields(records=b"r"),
    "records-numbered-past-2**64": records_fields(first=U64_END - 1, records=[b"r", b"s"]),
    "code-14-as-post": [14, *post_fields()[1:]],
    "code-12-as-records": [12, *records_fields()[1:]],
}


@pytest.mark.parametrize("message", BAD_GROUP_MESSAGES.values(), ids=BAD_GROUP_MESSAGES.keys())
def test_each_group_message_rule(message):
    err = refused(pack([[2, 0], message]))
    assert err.reason == "bad_message" and "message 1" in err.detail


# 2**64 has no msgpack form, so no peer can send it: it is refused where it can occur,
# in our own messages (BAD_LOCAL below) and as a record number past 2**64 - 1.


BAD_GROUP_BATCHES = {
    "record-over-the-bin-cap": pack([records_fields(records=[b"r" * (MAX_GROUP_RECORD_BIN + 1)])]),
    "map-as-post-body": pack([post_fields(body={"a": "b"})]),
    "map-as-records": pack([records_fields(records={})]),
    "map-in-records": pack([records_fields(records=[{"r": b"r"}])]),
    "map-as-head": pack([head_fields(head={})]),
    "ext-in-records": pack([records_fields(records=[msgpack.ExtType(1, b"r")])]),
    "trailing-after-records": pack([records_fields()]) + b"\x00",
    "trailing-after-post": pack([post_fields()]) + b"\xc0",
    "truncated-records": pack([records_fields(records=[b"r" * 40])])[:-1],
}


@pytest.mark.parametrize("body", BAD_GROUP_BATCHES.values(), ids=BAD_GROUP_BATCHES.keys())
def test_each_group_batch_rule(body):
    assert refused(body).reason == "bad_batch"


def test_largest_group_records_decode():
    records = tuple(bytes([n]) * 12_000 for n in range(MAX_GROUP_RECORDS))
    message = GroupRecords(GROUP, U64_END - MAX_GROUP_RECORDS, records)
    assert decode_batch(encode_batch([message])) == [message]
    one = GroupRecords(GROUP, 0, (b"x" * MAX_GROUP_RECORD_BIN,))
    assert decode_batch(encode_batch([one])) == [one]


BAD_LOCAL = {
    "post-id-15": GroupPost(b"x" * 15, ALICE, BOB, 0, GROUP, 0, 0, 0, ""),
    "post-from-31": GroupPost(ID, b"x" * 31, BOB, 0, GROUP, 0, 0, 0, ""),
    "post-to-str": GroupPost(ID, ALICE, "x" * 32, 0, GROUP, 0, 0, 0, ""),
    "post-ms-bool": GroupPost(ID, ALICE, BOB, True, GROUP, 0, 0, 0, ""),
    "post-group-17": GroupPost(ID, ALICE, BOB, 0, GROUP + b"x", 0, 0, 0, ""),
    "post-epoch-negative": GroupPost(ID, ALICE, BOB, 0, GROUP, -1, 0, 0, ""),
    "post-lamport-2^64": GroupPost(ID, ALICE, BOB, 0, GROUP, 0, U64_END, 0, ""),
    "post-seq-float": GroupPost(ID, ALICE, BOB, 0, GROUP, 0, 0, 1.0, ""),
    "post-body-long": GroupPost(ID, ALICE, BOB, 0, GROUP, 0, 0, 0, "a" * (MAX_BODY_CHARS + 1)),
    "post-body-bytes": GroupPost(ID, ALICE, BOB, 0, GROUP, 0, 0, 0, b"hi"),
    "post-body-surrogate": GroupPost(ID, ALICE, BOB, 0, GROUP, 0, 0, 0, "\ud800"),
    "head-group-str": GroupHead("x" * 16, 1, HEAD),
    "head-count-negative": GroupHead(GROUP, -1, HEAD),
    "head-count-bool": GroupHead(GROUP, False, ZERO_HEAD),
    "head-31": GroupHead(GROUP, 1, HEAD[:31]),
    "head-none-with-a-hash": GroupHead(GROUP, 0, HEAD),
    "head-zero-hash": GroupHead(GROUP, 3, ZERO_HEAD),
    "records-list": GroupRecords(GROUP, 0, [b"r"]),
    "records-empty": GroupRecords(GROUP, 0, ()),
    "records-65": GroupRecords(GROUP, 0, (b"r",) * (MAX_GROUP_RECORDS + 1)),
    "records-str": GroupRecords(GROUP, 0, ("r",)),
    "records-bytearray": GroupRecords(GROUP, 0, (bytearray(b"r"),)),
    "records-over-bin": GroupRecords(GROUP, 0, (b"r" * (MAX_GROUP_RECORD_BIN + 1),)),
    "records-first-bool": GroupRecords(GROUP, True, (b"r",)),
    "records-past-2^64": GroupRecords(GROUP, U64_END - 1, (b"r", b"s")),
    "records-group-15": GroupRecords(GROUP[:15], 0, (b"r",)),
}


@pytest.mark.parametrize("message", BAD_LOCAL.values(), ids=BAD_LOCAL.keys())
def test_encoding_our_own_malformed_group_messages_raises(message):
    with pytest.raises(UsageError):
        encode_batch([message])
