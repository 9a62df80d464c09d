"""What a Connection tells its owner. Small frozen dataclasses, nothing else."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CryptoNeeded:
    """Run ``job.run()`` on any thread, then call ``Connection.resume(job, now)``.

    The job touches only the identity's private key and immutable inputs, so the
    owner may place it in a worker pool; until it resumes, the connection accepts
    no frames.
    """

    job: Any


@dataclass(frozen=True, slots=True)
class Established:
    peer: bytes  # the peer's raw 32-byte fingerprint, authenticated by its Finished MAC
    session_id: bytes
    initiator: bool


@dataclass(frozen=True, slots=True)
class MessagesReceived:
    """One authenticated batch, validated whole: its Chats and GroupPosts, mixed, in
    batch order. ``first_index`` is the session's index of the first of them (Chats and
    GroupPosts share one count, which acks refer to, see ``Connection.ack``)."""

    messages: tuple
    first_index: int
    chat_count: int
    group_posts: int = 0  # how many of ``messages`` are GroupPosts (0: chats alone)


@dataclass(frozen=True, slots=True)
class Acked:
    """The peer stored this session's Chats 0..upto durably (duplicates included)."""

    upto: int


@dataclass(frozen=True, slots=True)
class TypingChanged:
    active: bool


@dataclass(frozen=True, slots=True)
class Throttled:
    """The peer refuses our chats for now (PROTOCOL.md, "Receive quotas"): ``reason`` is
    one of ``messages.THROTTLE_REASONS``; it expects to take them after ``retry_after_ms``."""

    reason: int
    retry_after_ms: int


# --- groups (docs/PROTOCOL.md, "Groups: messages and catch-up"). Emitted in batch order
# before the batch's MessagesReceived, so the owner applies membership records before it
# judges the posts that came after them. Well formed only: the owner checks the rest.


@dataclass(frozen=True, slots=True)
class GroupHeadReceived:
    """The peer holds ``count`` records of group ``group_id``, the last hashing to
    ``head`` (``count`` 0 with 32 zero bytes: none)."""

    group_id: bytes
    count: int
    head: bytes


@dataclass(frozen=True, slots=True)
class GroupRecordsReceived:
    """Encoded membership records numbered ``first``, ``first + 1``, ... of group
    ``group_id``, not yet decoded (``group_log.decode_record``) nor judged."""

    group_id: bytes
    first: int
    records: tuple


# --- key succession (docs/PROTOCOL.md, "Key succession and revocation"). Well formed
# only: the owner decodes and judges the statement against the session's peer.


@dataclass(frozen=True, slots=True)
class SuccessionReceived:
    """The peer hands its key over by this encoded statement (not yet judged)."""

    statement: bytes


@dataclass(frozen=True, slots=True)
class ReadReceived:
    """The peer read our chats up to the one with id ``upto`` (a read receipt)."""

    upto: bytes


@dataclass(frozen=True, slots=True)
class SwitchedReceived:
    """The peer applied our succession and knows us by ``new_fp`` from now on."""

    new_fp: bytes


# --- file transfer (docs/PROTOCOL.md, "File transfer"). The core keeps no transfers:
# each event is one well-formed message, and the host checks it against its own state
# (is the id known, is the index requested, does the data match its digest).


@dataclass(frozen=True, slots=True)
class FileOffered:
    """The peer offers a file; ``offer`` is a ``file_messages.FileOffer``, well formed."""

    offer: Any


@dataclass(frozen=True, slots=True)
class FileRequested:
    """The peer wants chunks ``start..stop-1`` of each range of our offer ``transfer_id``."""

    transfer_id: bytes
    ranges: tuple


@dataclass(frozen=True, slots=True)
class FileChunkReceived:
    """One piece of chunk ``index`` of the peer's offer ``transfer_id`` (PIECE_SIZE
    bytes of the chunk from ``piece * PIECE_SIZE``, zstd-compressed if ``compressed``)."""

    transfer_id: bytes
    index: int
    piece: int
    compressed: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class FileCancelled:
    """The peer ended transfer ``transfer_id``; ``reason`` is one of
    ``file_messages.CANCEL_REASONS``."""

    transfer_id: bytes
    reason: int


@dataclass(frozen=True, slots=True)
class FileDelivered:
    """The peer has the whole file of our offer ``transfer_id`` and its digest matched."""

    transfer_id: bytes


@dataclass(frozen=True, slots=True)
class SlotWanted:
    """A verified v1 envelope waits for a private-op slot: when one may be free, the
    owner calls ``Connection.retry_admission`` (until then nothing is read or run)."""


@dataclass(frozen=True, slots=True)
class LegacyVerified:
    """The first v1 envelope of a connection carries a valid signature of ``sender``,
    a known contact: from here on the connection is that contact's, not a stranger's."""

    sender: bytes


@dataclass(frozen=True, slots=True)
class LegacyReceived:
    """A v1 envelope that passed every check and decrypted. The owner commits it to
    the store and only then closes the connection (PROTOCOL.md d.12)."""

    sender: bytes
    message_id: str
    timestamp: float
    text: str


@dataclass(frozen=True, slots=True)
class PairingFrame:
    """One pairing message (``pairing.py``) on a responder connection that opened with
    the pairing magic; the owner judges it and answers with ``send_pairing``."""

    message: bytes


@dataclass(frozen=True, slots=True)
class RevocationFrame:
    """A revocation certificate (``succession.decode_revocation`` reads it) on a
    responder connection that opened with ``succession.REVOKE_MAGIC``; the owner judges
    it and answers with ``send_revocation_received``. No session, no RSA work here."""

    certificate: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    reason: str
    detail: str = ""
    by_peer: bool = False
    v1_dropped: bool = False  # a legacy envelope (or part of one) was dropped: log it
