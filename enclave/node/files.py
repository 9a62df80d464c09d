"""The file-transfer engine: what the Node's file calls and the sessions' file events
come to (docs/PROTOCOL.md "File transfer", issue 17).

Rules:
- The store holds every transfer and its chunks done; ``SendSide`` (file_send.py) and
  ``ReceiveSide`` (file_receive.py) hold what moves now. At start the open transfers
  are loaded, and each goes on when a session with its peer comes up.
- Disk work runs on two threads of its own, one reading (outgoing chunks) and one
  writing (incoming chunks, in order, then the final name); store writes run on the
  store's writer thread. The event loop only moves pieces and decides.
- Offers from contacts: a safe name or a refusal ("bad_name"); at most
  ``file_pending_offers`` open at once per contact ("too_many_offers"); accepted
  without asking up to ``file_auto_accept_bytes`` when the downloads disk keeps
  ``file_disk_margin_bytes`` free after it; anything else waits for the user
  (``accept`` / ``decline``).
- A message naming a transfer this side does not have open is answered once per
  session and transfer: FILE_DONE if it was delivered, else FILE_CANCEL with why.
- Faces hear ``FileChanged`` on every change of state, and progress at most every
  PROGRESS_EVERY seconds per transfer.
- A settled outgoing transfer whose file is a staged copy (staging.py) lets the copy
  go when no open transfer reads it; at start, copies no open transfer names go.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from enclave.errors import UserError
from enclave.node import filenames
from enclave.node.events import FileChanged
from enclave.node.file_io import ChunkReader
from enclave.node.file_receive import Incoming, ReceiveSide
from enclave.node.file_send import Outgoing, SendSide, files_reason
from enclave.node.staging import Staging
from enclave.protocol.events import (
    FileCancelled,
    FileChunkReceived,
    FileDelivered,
    FileOffered,
    FileRequested,
)
from enclave.protocol.file_messages import ALGORITHMS, CANCEL_REASONS, DIGEST_LEN, FileOffer
from enclave.store import records
from enclave.store.checks import OfferRefused

log = logging.getLogger("enclave.node.files")
PROGRESS_EVERY = 0.25  # seconds between progress events of one transfer
MAX_UNKNOWN = 64  # messages for transfers we do not have that one session may send
CODES = {name: code for code, name in CANCEL_REASONS.items()}
_ALGORITHM_IDS = {name: code for code, name in ALGORITHMS.items()}


def to_store(offer: FileOffer, name: str, compress: bool = False) -> records.FileOffer:
    return records.FileOffer(
        offer.transfer_id, name, offer.size, offer.chunk_size, ALGORITHMS[offer.algorithm],
        offer.file_digest, b"".join(offer.digests), compress,
    )  # fmt: skip


def to_wire(t: records.Transfer) -> FileOffer:
    o = t.offer
    digests = tuple(
        o.chunk_digests[i : i + DIGEST_LEN] for i in range(0, len(o.chunk_digests), DIGEST_LEN)
    )
    return FileOffer(
        o.id, o.name, o.size, o.chunk_size, _ALGORITHM_IDS[o.algorithm], o.digest, digests
    )


def record_outgoing(store, fingerprint: str, d) -> tuple[FileOffer, records.Transfer]:
    """A new outgoing transfer of a digested file, in the store: its offer (a fresh id,
    the file's own name made safe) and its row. Used by a running node and by
    ``enclave send-file`` with none."""
    name = filenames.safe_name(os.path.basename(d.path))
    wire = d.offer(secrets.token_bytes(16), name)
    source = records.SourceFile(d.path, d.size, d.mtime_ns)
    t = store.create_outgoing(fingerprint, to_store(wire, name, d.compress), source,
                              int(time.time() * 1000))  # fmt: skip
    return wire, t


class Files:
    def __init__(
        self, store, sessions, settings, publish, downloads: Path, staging: Staging
    ) -> None:
        self.store = store
        self.staging = staging
        self.sessions = sessions
        self.settings = settings
        self.publish = publish
        self.downloads = Path(downloads)
        self.read_pool = ThreadPoolExecutor(1, thread_name_prefix="enclave-file-read")
        self.write_pool = ThreadPoolExecutor(1, thread_name_prefix="enclave-file-write")
        # A .part's sync takes as long as the disk needs for what was written: on its
        # own thread, neither the writes nor the store's chat commits wait behind it.
        self.sync_pool = ThreadPoolExecutor(1, thread_name_prefix="enclave-file-sync")
        self.reader = ChunkReader()
        self.send = SendSide(self)
        self.recv = ReceiveSide(self)
        self.stats = {
            "file_bytes_sent": 0,
            "file_bytes_received": 0,
            "file_piece_bytes_received": 0,  # as they came, before any check
            "file_chunks_refetched": 0,
            "file_pieces_refused": 0,
            "file_offers_refused": 0,
        }
        self._answered: OrderedDict = OrderedDict()  # (link id, transfer id) answered
        self._withdrawn: OrderedDict = OrderedDict()  # offers cancelled before recorded
        self._strays: dict[int, int] = {}  # link id -> messages for unknown transfers
        self._shown: dict[int, float] = {}  # transfer key -> when progress was last published
        self._tasks: set[asyncio.Task] = set()
        self.closing = False  # the node stops: callbacks change nothing any more

    @property
    def store_writer(self):
        return self.sessions.policy.writer

    # --- life --------------------------------------------------------------------------

    def load(self) -> None:
        """The open transfers of the store, ready to go on when their peers are back."""
        for t in self.store.open_transfers():
            peer = bytes.fromhex(t.peer)
            if t.direction == "out":
                s = t.source
                o = Outgoing(
                    t.key, peer, to_wire(t), s.path, s.size, s.mtime_ns, t.offer.compress, t.state
                )
                self.send.track(o)
            elif t.state != "offered":
                held = set(range(t.offer.chunks)) - set(self.store.missing_chunks(t.key))
                i = Incoming(t.key, peer, to_wire(t), t.part_path, held)
                self.recv.inc[(peer, t.offer.id)] = i
                if len(held) == i.chunks:
                    self.recv.finish(i)  # every chunk held: only the final name was missing
        try:
            self.staging.sweep()  # copies of a crash between an upload and its record
        except OSError as err:
            log.warning("cannot clear the staged copies: %s", err)

    async def close(self) -> None:
        """Stop moving data; what is written stays, recorded or not, for the next start
        (a stop is never a failure: no transfer is settled or discarded by it)."""
        self.closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.read_pool.shutdown, True)
        await loop.run_in_executor(None, self.write_pool.shutdown, True)
        await loop.run_in_executor(None, self.sync_pool.shutdown, True)
        await loop.run_in_executor(self.store_writer, lambda: None)  # its syncs are done
        self.recv.close()
        self.reader.close()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sessions ------------------------------------------------------------------------

    def session_up(self, link, peer: bytes) -> None:
        self.send.session_up(link, peer)
        self.recv.session_up(link, peer)

    def session_down(self, link) -> None:
        self._strays.pop(link.id, None)
        self.send.session_down(link)
        self.recv.session_down(link)

    def writable(self, link) -> None:
        self.send.pump(link)

    def bulky(self, link) -> bool:
        """Whether ``link`` carries file data now: pieces we send on it (queued, read or
        still asked for) or chunks we asked for on it. Chats then take another session
        of the peer, so they never wait behind pieces in a transport or socket buffer."""
        sending = self.send.links.get(link.id)
        if sending is not None and (sending.transfers or sending.ready or sending.reading):
            return True
        conn = link.conn
        if conn is not None and conn.bulk_queued:
            return True
        if any(o.link is link for o in self.send.out.values()):  # between two requests
            return True
        lid = link.id
        return any(lid in i.requested.values() for i in self.recv.inc.values())

    def bulk_links(self) -> set[int]:
        """The ids of every link ``bulky`` would name (housekeeping keeps them open)."""
        ids = {lid for lid, s in self.send.links.items() if s.transfers or s.ready or s.reading}
        ids.update(o.link.id for o in self.send.out.values() if o.link is not None)
        for i in self.recv.inc.values():
            ids.update(i.requested.values())
        return ids

    def on_event(self, link, ev) -> None:
        peer = link.conn.peer
        kind = type(ev)
        if kind is FileChunkReceived:
            self.recv.piece(link, peer, ev)
        elif kind is FileRequested:
            self.send.requested(link, peer, ev.transfer_id, ev.ranges)
        elif kind is FileOffered:
            self._spawn(self._offered(link, peer, ev.offer))
        elif kind is FileDelivered:
            self.send.delivered(peer, ev.transfer_id)
        elif kind is FileCancelled:
            reason = CANCEL_REASONS[ev.reason]
            live = (peer, ev.transfer_id)
            if live in self.send.out or live in self.recv.inc:
                self.send.cancelled(peer, ev.transfer_id, reason)
                self.recv.cancelled(peer, ev.transfer_id, reason)
            else:
                self._offer_withdrawn(peer, ev.transfer_id, reason)

    # --- what both sides use ----------------------------------------------------------

    def send_cancel(self, link, tid: bytes, code: str) -> None:
        conn = link.conn if link is not None else None
        if conn is not None and conn.established and not conn.closed:
            conn.send_file_cancel(tid, CODES[code])
            link.schedule_flush()

    def refuse(self, link, peer: bytes, tid: bytes, code: str, why: str) -> None:
        log.warning("file %s from %s refused (%s): %s", tid.hex()[:8], peer.hex()[:16], code, why)
        self.send_cancel(link, tid, code)

    def answer_unknown(self, link, peer: bytes, direction: str, tid: bytes) -> None:
        """A message for a transfer not open here: say once what became of it."""
        key = (link.id, tid)
        strays = self._strays.get(link.id, 0) + 1
        self._strays[link.id] = strays
        if strays > MAX_UNKNOWN:  # a flood of made-up transfers: no store lookup each
            log.warning(
                "file messages from %s: too many for unknown transfers; closing", peer.hex()[:16]
            )
            self._strays.pop(link.id, None)
            link.close("bad_file_message")
            return
        if key in self._answered:
            return
        self._answered[key] = True
        if len(self._answered) > 4096:
            self._answered.popitem(last=False)
        t = self.store.find_transfer(peer.hex(), direction, tid)
        if t is not None and t.state == "delivered":
            if direction == "in":
                link.conn.send_file_done(tid)
                link.schedule_flush()
            return
        if t is None:
            self.refuse(link, peer, tid, "unknown_transfer", "no such transfer")
        elif t.state in ("cancelled", "failed"):
            self.send_cancel(link, tid, "declined" if t.reason == "declined" else "cancelled")

    readable = staticmethod(files_reason)

    def final_path(self, key: int) -> Path:
        t = self.store.get_transfer(key)
        return Path(t.part_path[: -len(filenames.PART_SUFFIX)])

    def move(self, key: int, *states: str) -> None:
        """Store state moves nothing waits for (on the writer thread), then tell."""
        now = int(time.time() * 1000)

        def run() -> None:
            for state in states:
                self.store.set_transfer_state(key, state, now)

        self._after_store(run, key)

    def settle(
        self, key: int, state: str, reason: str | None, final_path=None, sent: int = 0
    ) -> None:
        now = int(time.time() * 1000)
        self._shown.pop(key, None)

        def run() -> None:
            if state == "delivered":  # an empty file is done before any request
                self.store.set_transfer_state(key, "accepted", now)
            self.store.set_transfer_state(key, state, now, reason, final_path)
            self._release(key)

        self._after_store(run, key, sent, final=True)

    def _release(self, key: int) -> None:
        """On the writer thread, after a transfer settled: its staged copy may go (here,
        so a broadcast recording its next transfer of the copy is never overtaken)."""
        t = self.store.get_transfer(key)
        if (
            t is not None
            and t.direction == "out"
            and t.source
            and t.state not in records.OPEN_STATES
        ):
            self.staging.release(t.source.path)

    def _after_store(self, run, key: int, done: int | None = None, final: bool = False) -> None:
        fut = asyncio.get_running_loop().run_in_executor(self.store_writer, run)
        fut.add_done_callback(lambda f: self._changed(key, done, final) if not f.exception() else
                              log.warning("file transfer %d: store: %s", key, f.exception()))  # fmt: skip

    def progress(self, key: int, done_bytes: int) -> None:
        now = time.monotonic()
        if now - self._shown.get(key, 0.0) < PROGRESS_EVERY:
            return
        self._shown[key] = now
        self._changed(key, done_bytes)

    def _changed(self, key: int, done_bytes: int | None = None, final: bool = False) -> None:
        """Tell the faces how transfer ``key`` stands now (read from the store). Only the
        step that ended a transfer (``final``) tells its end: a progress or state move
        whose turn comes after the end must not tell it a second time."""
        t = self.store.get_transfer(key)
        if t is not None and (final or t.state in records.OPEN_STATES):
            self.publish(self.describe(t, done_bytes))

    def describe(self, t: records.Transfer, done_bytes: int | None = None) -> FileChanged:
        if done_bytes is None:
            if t.state == "delivered":
                done_bytes = t.offer.size
            else:
                live = self.send.out.get((bytes.fromhex(t.peer), t.offer.id))
                inc = self.recv.inc.get((bytes.fromhex(t.peer), t.offer.id))
                done_bytes = live.sent if live else (len(inc.held) * t.offer.chunk_size if inc else
                                                     t.done * t.offer.chunk_size)  # fmt: skip
        return FileChanged(
            peer=t.peer,
            key=t.key,
            rowid=t.message,
            id=t.offer.id,
            direction=t.direction,
            name=t.offer.name,
            size=t.offer.size,
            state=t.state,
            done_bytes=min(done_bytes, t.offer.size),
            reason=t.reason,
            path=t.final_path if t.direction == "in" else (t.source.path if t.source else None),
            waiting=t.direction == "in" and t.state == "offered",
            created_ms=t.created_ms,
        )

    # --- offers we receive -----------------------------------------------------------------

    async def _offered(self, link, peer: bytes, offer: FileOffer) -> None:
        loop = asyncio.get_running_loop()
        fp = peer.hex()
        known = self.store.find_transfer(fp, "in", offer.transfer_id)
        if known is not None:
            self._offered_again(link, peer, known)
            return
        try:
            name = filenames.safe_name(offer.name)
        except filenames.UnsafeName:
            self.stats["file_offers_refused"] += 1
            self.refuse(link, peer, offer.transfer_id, "bad_name", f"name {offer.name[:40]!r}")
            return
        now = int(time.time() * 1000)
        quota = self.settings.file_pending_offers
        create = self.store.create_incoming
        try:
            t, new = await loop.run_in_executor(
                self.store_writer, create, fp, to_store(offer, name), now, now, quota
            )
        except OfferRefused as why:
            self.stats["file_offers_refused"] += 1
            code = "too_many_offers" if "pending" in str(why) else "too_large"
            self.refuse(link, peer, offer.transfer_id, code, str(why))
            return
        if not new:
            self._offered_again(link, peer, t)
            return
        withdrawn = self._withdrawn.pop((peer, offer.transfer_id), None)
        if withdrawn is not None:  # the sender cancelled while we were recording it
            self._changed(t.key)
            self._offer_withdrawn(peer, offer.transfer_id, withdrawn)
            return
        auto = self.settings.file_auto_accept_bytes
        margin = self.settings.file_disk_margin_bytes
        if offer.size <= auto and filenames.room_for(self._folder(), offer.size, margin):
            await self.accept(t.key, quiet=True)
        else:
            self._changed(t.key)

    def _offered_again(self, link, peer: bytes, t: records.Transfer) -> None:
        """The sender offers a transfer we know (it restarted, or a session came back)."""
        i = self.recv.inc.get((peer, t.offer.id))
        if i is not None:
            self.recv.pull(i, link)
        elif t.state != "offered":
            self._answered.pop((link.id, t.offer.id), None)
            self.answer_unknown(link, peer, "in", t.offer.id)

    def _offer_withdrawn(self, peer: bytes, tid: bytes, reason: str) -> None:
        """The sender cancelled an offer still waiting for our user's yes."""
        t = self.store.find_transfer(peer.hex(), "in", tid)
        if t is None:  # its offer may still be on the way in (_offered): cancel it there
            self._withdrawn[(peer, tid)] = reason
            if len(self._withdrawn) > 1024:
                self._withdrawn.popitem(last=False)
            return
        if t.state != "offered":
            return
        now = int(time.time() * 1000)
        text = "cancelled by the sender" if reason == "cancelled" else self.readable(reason)

        def run() -> None:
            self.store.cancel_transfer(t.key, now, text)

        self._after_store(run, t.key, final=True)

    def _folder(self) -> Path:
        folder = self.downloads
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder

    # --- what the Node calls ----------------------------------------------------------------

    async def offer_digested(self, fingerprint: str, d) -> records.Transfer:
        """Offer a file read once (``file_io.Digested``): record it, and send the offer
        if the peer is online (else at its next session). A broadcast digests once and
        calls this per peer."""
        wire, t = await asyncio.get_running_loop().run_in_executor(
            self.store_writer, record_outgoing, self.store, fingerprint, d
        )
        peer = bytes.fromhex(fingerprint)
        self.send.add(
            Outgoing(t.key, peer, wire, d.path, d.size, d.mtime_ns, d.compress, "offered")
        )
        self._changed(t.key)
        return t

    async def accept(self, key: int, quiet: bool = False) -> records.Transfer:
        t = self.store.get_transfer(key)
        if t is None or t.direction != "in" or t.state != "offered":
            raise UserError("that file is not waiting to be accepted")
        loop = asyncio.get_running_loop()
        folder = self._folder()
        if not quiet and not filenames.room_for(folder, t.offer.size, 0):
            raise UserError(f"not enough free space in {folder} for {t.offer.name}")
        placed = await loop.run_in_executor(
            self.write_pool, filenames.place_download, folder, t.offer.name
        )
        now = int(time.time() * 1000)
        ok = await loop.run_in_executor(
            self.store_writer, self.store.accept_transfer, key, str(placed.part), now
        )
        if not ok:
            filenames.discard(placed.part)
            raise UserError("that file is not waiting to be accepted")
        peer = bytes.fromhex(t.peer)
        self.recv.start(Incoming(key, peer, to_wire(t), str(placed.part), set()))
        self._changed(key, 0)
        return self.store.get_transfer(key)

    async def decline(self, key: int) -> None:
        t = self.store.get_transfer(key)
        if t is None or t.direction != "in" or t.state != "offered":
            raise UserError("that file is not waiting to be accepted")
        await self._end(t, "declined", "declined")

    async def cancel(self, key: int) -> None:
        t = self.store.get_transfer(key)
        if t is None or t.state not in records.OPEN_STATES:
            raise UserError("that file transfer is not under way")
        await self._end(t, "cancelled", "cancelled")

    async def _end(self, t: records.Transfer, code: str, reason: str) -> None:
        if not (self.send.cancel(t.key, code) or self.recv.cancel(t.key, code)):
            self.send_cancel(self.sessions.pick(bytes.fromhex(t.peer)), t.offer.id, code)
        now = int(time.time() * 1000)

        def run() -> None:
            self.store.cancel_transfer(t.key, now, reason)
            self._release(t.key)

        await asyncio.get_running_loop().run_in_executor(self.store_writer, run)
        self._changed(t.key, final=True)
