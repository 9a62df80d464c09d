"""The rows the store hands out: frozen records, so a caller cannot mistake one for a
live view of the file."""

from __future__ import annotations

from dataclasses import dataclass

PROTOS = ("auto", "v1", "v2")


@dataclass(frozen=True)
class Peer:
    fingerprint: str
    name: str | None
    public_key: str
    address: str | None
    verified: bool
    proto: str
    v2_seen: bool
    blocked: bool
    hwm_ms: int
    added_at: float
    last_seen: float | None
    # Where the peer's last authenticated session came from, when that was not
    # ``address`` (the one the user gave): dialled first, ``address`` is the fallback.
    learned_address: str | None = None
    # False: known only as a member of a group the user is in (schema 6), shown as "in
    # GROUP, not a contact"; no direct messages until the user adds it.
    contact: bool = True
    # Its owner revoked this key (a revocation certificate, schema 7): refused like a
    # stranger's from then on, shown as revoked.
    revoked: bool = False
    # The user allows read receipts with this contact (schema 9): we tell it what we
    # read, and show what it read (it must allow them too, or it tells nothing).
    receipts: bool = False
    # False: history is off with this contact (schema 11): its messages are shown as
    # they come and go, and the store keeps only tombstones of them.
    keep_history: bool = True
    # The disappearing-messages timer agreed with this contact, seconds (0: off; schema 12).
    disappear_s: int = 0

    @property
    def dial_addresses(self) -> list[str]:
        """Where to dial this peer, in order: the learned address, then the given one."""
        return [a for a in dict.fromkeys((self.learned_address, self.address)) if a]

    @property
    def address_text(self) -> str | None:
        """The addresses as a person reads them; both when a learned one differs."""
        if self.learned_address and self.address and self.learned_address != self.address:
            return f"{self.learned_address} (learned), {self.address} (given)"
        return self.learned_address or self.address

    @property
    def protocol(self) -> str:
        """What the node speaks to this peer: 'v1' (marked legacy by the user), 'v2'
        (marked, or seen speaking it once, which rules out v1 for good) or 'auto'."""
        if self.proto == "v1":
            return "v1"
        if self.proto == "v2" or self.v2_seen:
            return "v2"
        return "auto"


@dataclass(frozen=True)
class Message:
    rowid: int
    peer: str
    direction: str  # 'in' | 'out'
    id: bytes
    body: str | None  # None once deleted
    created_ms: int
    stored_ms: int
    state: str
    delivered_ms: int | None
    reason: str | None
    legacy: bool
    # A file message (schema 5): the transfer's name, size and state. None for a chat.
    file: FileNote | None = None
    read_ms: int | None = None  # ours: when the contact said it read it (schema 9)
    broadcast: bool = False  # ours: sent by a broadcast (schema 9)
    reply_to: bytes | None = None  # the id of the message it quotes (schema 10)
    # A TIMER's row (schema 12): the timer it set, seconds (0: off); shown as a system
    # line, not a bubble. None for every other message.
    timer_s: int | None = None
    expires_ms: int | None = None  # when it is erased (a disappearing message; schema 12)


@dataclass(frozen=True)
class OutboxItem:
    rowid: int
    peer: str
    id: bytes
    body: str
    created_ms: int
    state: str  # 'queued' | 'sent'
    legacy: bool
    # A group post's row (schema 6): (group id, epoch, lamport, seq), carried unchanged
    # by every resend. None for a direct message.
    group: tuple[bytes, int, int, int] | None = None
    reply: bytes | None = None  # the id a chat quotes (schema 10)
    timer: int | None = None  # a TIMER's seconds (schema 12)


# -- file transfers (schema 5) --------------------------------------------------------------

TRANSFER_STATES = ("offered", "accepted", "transferring", "delivered", "failed", "cancelled")
OPEN_STATES = ("offered", "accepted", "transferring")  # not yet settled one way or another


@dataclass(frozen=True)
class FileOffer:
    """What a sender says of a file: the same for both sides of a transfer."""

    id: bytes  # 16 random bytes, chosen by the sender
    name: str  # as it is kept here: the receiver's safe name, the sender's own
    size: int  # bytes
    chunk_size: int
    algorithm: str  # of the digests, e.g. "sha256"
    digest: bytes  # of the whole file
    chunk_digests: bytes  # ``chunks`` digests of ``len(digest)`` bytes each, in order
    compress: bool = False  # the sender allows compressed chunks

    @property
    def chunks(self) -> int:
        return -(-self.size // self.chunk_size)

    def chunk_digest(self, index: int) -> bytes:
        if not 0 <= index < self.chunks:
            raise IndexError(f"chunk {index} of {self.chunks}")
        width = len(self.digest)
        return self.chunk_digests[index * width : (index + 1) * width]


@dataclass(frozen=True)
class SourceFile:
    """An outgoing file as it was when offered; a change means the transfer fails."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Transfer:
    key: int  # the store's own number for it; ``offer.id`` is unique per peer only
    peer: str
    direction: str  # 'in' | 'out'
    message: int  # the rowid of its row in the history
    offer: FileOffer
    state: str  # one of TRANSFER_STATES
    reason: str | None
    done: int  # chunks held (in) or confirmed by the receiver (out)
    source: SourceFile | None  # outgoing only
    part_path: str | None  # incoming, once accepted
    final_path: str | None  # incoming, once delivered
    created_ms: int
    updated_ms: int

    @property
    def percent(self) -> int:
        """Whole percent of the chunks done (100 for an empty file once delivered)."""
        chunks = self.offer.chunks
        if chunks == 0:
            return 100 if self.state == "delivered" else 0
        return self.done * 100 // chunks


@dataclass(frozen=True)
class FileNote:
    """What a conversation shows of a file message."""

    key: int  # the transfer's, for ``Store.get_transfer``
    name: str
    size: int
    state: str
    reason: str | None
    percent: int


# -- groups (schema 6) ----------------------------------------------------------------------

GROUP_STATES = ("member", "left", "removed")


@dataclass(frozen=True)
class GroupRow:
    key: int  # the store's number for it (``messages.grp``)
    id: bytes  # 16 random bytes, the group's own id
    name: str
    state: str  # one of GROUP_STATES
    created_ms: int
    records: tuple[bytes, ...]  # the signed membership log, record i is epoch i
    # The disappearing-messages timer in force at the log's head, seconds (0: off;
    # schema 14): a mirror of the log's TIMER records, kept with them.
    disappear_s: int = 0


@dataclass(frozen=True)
class GroupLine:
    """One post of a group's history: ours once, whatever the number of members."""

    id: bytes
    sender: str  # fingerprint hex; ours is the ``own_fp`` the page was asked with
    direction: str  # 'in' | 'out'
    body: str
    created_ms: int
    stored_ms: int
    lamport: int
    epoch: int
    seq: int
    states: dict[str, str]  # ours: member fingerprint -> that row's state; {} if received
    rowids: tuple[int, ...]  # ours: one row per member; received: its one row
