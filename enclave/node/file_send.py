"""The sending side of file transfer: offers, the receiver's requests, and the pump
that moves checked chunks from disk into a session's bulk queue.

Rules:
- An outgoing transfer lives in the store from the moment it is offered; this side
  keeps in memory only what is being sent. Its offer is sent again on every session
  that comes up with the peer until the peer settles it (FILE_DONE or FILE_CANCEL), so
  a transfer queued for an offline contact, or cut by a restart of either side, goes on
  by itself: the receiver answers with requests for what it lacks.
- Chunks are read only when asked for, on the link the request came on, and only while
  that link has room (``Connection.bulk_room``) and its read-ahead is under
  READ_AHEAD chunks: memory per sending link is bounded by the bulk queue plus that.
  The recipients of one file (``Recipients``) share the reader's cache: it keeps what
  the slowest of them has yet to take, within its bounds (file_io.py); no recipient
  is paced or waits for another.
- A transfer is served on the link of its latest request. When that changes (its
  session closed, or the receiver asks on another), everything asked, read or being
  read for the old link is void: the receiver asks again on the new one, and a read
  still on the read thread for the old one is dropped when it ends (``epoch``).
- A request for a chunk outside the offer, or more chunks pending than MAX_PENDING,
  is a hostile or broken receiver: the transfer is cancelled with "flow".
- A chunk that no longer matches its digest (or a file whose size or mtime changed)
  fails the transfer with the reason, and the receiver is told ("local_error").
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from functools import partial

from enclave.node.file_io import READ_CACHE_CHUNKS, Keep, SourceChanged
from enclave.protocol import files
from enclave.protocol.file_messages import MAX_CHUNKS, MAX_REQUEST_CHUNKS, FileOffer

log = logging.getLogger("enclave.node.files")
READ_AHEAD = 2  # chunks read and not yet in the bulk queue, per link
MAX_PENDING = 4 * MAX_REQUEST_CHUNKS  # chunks asked for and not yet sent, per transfer


@dataclass(eq=False)
class Outgoing:
    key: int
    peer: bytes
    wire: FileOffer
    path: str
    size: int
    mtime_ns: int
    compress: bool
    state: str
    pending: deque = field(default_factory=deque)  # requested chunks not yet read
    queued: set = field(default_factory=set)  # pending, being read, or ready
    link: object = None  # the link of the latest request
    sent: int = 0  # bytes of pieces handed to sessions (this process)
    taken: int = 0  # one past the highest chunk handed whole to a session
    away: bool = False  # its session went; it asks again when one is back
    reading: set = field(default_factory=set)  # chunks on the read thread for ``link``
    epoch: int = 0  # how many times ``link`` changed: a read of an older one is void

    @property
    def source(self) -> tuple:
        """What the reader caches the file's chunks under: the same for every recipient."""
        return (self.path, self.mtime_ns, self.wire.chunk_size)

    def floor(self) -> int:
        """The lowest chunk it may still ask for: a receiver asks in order, but the last
        window of chunks handed to a session may be lost with it and asked again."""
        lowest = min(min(self.queued, default=self.taken), self.taken)
        return max(0, lowest - files.WINDOW_CHUNKS)


@dataclass(eq=False)
class Recipients:
    """The open transfers of one file, for the reader's cache (``Keep``): the chunks
    from the slowest one's floor on, up to a window of chunks per recipient; nothing
    once every one is away (a recipient away only for a moment, e.g. a session of two
    that closes, keeps its place). Worked out again every ``len(members)`` reads, so
    that a read costs the same however many recipients; a floor that old is only lower
    than it could be (it keeps more, within the same limit)."""

    members: set = field(default_factory=set)
    keep: Keep = Keep()
    due: int = 0  # reads left before ``keep`` is worked out again

    def for_read(self) -> Keep:
        if self.due <= 0:
            self.keep = self.worked_out()
            self.due = len(self.members)
        self.due -= 1
        return self.keep

    def worked_out(self) -> Keep:
        if all(m.away for m in self.members):
            return Keep(MAX_CHUNKS, 0)
        chunks = max(READ_CACHE_CHUNKS, len(self.members) * files.WINDOW_CHUNKS)
        return Keep(min(m.floor() for m in self.members), chunks)


@dataclass(eq=False)
class Sending:
    """What one link is sending: transfers with chunks pending, pieces read."""

    transfers: deque = field(default_factory=deque)
    ready: deque = field(default_factory=deque)  # FileChunk pieces read, not yet queued
    reading: int = 0


class SendSide:
    def __init__(self, engine) -> None:
        self.e = engine
        self.out: dict[tuple[bytes, bytes], Outgoing] = {}  # (peer, transfer id)
        self.links: dict[int, Sending] = {}
        self.files: dict[tuple, Recipients] = {}  # by Outgoing.source

    def track(self, o: Outgoing) -> None:
        """``o`` is open: it is sent, and the reader keeps its file's chunks for it."""
        self.out[(o.peer, o.wire.transfer_id)] = o
        group = self.files.setdefault(o.source, Recipients())
        group.members.add(o)
        group.due = 0

    # --- offers ------------------------------------------------------------------------

    def add(self, o: Outgoing) -> None:
        self.track(o)
        link = self.e.sessions.pick(o.peer)
        if link is not None:
            self.offer_on(link, o)

    def offer_on(self, link, o: Outgoing) -> None:
        conn = link.conn
        if conn is not None and conn.established and not conn.closed:
            conn.send_file_offer(o.wire)
            link.schedule_flush()

    def session_up(self, link, peer: bytes) -> None:
        for o in [o for o in self.out.values() if o.peer == peer]:
            self.offer_on(link, o)

    def session_down(self, link) -> None:
        sending = self.links.pop(link.id, None)
        if sending is None:
            return
        for o in sending.transfers:
            self._drop_pending(o)
        for piece in sending.ready:
            o = self.out.get((link_peer(link), piece.transfer_id))
            if o is not None:
                o.queued.discard(piece.index)
        for o in self.out.values():
            if o.link is link:
                self._move(o, None)
                o.away = True
                self._retain(o.source)

    def _move(self, o: Outgoing, link) -> None:
        """The transfer is served on ``link`` now (None: nowhere). What was asked on the
        old one is void, the chunks still being read for it too: the receiver asks for
        them again on the new one, and they are read again for it."""
        old = self.links.get(o.link.id) if o.link is not None else None
        if old is not None:
            if o in old.transfers:
                old.transfers.remove(o)
            tid = o.wire.transfer_id
            old.ready = deque(p for p in old.ready if p.transfer_id != tid)
        self._drop_pending(o)
        o.queued.clear()  # nothing of it is pending, being read or ready any more
        o.reading.clear()
        o.epoch += 1
        o.link = link

    @staticmethod
    def _drop_pending(o: Outgoing) -> None:
        for index in o.pending:
            o.queued.discard(index)
        o.pending.clear()

    # --- the receiver's messages --------------------------------------------------------

    def requested(self, link, peer: bytes, tid: bytes, ranges: tuple) -> None:
        o = self.out.get((peer, tid))
        if o is None:
            self.e.answer_unknown(link, peer, "out", tid)
            return
        if not files.ranges_within(o.wire, ranges):
            self.e.refuse(link, peer, tid, "flow", "a request beyond the offer's chunks")
            self.fail(o, "the receiver asked for chunks the file does not have", notify=False)
            return
        wanted = [i for a, b in ranges for i in range(a, b) if i not in o.queued]
        if len(o.queued) + len(wanted) > MAX_PENDING:
            self.e.refuse(link, peer, tid, "flow", "too many chunks requested at once")
            self.fail(o, "the receiver asked for too much at once", notify=False)
            return
        if o.state == "offered":
            o.state = "transferring"
            self.e.move(o.key, "accepted", "transferring")
        if o.link is not link:
            self._move(o, link)  # the old link's requests are void
            o.away = False
            self.files[o.source].due = 0
            wanted = [i for a, b in ranges for i in range(a, b)]
        o.pending.extend(wanted)
        o.queued.update(wanted)
        sending = self.links.setdefault(link.id, Sending())
        if wanted and o not in sending.transfers:
            sending.transfers.append(o)
        self.pump(link)

    def delivered(self, peer: bytes, tid: bytes) -> None:
        o = self.out.pop((peer, tid), None)
        if o is None:
            return
        self._forget(o)
        self.e.settle(o.key, "delivered", None, sent=o.sent)

    def cancelled(self, peer: bytes, tid: bytes, reason: str) -> None:
        o = self.out.pop((peer, tid), None)
        if o is None:
            return
        self._forget(o)
        state = "cancelled" if reason in ("cancelled", "declined") else "failed"
        self.e.settle(o.key, state, files_reason(reason), sent=o.sent)

    def cancel(self, key: int, reason_code: str) -> bool:
        """Our user cancelled: tell the peer if it can hear it now (else it hears on the
        next session, when it asks for chunks of a transfer we no longer know)."""
        for o in list(self.out.values()):
            if o.key == key:
                del self.out[(o.peer, o.wire.transfer_id)]
                self._forget(o)
                link = o.link or self.e.sessions.pick(o.peer)
                self.e.send_cancel(link, o.wire.transfer_id, reason_code)
                return True
        return False

    def fail(self, o: Outgoing, reason: str, notify: bool = True) -> None:
        if self.out.pop((o.peer, o.wire.transfer_id), None) is None:
            return
        self._forget(o)
        if notify:
            self.e.send_cancel(
                o.link or self.e.sessions.pick(o.peer), o.wire.transfer_id, "local_error"
            )
        log.warning("file %s to %s failed: %s", o.wire.name, o.peer.hex()[:16], reason)
        self.e.settle(o.key, "failed", reason, sent=o.sent)

    def _forget(self, o: Outgoing) -> None:
        self._drop_pending(o)
        o.queued.clear()
        group = self.files.get(o.source)
        if group is not None:
            group.members.discard(o)
            if not group.members:
                del self.files[o.source]
            self._retain(o.source)
        if o.link is not None:
            sending = self.links.get(o.link.id)
            if sending is not None:
                if o in sending.transfers:
                    sending.transfers.remove(o)
                tid = o.wire.transfer_id
                sending.ready = deque(p for p in sending.ready if p.transfer_id != tid)

    # --- the pump --------------------------------------------------------------------

    def pump(self, link) -> None:
        """Queue read pieces while the link has room; read more while under READ_AHEAD."""
        sending = self.links.get(link.id)
        conn = link.conn
        if sending is None or conn is None or conn.closed:
            return
        ready, fed = sending.ready, False
        while ready and conn.bulk_room >= len(ready[0].data) + 64:
            piece = ready.popleft()
            o = self.out.get((link_peer(link), piece.transfer_id))
            if o is None:
                continue
            conn.send_file_chunk(piece)
            o.sent += len(piece.data)
            self.e.stats["file_bytes_sent"] += len(piece.data)
            fed = True
            if piece.piece == files.piece_count(o.wire, piece.index) - 1:
                o.queued.discard(piece.index)
                o.taken = max(o.taken, piece.index + 1)
                self.e.progress(o.key, o.sent)
        if fed:
            link.schedule_flush()
        while sending.transfers and sending.reading + _ready_chunks(ready) < READ_AHEAD:
            o = sending.transfers[0]
            if not o.pending:  # its requests moved to another link meanwhile
                sending.transfers.popleft()
                continue
            sending.transfers.rotate(-1)
            index = o.pending.popleft()
            o.reading.add(index)
            if not o.pending:
                sending.transfers.remove(o)
            sending.reading += 1
            keep = self.files[o.source].for_read()
            job = partial(
                self.e.reader.pieces, o.path, o.size, o.mtime_ns, o.wire, index, o.compress, keep
            )
            fut = asyncio.get_running_loop().run_in_executor(self.e.read_pool, job)
            fut.add_done_callback(partial(self._read_done, link, sending, o, index, o.epoch))

    def _retain(self, source: tuple) -> None:
        """A recipient left or went away: the reader drops what only it was kept for
        (on the reader's thread, the only one that touches the cache)."""
        if self.e.closing:
            return
        keep = self.files.get(source, Recipients()).worked_out()
        self.e.read_pool.submit(self.e.reader.retain, source, keep)

    def _read_done(self, link, sending: Sending, o: Outgoing, index: int, epoch: int, fut) -> None:
        sending.reading -= 1
        if self.e.closing:
            return
        try:
            pieces = fut.result()
        except SourceChanged as why:
            self.fail(o, str(why))
            return
        except OSError as err:
            self.fail(o, f"the file cannot be read ({err.strerror})")
            return
        except asyncio.CancelledError:
            return
        if epoch != o.epoch:
            return  # read for a link the transfer left: asked and read again for the new one
        o.reading.discard(index)
        if self.links.get(link.id) is not sending or (o.peer, o.wire.transfer_id) not in self.out:
            o.queued.discard(index)  # the link or the transfer went meanwhile: ask again
            return
        sending.ready.extend(pieces)
        self.pump(link)


def _ready_chunks(ready: deque) -> int:
    """Chunks whose pieces wait in ``ready`` (a chunk's last piece ends it)."""
    return sum(1 for _ in {(p.transfer_id, p.index) for p in ready})


def link_peer(link) -> bytes | None:
    conn = link.conn
    return conn.peer if conn is not None else None


_READABLE = {
    "cancelled": "cancelled by the receiver",
    "declined": "declined by the receiver",
    "too_many_offers": "the receiver has too many files waiting from us",
    "bad_name": "the receiver cannot use the file's name",
    "too_large": "too large for the receiver",
    "corrupt": "the data arrived damaged too often",
    "unknown_transfer": "the receiver does not know this transfer",
    "digest_mismatch": "the whole file did not match its digest",
    "local_error": "the other side failed (disk or store)",
    "flow": "the other side broke the flow rules",
    "duplicate": "the transfer id was used already",
}


def files_reason(reason: str) -> str:
    """A peer's cancel reason as a person reads it."""
    return _READABLE.get(reason, reason)
