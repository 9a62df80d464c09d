"""Disappearing messages (schema 12): each conversation's timer, the expiry of its
messages, and erasing what expired.

Rules:
- A conversation's timer is the one the newest TIMER set, newest by (created_ms, id)
  whichever side sent it: both sides apply the same rule to the same TIMERs, in any
  order, and agree (``peers.disappear_s``, ``disappear_ms``, ``disappear_id``). An
  older TIMER still gets its row (the system line) but changes nothing.
- A message's expiry is fixed when its row is written, from the timer in force then:
  ours from when we sent it (the node passes it: ``created_ms`` + timer), a contact's
  from ``min(created_ms, stored_ms)`` + the timer (a sender's clock ahead of ours
  cannot keep a message longer). Rows of a batch are taken in order, so a chat after
  a TIMER in the same commit gets the new timer. TIMER rows never expire.
- A group's timer is its log's (a TIMER record, schema 14: ``groups.disappear_s``
  mirrors the one at the head). A post expires by the timer at the epoch it was
  written at: ours from ``created_ms`` (every member's copy of it alike), a member's
  from ``min(created_ms, stored_ms)`` + the timer the node passes with the row.
- The commit pays nothing while no contact has a timer (``_timed`` is empty); otherwise
  one dict lookup per new incoming row, and one UPDATE per batch for the expiring ones.
- Erasing (``expire_due``) is "delete for me" for every row due: body NULL, state
  'deleted' (a tombstone keeps a resend out), out of the outbox, expiry cleared; then
  the WAL is checkpointed. ``secure_delete`` (dbfile.configure) zeroes the freed text.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from .core import StoreCore


class Expired(NamedTuple):
    """A row ``expire_due`` erased: its peer (for a post of ours, the member it was
    owed to), rowid, id, direction, and its group's id (None for a direct message)."""

    peer: str
    rowid: int
    id: bytes
    direction: str
    group: bytes | None = None


class DisappearMixin(StoreCore):
    # --- the timer in force -------------------------------------------------------------

    def _timers_of(self, db: sqlite3.Connection) -> dict[int, int]:
        timed = self._timed
        if timed is None:
            rows = db.execute("SELECT id, disappear_s FROM peers WHERE disappear_s > 0")
            timed = self._timed = dict(rows.fetchall())
        return timed

    def _apply_timer(
        self, db: sqlite3.Connection, pid: int, seconds: int, at_ms: int, mid: bytes
    ) -> bool:
        """The TIMER (``at_ms``, ``mid``) sets ``seconds`` if it is the newest; whether it did."""
        changed = db.execute(
            "UPDATE peers SET disappear_s = ?, disappear_ms = ?, disappear_id = ? WHERE id = ?"
            " AND (disappear_ms IS NULL OR disappear_ms < ?"
            " OR (disappear_ms = ? AND disappear_id < ?))",
            (seconds, at_ms, mid, pid, at_ms, at_ms, mid),
        ).rowcount
        if changed:
            timed = self._timers_of(db)
            if seconds:
                timed[pid] = seconds
            else:
                timed.pop(pid, None)
        return bool(changed)

    def disappear_timers(self) -> dict[str, int]:
        """Every contact's timer that is on: fingerprint -> seconds."""
        sql = "SELECT fingerprint, disappear_s FROM peers WHERE disappear_s > 0"
        return dict(self._rows(sql))

    # --- rows as they are written ---------------------------------------------------------

    def _disappearing_in(self, db, rows: list[tuple], rowids: list[int], flags: list[bool]):
        """New incoming rows in order: TIMERs apply, chats of a timed contact expire."""
        ids, timed = self._ids, self._timers_of(db)
        expiring, timer_rows = [], []
        for row, rowid, new in zip(rows, rowids, flags, strict=True):
            if not new:
                continue  # a duplicate: applied when it was new
            pid = ids.get(row[0]) or self._known_peer_id(db, row[0])
            timer = row[8] if len(row) >= 9 else None
            if timer is not None:
                self._apply_timer(db, pid, timer, row[3], row[1])
                timer_rows.append((timer, rowid))
            elif (len(row) < 7 or row[6] is None) and (seconds := timed.get(pid)):
                expiring.append((min(row[3], row[4]) + 1000 * seconds, rowid))
        db.executemany("UPDATE messages SET timer_s = ? WHERE rowid = ?", timer_rows)
        db.executemany("UPDATE messages SET expires_ms = ? WHERE rowid = ?", expiring)

    def _disappearing_out(self, db: sqlite3.Connection, rows: list[tuple]) -> None:
        """Our TIMERs (their seconds are the 8th element), in order; an expiry (9th) was
        written with its row."""
        timer_rows = []
        for row in rows:
            rowid, fp, mid, _, created = row[:5]
            pid = self._ids.get(fp) or self._known_peer_id(db, fp)
            self._apply_timer(db, pid, row[7], created, mid)
            timer_rows.append((row[7], rowid))
        db.executemany("UPDATE messages SET timer_s = ? WHERE rowid = ?", timer_rows)

    # --- erasing what expired -----------------------------------------------------------------

    def next_expiry(self) -> int | None:
        """When the next message expires (epoch ms), or None."""
        rows = self._rows("SELECT min(expires_ms) FROM messages WHERE expires_ms IS NOT NULL")
        return rows[0][0]

    def expire_due(self, now_ms: int, limit: int = 1000) -> list[Expired]:
        """Erase up to ``limit`` messages due by ``now_ms``; each one's ``Expired``."""
        with self._tx() as db:
            due = db.execute(
                "SELECT m.rowid, p.fingerprint, m.id, m.direction, g.id FROM messages m"
                " JOIN peers p ON p.id = m.peer LEFT JOIN groups g ON g.key = m.grp"
                " WHERE m.expires_ms IS NOT NULL AND m.expires_ms <= ?"
                " ORDER BY m.expires_ms LIMIT ?",
                (now_ms, limit),
            ).fetchall()
            db.executemany(
                "UPDATE messages SET body = NULL, state = 'deleted', reason = NULL, owed = NULL,"
                " expires_ms = NULL WHERE rowid = ?",
                [(r[0],) for r in due],
            )
        if due:
            self._scrub_wal()
        return [Expired(fp, rowid, mid, direction, gid) for rowid, fp, mid, direction, gid in due]

    # --- a group's timer (the log decides it; schema 14 mirrors it) ---------------------------

    def group_timers(self) -> dict[bytes, int]:
        """Every group's timer that is on, as stored with its records: id -> seconds."""
        return dict(self._rows("SELECT id, disappear_s FROM groups WHERE disappear_s > 0"))
