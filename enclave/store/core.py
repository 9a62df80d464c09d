"""The store's connection: opening the file, the write transaction, and the lookups and
counters every table's methods share.

One connection per store; a lock serialises calls, so any one thread at a time may use
it. The methods by table are mixins over ``StoreCore`` (``peers``, ``messages``,
``outbox``, ``history``, ``v1_seen``); ``enclave.store.Store`` puts them together.
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from enclave.errors import UserError

from . import sending
from .dbfile import BUSY_TIMEOUT_S, SYNC_MODES, check_file, configure, create_private
from .migrations import migrate, user_version
from .sealing import (
    RECORD_MAGIC,
    Clear,
    Locked,
    Sealer,
    file_name_ad,
    for_store,
    group_name_ad,
    message_ad,
    peer_name_ad,
    record_ad,
)
from .sending import SendingLog

log = logging.getLogger("enclave.store")

_NO_PEER = "FOREIGN KEY constraint failed"  # what SQLite said when rows named peers by text


class StoreCore:
    """Open with ``open(path)``; close with ``close()`` or a ``with`` block."""

    def __init__(self, db: sqlite3.Connection, path: Path, sealer=None) -> None:
        self._db = db
        # What people wrote is sealed under the store key (sealing.py); ``Clear`` for a
        # store never opened with it.
        self._sealer: Sealer | Clear | Locked = sealer or Clear()
        self._lock = threading.RLock()
        self.path = path
        self._ids: dict[str, int] = {}  # fingerprint -> peers.id, filled on use
        # peers.id -> its disappearing-messages timer (seconds), for the peers that have
        # one (schema 12); loaded on the first commit that needs it (disappear.py).
        self._timed: dict[int, int] | None = None
        # Rowids of new messages come from here (the store is the file's one writer), so
        # a caller can know a message's rowid before the row is written (``reserve_rowid``).
        # Queue places (``owed``) come from the same counter: new and retried messages
        # go behind everything queued before (a migrated outbox kept its own numbers).
        self._rowids = itertools.count(_last_rowid(db) + 1)
        # New messages sent before their commit (sending.py); taken by ``open``.
        self.sending = SendingLog(sending.path_for(path), self._sealer)

    # -- opening -------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike, sync: str = "full", key: bytes | None = None, progress=None
    ) -> Self:
        """``sync``: "full" (each commit survives power loss) or "normal" (survives a
        crash of Enclave, not power loss). ``key``: the store key (``Identity.store_key``);
        with it, what an older Enclave (or a store opened without it) wrote in clear is
        sealed now, ``progress(done, total)`` told after each batch."""
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}, not {sync!r}")
        path = Path(path)
        create_private(path)
        check_file(path)
        try:
            db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
            )
        except sqlite3.Error as err:
            raise UserError(f"cannot open {path}: {err}") from None
        try:
            configure(db, path, sync)
            migrate(db)
            sealer = _sealer(db, path, key)
        except sqlite3.OperationalError as err:
            db.close()
            raise UserError(f"cannot write {path}: {err}") from None
        except BaseException:
            db.close()
            raise
        store = cls(db, path, sealer)
        try:
            if sealer.sealed:
                store.seal_clear(progress)
            store._take_sending_log()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        with self._lock:
            self.sending.close()
            self._db.close()

    def _take_sending_log(self) -> int:
        """Hold the sending log and put back into the outbox what it holds that no
        commit stored (sending.py); how many rows went back. A store opened without its
        key leaves the log alone: what it holds is sealed. If the rows cannot be written
        (a full disk), the log stays as it is for the next opening."""
        if isinstance(self._sealer, Locked) or not self.sending.lock():
            return 0
        rows, mark = self.sending.read()
        try:
            back = self._put_back([r for r in rows if _logged_row(r) and r[0] >= mark])
        except sqlite3.Error as err:
            raise UserError(f"cannot write {self.path}: {err}") from None
        if back:
            log.warning("%d message(s) sent just before Enclave stopped were put back in the"
                        " outbox", back)  # fmt: skip
        self.sending.taken()  # emptied: all of it is in the store now, or never will be
        return back

    def _put_back(self, rows: list[list]) -> int:
        """Write logged rows the store does not hold (by rowid, or by peer and id), to
        peers it knows, as queued."""
        if not rows:
            return 0
        with self._lock:
            db = self._db
            lo, hi = min(r[0] for r in rows), max(r[0] for r in rows)
            held = {r[0] for r in db.execute(_HELD, (lo, hi))}
            new, seen = {}, set()
            for rowid, peer, mid, body, created, group, reply, timer, expires in rows:
                pid = self._peer_id(db, peer.hex())
                if rowid in held or pid is None or (pid, mid) in seen:
                    continue
                if group is None and db.execute(_SENT, (pid, mid)).fetchone():
                    continue  # its row is there under another rowid: nothing to put back
                seen.add((pid, mid))
                group = None if group is None else tuple(group)
                new[rowid] = (rowid, peer.hex(), mid, body, created, group, reply, timer, expires)
        rows = [new[r] for r in sorted(new)]
        try:
            self.write_cycle(enqueue=rows)
        except (sqlite3.IntegrityError, ValueError, TypeError, OverflowError):
            rows = [r for r in rows if self._put_back_one(r)]  # one bad row spoils no other
        with self._lock:
            self._rowids = itertools.count(_last_rowid(self._db) + 1)
        return len(rows)

    def _put_back_one(self, row: tuple) -> bool:
        try:
            self.write_cycle(enqueue=[row])
        except (sqlite3.IntegrityError, ValueError, TypeError, OverflowError) as err:
            log.warning("a logged message could not be put back: %s", err)
            return False
        return True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return user_version(self._db)

    # -- what every table's methods use --------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on return, rolled back on any exception."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite rolls back by itself on some errors
                    db.execute("ROLLBACK")
                self._timed = None  # what the transaction changed of it is gone: reload
                raise

    def _scrub_wal(self) -> None:
        """After an erasure: no copy of an erased body stays in the store's files."""
        # secure_delete zeroes the freed text in the database pages; a truncating
        # checkpoint also drops the WAL's old copies. A busy reader may postpone that.
        # The sending log keeps only what waits for a commit (sending.py).
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            self.sending.compact()

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _update(self, sql: str, args: tuple) -> int:
        with self._tx() as db:
            return db.execute(sql, args).rowcount

    def _peer_id(self, db: sqlite3.Connection, fingerprint: str) -> int | None:
        pid = self._ids.get(fingerprint)
        if pid is None:
            row = db.execute(
                "SELECT id FROM peers WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()
            if row is None:
                # A key the contact handed over (key_chain.py): rows still in flight
                # under it (received, acked) belong to the same person's row.
                row = db.execute(
                    "SELECT peer FROM key_history WHERE old_fp = ?", (fingerprint,)
                ).fetchone()
            if row is None:
                return None
            pid = self._ids[fingerprint] = row[0]
        return pid

    def _known_peer_id(self, db: sqlite3.Connection, fingerprint: str) -> int:
        """The id of a peer a row is written for; an unknown one fails the transaction."""
        pid = self._peer_id(db, fingerprint)
        if pid is None:
            raise sqlite3.IntegrityError(_NO_PEER)
        return pid

    @property
    def sealed(self) -> bool:
        """Whether new values are written sealed (the store was opened with its key)."""
        return self._sealer.sealed

    @property
    def locked(self) -> bool:
        """Whether the store holds sealed values it cannot open: it was opened without
        its key (names read as ``LOCKED``, new text is refused)."""
        return isinstance(self._sealer, Locked)

    def _seal_body(self, body: str, rowid: int, peer: int, direction: str):
        return self._sealer.seal(body, message_ad(rowid, peer, direction))

    def _seal_file_name(self, name: str, rowid: int, peer: int, direction: str):
        return self._sealer.seal(name, file_name_ad(rowid, peer, direction))

    def _open_file_name(self, name, rowid: int, peer: int, direction: str):
        if type(name) is not bytes:
            return name
        return self._sealer.open(name, file_name_ad(rowid, peer, direction))

    def _seal_group_name(self, name: str, group_id: bytes):
        return self._sealer.seal(name, group_name_ad(group_id))

    def _open_group_name(self, name, group_id: bytes):
        return self._sealer.open(name, group_name_ad(group_id)) if type(name) is bytes else name

    def _seal_peer_name(self, name: str | None, peer: int):
        return None if name is None else self._sealer.seal(name, peer_name_ad(peer))

    def _open_peer_name(self, name, peer: int):
        return self._sealer.open(name, peer_name_ad(peer)) if type(name) is bytes else name

    def _seal_record(self, record: bytes, group_id: bytes, epoch: int) -> bytes:
        return self._sealer.seal_record(record, record_ad(group_id, epoch))

    def _open_record(self, record: bytes, group_id: bytes, epoch: int) -> bytes:
        return self._sealer.open_record(record, record_ad(group_id, epoch))

    def _open_body(self, body, rowid: int, peer: int, direction: str):
        if type(body) is not bytes:
            return body  # clear (or erased): no associated data to build
        return self._sealer.open(body, message_ad(rowid, peer, direction))

    def seal_clear(self, progress=None, batch: int = 2048) -> int:
        """Seal the names and message bodies still in clear, ``batch`` bodies per
        transaction (a crash keeps what was done; the next open goes on), then drop the
        WAL's old copies. How many bodies were sealed."""
        names = self._seal_clear_names()
        seal, done, after = self._sealer.seal, 0, 0
        with self._lock:
            total = self._db.execute(
                "SELECT count(*) FROM messages WHERE typeof(body) = 'text'"
            ).fetchone()[0]
        while done < total:
            with self._tx() as db:
                rows = db.execute(
                    "SELECT rowid, peer, direction, body FROM messages"
                    " WHERE rowid > ? AND typeof(body) = 'text' ORDER BY rowid LIMIT ?",
                    (after, batch),
                ).fetchall()
                db.executemany(
                    "UPDATE messages SET body = ? WHERE rowid = ?",
                    [(seal(b, message_ad(r, p, d)), r) for r, p, d, b in rows],
                )
            if not rows:
                break
            after, done = rows[-1][0], done + len(rows)
            if progress is not None:
                progress(done, total)
        if done or names:
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return done

    def _seal_clear_names(self) -> int:
        """File, group and contact names in clear (few: one transaction); how many."""
        seal = self._sealer.seal
        with self._tx() as db:
            files = db.execute(
                "SELECT key, name, message, peer, direction FROM transfers"
                " WHERE typeof(name) = 'text'"
            ).fetchall()
            db.executemany(
                "UPDATE transfers SET name = ? WHERE key = ?",
                [(seal(n, file_name_ad(m, p, d)), k) for k, n, m, p, d in files],
            )
            groups = db.execute(
                "SELECT key, id, name FROM groups WHERE typeof(name) = 'text'"
            ).fetchall()
            db.executemany(
                "UPDATE groups SET name = ? WHERE key = ?",
                [(seal(n, group_name_ad(g)), k) for k, g, n in groups],
            )
            peers = db.execute("SELECT id, name FROM peers WHERE typeof(name) = 'text'").fetchall()
            db.executemany(
                "UPDATE peers SET name = ? WHERE id = ?",
                [(seal(n, peer_name_ad(i)), i) for i, n in peers],
            )
            # The membership records hold the group's name and its members' names.
            records = db.execute(
                "SELECT r.grp, g.id, r.epoch, r.record FROM group_records r"
                " JOIN groups g ON g.key = r.grp WHERE substr(r.record, 1, ?) != ?",
                (len(RECORD_MAGIC), RECORD_MAGIC),
            ).fetchall()
            db.executemany(
                "UPDATE group_records SET record = ? WHERE grp = ? AND epoch = ?",
                [(self._sealer.seal_record(r, record_ad(g, e)), k, e) for k, g, e, r in records],
            )
        return len(files) + len(groups) + len(peers) + len(records)

    def reserve_rowid(self) -> int:
        """The rowid the next outgoing message will be written with (any thread)."""
        return next(self._rowids)


_HELD = "SELECT rowid FROM messages WHERE rowid BETWEEN ? AND ?"
_SENT = "SELECT 1 FROM messages WHERE peer = ? AND id = ? AND direction = 'out' LIMIT 1"
_INT64 = 1 << 63


def _last_rowid(db: sqlite3.Connection) -> int:
    return db.execute(
        "SELECT max(coalesce((SELECT max(rowid) FROM messages), 0),"
        " coalesce((SELECT max(owed) FROM messages WHERE owed IS NOT NULL), 0))"
    ).fetchone()[0]


def _logged_row(row) -> bool:
    """A row as ``SendingLog.append`` wrote it (a record that opened is ours; a store
    without its key reads its log in clear, so the shape is checked)."""
    if not (type(row) is list and len(row) == 9):
        return False
    rowid, peer, mid, body, created, group, reply, timer, expires = row
    return (
        _count(rowid)
        and rowid > 0
        and type(peer) is bytes
        and type(mid) is bytes
        and len(mid) == 16  # a new message's id (a v1 envelope is never sent ahead)
        and type(body) is str
        and _count(created)
        and (group is None or (type(group) is list and len(group) == 4))
        and (reply is None or type(reply) is bytes)
        and (timer is None or _count(timer))
        and (expires is None or _count(expires))
    )


def _count(value) -> bool:
    """An int SQLite stores as it is (a rowid below 2^63 - 1 leaves the counter room)."""
    return type(value) is int and 0 <= value < _INT64 - (1 << 32)


def _sealer(db: sqlite3.Connection, path: Path, key: bytes | None):
    """The store's sealer; the first open with a key writes the key's check."""
    row = db.execute("SELECT key_check FROM sealing").fetchone()
    sealer = for_store(key, None if row is None else row[0], path)
    if row is None and sealer.sealed:
        db.execute(
            "INSERT OR IGNORE INTO sealing (one, key_check) VALUES (1, ?)", (sealer.key_check(),)
        )
        # Two processes opening with two keys at once: the first check written holds.
        stored = db.execute("SELECT key_check FROM sealing").fetchone()[0]
        sealer = for_store(key, stored, path)
    return sealer
