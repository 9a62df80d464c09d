"""The sending log: new messages that went to their links before their outbox rows were
committed, kept so that a process killed in that instant does not lose them.

The node sends a new message while its outbox row is being committed (the sender's
fsync is off the latency path, node/delivery.py). Killed in that instant (kill -9, a
crash), it would leave the message with its recipient and not in the history here, and
the user's resend would make a second message. So before such a message goes out, its
row is appended to this log: one write(2) per dispatch, no fsync (what was written
survives the process, as the page cache does). The next opening of the store writes the
rows no commit stored back into the outbox with their ids; sent again, they are acked
by the recipient's dedupe and never shown twice.

Rules:
- The file is ``<store>-sending``, mode 0600, beside the store: wipe erases it, a backup
  never holds it. It is a sequence of records, each ``u32 length`` then a kind byte:
  ``R`` + one dispatch's rows to one peer (msgpack: the peer, then the rows by column),
  sealed under the store key (associated data ``AD``), or in clear for a store without
  its key (as its history is); ``M`` + u64: every row logged with a rowid below it was
  committed (a "mark").
- Rows are logged in rowid order and the node commits them in that order. The store
  calls ``committed`` in the same hold of its lock as the COMMIT of outgoing rows, so
  nothing can delete a row between its commit and the mark that covers it: an opening
  never puts back a row the user deleted or whose contact was removed. A mark that
  could not be written is written at the next commit; rows whose commit ran before
  their dispatch are not logged at all.
- Opening (``StoreCore._take_sending_log``): the rows at or above the last mark that
  the store does not hold, to contacts it knows, go back into the outbox (queued: sent
  at the next session); then the file is emptied and this process logs into it. A
  record that does not open (altered, another key) is skipped with a warning; a torn
  last record (cut by a power loss) ends the reading; a row of the wrong shape or
  range is skipped. If the store cannot write them (a full disk), the opening fails
  and the file stays as it was. A store opened without its key leaves it alone.
- One process logs at a time: it holds an exclusive ``flock`` on the file while the
  store is open. Another opening of the same store (a tool) neither restores nor logs;
  a node that does not hold the log sends each message after its commit. The file is
  opened without following a link, and must be a regular file.
- The file only grows between compactions (a mark, then only what waits; or emptied
  when nothing does): when it passes ``COMPACT_BYTES``, and with each erasure
  (``StoreCore._scrub_wal``), so no copy of an erased body outlives it there either. A
  store closed with nothing waiting removes the file. Not emptying it after every
  commit is measured: an ``ftruncate`` made the loop's next append 12.8 us instead of
  3.4 (PERFORMANCE.md, "The sending log").
- Power loss: without an fsync the log may lose its tail; a row it loses was in no
  commit either, as before the log existed (``store_sync`` protects commits, not this).
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import struct
import threading
from collections import deque
from pathlib import Path

import msgpack

from enclave.errors import UserError

log = logging.getLogger("enclave.store.sending")

SUFFIX = "-sending"
AD = b"enclave-store/sending"
COMPACT_BYTES = 8 << 20
_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
_LEN = struct.Struct(">I")
_MARK = struct.Struct(">Q")
_ROWS, _MARK_KIND = b"R", b"M"


def path_for(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + SUFFIX)


class SendingLog:
    """The log of one open store (see the rules). ``append`` runs on the event loop,
    ``committed`` on the writer thread; a lock keeps the file whole between them."""

    def __init__(self, path: Path, sealer) -> None:
        self.path = path
        self._sealer = sealer
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._taken = False  # what the file held at the opening is in the store now
        self._pending: deque[tuple[int, bytes]] = deque()  # (highest rowid, record)
        self._size = 0  # the file's size (all of it written by this process once taken)
        self._mark = 0  # every outgoing row below it is committed
        self._file_mark = 0  # the last mark the file holds
        self._file_high = -1  # the highest rowid of a record the file holds
        self._warned = False

    # -- opening and closing -------------------------------------------------------

    def lock(self) -> bool:
        """Open the file (created 0600) and take its flock; False if another process
        holds it (this log then stays off) or the file cannot be opened."""
        try:
            fd = os.open(self.path, _FLAGS | os.O_CREAT | os.O_NONBLOCK, 0o600)
        except OSError as err:
            log.warning("cannot open %s: %s", self.path, err.strerror)
            return False
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                log.warning("%s is not a regular file: it was left alone", self.path)
                raise OSError("not a file")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Locked the file a compaction had just renamed away: its holder has the
            # new one. (A stale compaction file is one a kill interrupted.)
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                raise OSError("replaced")
            _tmp(self.path).unlink(missing_ok=True)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def read(self) -> tuple[list[list], int]:
        """The rows of every record of the held file that opens, and its highest mark,
        from its start to its end or its first torn record."""
        if self._fd is None:
            return [], 0
        with open(os.dup(self._fd), "rb") as f:
            f.seek(0)
            return _parse(f.read(), self._sealer, self.path)

    def taken(self) -> None:
        """The opening put back what the file held: emptied, it is this process's log
        now (if it cannot be emptied, nothing is logged: messages wait for commits)."""
        with self._lock:
            if self._fd is None:
                return
            try:
                os.ftruncate(self._fd, 0)
            except OSError as err:
                self._warn(
                    f"cannot write {self.path}: {err.strerror}"
                    " (new messages wait for their commit before going out)"
                )
                return
            self._taken = True

    @property
    def usable(self) -> bool:
        """Whether messages can be logged (this process holds and took the file)."""
        return self._taken and self._fd is not None

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            try:
                if self._taken and not self._pending:
                    os.unlink(self.path)  # under the flock: nobody else uses it now
            except OSError:
                pass
            finally:
                os.close(fd)  # drops the flock

    # -- logging -------------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """Whether logged rows wait for their commit."""
        return bool(self._pending)

    def append(
        self,
        peer: bytes,
        rowids: list[int],
        ids: list[bytes],
        bodies: list[str],
        created: list[int],
        extras: list[tuple] = (),
    ) -> bool:
        """Log outgoing rows to ``peer`` before any of them is sent, by column (cheaper
        to build and encode than a tuple a row); ``extras``: (index, group, reply, timer,
        expires) for the rows that have any. True once they are in the file; False if
        they are not (off, no key, the disk refused): then they must wait for their
        commit."""
        if not self._taken:
            return False
        highest = max(rowids)
        try:
            packed = msgpack.packb([peer, rowids, ids, bodies, created, extras])
            record = _framed(_ROWS + self._sealer.seal_bytes(packed, AD))
        except (UserError, ValueError):  # no key to seal with; a body that is no text
            return False  # (a lone surrogate: its commit fails too)
        with self._lock:
            if self._fd is None:
                return False
            if highest < self._mark:
                return True  # committed already (their commit ran before this dispatch)
            try:
                _write_all(self._fd, record)
            except OSError as err:
                self._cut_back()
                self._warn(
                    f"cannot write {self.path}: {err.strerror}"
                    " (new messages wait for their commit before going out)"
                )
                return False
            self._pending.append((highest, record))
            self._size += len(record)
            self._file_high = max(self._file_high, highest)
        return True

    def committed(self, upto: int) -> None:
        """Outgoing rows up to rowid ``upto`` were committed (the store's lock held):
        a mark, if the file holds rows no mark it holds covers. A mark that could not
        be written is tried again at the next commit."""
        with self._lock:
            self._mark = max(self._mark, upto + 1)
            pending = self._pending
            while pending and pending[0][0] <= upto:
                pending.popleft()
            if self._fd is None or not self._taken:
                return
            if self._file_high < self._file_mark or self._file_mark == self._mark:
                return  # every row in the file is below its last mark already
            if self._size > COMPACT_BYTES:
                try:
                    self._compact()
                    return
                except OSError as err:
                    self._warn(f"cannot compact {self.path}: {err.strerror}")
            try:
                _write_all(self._fd, _framed(_MARK_KIND + _MARK.pack(self._mark)))
            except OSError as err:
                # Until a mark is written, rows logged above the last one come back at
                # the next opening if the store lacks them (a peer removed meanwhile).
                self._cut_back()
                self._warn(f"cannot write {self.path}: {err.strerror}")
                return
            self._size += _LEN.size + 1 + _MARK.size
            self._file_mark = self._mark

    def compact(self) -> None:
        """Keep only what waits for a commit (``Store.scrub``: erased bodies go)."""
        with self._lock:
            if self._fd is None or not self._taken:
                return
            try:
                self._compact()
            except OSError as err:
                self._warn(f"cannot compact {self.path}: {err.strerror}")

    def _compact(self) -> None:
        if self._pending:
            self._rewrite()
        else:
            os.ftruncate(self._fd, 0)
            self._size, self._file_high = 0, -1

    def _rewrite(self) -> None:
        """A mark, then the records still waiting, written to the file in place of it
        (a new file renamed over it: a kill halfway leaves the old one whole)."""
        body = _framed(_MARK_KIND + _MARK.pack(self._mark)) + b"".join(r for _, r in self._pending)
        tmp = _tmp(self.path)
        tmp.unlink(missing_ok=True)  # (never write through a link someone left there)
        fd = os.open(tmp, _FLAGS | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(fd, body)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            raise
        os.close(self._fd)  # the old file's flock goes with it; the new one holds it
        self._fd, self._size = fd, len(body)
        self._file_mark, self._file_high = self._mark, max(h for h, _ in self._pending)

    def _cut_back(self) -> None:
        """After a failed write: the file back to its last whole record."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            pass

    def _warn(self, text: str) -> None:
        """Say the first failure of this log (the rest are the same disk's)."""
        if not self._warned:
            self._warned = True
            log.warning("%s", text)


def _parse(data: bytes, sealer, path: Path) -> tuple[list[list], int]:
    rows, mark, at = [], 0, 0
    while at + _LEN.size <= len(data):
        (size,) = _LEN.unpack_from(data, at)
        record = data[at + _LEN.size : at + _LEN.size + size]
        if size == 0 or len(record) < size:
            break  # torn: the tail of a write that a power loss cut
        at += _LEN.size + size
        kind, value = record[:1], record[1:]
        if kind == _MARK_KIND and len(value) == _MARK.size:
            mark = max(mark, _MARK.unpack(value)[0])
        elif kind == _ROWS:
            opened = sealer.open_bytes(value, AD)
            if opened is None:
                log.warning("%s: a record that does not open was skipped", path)
                continue
            try:
                rows.extend(_rows(msgpack.unpackb(opened, raw=False)))
            except (ValueError, TypeError, IndexError):  # msgpack's errors are ValueErrors
                log.warning("%s: a record that does not decode was skipped", path)
        else:
            log.warning("%s: an unknown record was skipped", path)
    return rows, mark


def _rows(record) -> list[list]:
    """A record's columns as rows: rowid, peer, id, body, created_ms, group, reply,
    timer, expires."""
    peer, rowids, ids, bodies, created, extras = record
    rows = [
        [rowid, peer, mid, body, at, None, None, None, None]
        for rowid, mid, body, at in zip(rowids, ids, bodies, created, strict=True)
    ]
    for k, *more in extras:
        rows[k][5:] = more
    return rows


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _framed(record: bytes) -> bytes:
    return _LEN.pack(len(record)) + record


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
