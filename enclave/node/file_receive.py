"""The receiving side of file transfer: offers from contacts, the pull of chunks, their
checks, the ``.part`` and its records, and the final name.

Rules:
- The receiver drives: it asks for at most WINDOW_CHUNKS chunks at a time, on one of
  the peer's sessions, and only for chunks it does not hold. After a dropped session
  or a restart of either side it asks again for exactly what is missing, so only
  missing chunks move.
- A piece is taken only for a chunk this side asked for on that link, at the length
  the offer implies (decompressed within that bound). A chunk is written only after
  it matched its digest; one that fails is asked for again, and after
  MAX_CHUNK_FAILURES the transfer fails ("corrupt"). Unasked-for pieces are dropped
  and counted; past MAX_STRAY the transfer is cancelled ("flow").
- Written chunks are recorded in the store only after the data is synced when
  ``store_sync`` is "full" (with "normal" the page cache survives a crash of Enclave,
  as the store's own rows do), in group commits: one sync and one transaction for
  every chunk written meanwhile. The sync runs on the engine's sync thread, so the
  store's writer (chat commits) never waits for a file's data to reach the disk.
- The file gets its final name only after every chunk is in and the whole file
  matches the offered digest; cancel or failure removes the ``.part``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

from enclave.node import filenames
from enclave.node.file_io import PartFile, unpack_piece
from enclave.protocol import files
from enclave.protocol.file_messages import FileOffer

log = logging.getLogger("enclave.node.files")
MAX_STRAY = 64  # pieces nobody asked for that a transfer tolerates


@dataclass(eq=False)
class Incoming:
    key: int
    peer: bytes
    wire: FileOffer
    part_path: str
    held: set  # chunks written and recorded
    requested: dict = field(default_factory=dict)  # chunk -> link id
    pieces: dict = field(default_factory=dict)  # chunk -> {piece: (data, compressed)}
    writing: set = field(default_factory=set)
    unsynced: list = field(default_factory=list)
    recording: set = field(default_factory=set)  # written, being synced and recorded
    failures: Counter = field(default_factory=Counter)
    part: PartFile | None = None
    syncing: bool = False
    finishing: bool = False
    stray: int = 0
    received: int = 0  # bytes of chunks written (this process)

    @property
    def chunks(self) -> int:
        return len(self.wire.digests)

    def have(self) -> set:
        return self.held | self.writing | self.recording | set(self.unsynced) | set(self.requested)


class ReceiveSide:
    def __init__(self, engine) -> None:
        self.e = engine
        self.inc: dict[tuple[bytes, bytes], Incoming] = {}

    # --- starting and resuming -----------------------------------------------------------

    def start(self, i: Incoming) -> None:
        self.inc[(i.peer, i.wire.transfer_id)] = i
        if len(i.held) == i.chunks:
            self.finish(i)
            return
        link = self.e.sessions.pick_bulk(i.peer)
        if link is not None:
            self.pull(i, link)

    def session_up(self, link, peer: bytes) -> None:
        for i in [i for i in self.inc.values() if i.peer == peer]:
            self.pull(i)  # on the peer's bulk session, which may be this new one

    def session_down(self, link) -> None:
        for i in list(self.inc.values()):
            gone = [c for c, lid in i.requested.items() if lid == link.id]
            for c in gone:
                del i.requested[c]
                i.pieces.pop(c, None)
            if gone:
                # Another session to the same contact may stay up (both sides dialled, or
                # a pool): ask there now; no new session would come to ask for us.
                self.pull(i)

    def pull(self, i: Incoming, link=None) -> None:
        """Ask for missing chunks until WINDOW_CHUNKS are outstanding."""
        if i.finishing or (i.peer, i.wire.transfer_id) not in self.inc:
            return
        link = link or self.e.sessions.pick_bulk(i.peer, next(iter(i.requested.values()), None))
        conn = link.conn if link is not None else None
        if conn is None or conn.closed or not conn.established:
            return
        # Chunks waiting for the disk count too: a disk slower than the network holds
        # the sender back instead of filling memory.
        room = files.WINDOW_CHUNKS - len(i.requested) - len(i.writing)
        if room < max(1, files.WINDOW_CHUNKS // 2) and i.requested:
            return  # ask in batches: one request per half window
        ranges = files.missing_ranges(i.chunks, i.have(), room)
        if not ranges:
            return
        for a, b in ranges:
            for c in range(a, b):
                i.requested[c] = link.id
        conn.send_file_request(i.wire.transfer_id, ranges)
        link.schedule_flush()

    # --- pieces ----------------------------------------------------------------------

    def piece(self, link, peer: bytes, ev) -> None:
        i = self.inc.get((peer, ev.transfer_id))
        if i is None:
            self.e.answer_unknown(link, peer, "in", ev.transfer_id)
            return
        if i.requested.get(ev.index) != link.id:
            self._stray(i, link, f"chunk {ev.index} was not asked for on this session")
            return
        length = files.piece_length(i.wire, ev.index, ev.piece)
        if length is None or (not ev.compressed and len(ev.data) != length):
            self._stray(i, link, f"piece {ev.piece} of chunk {ev.index} does not fit the offer")
            return
        got = i.pieces.setdefault(ev.index, {})
        got[ev.piece] = (ev.data, ev.compressed)
        self.e.stats["file_piece_bytes_received"] += len(ev.data)
        if len(got) < files.piece_count(i.wire, ev.index):
            return
        del i.pieces[ev.index]
        del i.requested[ev.index]
        i.writing.add(ev.index)
        job = partial(self._write, i, ev.index, got)
        fut = asyncio.get_running_loop().run_in_executor(self.e.write_pool, job)
        fut.add_done_callback(partial(self._written, i, ev.index))

    def _stray(self, i: Incoming, link, why: str) -> None:
        i.stray += 1
        self.e.stats["file_pieces_refused"] += 1
        log.warning("file %s from %s: piece refused: %s", i.wire.transfer_id.hex()[:8],
                    i.peer.hex()[:16], why)  # fmt: skip
        if i.stray > MAX_STRAY:
            self.e.refuse(link, i.peer, i.wire.transfer_id, "flow", "too many stray pieces")
            self.fail(i, "the sender broke the flow rules", notify=False)

    def _write(self, i: Incoming, index: int, got: dict) -> bool:
        """On the writer thread: decompress, verify, write. False: the chunk is bad."""
        if i.part is None:
            i.part = PartFile(i.part_path, i.wire, i.held)
        pieces = {}
        for p, (data, compressed) in got.items():
            plain = unpack_piece(data, compressed, files.piece_length(i.wire, index, p))
            if plain is None:
                return False
            pieces[p] = plain
        return i.part.write(index, pieces)

    def _written(self, i: Incoming, index: int, fut) -> None:
        i.writing.discard(index)
        if self.e.closing or (i.peer, i.wire.transfer_id) not in self.inc:
            return  # cancelled meanwhile
        try:
            ok = fut.result()
        except OSError as err:
            self.fail(i, f"cannot write the file ({err.strerror})")
            return
        if not ok:
            i.failures[index] += 1
            self.e.stats["file_chunks_refetched"] += 1
            log.warning("file %s from %s: chunk %d failed its digest (%d times)",
                        i.wire.name, i.peer.hex()[:16], index, i.failures[index])  # fmt: skip
            if i.failures[index] >= files.MAX_CHUNK_FAILURES:
                self.fail(i, "the data arrived damaged too often", code="corrupt")
                return
        else:
            size = files.chunk_span(i.wire, index)[1]
            i.received += size
            self.e.stats["file_bytes_received"] += size
            i.unsynced.append(index)
            self._sync(i)
        self.pull(i)

    def _sync(self, i: Incoming) -> None:
        """Group commit: sync what was written, then record it, then take the next batch."""
        if i.syncing or not i.unsynced:
            return
        batch, i.unsynced, i.syncing = i.unsynced, [], True
        i.recording.update(batch)
        loop = asyncio.get_running_loop()
        if self.e.settings.store_sync == "full" and i.part is not None:
            # The data on the disk first (the sync thread), then its record (the store's
            # writer, which chat commits share: they never wait behind a file's sync).
            fut = loop.run_in_executor(self.e.sync_pool, os.fsync, i.part.fd)
            fut.add_done_callback(partial(self._record, i, batch))
        else:
            self._record(i, batch, None)

    def _record(self, i: Incoming, batch: list, synced) -> None:
        if synced is not None and (synced.cancelled() or synced.exception() is not None):
            self._synced(i, batch, synced)  # the sync failed: nothing is recorded
            return
        commit = partial(self.e.store.mark_chunks, {i.key: batch})
        fut = asyncio.get_running_loop().run_in_executor(self.e.store_writer, commit)
        fut.add_done_callback(partial(self._synced, i, batch))

    def _synced(self, i: Incoming, batch: list, fut) -> None:
        i.syncing = False
        i.recording.difference_update(batch)
        if self.e.closing:
            return
        try:
            fut.result()
        except (OSError, Exception) as err:  # a full disk, a store that cannot write
            self.fail(i, f"cannot record the file's progress ({err})")
            return
        first = not i.held
        i.held.update(batch)
        if first:
            self.e.move(i.key, "transferring")
        self.e.progress(i.key, len(i.held) * i.wire.chunk_size)
        if len(i.held) == i.chunks:
            self.finish(i)
        else:
            self._sync(i)

    # --- the end ----------------------------------------------------------------------

    def finish(self, i: Incoming) -> None:
        if i.finishing:
            return
        i.finishing = True
        full = self.e.settings.store_sync == "full"
        final = self.e.final_path(i.key)

        def complete() -> str | None:
            if i.part is None and not os.path.exists(i.part_path) and final.exists():
                # Renamed just before a crash, not yet recorded: it is done if it matches.
                return str(final) if _matches(final, i.wire) else None
            if i.part is None:
                i.part = PartFile(i.part_path, i.wire, i.held)
            if not i.part.complete():
                return None
            if full:
                i.part.sync()
            i.part.close()
            return str(filenames.finish(i.part_path, final))

        fut = asyncio.get_running_loop().run_in_executor(self.e.write_pool, complete)
        fut.add_done_callback(partial(self._finished, i))

    def _finished(self, i: Incoming, fut) -> None:
        if self.e.closing:  # the node stops: record a file that got its name, no more
            landed = None if fut.exception() else fut.result()
            if landed:
                now = int(time.time() * 1000)
                self.e.store.set_transfer_state(i.key, "delivered", now, None, landed)
            return
        try:
            landed = fut.result()
        except OSError as err:
            self.fail(i, f"cannot finish the file ({err.strerror})")
            return
        if landed is None:
            self.fail(i, "the whole file did not match its digest", code="digest_mismatch")
            return
        self.inc.pop((i.peer, i.wire.transfer_id), None)
        link = self.e.sessions.pick(i.peer)
        if link is not None and link.conn is not None and link.conn.established:
            link.conn.send_file_done(i.wire.transfer_id)
            link.schedule_flush()
        self.e.settle(i.key, "delivered", None, final_path=landed, sent=i.received)

    def cancel(self, key: int, code: str) -> bool:
        for i in list(self.inc.values()):
            if i.key == key:
                self._drop(i)
                self.e.send_cancel(self.e.sessions.pick(i.peer), i.wire.transfer_id, code)
                return True
        return False

    def cancelled(self, peer: bytes, tid: bytes, reason: str) -> None:
        i = self.inc.get((peer, tid))
        if i is not None:
            self._drop(i)
            state = "cancelled" if reason in ("cancelled", "declined") else "failed"
            self.e.settle(i.key, state, self.e.readable(reason), sent=i.received)

    def fail(
        self, i: Incoming, reason: str, notify: bool = True, code: str = "local_error"
    ) -> None:
        if (i.peer, i.wire.transfer_id) not in self.inc:
            return
        self._drop(i)
        if notify:
            self.e.send_cancel(self.e.sessions.pick(i.peer), i.wire.transfer_id, code)
        log.warning("file %s from %s failed: %s", i.wire.name, i.peer.hex()[:16], reason)
        self.e.settle(i.key, "failed", reason, sent=i.received)

    def _drop(self, i: Incoming) -> None:
        """Forget the transfer and remove its ``.part`` (on the writer thread, after any
        write of it still queued there)."""
        self.inc.pop((i.peer, i.wire.transfer_id), None)
        i.requested.clear()
        i.pieces.clear()

        def discard() -> None:
            if i.part is not None:
                i.part.close()
            filenames.discard(i.part_path)

        asyncio.get_running_loop().run_in_executor(self.e.write_pool, discard)

    def close(self) -> None:
        for i in list(self.inc.values()):
            if i.part is not None:
                i.part.close()


def _matches(path, offer: FileOffer) -> bool:
    """The whole file at ``path`` is the offered one (read back chunk by chunk)."""
    with open(path, "rb") as f:
        return files.verify_file(offer, iter(lambda: f.read(offer.chunk_size), b""))
