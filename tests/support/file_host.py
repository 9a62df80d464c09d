"""A minimal host for file-transfer tests: the checks the node's transfer engine will
make with the core's events and the pure helpers (enclave/protocol/files.py), on one
side of an in-memory pair. It keeps whole files in memory; the engine writes to disk.
"""

from dataclasses import dataclass, field

from enclave.node.filenames import UnsafeName, safe_name
from enclave.protocol import files
from enclave.protocol.events import (
    FileCancelled,
    FileChunkReceived,
    FileDelivered,
    FileOffered,
    FileRequested,
)
from enclave.protocol.file_messages import CANCEL_REASONS, FileOffer

REASON = {name: code for code, name in CANCEL_REASONS.items()}


@dataclass
class Incoming:
    offer: FileOffer
    name: str
    chunks: dict = field(default_factory=dict)  # index -> verified bytes
    pieces: dict = field(default_factory=dict)  # index -> {piece: bytes}
    failures: dict = field(default_factory=dict)  # index -> digest failures
    requested: set = field(default_factory=set)
    done: bool = False


class Host:
    """One side's transfers. ``handle(events)`` reacts to the core's file events the
    way the engine will; ``refusals`` logs (transfer id, reason) as the node would."""

    def __init__(self, conn, *, max_pending_offers=4, window=files.WINDOW_CHUNKS):
        self.conn = conn
        self.max_pending_offers = max_pending_offers
        self.window = window
        self.outgoing: dict[bytes, tuple[FileOffer, bytes]] = {}
        self.incoming: dict[bytes, Incoming] = {}
        self.refusals: list[tuple[bytes, str]] = []
        self.delivered: list[bytes] = []
        self.cancelled: list[tuple[bytes, int]] = []

    def offer(self, offer: FileOffer, data: bytes) -> None:
        self.outgoing[offer.transfer_id] = (offer, data)
        self.conn.send_file_offer(offer)

    def handle(self, events) -> None:
        for ev in events:
            kind = type(ev)
            if kind is FileOffered:
                self._on_offer(ev.offer)
            elif kind is FileRequested:
                self._on_request(ev.transfer_id, ev.ranges)
            elif kind is FileChunkReceived:
                self._on_piece(ev)
            elif kind is FileCancelled:
                self.cancelled.append((ev.transfer_id, ev.reason))
            elif kind is FileDelivered:
                self.delivered.append(ev.transfer_id)

    def refuse(self, tid: bytes, reason: str) -> None:
        self.refusals.append((tid, reason))
        self.conn.send_file_cancel(tid, REASON[reason])

    # --- receiver ---------------------------------------------------------------------

    def _on_offer(self, offer: FileOffer) -> None:
        tid = offer.transfer_id
        pending = sum(1 for t in self.incoming.values() if not t.done)
        if tid in self.incoming or tid in self.outgoing:
            return self.refuse(tid, "duplicate")
        if pending >= self.max_pending_offers:
            return self.refuse(tid, "too_many_offers")
        try:
            name = safe_name(offer.name)
        except UnsafeName:
            return self.refuse(tid, "bad_name")
        self.incoming[tid] = Incoming(offer, name)

    def accept(self, tid: bytes, have: dict | None = None) -> None:
        """Start (or resume, with the chunks already held) the download of ``tid``."""
        t = self.incoming[tid]
        t.chunks.update(have or {})
        if len(t.chunks) == len(t.offer.digests):  # an empty file, or all held already
            return self._finish(t)
        self.pull(t)

    def pull(self, t: Incoming) -> None:
        """Request missing chunks until ``window`` are outstanding."""
        room = self.window - len(t.requested)
        skip = set(t.chunks) | t.requested
        ranges = files.missing_ranges(len(t.offer.digests), skip, room) if room > 0 else ()
        if ranges:
            t.requested.update(i for a, b in ranges for i in range(a, b))
            self.conn.send_file_request(t.offer.transfer_id, ranges)

    def _on_piece(self, ev: FileChunkReceived) -> None:
        t = self.incoming.get(ev.transfer_id)
        if t is None or t.done:
            return self.refuse(ev.transfer_id, "unknown_transfer")
        if ev.index not in t.requested or ev.compressed:
            return self.refuse(ev.transfer_id, "flow")
        if files.piece_length(t.offer, ev.index, ev.piece) != len(ev.data):
            return self.refuse(ev.transfer_id, "flow")
        pieces = t.pieces.setdefault(ev.index, {})
        pieces[ev.piece] = ev.data
        chunk = files.assemble(t.offer, ev.index, pieces)
        if chunk is not None:
            self._on_chunk(t, ev.index, chunk)

    def _on_chunk(self, t: Incoming, index: int, chunk: bytes) -> None:
        del t.pieces[index]
        t.requested.discard(index)
        if not files.verify_chunk(t.offer, index, chunk):
            t.failures[index] = t.failures.get(index, 0) + 1
            if t.failures[index] >= files.MAX_CHUNK_FAILURES:
                t.done = True
                return self.refuse(t.offer.transfer_id, "corrupt")
            return self.pull(t)  # refetch
        t.chunks[index] = chunk
        if len(t.chunks) == len(t.offer.digests):
            self._finish(t)
        else:
            self.pull(t)

    def _finish(self, t: Incoming) -> None:
        t.done = True
        ordered = (t.chunks[i] for i in range(len(t.offer.digests)))
        if files.verify_file(t.offer, ordered):
            self.conn.send_file_done(t.offer.transfer_id)
        else:
            self.refuse(t.offer.transfer_id, "digest_mismatch")

    def data(self, tid: bytes) -> bytes:
        t = self.incoming[tid]
        return b"".join(t.chunks[i] for i in range(len(t.offer.digests)))

    # --- sender -----------------------------------------------------------------------

    def _on_request(self, tid: bytes, ranges: tuple) -> None:
        if tid not in self.outgoing:
            return self.refuse(tid, "unknown_transfer")
        offer, data = self.outgoing[tid]
        if not files.ranges_within(offer, ranges):
            return self.refuse(tid, "flow")
        for start, stop in ranges:
            for index in range(start, stop):
                offset, length = files.chunk_span(offer, index)
                chunk = self.corrupt(index, data[offset : offset + length])
                for message in files.chunk_messages(tid, index, chunk):
                    self.conn.send_file_chunk(message)

    def corrupt(self, index: int, chunk: bytes) -> bytes:
        """What a hostile sender does to a chunk; an honest one sends it as it is."""
        return chunk
