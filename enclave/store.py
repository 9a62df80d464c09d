"""The one durable place for peers, history, the outbox and v1 seen IDs (SQLite, WAL).

Rules:
- One store: nothing else in Enclave writes state to disk, and nothing else speaks SQL.
- Short transactions. Every write is one ``BEGIN IMMEDIATE`` ... ``COMMIT``; batch
  methods take many rows in one transaction (multi-row INSERTs for new messages,
  ``executemany`` or rowid ranges for updates; no per-row commit, no per-row query), so
  the node can group-commit thousands of messages at once.
- Durability promise: once a write method returns, its transaction is on disk. An ack
  is sent only after ``store_incoming`` returns, so ``synchronous=FULL`` by default: WAL
  with NORMAL survives a process crash but can lose the last commits on power loss
  (the user may choose it: ``store_sync = "normal"``, ``Store.open(path, sync=...)``). If a
  method raises, its whole transaction was rolled back and nothing of it is stored
  (``store_incoming`` raises the sqlite3 error itself; the caller must then not ack).
- Never overwrite. An existing file is first read through a read-only connection: a
  corrupt file, a foreign SQLite file, or one from a newer Enclave raises ``UserError``
  and is left byte for byte as it was. A file is created only where none exists, by us,
  with mode 0600, before SQLite opens it. Schema changes are forward migrations only
  (``enclave.store_schema``).
- Time always comes in as arguments; the store never reads a clock.
- Errors: ``UserError`` for a person's mistake or a file they must deal with;
  ``ValueError``/``TypeError`` for a caller's programming error.
- One connection per Store; a lock serialises calls, so any one thread at a time may use it.
"""

from __future__ import annotations

import functools
import itertools
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from enclave.errors import UserError
from enclave.store_schema import (
    BUSY_TIMEOUT_S,
    SYNC_MODES,
    check_file,
    configure,
    create_private,
    migrate,
    user_version,
)

PROTOS = ("auto", "v1", "v2")
_HEX = frozenset("0123456789abcdef")


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


@dataclass(frozen=True)
class OutboxItem:
    rowid: int
    peer: str
    id: bytes
    body: str
    created_ms: int
    state: str  # 'queued' | 'sent'
    legacy: bool


_PEER_COLS = (
    "fingerprint, name, public_key, address, verified, proto, v2_seen, blocked, "
    "hwm_ms, added_at, last_seen, learned_address"
)
_MSG_COLS = (
    "m.rowid, p.fingerprint, m.direction, m.id, m.body, m.created_ms, m.stored_ms, m.state,"
    " m.delivered_ms, m.reason, m.legacy"
)
_MSG_FROM = "messages m JOIN peers p ON p.id = m.peer"
# What is owed, read through its own small index: left to itself the planner would
# walk a peer's whole history (messages_by_peer) to find the few rows still queued.
_OWED_FROM = "messages m INDEXED BY messages_owed JOIN peers p ON p.id = m.peer"
_NO_PEER = "FOREIGN KEY constraint failed"  # what SQLite said when rows named peers by text


def _peer(r: tuple) -> Peer:
    flags = bool(r[4]), r[5], bool(r[6]), bool(r[7])
    return Peer(r[0], r[1], r[2], r[3], *flags, r[8], r[9], r[10], r[11])


def _message(r: tuple) -> Message:
    return Message(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], bool(r[10]))


class Store:
    """Open with ``Store.open(path)``; close with ``close()`` or a ``with`` block."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._lock = threading.RLock()
        self.path = path
        self._ids: dict[str, int] = {}  # fingerprint -> peers.id, filled on use
        # Rowids of new messages come from here (the store is the file's one writer), so
        # a caller can know a message's rowid before the row is written (``reserve_rowid``).
        # Queue places (``owed``) come from the same counter: new and retried messages
        # go behind everything queued before (a migrated outbox kept its own numbers).
        last = db.execute(
            "SELECT max(coalesce((SELECT max(rowid) FROM messages), 0),"
            " coalesce((SELECT max(owed) FROM messages WHERE owed IS NOT NULL), 0))"
        ).fetchone()[0]
        self._rowids = itertools.count(last + 1)

    # -- opening -------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, sync: str = "full") -> Store:
        """``sync``: "full" (each commit survives power loss) or "normal" (survives a
        crash of Enclave, not power loss)."""
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
        except sqlite3.OperationalError as err:
            db.close()
            raise UserError(f"cannot write {path}: {err}") from None
        except BaseException:
            db.close()
            raise
        return cls(db, path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return user_version(self._db)

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
                raise

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
                return None
            pid = self._ids[fingerprint] = row[0]
        return pid

    def _known_peer_id(self, db: sqlite3.Connection, fingerprint: str) -> int:
        """The id of a peer a row is written for; an unknown one fails the transaction."""
        pid = self._peer_id(db, fingerprint)
        if pid is None:
            raise sqlite3.IntegrityError(_NO_PEER)
        return pid

    def reserve_rowid(self) -> int:
        """The rowid the next outgoing message will be written with (any thread)."""
        return next(self._rowids)

    # -- peers ---------------------------------------------------------------------

    def upsert_peer(
        self, fingerprint: str, public_key: str, address: str | None, name: str | None, now: float
    ) -> bool:
        """Add a peer (True) or update the address/name given for a known one (False).

        An address given here is the user's word: it replaces the given address and
        forgets a learned one (``learn_address``)."""
        fp = _fingerprint(fingerprint)
        name = _name(name)
        address = _address(address)
        if not isinstance(public_key, str) or "BEGIN PUBLIC KEY" not in public_key:
            raise ValueError("public_key must be an SPKI PEM string")
        with self._tx() as db:
            self._check_name_free(db, name, fp)
            row = db.execute("SELECT public_key FROM peers WHERE fingerprint = ?", (fp,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO peers (fingerprint, name, public_key, address, added_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (fp, name, public_key, address, now),
                )
                return True
            if row[0].split() != public_key.split():  # same PEM up to whitespace
                raise ValueError(f"peer {fp[:8]}… is already known with a different public key")
            db.execute(
                "UPDATE peers SET address = coalesce(?1, address), name = coalesce(?2, name),"
                " learned_address = CASE WHEN ?1 IS NULL THEN learned_address END"
                " WHERE fingerprint = ?3",
                (address, name, fp),
            )
            return False

    @staticmethod
    def _check_name_free(db: sqlite3.Connection, name: str | None, fp: str) -> None:
        if name is None:
            return
        row = db.execute(
            "SELECT fingerprint FROM peers WHERE name = ? AND fingerprint != ?", (name, fp)
        ).fetchone()
        if row is not None:
            raise UserError(f"the name '{name}' is already used by peer {row[0][:8]}…")

    def get_peer(self, fingerprint: str) -> Peer | None:
        rows = self._rows(f"SELECT {_PEER_COLS} FROM peers WHERE fingerprint = ?", (fingerprint,))
        return _peer(rows[0]) if rows else None

    def list_peers(self) -> list[Peer]:
        sql = f"SELECT {_PEER_COLS} FROM peers ORDER BY name IS NULL, name, fingerprint"
        return [_peer(r) for r in self._rows(sql)]

    def find_peers(self, query: str) -> list[Peer]:
        """The peer named ``query`` (any case); else peers whose fingerprint starts with
        it (at least 8 hex digits, any case, spaces and colons ignored); else []."""
        query = query.strip()
        rows = self._rows(f"SELECT {_PEER_COLS} FROM peers WHERE name = ?", (query,))
        if rows:
            return [_peer(rows[0])]
        prefix = "".join(query.split()).replace(":", "").lower()
        if len(prefix) < 8 or len(prefix) > 64 or not _HEX.issuperset(prefix):
            return []
        sql = f"SELECT {_PEER_COLS} FROM peers WHERE substr(fingerprint, 1, ?) = ? ORDER BY fingerprint"
        return [_peer(r) for r in self._rows(sql, (len(prefix), prefix))]

    def remove_peer(self, fingerprint: str) -> bool:
        """Forget a peer together with its history and outbox. True if it existed."""
        with self._lock:
            self._ids.pop(fingerprint, None)
            return self._update("DELETE FROM peers WHERE fingerprint = ?", (fingerprint,)) > 0

    def set_verified(self, fingerprint: str, verified: bool) -> None:
        self._set_user_flag(fingerprint, "verified", int(bool(verified)))

    def set_proto(self, fingerprint: str, proto: str) -> None:
        if proto not in PROTOS:
            raise ValueError(f"proto must be one of {PROTOS}, not {proto!r}")
        self._set_user_flag(fingerprint, "proto", proto)

    def forget_v2_seen(self, fingerprint: str) -> None:
        """The user forced a peer that spoke v2 back to v1 (enclave.node.record_protocol):
        from now on it is treated as one that never spoke v2, until it does again."""
        self._set_user_flag(fingerprint, "v2_seen", 0)

    def set_blocked(self, fingerprint: str, blocked: bool) -> None:
        self._set_user_flag(fingerprint, "blocked", int(bool(blocked)))

    def _set_user_flag(self, fingerprint: str, column: str, value: object) -> None:
        # The user named this peer a moment ago; it may have been removed meanwhile.
        if not self._update(
            f"UPDATE peers SET {column} = ? WHERE fingerprint = ?", (value, fingerprint)
        ):
            raise UserError(f"no peer {fingerprint[:8]}… (was it removed?)")

    # The node calls these for a peer it is talking to; a peer removed meanwhile is ignored.

    def mark_v2_seen(self, fingerprint: str) -> None:
        self._update("UPDATE peers SET v2_seen = 1 WHERE fingerprint = ?", (fingerprint,))

    def touch_peer(self, fingerprint: str, now: float) -> None:
        self._update("UPDATE peers SET last_seen = ? WHERE fingerprint = ?", (now, fingerprint))

    def learn_address(self, fingerprint: str, address: str | None) -> bool:
        """Record where a peer's authenticated session came from (None: from its given
        address again). The given address is kept as the fallback. True if it changed."""
        address = _address(address)
        sql = (
            "UPDATE peers SET learned_address = ?1 WHERE fingerprint = ?2"
            " AND learned_address IS NOT ?1"
        )
        return self._update(sql, (address, fingerprint)) > 0

    def raise_hwm(self, fingerprint: str, ts_ms: int) -> None:
        sql = "UPDATE peers SET hwm_ms = max(hwm_ms, ?) WHERE fingerprint = ?"
        self._update(sql, (int(ts_ms), fingerprint))

    # -- incoming messages (PROTOCOL.md c.3, receiver) ---------------------------------

    def store_incoming(self, rows: Iterable[tuple[str, bytes, str, int, int, bool]]) -> list[bool]:
        """Store (peer_fp, id, body, created_ms, stored_ms, legacy) rows in one transaction.

        Returns, per row, whether it was new; a (peer, id) already stored, or earlier in
        the same batch, gives False. Any failure rolls the whole batch back and raises.
        """
        return self.write_cycle(incoming=rows)

    # -- outgoing messages and the outbox (PROTOCOL.md c.3, sender) ----------------------

    def enqueue_outgoing(self, rows: Iterable[tuple[str, bytes, str, int]]) -> list[int]:
        """Queue (recipient_fp, id, body, created_ms) rows; return their rowids in order.

        Each row enters the outbox. An id of 36 bytes (a v1 UUID string) marks it legacy.
        """
        rows = [(self.reserve_rowid(), *row) for row in rows]
        self.write_cycle(enqueue=rows)
        return [r[0] for r in rows]

    def write_cycle(
        self,
        enqueue: Iterable[tuple[int, str, bytes, str, int]] = (),
        incoming: Iterable[tuple[str, bytes, str, int, int, bool]] = (),
        delivered: Iterable[tuple[str, list[int]]] = (),
        now_ms: int = 0,
    ) -> list[bool]:
        """One transaction for everything a commit cycle of the node writes; returns
        the ``store_incoming`` flags of ``incoming``.

        ``enqueue``: (rowid from ``reserve_rowid``, recipient_fp, id, body, created_ms)
        rows for the outbox. ``delivered``: (recipient_fp, rowids) it acked, each a prefix
        of what it was sent from the outbox (acks are cumulative); the rows become
        delivered and leave the outbox (see ``_delivered``).
        """
        incoming, enqueue = list(incoming), list(enqueue)
        with self._tx() as db:
            flags = self._insert_incoming(db, incoming) if incoming else []
            if enqueue:
                self._insert_outgoing(db, enqueue)
            for fp, rowids in delivered:
                self._delivered(db, fp, rowids, now_ms)
        return flags

    # Rows are checked here (once each, in one expression: the hot path) instead of by
    # CHECK constraints; a row that fails goes through the explaining checks.

    def _insert_incoming(self, db: sqlite3.Connection, rows: list[tuple]) -> list[bool]:
        flat, ids, rowid = [], self._ids, self._rowids.__next__
        for fp, mid, body, created, stored, legacy in rows:
            if not (
                type(mid) is bytes
                and (len(mid) == 16 or len(mid) == 36)
                and type(body) is str
                and type(created) is int
                and type(stored) is int
            ):
                _explain_row(mid, body, created, stored)
            pid = ids.get(fp) or self._known_peer_id(db, fp)
            flat += (rowid(), pid, mid, body, created, stored, 1 if legacy else 0)
        _insert_rows(db, _INCOMING, flat)
        # A duplicate (stored before, or earlier in this batch) was not inserted.
        rowids = flat[:: _INCOMING.width]
        sql = "SELECT rowid FROM messages WHERE rowid BETWEEN ? AND ?"
        new = {r[0] for r in db.execute(sql, (rowids[0], rowids[-1]))}
        return [r in new for r in rowids]

    def _insert_outgoing(self, db: sqlite3.Connection, rows: list[tuple]) -> None:
        flat, ids, seen = [], self._ids, set()
        for rowid, fp, mid, body, created in rows:
            if not (
                type(mid) is bytes
                and (len(mid) == 16 or len(mid) == 36)
                and type(body) is str
                and type(created) is int
            ):
                _explain_row(mid, body, created, 0)
            pid = ids.get(fp) or self._known_peer_id(db, fp)
            seen.add((pid, mid))
            flat += (rowid, pid, mid, body, created, created, len(mid) == 36, rowid)
        if len(seen) < len(rows):  # a caller's bug: say so
            raise sqlite3.IntegrityError("the same outgoing message id twice in a batch")
        _insert_rows(db, _OUTGOING, flat)  # owed = rowid: the back of its peer's queue

    def _delivered(self, db: sqlite3.Connection, fp: str, rowids: list[int], now_ms: int) -> None:
        """Mark acked rows delivered: by range when the rows this peer is owed between
        the first and the last are exactly these (the common case: acks come in outbox
        order), else row by row."""
        if not rowids:
            return
        pid = self._peer_id(db, fp)
        if pid is None:
            return  # removed meanwhile: its rows are gone
        lo, hi = min(rowids), max(rowids)
        # By (peer, rowid) through messages_by_peer: only this peer's rows in the range.
        owed = "rowid BETWEEN ? AND ? AND peer = ? AND owed IS NOT NULL"
        count = db.execute(f"SELECT count(*) FROM messages WHERE {owed}", (lo, hi, pid))
        if count.fetchone()[0] == len(rowids):
            db.execute(
                "UPDATE messages SET state = 'delivered', delivered_ms = ?, reason = NULL,"
                f" owed = NULL WHERE {owed}",
                (now_ms, lo, hi, pid),
            )
        else:
            self._delivered_rows(db, pid, rowids, now_ms)

    @staticmethod
    def _delivered_rows(db: sqlite3.Connection, pid: int, rowids: list[int], now_ms: int) -> int:
        params = [(now_ms, r, pid) for r in _rowids(rowids)]
        return db.executemany(
            "UPDATE messages SET state = 'delivered', delivered_ms = ?, reason = NULL,"
            " owed = NULL WHERE rowid = ? AND peer = ? AND direction = 'out'"
            " AND state IN ('queued', 'sent', 'failed')",
            params,
        ).rowcount

    def outbox_for(self, fingerprint: str, limit: int | None = None) -> list[OutboxItem]:
        sql = (
            "SELECT m.rowid, p.fingerprint, m.id, m.body, m.created_ms, m.state, m.legacy"
            f" FROM {_OWED_FROM} WHERE m.owed IS NOT NULL AND p.fingerprint = ?"
            " ORDER BY m.owed LIMIT ?"
        )
        rows = self._rows(sql, (fingerprint, -1 if limit is None else limit))
        return [OutboxItem(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]

    def outbox_peers(self) -> list[str]:
        """Recipients that are owed messages, the longest-waiting first."""
        sql = (
            f"SELECT p.fingerprint FROM {_OWED_FROM} WHERE m.owed IS NOT NULL"
            " GROUP BY m.peer ORDER BY min(m.owed)"
        )
        return [r[0] for r in self._rows(sql)]

    def mark_sent(self, rowids: Iterable[int]) -> None:
        """queued -> sent; the rows stay in the outbox until the recipient acks."""
        sql = "UPDATE messages SET state = 'sent' WHERE rowid = ? AND state = 'queued'"
        with self._tx() as db:
            db.executemany(sql, _rowid_params(rowids))

    def mark_delivered(self, fingerprint: str, rowids: Iterable[int], now_ms: int) -> int:
        """``fingerprint`` acked these rows: only its own copies become delivered and
        leave the outbox. A late ack also settles a failed row. Returns rows changed."""
        with self._tx() as db:
            pid = self._peer_id(db, fingerprint)
            return 0 if pid is None else self._delivered_rows(db, pid, rowids, now_ms)

    def mark_failed(self, rowids: Iterable[int], reason: str) -> None:
        """Give up on rows not yet delivered: they leave the outbox with ``reason``."""
        params = [(reason, r) for r in _rowids(rowids)]
        with self._tx() as db:
            db.executemany(
                "UPDATE messages SET state = 'failed', reason = ?, owed = NULL"
                " WHERE rowid = ? AND direction = 'out' AND state IN ('queued', 'sent')",
                params,
            )

    def mark_legacy_sent(self, rowids: Iterable[int]) -> None:
        """A legacy (v1) envelope was handed to the peer's socket: it leaves the outbox
        as 'sent' and stays so, since v1 has no acknowledgement."""
        params = [(r,) for r in _rowids(rowids)]
        with self._tx() as db:
            db.executemany(
                "UPDATE messages SET state = 'sent', legacy = 1, reason = 'legacy, unconfirmed',"
                " owed = NULL WHERE rowid = ? AND direction = 'out' AND state IN ('queued', 'sent')",
                params,
            )

    def requeue(self, rowids: Iterable[int]) -> None:
        """failed -> queued, appended to the outbox in rowid order (the user's /retry)."""
        params = [(next(self._rowids), r) for r in sorted(set(_rowids(rowids)))]
        with self._tx() as db:
            db.executemany(
                "UPDATE messages SET state = 'queued', reason = NULL, owed = ?"
                " WHERE rowid = ? AND state = 'failed'",
                params,
            )

    # -- history -------------------------------------------------------------------

    def outbox_rows_in_state(self, rowids: Iterable[int], states: Iterable[str]) -> list[int]:
        """Which of these outgoing rows are now in one of ``states``."""
        ids, wanted = list(_rowids(rowids)), tuple(states)
        if not ids or not wanted:
            return []
        marks = ",".join("?" * len(ids))
        state_marks = ",".join("?" * len(wanted))
        sql = f"SELECT rowid FROM messages WHERE rowid IN ({marks}) AND state IN ({state_marks})"
        return [r[0] for r in self._rows(sql, (*ids, *wanted))]

    def failed_messages(self, fingerprint: str | None = None) -> list[Message]:
        sql = f"SELECT {_MSG_COLS} FROM {_MSG_FROM} WHERE m.state = 'failed'"
        if fingerprint is None:
            return [_message(r) for r in self._rows(sql + " ORDER BY m.rowid")]
        sql += " AND p.fingerprint = ? ORDER BY m.rowid"
        return [_message(r) for r in self._rows(sql, (fingerprint,))]

    def history(
        self, fingerprint: str, limit: int = 50, before_rowid: int | None = None
    ) -> list[Message]:
        """The newest ``limit`` messages with this peer (older than ``before_rowid`` if
        given), oldest first. Deleted messages are not shown."""
        sql = (
            f"SELECT {_MSG_COLS} FROM {_MSG_FROM} WHERE p.fingerprint = ? AND m.rowid < ?"
            " AND m.state != 'deleted' ORDER BY m.rowid DESC LIMIT ?"
        )
        before = (1 << 63) - 1 if before_rowid is None else before_rowid
        rows = self._rows(sql, (fingerprint, before, limit))
        return [_message(r) for r in reversed(rows)]

    def search_messages(self, text: str, limit: int = 50) -> list[Message]:
        """The newest ``limit`` messages containing ``text`` (ASCII case ignored), oldest first."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql = (
            f"SELECT {_MSG_COLS} FROM {_MSG_FROM} WHERE m.body LIKE ? ESCAPE '\\'"
            " ORDER BY m.rowid DESC LIMIT ?"
        )
        return [_message(r) for r in reversed(self._rows(sql, (pattern, limit)))]

    def incoming_size(self, fingerprint: str) -> tuple[int, int]:
        """(messages, UTF-8 bytes of their bodies) this peer sent us that the store still
        holds (deleted ones not counted): the base of its stored-bytes quota. It reads the
        peer's rows through messages_by_peer; call it off the event loop."""
        with self._lock:
            pid = self._peer_id(self._db, fingerprint)
            if pid is None:
                return 0, 0
            sql = (
                "SELECT count(*), coalesce(sum(length(CAST(body AS BLOB))), 0) FROM messages"
                " WHERE peer = ? AND direction = 'in' AND body IS NOT NULL"
            )
            count, size = self._db.execute(sql, (pid,)).fetchone()
        return count, size

    def delete_history(self, fingerprint: str) -> int:
        """Erase the bodies of all messages with this peer, keeping (peer, id) tombstones
        so a late resend is not shown again. Unsent messages leave the outbox. Returns
        how many messages were erased."""
        with self._tx() as db:
            pid = self._peer_id(db, fingerprint)
            erased = db.execute(
                "UPDATE messages SET body = NULL, state = 'deleted', reason = NULL, owed = NULL"
                " WHERE peer = ? AND state != 'deleted'",
                (pid,),
            ).rowcount
        self._scrub_wal()
        return erased

    def _scrub_wal(self) -> None:
        # secure_delete zeroes the freed text in the database pages; a truncating
        # checkpoint also drops the WAL's old copies. A busy reader may postpone that.
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # -- v1 seen tables (PROTOCOL.md d, receive steps 6 and 9) ---------------------------

    def v1_seen(self, sender: str, message_id: str) -> bool:
        sql = "SELECT 1 FROM v1_seen WHERE sender = ? AND message_id = ?"
        return bool(self._rows(sql, (sender, message_id)))

    def v1_record(self, sender: str, message_id: str, ts: float, key_hash: bytes) -> str | None:
        """Record a verified v1 envelope. Returns None when it was new; otherwise, inserting
        nothing, the fingerprint that already holds it: ``sender`` itself when (sender,
        message_id) was recorded before (a replay), another sender's when that sender
        already presented this wrapped key (a re-signing)."""
        if not isinstance(message_id, str) or not isinstance(key_hash, bytes):
            raise TypeError("message_id must be str and key_hash bytes")
        with self._tx() as db:
            row = db.execute(
                "SELECT sender FROM v1_wrapped WHERE key_hash = ?", (key_hash,)
            ).fetchone()
            if row is not None and row[0] != sender:
                return row[0]
            new = db.execute(
                "INSERT INTO v1_seen (sender, message_id, ts) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (sender, message_id, ts),
            ).rowcount
            if not new:
                return sender
            db.execute(
                "INSERT INTO v1_wrapped (key_hash, sender, ts) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (key_hash, sender, ts),
            )
            return None

    def v1_prune(self, older_than: float, limit: int = -1) -> int:
        """Forget v1 entries with ts < older_than, the oldest first and at most ``limit``
        of each table (-1: all), so one call holds the write lock briefly. Returns how
        many entries went from the larger of the two; a call that returns ``limit``
        may have left some."""
        with self._tx() as db:
            wrapped = db.execute(
                "DELETE FROM v1_wrapped WHERE key_hash IN (SELECT key_hash FROM v1_wrapped"
                " WHERE ts < ? ORDER BY ts LIMIT ?)",
                (older_than, limit),
            ).rowcount
            seen = db.execute(
                "DELETE FROM v1_seen WHERE (sender, message_id) IN (SELECT sender, message_id"
                " FROM v1_seen WHERE ts < ? ORDER BY ts LIMIT ?)",
                (older_than, limit),
            ).rowcount
            return max(wrapped, seen)


# -- multi-row inserts ---------------------------------------------------------------------

# New messages go in as multi-row INSERTs of up to 512 rows, not ``executemany``: that
# releases and retakes the GIL once per row, and beside a busy event loop each retake
# can wait for the loop's switch interval (PERFORMANCE.md has the measurements). Chunk
# sizes are powers of two, so a few prepared statements (cached by sqlite3 by their
# text) serve every batch size.
_INSERT_CHUNK = 512


class _Insert(NamedTuple):
    head: str  # the SQL before VALUES
    row: str  # one row's placeholders
    tail: str  # the SQL after the rows
    width: int  # parameters per row


_INCOMING = _Insert(
    "INSERT INTO messages (rowid, peer, direction, id, body, created_ms, stored_ms, state, legacy)",
    "(?, ?, 'in', ?, ?, ?, ?, 'received', ?)",
    " ON CONFLICT (peer, created_ms, id) WHERE direction = 'in' DO NOTHING",
    7,
)
_OUTGOING = _Insert(
    "INSERT INTO messages (rowid, peer, direction, id, body, created_ms, stored_ms, state,"
    " legacy, owed)",
    "(?, ?, 'out', ?, ?, ?, ?, 'queued', ?, ?)",
    "",
    8,
)


def _insert_rows(db: sqlite3.Connection, kind: _Insert, flat: list) -> None:
    width = kind.width
    rows, start, size = len(flat) // width, 0, _INSERT_CHUNK
    while start < rows:
        while size > rows - start:
            size //= 2
        db.execute(_values_sql(kind, size), flat[start * width : (start + size) * width])
        start += size


@functools.lru_cache(maxsize=32)
def _values_sql(kind: _Insert, count: int) -> str:
    return f"{kind.head} VALUES {', '.join([kind.row] * count)}{kind.tail}"


# -- argument checks ---------------------------------------------------------------------


def _fingerprint(fp: str) -> str:
    if not isinstance(fp, str):
        raise TypeError("fingerprint must be a str")
    fp = fp.lower()
    if len(fp) != 64 or not _HEX.issuperset(fp):
        raise ValueError(f"fingerprint must be 64 hex digits, not {fp!r}")
    return fp


def _name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if not name or not name.isprintable():
        raise UserError("a peer name must be non-empty printable text")
    return name


def _address(address: str | None) -> str | None:
    """``host:port``, with an IPv6 host in brackets: ``[::1]:9000``."""
    if address is None:
        return None
    host, _, port = address.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host_ok = len(host) > 2 and "[" not in host[1:-1] and "]" not in host[1:-1]
    else:
        host_ok = host != "" and not any(c in host for c in ":[]")
    ok = host_ok and port.isascii() and port.isdigit() and 0 < int(port) < 65536
    if not ok:
        raise UserError(f"'{address}' is not an address: use host:port, or [ipv6]:port")
    return f"{host}:{int(port)}"


def _msg_id(mid: bytes) -> bytes:
    if not isinstance(mid, bytes):
        raise TypeError(f"message id must be bytes, not {type(mid).__name__}")
    if len(mid) not in (16, 36):
        raise ValueError(f"message id must be 16 bytes (v2) or 36 (v1 UUID), not {len(mid)}")
    return mid


def _body(body: str) -> str:
    if not isinstance(body, str):
        raise TypeError(f"message body must be str, not {type(body).__name__}")
    return body


def _explain_row(mid: bytes, body: str, created: int, stored: int) -> None:
    _msg_id(mid)
    _body(body)
    _ms(created)
    _ms(stored)


def _ms(value: int) -> int:
    if type(value) is not int:  # bool is refused too; SQLite would store a float or text
        raise TypeError(f"a time must be integer milliseconds, not {value!r:.40}")
    return value


def _rowids(rowids: Iterable[int]) -> list[int]:
    return [int(r) for r in rowids]


def _rowid_params(rowids: Iterable[int]) -> list[tuple[int]]:
    return [(int(r),) for r in rowids]
