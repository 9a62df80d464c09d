"""Traffic on an established connection (PROTOCOL.md c): the messages the owner
queues, the batches they are sealed into, and the records that come from the peer.

``Traffic`` is mixed into ``Connection``: ``send_chats``, ``send_group_posts``,
``send_outgoing``, ``ack``, ``send_typing``, ``send_throttle``, ``send_group_head`` and
``send_group_records``, ``send_key_succession`` and ``send_key_switched`` queue messages that ``data_to_send`` flushes in queue order;
``_on_record`` is the frame handler of the ESTABLISHED state. Records are in
records.py, the message formats in messages.py.

A GroupPost is counted like a Chat: both take the next session index, acks cover both,
and each must be from the peer to us. GROUP_HEAD and GROUP_RECORDS are uncounted, and
reach the owner before the MessagesReceived of their batch.
"""

from ..errors import PeerError, UsageError
from .events import (
    Acked,
    ConnectionClosed,
    GroupHeadReceived,
    GroupRecordsReceived,
    MessagesReceived,
    ReadReceived,
    SuccessionReceived,
    SwitchedReceived,
    Throttled,
    TypingChanged,
)
from .messages import (
    _FIELDS,
    MAX_BATCH,
    Ack,
    Chat,
    GroupHead,
    GroupPost,
    GroupRecords,
    KeySuccession,
    KeySwitched,
    Ping,
    Pong,
    Read,
    Throttle,
    Typing,
    _chat_fields,
    decode_batch,
    encode_fields,
    outgoing_chat_fields,
    outgoing_group_post_fields,
)
from .records import APP, CLOSE, FILE, KEY_UPDATE
from .states import S

_BATCH_BYTES = 900 * 1024  # stay well under MAX_RECORD with msgpack overhead
_CONTROL_BYTES = 120  # what a batch's size estimate counts for a small message


class Traffic:
    """The session traffic of ``Connection``; all the state it uses is the connection's."""

    __slots__ = ()

    # --- what the owner sends --------------------------------------------------------------

    def send_chats(self, chats) -> int:
        """Queue Chats for the next ``data_to_send``; returns the session index of the
        first one (indices are consecutive; acks refer to them)."""
        self._require_established()
        own, peer = self.identity.fingerprint, self.peer
        fields = []
        for chat in chats:  # refuse here what the peer would refuse (and close) there
            fields.append(_chat_fields(chat))
            if chat.sender != own or chat.recipient != peer:
                raise UsageError("a Chat on this session must be from us and to its peer")
        return self._queue_chats(fields)

    def send_group_posts(self, posts) -> int:
        """``send_chats`` for GroupPosts: they take session indices from the same count."""
        self._require_established()
        own, peer = self.identity.fingerprint, self.peer
        fields = []
        for post in posts:  # refuse here what the peer would refuse (and close) there
            if type(post) is not GroupPost:
                raise UsageError(f"not a GroupPost: {type(post).__name__}")
            fields.append(_FIELDS[GroupPost](post))
            if post.sender != own or post.recipient != peer:
                raise UsageError("a GroupPost on this session must be from us and to its peer")
        return self._queue_chats(fields)

    def send_outgoing(self, items) -> int:
        """``send_chats`` for our own messages given as objects with ``id``,
        ``created_ms``, ``body`` and ``group`` (the outbox's rows): no Chat is built for
        them. ``group`` is None for a chat, or ``(group_id, epoch, lamport, seq)`` for a
        post to this session's peer; ``reply`` None, or the id a chat quotes (a REPLY);
        ``timer`` None, or a TIMER's seconds."""
        self._require_established()
        own, peer = self.identity.fingerprint, self.peer
        return self._queue_chats(
            [
                outgoing_chat_fields(o.id, own, peer, o.created_ms, o.body, o.reply, o.timer)
                if o.group is None
                else outgoing_group_post_fields(o.id, own, peer, o.created_ms, o.group, o.body)
                for o in items
            ]
        )

    def _queue_chats(self, fields: list) -> int:
        # Pending chats and posts are kept as checked field lists, so a flush encodes
        # them as is.
        first = self._chats_sent
        self._pending.extend(fields)
        self._chats_sent += len(fields)
        return first

    def ack(self, upto: int) -> None:
        """Tell the peer that its Chats and GroupPosts 0..upto of this session are durable."""
        self._require_established()
        if upto >= self._chats_received:
            raise UsageError(f"cannot ack {upto}: only {self._chats_received} chats received")
        self._ack_out = max(self._ack_out, upto)

    def send_typing(self, active: bool) -> None:
        self._require_established()
        self._pending.append(Typing(bool(active)))

    def send_throttle(self, reason: int, retry_after_ms: int) -> None:
        """Tell the peer why its chats are not taken for now (PROTOCOL.md, "Receive
        quotas"); a THROTTLE uses no chat index and acks nothing."""
        self._require_established()
        throttle = Throttle(reason, retry_after_ms)
        _FIELDS[Throttle](throttle)  # refuse here what the peer would refuse there
        self._pending.append(throttle)

    def send_group_head(self, group_id: bytes, count: int, head: bytes) -> None:
        """Tell the peer how many records of a group we hold and the last one's hash
        (``count`` 0 with 32 zero bytes: none); uncounted, like a THROTTLE."""
        self._require_established()
        message = GroupHead(group_id, count, head)
        _FIELDS[GroupHead](message)  # refuse here what the peer would refuse there
        self._pending.append(message)

    def send_group_records(self, group_id: bytes, first: int, records) -> None:
        """Send encoded membership records numbered ``first``, ``first + 1``, ...;
        uncounted, and sent before whatever is queued after them (posts included)."""
        self._require_established()
        if type(records) is not tuple and type(records) is not list:
            raise UsageError(f"records are a tuple or list of bytes, not {type(records).__name__}")
        message = GroupRecords(group_id, first, tuple(records))
        _FIELDS[GroupRecords](message)  # refuse here what the peer would refuse there
        if _records_bytes(message) > _BATCH_BYTES:  # one message is never split over frames
            raise UsageError(f"records of {_records_bytes(message)} bytes exceed one frame")
        self._pending.append(message)

    def send_key_succession(self, statement: bytes) -> None:
        """Hand our key over to its successor (uncounted; the peer answers KEY_SWITCHED
        once it applied it)."""
        self._require_established()
        message = KeySuccession(statement)
        _FIELDS[KeySuccession](message)  # refuse here what the peer would refuse there
        self._pending.append(message)

    def send_key_switched(self, new_fp: bytes) -> None:
        """Tell the peer we applied its succession and know it by ``new_fp`` now."""
        self._require_established()
        message = KeySwitched(new_fp)
        _FIELDS[KeySwitched](message)
        self._pending.append(message)

    def send_read(self, upto: bytes) -> None:
        """A read receipt: we read the peer's chats up to the one with id ``upto``."""
        self._require_established()
        message = Read(upto)
        _FIELDS[Read](message)
        self._pending.append(message)

    # --- traffic ---------------------------------------------------------------------------

    def _on_record(self, frame: bytes, now: float) -> None:
        rtype, body = self._rx.open(frame)
        self._last_rx = now
        self._ping_out = None
        if rtype == KEY_UPDATE:
            # A sender updates only right before a frame it then seals under the new key,
            # so two in a row is a peer burning our CPU on key derivations.
            if self._after_update:
                raise PeerError("bad_key_update", "two key updates in a row")
            self._after_update = True
            return
        self._after_update = False
        if rtype == APP:
            self._on_batch(decode_batch(body))
        elif rtype == FILE:
            self._on_file(body)  # file_traffic.py
        elif rtype == CLOSE:
            self._shut("peer_closed")  # the session keys go with the session
            self._events.append(ConnectionClosed("peer_closed", f"code {body[0]}", by_peer=True))
        else:
            raise PeerError("bad_record_type")

    def _on_batch(self, messages: list) -> None:
        # Validate the whole batch before acting on any of it (all or nothing).
        own, peer = self.identity.fingerprint, self.peer
        chats = []
        ack = None
        controls = False
        posts = 0
        for msg in messages:
            kind = type(msg)
            if kind is Chat or kind is GroupPost:  # counted alike, addressed alike
                if msg.sender != peer or msg.recipient != own:
                    raise PeerError("misaddressed_chat")
                chats.append(msg)
                if kind is GroupPost:
                    posts += 1
            elif kind is Ack:
                floor = self._acked_upto if ack is None else ack
                if not floor < msg.upto < self._chats_flushed:
                    raise PeerError("bad_ack", f"upto {msg.upto} of {self._chats_flushed} sent")
                ack = msg.upto
            else:
                controls = True
        if controls:  # a batch of chats alone skips the second pass
            self._on_controls(messages)
        if ack is not None:
            self._acked_upto = ack
            self._events.append(Acked(ack))
        if chats:
            first = self._chats_received
            self._chats_received += len(chats)
            self._events.append(MessagesReceived(tuple(chats), first, len(chats), posts))

    def _on_controls(self, messages: list) -> None:
        # In batch order, and before the batch's MessagesReceived: the owner applies a
        # group's records before it judges the posts that came after them.
        events = self._events
        for msg in messages:
            kind = type(msg)
            if kind is Ping:
                self._pending.append(Pong(msg.data))
            elif kind is Typing:
                events.append(TypingChanged(msg.active))
            elif kind is Throttle:
                events.append(Throttled(msg.reason, msg.retry_after_ms))
            elif kind is GroupHead:
                events.append(GroupHeadReceived(msg.group_id, msg.count, msg.head))
            elif kind is GroupRecords:
                events.append(GroupRecordsReceived(msg.group_id, msg.first, msg.records))
            elif kind is KeySuccession:
                events.append(SuccessionReceived(msg.statement))
            elif kind is KeySwitched:
                events.append(SwitchedReceived(msg.new_fp))
            elif kind is Read:
                events.append(ReadReceived(msg.upto))

    # --- output ----------------------------------------------------------------------------

    def _flush_messages(self, now: float) -> None:
        if self._ack_out > self._ack_sent:
            self._pending.insert(0, Ack(self._ack_out))
            self._ack_sent = self._ack_out
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self._chats_flushed = self._chats_sent  # every queued Chat goes out in this call
        bodies = []
        start, size = 0, 0
        for i, msg in enumerate(pending):
            if type(msg) is list:  # a Chat's or GroupPost's checked fields, body last
                last = msg[-1]  # (a TIMER's last field is its seconds)
                size += _CONTROL_BYTES + (4 * len(last) if type(last) is not int else 0)
            else:
                pending[i] = _FIELDS[type(msg)](msg)
                cost = _CONTROL_BYTES
                if type(msg) is GroupRecords:
                    cost += _records_bytes(msg)
                    if size + cost > _BATCH_BYTES and i > start:  # too big to join: own frame
                        bodies.append(encode_fields(pending[start:i]))
                        start, size = i, 0
                size += cost
            if i - start + 1 == MAX_BATCH or size >= _BATCH_BYTES:
                bodies.append(encode_fields(pending[start : i + 1]))
                start, size = i + 1, 0
        if start < len(pending):
            bodies.append(encode_fields(pending[start:]))
        self._out.append(self._tx.seal_many(APP, bodies, now))

    def _require_established(self) -> None:
        if self.state is not S.ESTABLISHED:
            raise UsageError(f"the connection is {self.state.value}, not established")


def _records_bytes(message: GroupRecords) -> int:
    return sum(len(record) for record in message.records)
