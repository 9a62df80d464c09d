"""The messages inside an APP record: a strict msgpack codec (PROTOCOL.md c.3).

Rules:
- An APP body is one msgpack array of 1..MAX_BATCH messages; each message is an array
  whose first element is its type code:
      CHAT   = [1, id bin16, from bin32, to bin32, created_ms uint64, body str]
      ACK    = [2, upto uint64]
      PING   = [3, data bin8]        PONG = [4, data bin8]
      TYPING = [5, active bool]
      THROTTLE = [6, reason uint, retry_after_ms uint]
      GROUP_POST    = [12, id bin16, from bin32, to bin32, created_ms uint64,
                       group_id bin16, epoch uint64, lamport uint64, seq uint64, body str]
      GROUP_HEAD    = [13, group_id bin16, count uint64, head bin32]
      GROUP_RECORDS = [14, group_id bin16, first uint64, [record bin, ...]]
      KEY_SUCCESSION = [15, statement bin]   KEY_SWITCHED = [16, new_fp bin32]
      READ = [17, upto bin16]
      REPLY  = [18, id bin16, from bin32, to bin32, created_ms uint64, body str,
                reply_to bin16]
      TIMER  = [19, id bin16, from bin32, to bin32, created_ms uint64, seconds uint]
  ``body`` is at most MAX_BODY_CHARS characters (code points), so at most 40,000 bytes.
- A GROUP_HEAD's ``head`` is 32 zero bytes exactly when its ``count`` is 0 (no record
  held). A GROUP_RECORDS carries 1..MAX_GROUP_RECORDS records, numbered ``first``,
  ``first + 1``, ... (the last number below 2**64), each 1..MAX_GROUP_RECORD_BIN bytes
  and opaque here: the node decodes them with ``group_log.decode_record``.
- A KEY_SUCCESSION carries one succession statement of 1..MAX_STATEMENT_BIN bytes,
  opaque here (``succession.decode_succession`` decodes it, the node judges it); a
  KEY_SWITCHED names the key its sender now knows us by. Both are uncounted. A READ
  says its sender read our chats up to the one with id ``upto`` (ids grow in creation
  order); uncounted, sent only where its sender's user allows read receipts. A REPLY
  is a CHAT that quotes an earlier message of the same conversation by its id
  (``Chat.reply_to``): counted, acked and stored exactly as a CHAT. A TIMER sets the
  conversation's disappearing-messages timer (``Chat.timer_s``, body ""): 0 (off) or
  MIN_TIMER_S..MAX_TIMER_S seconds, anything else refused; counted, acked and stored
  as a CHAT, so it arrives once and in order with the chats around it.
- Decoding is strict: exact arity, exact types (a bool is not an int and an int is not
  a bool), exact byte lengths, non-negative integers within 64 bits, no maps, no ext
  types, nothing after the array, and nothing nested deeper than message fields.
  Unknown type codes are errors, not skipped. Codes 7-11 are the file-transfer
  messages (file_messages.py), which travel only in FILE records: here they are
  unknown. A THROTTLE's reason is one of THROTTLE_REASONS and its retry_after_ms at
  most MAX_RETRY_AFTER_MS (one hour).
- All or nothing: the whole batch is parsed and validated before any message is
  returned, so a bad 5th message means no message of that batch is applied.
- Errors: ``PeerError("bad_batch")`` for the envelope (not msgpack, not one array,
  empty, too long, trailing bytes, a map or ext anywhere), ``PeerError("bad_message")``
  for a message inside it. Encoding our own bad message raises ``UsageError``.
- CHAT is decoded on an inlined fast path (nearly all the traffic); every other type,
  the GROUP_* ones included, goes through ``_decode_other``.
- Canonical encoding is not required: the body is AEAD-authenticated, and only the
  decoded values are used. Checking ``from``/``to`` against the session is the
  connection's job.
- One ``msgpack.unpackb`` per batch with tight limits (a long-lived ``Unpacker`` costs
  ~45 KB per connection). Arrays come back as tuples (cheaper than lists).
- Known bound: msgpack builds the whole tree before it is checked, so a hostile but
  authenticated 1 MiB record can cost ~20-30 MB of short-lived objects (measured:
  arrays of 1-element arrays ~29 MB, 2-character strings ~21 MB), freed as soon as it
  is refused. A ``list_hook`` counting arrays would cap that but adds ~0.1 us per
  message (~15% of decoding); the record layer's 1 MiB cap and one-frame-at-a-time
  decoding keep it bounded instead.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import msgpack

from ..errors import PeerError, UsageError

__all__ = [
    "ACK", "CHAT", "FP_LEN", "GROUP_HEAD", "GROUP_ID_LEN", "GROUP_POST", "GROUP_RECORDS",
    "HASH_LEN", "ID_LEN", "KEY_SUCCESSION", "KEY_SWITCHED", "KeySuccession", "KeySwitched", "READ", "REPLY", "Read", "TIMER", "MAX_TIMER_S", "MIN_TIMER_S", "timer_allowed", "MAX_BATCH", "MAX_BODY_CHARS", "MAX_GROUP_RECORDS",
    "MAX_GROUP_RECORD_BIN", "MAX_RETRY_AFTER_MS", "PING", "PING_LEN", "PONG", "THROTTLE",
    "THROTTLE_RATE", "THROTTLE_REASONS", "THROTTLE_STORAGE", "THROTTLE_VOLUME", "TYPING",
    "ZERO_HEAD", "Ack", "Chat", "GroupHead", "GroupPost", "GroupRecords", "Message", "Ping",
    "Pong", "Throttle", "Typing", "decode_batch", "encode_batch", "encode_chat_batch",
]  # fmt: skip

CHAT, ACK, PING, PONG, TYPING, THROTTLE = 1, 2, 3, 4, 5, 6
# Why a receiver refuses a peer's chats for now (PROTOCOL.md, "Receive quotas"): too many
# chats per second, too many bytes per second, or its stored bytes from this peer are full.
THROTTLE_RATE, THROTTLE_VOLUME, THROTTLE_STORAGE = 1, 2, 3
THROTTLE_REASONS = {THROTTLE_RATE: "rate", THROTTLE_VOLUME: "volume", THROTTLE_STORAGE: "storage"}
MAX_RETRY_AFTER_MS = 3_600_000
MAX_BATCH = 1024
MAX_BODY_CHARS = 10_000
ID_LEN, FP_LEN, PING_LEN = 16, 32, 8
# Codes 7-11 are the file messages (file_messages.py), in FILE records only.
GROUP_POST, GROUP_HEAD, GROUP_RECORDS = 12, 13, 14
GROUP_ID_LEN, HASH_LEN = 16, 32  # as group_log's (which imports this module, not the reverse)
ZERO_HEAD = bytes(HASH_LEN)  # a GROUP_HEAD's head when it holds no record
MAX_GROUP_RECORDS = 64
# One record can be far larger than a chat (a CREATE or ADD of many members); the frame's
# 1 MiB bounds a whole GROUP_RECORDS, so this only refuses a record no frame could carry.
MAX_GROUP_RECORD_BIN = 768 * 1024
# Key succession (docs/PROTOCOL.md, "Key succession and revocation"): as succession.py's
# MAX_STATEMENT_BYTES (which imports this module, not the reverse).
KEY_SUCCESSION, KEY_SWITCHED = 15, 16
READ = 17
REPLY = 18
TIMER = 19
MIN_TIMER_S, MAX_TIMER_S = 30, 28 * 86400  # a disappearing-messages timer: off, or 30 s..4 weeks
MAX_STATEMENT_BIN = 8192
_UINT64_END = 1 << 64


@dataclass(frozen=True, slots=True)
class Chat:
    id: bytes  # 16 bytes, made once when the user sends it
    sender: bytes  # raw 32-byte fingerprint
    recipient: bytes  # raw 32-byte fingerprint
    created_ms: int  # display only
    body: str
    reply_to: bytes | None = None  # a REPLY: the id of the message it quotes
    timer_s: int | None = None  # a TIMER: the conversation's new timer (0: off; body "")


def timer_allowed(seconds: object) -> bool:
    """A disappearing-messages timer a TIMER may carry: 0 (off) or 30 s..4 weeks."""
    return type(seconds) is int and (seconds == 0 or MIN_TIMER_S <= seconds <= MAX_TIMER_S)


@dataclass(frozen=True, slots=True)
class Ack:
    upto: int  # CHATs 0..upto of this session are durable


@dataclass(frozen=True, slots=True)
class Ping:
    data: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    data: bytes


@dataclass(frozen=True, slots=True)
class Typing:
    active: bool


@dataclass(frozen=True, slots=True)
class Throttle:
    reason: int  # one of THROTTLE_REASONS
    retry_after_ms: int  # the receiver expects to take chats again after this long


@dataclass(frozen=True, slots=True)
class GroupPost:
    # id, sender, recipient, created_ms and body mean what they mean in a Chat (the node
    # stores both alike); the rest places the post in its group (the node judges it).
    id: bytes
    sender: bytes
    recipient: bytes
    created_ms: int
    group_id: bytes
    epoch: int  # the membership epoch the author posted at
    lamport: int  # the author's Lamport clock in this group
    seq: int  # the author's own count of posts in this group
    body: str


@dataclass(frozen=True, slots=True)
class GroupHead:
    """I hold ``count`` records of this group; the last one hashes to ``head``."""

    group_id: bytes
    count: int  # 0 with ZERO_HEAD: none
    head: bytes


@dataclass(frozen=True, slots=True)
class GroupRecords:
    """Membership records numbered ``first``, ``first + 1``, ..., each encoded as
    ``group_log.encode_record`` does (opaque to this codec)."""

    group_id: bytes
    first: int
    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class KeySuccession:
    """An encoded succession statement by which the sender hands its key over."""

    statement: bytes


@dataclass(frozen=True, slots=True)
class KeySwitched:
    """The sender applied our succession: it knows us by ``new_fp`` from now on."""

    new_fp: bytes


@dataclass(frozen=True, slots=True)
class Read:
    """Its sender read our chats up to and including the one with id ``upto``."""

    upto: bytes


Message = (
    Chat | Ack | Ping | Pong | Typing | Throttle | GroupPost | GroupHead | GroupRecords
    | KeySuccession | KeySwitched | Read
)  # fmt: skip


# --- encoding: our own messages, checked so that we never send what we would refuse ---


def _is_bin(value: object, size: int) -> bool:
    return isinstance(value, bytes) and len(value) == size


def _is_uint64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _UINT64_END


def _chat_fields(chat: Chat) -> list:
    if not (
        _is_bin(chat.id, ID_LEN)
        and _is_bin(chat.sender, FP_LEN)
        and _is_bin(chat.recipient, FP_LEN)
        and _is_uint64(chat.created_ms)
        and isinstance(chat.body, str)
        and len(chat.body) <= MAX_BODY_CHARS
    ):
        raise UsageError(f"malformed Chat (id {chat.id!r:.40})")
    if chat.timer_s is not None:
        if not timer_allowed(chat.timer_s) or chat.body != "" or chat.reply_to is not None:
            raise UsageError("a TIMER carries 0 or 30..2419200 seconds, no body and no quote")
        return [TIMER, chat.id, chat.sender, chat.recipient, chat.created_ms, chat.timer_s]
    if chat.reply_to is not None:
        if not _is_bin(chat.reply_to, ID_LEN):
            raise UsageError("Chat.reply_to must be 16 bytes or None")
        fields = [REPLY, chat.id, chat.sender, chat.recipient, chat.created_ms, chat.body]
        return [*fields, chat.reply_to]
    return [CHAT, chat.id, chat.sender, chat.recipient, chat.created_ms, chat.body]


def _ack_fields(ack: Ack) -> list:
    if not _is_uint64(ack.upto):
        raise UsageError(f"Ack.upto must be a 64-bit unsigned int, not {ack.upto!r:.40}")
    return [ACK, ack.upto]


def _ping_fields(ping: Ping) -> list:
    if not _is_bin(ping.data, PING_LEN):
        raise UsageError("Ping.data must be 8 bytes")
    return [PING, ping.data]


def _pong_fields(pong: Pong) -> list:
    if not _is_bin(pong.data, PING_LEN):
        raise UsageError("Pong.data must be 8 bytes")
    return [PONG, pong.data]


def _typing_fields(typing: Typing) -> list:
    if not isinstance(typing.active, bool):
        raise UsageError("Typing.active must be a bool")
    return [TYPING, typing.active]


def _is_reason(value: object) -> bool:
    return type(value) is int and value in THROTTLE_REASONS


def _is_retry_after(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_RETRY_AFTER_MS


def _throttle_fields(throttle: Throttle) -> list:
    if not (_is_reason(throttle.reason) and _is_retry_after(throttle.retry_after_ms)):
        raise UsageError(
            f"malformed Throttle (reason {throttle.reason!r:.20},"
            f" retry_after_ms {throttle.retry_after_ms!r:.20})"
        )
    return [THROTTLE, throttle.reason, throttle.retry_after_ms]


def _group_post_fields(post: GroupPost) -> list:
    if not (
        _is_bin(post.id, ID_LEN)
        and _is_bin(post.sender, FP_LEN)
        and _is_bin(post.recipient, FP_LEN)
        and _is_uint64(post.created_ms)
        and _is_bin(post.group_id, GROUP_ID_LEN)
        and _is_uint64(post.epoch)
        and _is_uint64(post.lamport)
        and _is_uint64(post.seq)
        and isinstance(post.body, str)
        and len(post.body) <= MAX_BODY_CHARS
    ):
        raise UsageError(f"malformed GroupPost (id {post.id!r:.40})")
    return [GROUP_POST, post.id, post.sender, post.recipient, post.created_ms, post.group_id,
            post.epoch, post.lamport, post.seq, post.body]  # fmt: skip


def _records(value: object) -> bool:
    """1..MAX_GROUP_RECORDS records, each 1..MAX_GROUP_RECORD_BIN bytes (a tuple, as
    decoding gives: our own are built so, and compare equal to what the peer decodes)."""
    if type(value) is not tuple or not 1 <= len(value) <= MAX_GROUP_RECORDS:
        return False
    for record in value:
        if type(record) is not bytes or not 0 < len(record) <= MAX_GROUP_RECORD_BIN:
            return False
    return True


def _is_numbered(first: object, records: tuple) -> bool:
    # Every record's number, first + k, must itself be a uint64.
    return _is_uint64(first) and first + len(records) <= _UINT64_END


def _is_head(count: object, head: object) -> bool:
    # "None held" has one spelling, so a head is never read as a hash of nothing.
    return _is_uint64(count) and _is_bin(head, HASH_LEN) and (count == 0) == (head == ZERO_HEAD)


def _group_head_fields(head: GroupHead) -> list:
    if not (_is_bin(head.group_id, GROUP_ID_LEN) and _is_head(head.count, head.head)):
        raise UsageError(f"malformed GroupHead (count {head.count!r:.20})")
    return [GROUP_HEAD, head.group_id, head.count, head.head]


def _group_records_fields(message: GroupRecords) -> list:
    if not (
        _is_bin(message.group_id, GROUP_ID_LEN)
        and _records(message.records)
        and _is_numbered(message.first, message.records)
    ):
        raise UsageError(f"malformed GroupRecords (first {message.first!r:.20})")
    return [GROUP_RECORDS, message.group_id, message.first, message.records]


def _is_statement(value: object) -> bool:
    return type(value) is bytes and 0 < len(value) <= MAX_STATEMENT_BIN


def _key_succession_fields(message: KeySuccession) -> list:
    if not _is_statement(message.statement):
        raise UsageError(f"a KeySuccession statement is 1..{MAX_STATEMENT_BIN} bytes")
    return [KEY_SUCCESSION, message.statement]


def _key_switched_fields(message: KeySwitched) -> list:
    if not _is_bin(message.new_fp, FP_LEN):
        raise UsageError("KeySwitched.new_fp must be 32 bytes")
    return [KEY_SWITCHED, message.new_fp]


def _read_fields(message: Read) -> list:
    if not _is_bin(message.upto, ID_LEN):
        raise UsageError("Read.upto must be 16 bytes")
    return [READ, message.upto]


_FIELDS = {
    Read: _read_fields,
    Chat: _chat_fields,
    Ack: _ack_fields,
    Ping: _ping_fields,
    Pong: _pong_fields,
    Typing: _typing_fields,
    Throttle: _throttle_fields,
    GroupPost: _group_post_fields,
    GroupHead: _group_head_fields,
    GroupRecords: _group_records_fields,
    KeySuccession: _key_succession_fields,
    KeySwitched: _key_switched_fields,
}


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_BATCH:
        raise UsageError(f"a batch holds 1..{MAX_BATCH} messages, not {count}")


def _pack(batch: list) -> bytes:
    try:
        return msgpack.packb(batch, use_bin_type=True)
    except UnicodeEncodeError:  # a lone surrogate in a body has no UTF-8 form
        raise UsageError("a Chat body is not encodable as UTF-8") from None


def encode_batch(messages: Sequence[Message]) -> bytes:
    """The APP body for 1..MAX_BATCH messages of any types, in order."""
    _check_count(len(messages))
    batch = []
    for message in messages:
        fields = _FIELDS.get(type(message))
        if fields is None:
            raise UsageError(f"not a message: {type(message).__name__}")
        batch.append(fields(message))
    return _pack(batch)


def encode_fields(batch: Sequence[list]) -> bytes:
    """The APP body for message field lists already checked by their ``_*_fields``."""
    _check_count(len(batch))
    return _pack(list(batch))


def outgoing_chat_fields(
    mid: object,
    sender: bytes,
    recipient: bytes,
    created_ms: object,
    body: object,
    reply=None,
    timer=None,
) -> list:
    """The fields of our own Chat, checked as ``_chat_fields`` checks them, without
    building a Chat first (``sender`` and ``recipient`` are the session's own). A
    ``reply`` (the quoted message's id) makes it a REPLY; a ``timer`` (seconds) a TIMER."""
    if reply is not None or timer is not None:
        return _chat_fields(Chat(mid, sender, recipient, created_ms, body, reply, timer))
    if (
        type(mid) is bytes
        and len(mid) == ID_LEN
        and type(created_ms) is int
        and 0 <= created_ms < _UINT64_END
        and type(body) is str
        and len(body) <= MAX_BODY_CHARS
    ):
        return [CHAT, mid, sender, recipient, created_ms, body]
    return _chat_fields(Chat(mid, sender, recipient, created_ms, body))  # explains


def outgoing_group_post_fields(
    mid: object, sender: bytes, recipient: bytes, created_ms: object, group: object, body: object
) -> list:
    """``outgoing_chat_fields`` for a post: ``group`` is ``(group_id, epoch, lamport,
    seq)``; checked as ``_group_post_fields`` checks them."""
    if type(group) is not tuple or len(group) != 4:
        raise UsageError(f"a post's group is (group_id, epoch, lamport, seq), not {group!r:.40}")
    group_id, epoch, lamport, seq = group
    return _group_post_fields(
        GroupPost(mid, sender, recipient, created_ms, group_id, epoch, lamport, seq, body)
    )


def encode_chat_batch(chats: Sequence[Chat]) -> bytes:
    """``encode_batch`` for CHATs only: the outbox's common case, without dispatch."""
    _check_count(len(chats))
    batch = []
    append = batch.append
    for chat in chats:
        if type(chat) is not Chat:
            raise UsageError(f"not a Chat: {type(chat).__name__}")
        mid, sender, recipient = chat.id, chat.sender, chat.recipient
        created_ms, body = chat.created_ms, chat.body
        if (
            type(mid) is bytes
            and len(mid) == ID_LEN
            and type(sender) is bytes
            and len(sender) == FP_LEN
            and type(recipient) is bytes
            and len(recipient) == FP_LEN
            and type(created_ms) is int
            and 0 <= created_ms < _UINT64_END
            and type(body) is str
            and len(body) <= MAX_BODY_CHARS
            and chat.reply_to is None
            and chat.timer_s is None
        ):
            append([CHAT, mid, sender, recipient, created_ms, body])
        else:  # subclasses and errors alike take the general path, which explains
            append(_chat_fields(chat))
    return _pack(batch)


# --- decoding: hostile bytes, even from an authenticated peer ---


def refuse_map(_pairs: object) -> None:
    raise ValueError("a map")


def refuse_ext(_code: int, _data: bytes) -> None:
    raise ValueError("an ext type")


def strict_unpack_options(max_array: int, max_bin: int, max_str: int) -> dict:
    """``msgpack.unpackb`` options of every Enclave codec: arrays, ints, bins and strings
    within these bounds, never a map or an ext (nor an empty one)."""
    return dict(
        use_list=False,
        raw=False,
        strict_map_key=True,
        object_pairs_hook=refuse_map,  # also empty maps, which max_map_len=0 lets through
        ext_hook=refuse_ext,  # also zero-length ext, which max_ext_len=0 lets through
        max_array_len=max_array,
        max_bin_len=max_bin,
        max_str_len=max_str,
        max_map_len=0,
        max_ext_len=0,
    )


# Bins up to a group record's size: a 64-byte cap would refuse GROUP_RECORDS, and the
# record layer's 1 MiB frame already bounds what any bin can cost. The exact sizes of the
# short bins (ids, fingerprints, ping data) are checked per field.
_UNPACK_OPTIONS = strict_unpack_options(MAX_BATCH, MAX_GROUP_RECORD_BIN, 4 * MAX_BODY_CHARS)

# A frozen dataclass's generated __init__ sets each field through object.__setattr__
# (~0.63 us for a Chat); the slot descriptors do the same job in ~0.34 us. Decoding
# builds Chats through them; tests pin that the result equals Chat(...).
_new = object.__new__
_SET_ID = Chat.id.__set__  # type: ignore[attr-defined]
_SET_SENDER = Chat.sender.__set__  # type: ignore[attr-defined]
_SET_RECIPIENT = Chat.recipient.__set__  # type: ignore[attr-defined]
_SET_CREATED = Chat.created_ms.__set__  # type: ignore[attr-defined]
_SET_BODY = Chat.body.__set__  # type: ignore[attr-defined]
_SET_REPLY = Chat.reply_to.__set__  # type: ignore[attr-defined]
_SET_TIMER = Chat.timer_s.__set__  # type: ignore[attr-defined]


def decode_batch(body: bytes) -> list[Message]:
    """Every message of an APP body, or PeerError and nothing."""
    try:
        items = msgpack.unpackb(body, **_UNPACK_OPTIONS)
    except (ValueError, msgpack.UnpackException) as exc:
        raise PeerError("bad_batch", f"not a strict msgpack array ({exc})"[:120]) from None
    if type(items) is not tuple:
        raise PeerError("bad_batch", f"{type(items).__name__}, not an array")
    if not 1 <= len(items) <= MAX_BATCH:
        raise PeerError("bad_batch", f"{len(items)} messages")
    out: list[Message] = []
    append = out.append
    for m in items:
        # CHAT is inlined: it is nearly all the traffic.
        if type(m) is tuple and len(m) == 6 and type(m[0]) is int and m[0] == CHAT:
            _, mid, sender, recipient, created_ms, text = m
            if (
                type(mid) is bytes
                and len(mid) == ID_LEN
                and type(sender) is bytes
                and len(sender) == FP_LEN
                and type(recipient) is bytes
                and len(recipient) == FP_LEN
                and type(created_ms) is int
                and 0 <= created_ms < _UINT64_END
                and type(text) is str
                and len(text) <= MAX_BODY_CHARS
            ):
                chat = _new(Chat)
                _SET_ID(chat, mid)
                _SET_SENDER(chat, sender)
                _SET_RECIPIENT(chat, recipient)
                _SET_CREATED(chat, created_ms)
                _SET_BODY(chat, text)
                _SET_REPLY(chat, None)
                _SET_TIMER(chat, None)
                append(chat)
                continue
        append(_decode_other(m, len(out)))
    return out


def _decode_other(m: object, index: int) -> Message:
    """Any message but a well-formed CHAT (control messages, or a bad message)."""
    if type(m) is tuple and len(m) == 2 and type(m[0]) is int:
        code, value = m
        if code == ACK:
            if type(value) is int and 0 <= value < _UINT64_END:
                return Ack(value)
        elif code == PING or code == PONG:
            if type(value) is bytes and len(value) == PING_LEN:
                return Ping(value) if code == PING else Pong(value)
        elif code == TYPING:
            if type(value) is bool:
                return Typing(value)
        elif code == KEY_SUCCESSION:
            if _is_statement(value):
                return KeySuccession(value)
        elif code == KEY_SWITCHED:
            if type(value) is bytes and len(value) == FP_LEN:
                return KeySwitched(value)
        elif code == READ:
            if type(value) is bytes and len(value) == ID_LEN:
                return Read(value)
    elif type(m) is tuple and len(m) == 3 and type(m[0]) is int and m[0] == THROTTLE:
        if _is_reason(m[1]) and _is_retry_after(m[2]):
            return Throttle(m[1], m[2])
    elif type(m) is tuple and len(m) > 3 and type(m[0]) is int:
        decode = _GROUP_DECODERS.get(m[0])
        message = None if decode is None else decode(m)
        if message is not None:
            return message
    raise _explain(m, index)


def _decode_group_post(m: tuple) -> GroupPost | None:
    # Checked by the explaining shapes: posts are a small part of the traffic, unlike
    # CHATs, whose checks decode_batch inlines.
    if len(m) == 10 and all(check(v) for check, v in zip(_POST_SHAPE, m[1:], strict=True)):
        return GroupPost(*m[1:])
    return None


def _decode_reply(m: tuple) -> Chat | None:
    if len(m) == 7 and all(check(v) for check, v in zip(_REPLY_SHAPE, m[1:], strict=True)):
        return Chat(*m[1:])
    return None


def _decode_timer(m: tuple) -> Chat | None:
    if len(m) == 6 and all(check(v) for check, v in zip(_TIMER_SHAPE, m[1:], strict=True)):
        return Chat(m[1], m[2], m[3], m[4], "", None, m[5])
    return None


def _decode_group_head(m: tuple) -> GroupHead | None:
    if len(m) == 4 and _is_bin(m[1], GROUP_ID_LEN) and _is_head(m[2], m[3]):
        return GroupHead(m[1], m[2], m[3])
    return None


def _decode_group_records(m: tuple) -> GroupRecords | None:
    if len(m) == 4 and _is_bin(m[1], GROUP_ID_LEN) and _records(m[3]) and _is_numbered(m[2], m[3]):
        return GroupRecords(m[1], m[2], m[3])
    return None


_GROUP_DECODERS = {
    REPLY: _decode_reply,
    TIMER: _decode_timer,
    GROUP_POST: _decode_group_post,
    GROUP_HEAD: _decode_group_head,
    GROUP_RECORDS: _decode_group_records,
}


def _explain(m: object, index: int) -> PeerError:
    """Why a message is refused (the error path only, so it can take its time)."""
    if type(m) is not tuple:
        return _bad(index, f"{type(m).__name__}, not an array")
    if not m or type(m[0]) is not int:
        return _bad(index, "no integer type code")
    code = m[0]
    checks = _SHAPES.get(code)
    if checks is None:
        return _bad(index, f"unknown type {code}")
    if len(m) != len(checks) + 1:
        return _bad(index, f"type {code} with {len(m)} elements, not {len(checks) + 1}")
    for position, (check, value) in enumerate(zip(checks, m[1:], strict=True), 1):
        if not check(value):
            return _bad(index, f"type {code}, element {position}: bad {type(value).__name__}")
    return _bad(index, f"type {code}: malformed")


def _bad(index: int, detail: str) -> PeerError:
    return PeerError("bad_message", f"message {index}: {detail}")


def _bin(size: int):
    return lambda value: type(value) is bytes and len(value) == size


def _uint64(value: object) -> bool:
    return type(value) is int and 0 <= value < _UINT64_END


def _text(value: object) -> bool:
    return type(value) is str and len(value) <= MAX_BODY_CHARS


def _bool(value: object) -> bool:
    return type(value) is bool


_REPLY_SHAPE = (_bin(ID_LEN), _bin(FP_LEN), _bin(FP_LEN), _uint64, _text, _bin(ID_LEN))
_TIMER_SHAPE = (_bin(ID_LEN), _bin(FP_LEN), _bin(FP_LEN), _uint64, timer_allowed)
_POST_SHAPE = (_bin(ID_LEN), _bin(FP_LEN), _bin(FP_LEN), _uint64, _bin(GROUP_ID_LEN),
               _uint64, _uint64, _uint64, _text)  # fmt: skip
# Element checks per type code, used to explain a refusal; the fast paths above must
# accept exactly what these accept (the fuzz tests compare the two through decode_batch).
_SHAPES = {
    CHAT: (_bin(ID_LEN), _bin(FP_LEN), _bin(FP_LEN), _uint64, _text),
    ACK: (_uint64,),
    PING: (_bin(PING_LEN),),
    PONG: (_bin(PING_LEN),),
    TYPING: (_bool,),
    THROTTLE: (_is_reason, _is_retry_after),
    GROUP_POST: _POST_SHAPE,
    REPLY: _REPLY_SHAPE,
    TIMER: _TIMER_SHAPE,
    GROUP_HEAD: (_bin(GROUP_ID_LEN), _uint64, _bin(HASH_LEN)),  # and count 0 iff ZERO_HEAD
    GROUP_RECORDS: (_bin(GROUP_ID_LEN), _uint64, _records),  # and numbers below 2**64
    KEY_SUCCESSION: (_is_statement,),
    KEY_SWITCHED: (_bin(FP_LEN),),
    READ: (_bin(ID_LEN),),
}
