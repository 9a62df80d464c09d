"""What a Node tells its faces. Small frozen dataclasses; fingerprints are hex strings."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MessageReceived:
    peer: str
    id: bytes
    body: str  # as sent: show it through display.visible
    created_ms: int | None  # display.created_time: None when the sender's time is not believable
    legacy: bool = False
    reply_to: bytes | None = None  # the id of the message it quotes (a REPLY)


@dataclass(frozen=True, slots=True)
class DeliveryChanged:
    """An outgoing message moved to ``state``: queued, sent, delivered or failed.

    A new message's first "queued" carries its ``body`` and ``created_ms``: whichever
    face or command sent it, every face shows the text from this event, before any
    later state of the message (a retry's "queued" carries no body)."""

    peer: str
    rowid: int
    id: bytes
    state: str
    reason: str | None = None
    body: str | None = None
    created_ms: int | None = None
    group: str | None = None  # the group's id (hex) when this row is a copy of a group post


@dataclass(frozen=True, slots=True)
class PeerOnline:
    peer: str


@dataclass(frozen=True, slots=True)
class PeerOffline:
    peer: str


@dataclass(frozen=True, slots=True)
class TypingChanged:
    peer: str
    active: bool


@dataclass(frozen=True, slots=True)
class Throttled:
    """``peer``'s node refuses our messages for now and will take them after about
    ``retry_after`` seconds; they wait in the outbox. ``reason``: "rate" (messages per
    second), "volume" (bytes per second) or "storage" (its quota of our messages is full)."""

    peer: str
    reason: str
    retry_after: float


@dataclass(frozen=True, slots=True)
class Retrying:
    """Messages wait for ``peer``, which could not be reached; the next try is in about
    ``retry_after`` seconds (``Node.retry_now`` tries at once)."""

    peer: str
    retry_after: float


@dataclass(frozen=True, slots=True)
class NodeProblem:
    """Something the user should know (disk full, a refused legacy message...)."""

    text: str


@dataclass(frozen=True, slots=True)
class ContactChanged:
    """The address book changed: ``change`` is "added", "updated", "renamed", "blocked",
    "unblocked" or "removed"; ``name`` is the contact's name after it (None: none)."""

    peer: str
    change: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class MessagesRead:
    """A contact read our direct messages up to the one with id ``upto`` (hex): a read
    receipt, where both sides allow them (node/receipts.py)."""

    peer: str
    upto: str
    read_ms: int


@dataclass(frozen=True, slots=True)
class MessageDeleted:
    """The user deleted one message of a conversation on this device ("delete for me"):
    every face drops it from what it shows. ``ref`` is its short reference."""

    peer: str
    rowid: int
    ref: str
    id: str  # the full message id, hex
    direction: str


@dataclass(frozen=True, slots=True)
class KeyChanged:
    """A contact handed its key over to a new one, signed by the previous key (an audit
    line: "alice rotated their key, signed by their previous key"). ``peer`` is the new
    fingerprint, ``old`` the one it left; ``seq`` the new key's place in its chain."""

    peer: str
    old: str
    name: str | None
    seq: int
    applied_ms: int = 0  # when it was applied here (its place in the conversation)


@dataclass(frozen=True, slots=True)
class FileChanged:
    """A file transfer changed: its state (offered, accepted, transferring, delivered,
    failed, cancelled), or its progress (``done_bytes`` of ``size``). ``key`` names it
    for ``Node.accept_file``, ``decline_file``, ``cancel_file``; ``rowid`` is its row
    in the conversation. ``waiting``: an incoming file waits for the user's yes.
    ``path``: where a delivered incoming file landed, or the file we send.
    ``Node.files`` gives every transfer in this same form."""

    peer: str
    key: int
    rowid: int
    id: bytes
    direction: str
    name: str
    size: int
    state: str
    done_bytes: int = 0
    reason: str | None = None
    path: str | None = None
    waiting: bool = False
    created_ms: int | None = None


# --- group chat (enclave.node.groups) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupMessageReceived:
    """A new post in a group, stored. Faces place it by (``lamport``, ``sender``): every
    member shows the same order, and a late one takes its place among the others."""

    group: str  # the group's id (hex)
    group_name: str
    sender: str
    id: bytes
    body: str  # as sent: show it through display.visible
    created_ms: int | None  # display.created_time
    lamport: int
    epoch: int = 0  # the membership epoch it was written at


@dataclass(frozen=True, slots=True)
class GroupChanged:
    """A membership record was applied: ``author`` did ``kind`` (create, add, remove,
    leave, promote, rename, timer) to ``subjects`` ("bob added carol"); ``detail`` is the
    group's name for create and rename; ``seconds`` the disappearing-messages timer a
    timer record set (0: off), None for every other kind."""

    group: str
    group_name: str
    kind: str
    author: str
    subjects: tuple
    epoch: int
    detail: str | None = None
    seconds: int | None = None


@dataclass(frozen=True, slots=True)
class TimerChanged:
    """A conversation's disappearing-messages timer was set (a TIMER, ours or the
    contact's): every face shows a system line (``display.timer_line``). ``seconds`` is
    what this TIMER set (0: off); ``in_force`` the timer now agreed (the newest TIMER's:
    an older one changes nothing). ``by``: "us" or "them"."""

    peer: str
    seconds: int
    in_force: int
    by: str
    created_ms: int | None
    id: str  # the TIMER's id, hex


@dataclass(frozen=True, slots=True)
class MessagesExpired:
    """Disappearing messages of a conversation reached their time and were erased here:
    every face drops them. ``keys``: "direction:id hex" of each; ``refs``: their short
    references, in the same order."""

    peer: str
    keys: tuple[str, ...]
    refs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GroupMessagesExpired:
    """Disappearing posts of a group reached their time and were erased here (every
    copy of ours, each member's one): every face drops them. ``ids``: each post's id,
    hex; ``refs``: their short references, in the same order."""

    group: str
    ids: tuple[str, ...]
    refs: tuple[str, ...]


# -- the two events of every message, built fast ------------------------------------------
# The node builds these per message (a sender's "queued", "sent" and "delivered"; a
# receiver's MessageReceived). A frozen dataclass's generated __init__ sets each field
# through object.__setattr__ (0.5-0.7 us); the slot descriptors do the same job in about
# 0.3 us, as ``protocol.messages.decode_batch`` builds Chats. tests/test_node_events.py
# pins that each result equals the class's own constructor, field for field.

_new = object.__new__


def _setters(cls) -> tuple:
    return tuple(getattr(cls, name).__set__ for name in cls.__dataclass_fields__)


_RECEIVED = _setters(MessageReceived)
_DELIVERY = _setters(DeliveryChanged)


def message_received(
    peer: str,
    id: bytes,  # noqa: A002 - the field's name
    body: str,
    created_ms: int | None,
    legacy: bool = False,
    reply_to: bytes | None = None,
) -> MessageReceived:
    """``MessageReceived(...)``, faster."""
    s_peer, s_id, s_body, s_created, s_legacy, s_reply = _RECEIVED
    ev = _new(MessageReceived)
    s_peer(ev, peer)
    s_id(ev, id)
    s_body(ev, body)
    s_created(ev, created_ms)
    s_legacy(ev, legacy)
    s_reply(ev, reply_to)
    return ev


def delivery_changed(
    peer: str,
    rowid: int,
    id: bytes,  # noqa: A002 - the field's name
    state: str,
    reason: str | None = None,
    body: str | None = None,
    created_ms: int | None = None,
    group: str | None = None,
) -> DeliveryChanged:
    """``DeliveryChanged(...)``, faster."""
    s_peer, s_rowid, s_id, s_state, s_reason, s_body, s_created, s_group = _DELIVERY
    ev = _new(DeliveryChanged)
    s_peer(ev, peer)
    s_rowid(ev, rowid)
    s_id(ev, id)
    s_state(ev, state)
    s_reason(ev, reason)
    s_body(ev, body)
    s_created(ev, created_ms)
    s_group(ev, group)
    return ev
