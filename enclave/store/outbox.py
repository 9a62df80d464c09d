"""The outbox: outgoing messages still owed to their recipient, and what becomes of
them (sent, delivered, failed, retried) (PROTOCOL.md c.3, sender).

Since schema 3 the outbox is the ``owed`` column of ``messages`` (a message's place in
its recipient's queue, NULL once nothing is owed), not a table of its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .checks import as_rowids, rowid_params
from .core import StoreCore
from .records import OutboxItem

# What is owed, read through its own small index: left to itself the planner would
# walk a peer's whole history (messages_by_peer) to find the few rows still queued.
_OWED_FROM = "messages m INDEXED BY messages_owed JOIN peers p ON p.id = m.peer"
# How an acked row settles (one parameter: delivered_ms): kept, or, with history off
# (schema 11), erased to a tombstone as it leaves the outbox.
_GONE = "state = 'deleted', body = NULL, reply_to = NULL"
_DELIVERED = "state = 'delivered', delivered_ms = ?, reason = NULL, owed = NULL"
_ERASED = f"{_GONE}, delivered_ms = ?, reason = NULL, owed = NULL"


class OutboxMixin(StoreCore):
    """What is owed to whom, and the state changes of outgoing rows."""

    def _delivered(
        self, db: sqlite3.Connection, fp: str, rowids: list[int], now_ms: int, erase: bool = False
    ) -> None:
        """Mark acked rows delivered: by range when the rows this peer is owed between
        the first and the last are exactly these (the common case: acks come in outbox
        order), else row by row. ``erase`` (history off with this peer, schema 11): they
        become tombstones instead, delivered_ms kept, body and quote gone."""
        if not rowids:
            return
        pid = self._peer_id(db, fp)
        if pid is None:
            return  # removed meanwhile: its rows are gone
        lo, hi = min(rowids), max(rowids)
        # By (peer, rowid) through messages_by_peer: only this peer's rows in the range.
        owed = "rowid BETWEEN ? AND ? AND peer = ? AND owed IS NOT NULL"
        count = db.execute(f"SELECT count(*) FROM messages WHERE {owed}", (lo, hi, pid))
        settle = _ERASED if erase else _DELIVERED
        if count.fetchone()[0] == len(rowids):
            db.execute(f"UPDATE messages SET {settle} WHERE {owed}", (now_ms, lo, hi, pid))
        else:
            self._delivered_rows(db, pid, rowids, now_ms, erase)

    @staticmethod
    def _delivered_rows(
        db: sqlite3.Connection, pid: int, rowids: list[int], now_ms: int, erase: bool = False
    ) -> int:
        params = [(now_ms, r, pid) for r in as_rowids(rowids)]
        return db.executemany(
            f"UPDATE messages SET {_ERASED if erase else _DELIVERED}"
            " WHERE rowid = ? AND peer = ? AND direction = 'out'"
            " AND state IN ('queued', 'sent', 'failed')",
            params,
        ).rowcount

    def outbox_for(self, fingerprint: str, limit: int | None = None) -> list[OutboxItem]:
        """What this peer is owed, in queue order. A group post's row carries its group
        id, epoch, Lamport time and seq as stored, so a resend is the same post."""
        sql = (
            "SELECT m.rowid, p.fingerprint, m.id, m.body, m.created_ms, m.state, m.legacy,"
            " g.id, m.epoch, m.lamport, m.gseq, m.reply_to, m.timer_s, m.peer"
            f" FROM {_OWED_FROM} LEFT JOIN groups g ON g.key = m.grp"
            " WHERE m.owed IS NOT NULL AND p.fingerprint = ? ORDER BY m.owed LIMIT ?"
        )
        rows = self._rows(sql, (fingerprint, -1 if limit is None else limit))
        return [
            OutboxItem(
                r[0], r[1], r[2], self._open_body(r[3], r[0], r[13], "out"), r[4], r[5],
                bool(r[6]), None if r[7] is None else (r[7], r[8], r[9], r[10]), r[11], r[12],
            )
            for r in rows
        ]  # fmt: skip

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
            db.executemany(sql, rowid_params(rowids))

    def mark_delivered(self, fingerprint: str, rowids: Iterable[int], now_ms: int) -> int:
        """``fingerprint`` acked these rows: only its own copies become delivered and
        leave the outbox. A late ack also settles a failed row. Returns rows changed."""
        with self._tx() as db:
            pid = self._peer_id(db, fingerprint)
            return 0 if pid is None else self._delivered_rows(db, pid, rowids, now_ms)

    def mark_failed(self, rowids: Iterable[int], reason: str, erase: bool = False) -> None:
        """Give up on rows not yet delivered: they leave the outbox with ``reason``
        (``erase``, history off: as tombstones, the reason kept)."""
        params = [(reason, r) for r in as_rowids(rowids)]
        state = _GONE if erase else "state = 'failed'"
        with self._tx() as db:
            db.executemany(
                f"UPDATE messages SET {state}, reason = ?, owed = NULL"
                " WHERE rowid = ? AND direction = 'out' AND state IN ('queued', 'sent')",
                params,
            )

    def mark_legacy_sent(self, rowids: Iterable[int], erase: bool = False) -> None:
        """A legacy (v1) envelope was handed to the peer's socket: it leaves the outbox
        as 'sent' and stays so, since v1 has no acknowledgement (``erase``, history
        off: as a tombstone)."""
        params = [(r,) for r in as_rowids(rowids)]
        state = _GONE if erase else "state = 'sent'"
        with self._tx() as db:
            db.executemany(
                f"UPDATE messages SET {state}, legacy = 1, reason = 'legacy, unconfirmed',"
                " owed = NULL WHERE rowid = ? AND direction = 'out' AND state IN ('queued', 'sent')",
                params,
            )

    def requeue(self, rowids: Iterable[int]) -> None:
        """failed -> queued, appended to the outbox in rowid order (the user's /retry)."""
        params = [(next(self._rowids), r) for r in sorted(set(as_rowids(rowids)))]
        with self._tx() as db:
            db.executemany(
                "UPDATE messages SET state = 'queued', reason = NULL, owed = ?"
                " WHERE rowid = ? AND state = 'failed'",
                params,
            )

    def outbox_rows_in_state(self, rowids: Iterable[int], states: Iterable[str]) -> list[int]:
        """Which of these outgoing rows are now in one of ``states``."""
        ids, wanted = list(as_rowids(rowids)), tuple(states)
        if not ids or not wanted:
            return []
        marks = ",".join("?" * len(ids))
        state_marks = ",".join("?" * len(wanted))
        sql = f"SELECT rowid FROM messages WHERE rowid IN ({marks}) AND state IN ({state_marks})"
        return [r[0] for r in self._rows(sql, (*ids, *wanted))]
