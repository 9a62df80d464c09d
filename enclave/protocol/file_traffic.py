"""File-transfer traffic on an established connection (docs/PROTOCOL.md, "File transfer").

``FileTraffic`` is mixed into ``Connection``, like ``Traffic``: the owner queues file
messages with the ``send_file_*`` methods and receives one event per file message the
peer sends. The core keeps no transfer state: the host's transfer engine decides what
to offer, request, send, accept and refuse.

Rules:
- Every file message travels alone in a FILE record (file_messages.py has the codec).
  A malformed one closes the session (``bad_file_message``), like a malformed batch.
- Strict priority: each ``data_to_send`` seals, in this order, the queued APP batches
  (chats, acks, typing, pings), then the queued file control messages (offer, request,
  cancel, done), then FILE_CHUNK pieces, the last only up to the call's
  ``bulk_budget`` bytes. Pieces are sealed only when released, so a chat queued after a
  thousand pieces still goes out in the next write, ahead of the pieces not yet
  released; what waits is at most what the owner had already handed to its transport.
- Memory: the pieces waiting here are at most ``Limits.bulk_queue`` bytes of data;
  queueing more is the owner's error (``UsageError``): it reads the next piece from
  disk only when ``bulk_room`` allows.
- Cancelling a transfer drops its pieces still queued here.
"""

from collections import deque

from ..errors import UsageError
from .events import FileCancelled, FileChunkReceived, FileDelivered, FileOffered, FileRequested
from .file_messages import (
    FLAG_ZSTD,
    FileCancel,
    FileChunk,
    FileDone,
    FileOffer,
    FileRequest,
    decode_file_message,
    encode_chunk_led,
    encode_file_message,
    request,
)
from .records import FILE


class FileTraffic:
    """The file messages of ``Connection``; all the state it uses is the connection's."""

    __slots__ = ()

    # --- what the owner sends --------------------------------------------------------------

    def send_file_offer(self, offer: FileOffer) -> None:
        self._queue_file(offer)

    def send_file_request(self, transfer_id: bytes, ranges) -> None:
        """Ask for chunks ``start..stop-1`` of each (start, stop) of the peer's offer."""
        self._queue_file(request(transfer_id, ranges))

    def send_file_cancel(self, transfer_id: bytes, reason: int) -> None:
        """End a transfer (ours or the peer's); our pieces of it still queued are dropped."""
        self._queue_file(FileCancel(transfer_id, reason))
        if self._bulk:
            kept = deque(item for item in self._bulk if item[0] != transfer_id)
            self._bulk_bytes = sum(len(body) for _, body in kept)
            self._bulk = kept

    def send_file_done(self, transfer_id: bytes) -> None:
        """Tell the sender that its whole file arrived and its digest matched."""
        self._queue_file(FileDone(transfer_id))

    def send_file_chunk(self, chunk: FileChunk) -> None:
        """Queue one piece; it is sealed after every chat and control message queued
        before the flush that releases it."""
        self._require_established()
        if type(chunk) is not FileChunk:
            raise UsageError(f"not a FileChunk: {type(chunk).__name__}")
        body = encode_chunk_led(chunk)  # checked, one free byte in front (seal_led)
        if self._bulk_bytes + len(body) > self.limits.bulk_queue:
            raise UsageError(
                f"bulk queue full ({self._bulk_bytes} of {self.limits.bulk_queue} bytes)"
            )
        if self._bulk is None:
            self._bulk = deque()
        self._bulk.append((chunk.transfer_id, body))
        self._bulk_bytes += len(body)

    @property
    def bulk_queued(self) -> int:
        """Bytes of FILE_CHUNK records queued and not yet released by ``data_to_send``."""
        return self._bulk_bytes

    @property
    def bulk_room(self) -> int:
        """How many more bytes of pieces may be queued now."""
        return max(0, self.limits.bulk_queue - self._bulk_bytes)

    def _queue_file(self, message) -> None:
        self._require_established()
        self._file_out.append(encode_file_message(message))  # checked: never sent malformed

    # --- what the peer sends ---------------------------------------------------------------

    def _on_file(self, body: bytes) -> None:
        m = decode_file_message(body)
        kind = type(m)
        if kind is FileChunk:
            event = FileChunkReceived(
                m.transfer_id, m.index, m.piece, bool(m.flags & FLAG_ZSTD), m.data
            )
        elif kind is FileRequest:
            event = FileRequested(m.transfer_id, m.ranges)
        elif kind is FileOffer:
            event = FileOffered(m)
        elif kind is FileCancel:
            event = FileCancelled(m.transfer_id, m.reason)
        else:
            event = FileDelivered(m.transfer_id)
        self._events.append(event)

    # --- output ----------------------------------------------------------------------------

    def _flush_files(self, now: float, bulk_budget: int | None) -> None:
        """Seal the file control messages, then pieces up to ``bulk_budget`` bytes (all
        when None; one piece may pass the budget by less than its own size)."""
        if self._file_out:
            bodies, self._file_out = self._file_out, []
            self._out.append(self._tx.seal_many(FILE, bodies, now))
        if not self._bulk or (bulk_budget is not None and bulk_budget <= 0):
            return
        bodies, released = [], 0
        bulk = self._bulk
        while bulk and (bulk_budget is None or released < bulk_budget):
            body = bulk.popleft()[1]
            bodies.append(body)
            released += len(body)
        self._bulk_bytes -= released
        self._out.extend(self._tx.seal_led(FILE, bodies, now))
