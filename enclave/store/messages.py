"""Writing new messages: what peers sent us, what we queue for them, and the commit
cycle that writes both (and the acks) in one transaction (PROTOCOL.md c.3)."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Container, Iterable
from typing import NamedTuple

from .checks import check_rowid, explain_row
from .disappear import DisappearMixin
from .outbox import OutboxMixin
from .sealing import message_ad


class MessagesMixin(DisappearMixin, OutboxMixin):
    """New rows in ``messages``. Built on the outbox's methods because a commit cycle
    also marks what recipients acked (``OutboxMixin._delivered``)."""

    # -- incoming messages (PROTOCOL.md c.3, receiver) ---------------------------------

    def store_incoming(self, rows: Iterable[tuple]) -> list[bool]:
        """Store (peer_fp, id, body, created_ms, stored_ms, legacy[, group]) rows in one
        transaction (``group`` as in ``write_cycle``).

        Returns, per row, whether it was new; a (peer, id) already stored, or earlier in
        the same batch, gives False. Any failure rolls the whole batch back and raises.
        """
        return self.write_cycle(incoming=rows)

    # -- outgoing messages (PROTOCOL.md c.3, sender) -----------------------------------

    def enqueue_outgoing(self, rows: Iterable[tuple]) -> list[int]:
        """Queue (recipient_fp, id, body, created_ms[, group]) rows; return their rowids
        in order (``group`` as in ``write_cycle``).

        Each row enters the outbox. An id of 36 bytes (a v1 UUID string) marks it legacy.
        """
        rows = [(self.reserve_rowid(), *row) for row in rows]
        self.write_cycle(enqueue=rows)
        return [r[0] for r in rows]

    def write_cycle(
        self,
        enqueue: Iterable[tuple] = (),
        incoming: Iterable[tuple] = (),
        delivered: Iterable[tuple[str, list[int]]] = (),
        now_ms: int = 0,
        forget: Container[str] = (),
    ) -> list[bool]:
        """One transaction for everything a commit cycle of the node writes; returns
        the ``store_incoming`` flags of ``incoming``.

        ``enqueue``: (rowid from ``reserve_rowid``, recipient_fp, id, body, created_ms)
        rows for the outbox. ``delivered``: (recipient_fp, rowids) it acked, each a prefix
        of what it was sent from the outbox (acks are cumulative); the rows become
        delivered and leave the outbox (see ``_delivered``).

        A group post's row carries one more element (the 6th of an ``enqueue`` row, the
        7th of an ``incoming`` one): ``group`` = (group_id, epoch, lamport, seq), or None
        for a direct message. A reply's row carries one more after it (7th, 8th): the
        16-byte id of the message it quotes (schema 10). A group id the store does not hold fails the transaction
        (``sqlite3.IntegrityError``).

        History off (schema 11): an ``incoming`` row whose body is None is stored as a
        tombstone straight away (state ``deleted``, no body, no quote: only what dedupe
        needs), so its text never reaches the file; ``forget`` names the recipients
        whose acked rows are erased as they settle (``_delivered``).

        Disappearing messages (schema 12, ``DisappearMixin``): an ``incoming`` row's 9th
        element is a TIMER's seconds (its row is the TIMER's); an ``enqueue`` row's 8th a
        TIMER's seconds and its 9th the message's ``expires_ms``. A TIMER changes its
        conversation's timer when it is the newest by (created_ms, id); a new incoming
        chat from a contact with a timer gets its expiry in the same transaction.
        A group post's ``incoming`` row may carry a 10th element (schema 14): its group's
        timer at the post's epoch, in seconds (the log's, passed by the node), from
        which the post's expiry is set as a chat's is.
        """
        incoming, enqueue = list(incoming), list(enqueue)
        with self._lock:  # the sending log's mark in the same hold as the COMMIT
            with self._tx() as db:
                flags = self._insert_incoming(db, incoming) if incoming else []
                if enqueue:
                    self._insert_outgoing(db, enqueue)
                for fp, rowids in delivered:
                    self._delivered(db, fp, rowids, now_ms, fp in forget)
            if enqueue:
                self.sending.committed(enqueue[-1][0])  # rowids ascend (sending.py)
        return flags

    # Rows are checked here (once each, in one expression: the hot path) instead of by
    # CHECK constraints; a row that fails goes through the explaining checks. Direct
    # messages stay on these loops. A row of another length (a group post's) fails their
    # unpacking with ValueError before anything is written, and the batch goes through
    # the ``_mixed`` variants instead, so a batch of direct messages pays no extra test
    # per row. (Any other ValueError of the loop is raised again there.)

    def _insert_incoming(self, db: sqlite3.Connection, rows: list[tuple]) -> list[bool]:
        # While a contact has a timer, each of its new chats carries its expiry in its
        # INSERT (no TIMER is in such a batch: a TIMER goes the _mixed way).
        timed = self._timers_of(db)
        kind = _INCOMING_EXPIRING if timed else _INCOMING
        flat, ids, rowid = [], self._ids, self._rowids.__next__
        try:
            for fp, mid, body, created, stored, legacy in rows:
                if not (
                    type(mid) is bytes
                    and (len(mid) == 16 or len(mid) == 36)
                    and type(body) is str
                    and type(created) is int
                    and type(stored) is int
                ):
                    if body is None:  # a tombstone (history off): the _mixed variant
                        raise ValueError
                    explain_row(mid, body, created, stored)
                pid = ids.get(fp) or self._known_peer_id(db, fp)
                flat += (rowid(), pid, mid, body, created, stored, 1 if legacy else 0)
                if timed:
                    seconds = timed.get(pid)
                    flat.append(min(created, stored) + 1000 * seconds if seconds else None)
        except ValueError:
            return self._insert_incoming_mixed(db, rows)
        self._sealer.seal_rows(flat, kind.width, "in")  # all bodies in one call
        if _insert_rows(db, kind, flat) == len(rows):
            return [True] * len(rows)  # every row went in: no duplicate to look for
        return _new_flags(db, flat[:: kind.width])

    def _insert_incoming_mixed(self, db: sqlite3.Connection, rows: list[tuple]) -> list[bool]:
        plain, grouped, gone, rowids, keys, replies = [], [], [], [], {}, []
        timers = False
        for row in rows:
            if len(row) not in (6, 7, 8, 9, 10):
                raise ValueError(f"an incoming row has 6 to 10 elements, not {len(row)}")
            fp, mid, body, created, stored, legacy = row[:6]
            group = row[6] if len(row) >= 7 else None
            tombstone = body is None and group is None  # history off (schema 11)
            explain_row(mid, "" if tombstone else body, created, stored)
            pid = self._ids.get(fp) or self._known_peer_id(db, fp)
            rowid = next(self._rowids)
            rowids.append(rowid)
            if not tombstone:
                body = self._sealer.seal(body, message_ad(rowid, pid, "in"))
            values = (rowid, pid, mid, body, created, stored, 1 if legacy else 0)
            if tombstone:
                gone += values
                continue  # no quote either: nothing of the message but its key
            if group is None:
                plain += values
            else:  # with its group's timer at its epoch (10th), its expiry: one write
                lasts = row[9] if len(row) == 10 else None
                expires = min(created, stored) + 1000 * lasts if lasts else None
                grouped += (*values, *_group_values(db, group, keys), expires)
            if len(row) >= 8 and row[7] is not None:
                replies.append((_reply_id(row[7]), rowid))
            if len(row) >= 9 and row[8] is not None:
                timers = True  # a TIMER
        _insert_rows(db, _INCOMING, plain)
        _insert_rows(db, _INCOMING_GROUP, grouped)
        _insert_rows(db, _INCOMING_GONE, gone)
        # A duplicate was not inserted: its row id names no row, and nothing changes.
        db.executemany("UPDATE messages SET reply_to = ? WHERE rowid = ?", replies)
        flags = _new_flags(db, rowids)
        if timers or self._timers_of(db):
            self._disappearing_in(db, rows, rowids, flags)
        return flags

    def _insert_outgoing(self, db: sqlite3.Connection, rows: list[tuple]) -> None:
        flat, ids, seen = [], self._ids, set()
        try:
            for rowid, fp, mid, body, created in rows:
                if not (
                    type(mid) is bytes
                    and (len(mid) == 16 or len(mid) == 36)
                    and type(body) is str
                    and type(created) is int
                    and type(rowid) is int
                ):
                    check_rowid(rowid)
                    explain_row(mid, body, created, 0)
                pid = ids.get(fp) or self._known_peer_id(db, fp)
                seen.add((pid, mid))
                flat += (rowid, pid, mid, body, created, created, len(mid) == 36, rowid)
        except ValueError:
            return self._insert_outgoing_mixed(db, rows)
        if len(seen) < len(rows):  # a caller's bug: say so
            raise sqlite3.IntegrityError("the same outgoing message id twice in a batch")
        self._sealer.seal_rows(flat, _OUTGOING.width, "out")  # all bodies in one call
        _insert_rows(db, _OUTGOING, flat)  # owed = rowid: the back of its peer's queue

    def _insert_outgoing_mixed(self, db: sqlite3.Connection, rows: list[tuple]) -> None:
        plain, grouped, seen, keys, replies, timed = [], [], set(), {}, [], []
        for row in rows:
            if len(row) not in (5, 6, 7, 8, 9):
                raise ValueError(f"an outgoing row has 5 to 9 elements, not {len(row)}")
            rowid, fp, mid, body, created = row[:5]
            check_rowid(rowid)
            explain_row(mid, body, created, 0)
            pid = self._ids.get(fp) or self._known_peer_id(db, fp)
            seen.add((pid, mid))  # a post has one id for all members: one row each
            body = self._sealer.seal(body, message_ad(rowid, pid, "out"))
            expires = row[8] if len(row) == 9 else None  # in the INSERT: one write
            values = (rowid, pid, mid, body, created, created, len(mid) == 36, rowid, expires)
            group = row[5] if len(row) >= 6 else None
            if group is None:
                plain += values
            else:
                grouped += (*values, *_group_values(db, group, keys))
            if len(row) >= 7 and row[6] is not None:
                replies.append((_reply_id(row[6]), rowid))
            if len(row) >= 8 and row[7] is not None:
                timed.append(row)
        if len(seen) < len(rows):
            raise sqlite3.IntegrityError("the same outgoing message id twice in a batch")
        _insert_rows(db, _OUTGOING_EXPIRING, plain)
        _insert_rows(db, _OUTGOING_GROUP, grouped)
        db.executemany("UPDATE messages SET reply_to = ? WHERE rowid = ?", replies)
        if timed:
            self._disappearing_out(db, timed)


def _new_flags(db: sqlite3.Connection, rowids: list[int]) -> list[bool]:
    """Which of a batch's incoming rows were inserted: a duplicate (stored before, or
    earlier in this batch) was not. ``rowids`` are ascending, as the counter gave them."""
    sql = "SELECT rowid FROM messages WHERE rowid BETWEEN ? AND ?"
    new = {r[0] for r in db.execute(sql, (rowids[0], rowids[-1]))}
    return [r in new for r in rowids]


def _reply_id(reply: object) -> bytes:
    if type(reply) is not bytes or len(reply) != 16:
        raise ValueError("a reply quotes a message id of 16 bytes")
    return reply


def _group_values(db: sqlite3.Connection, group: object, keys: dict[bytes, int]) -> tuple:
    """(grp, lamport, epoch, gseq) of a group post's row; ``keys`` caches group keys
    for the batch."""
    if not isinstance(group, tuple) or len(group) != 4:
        raise TypeError("group must be a (group_id, epoch, lamport, seq) tuple")
    gid, epoch, lamport, seq = group
    if type(gid) is not bytes or len(gid) != 16:
        raise ValueError("a group id is 16 bytes")
    if not all(type(v) is int and 0 <= v < 1 << 63 for v in (epoch, lamport, seq)):
        raise ValueError(f"epoch, lamport and seq must be integers in [0, 2^63), not {group[1:]}")
    key = keys.get(gid)
    if key is None:
        row = db.execute("SELECT key FROM groups WHERE id = ?", (gid,)).fetchone()
        if row is None:
            raise sqlite3.IntegrityError(f"no group {gid.hex()}")
        key = keys[gid] = row[0]
    return key, lamport, epoch, seq


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
# History off (schema 11): the row is a tombstone from the start (body NULL).
_INCOMING_GONE = _Insert(
    _INCOMING.head, "(?, ?, 'in', ?, ?, ?, ?, 'deleted', ?)", _INCOMING.tail, _INCOMING.width
)
# Group posts (schema 6): the same rows with the group's columns, and the expiry its
# group's timer gives (schema 14; NULL: none). Outgoing rows of the ``_mixed`` path
# carry their expiry too (disappearing messages), so no second write sets it.
_INCOMING_GROUP = _Insert(
    "INSERT INTO messages (rowid, peer, direction, id, body, created_ms, stored_ms, state,"
    " legacy, grp, lamport, epoch, gseq, expires_ms)",
    "(?, ?, 'in', ?, ?, ?, ?, 'received', ?, ?, ?, ?, ?, ?)",
    _INCOMING.tail,
    12,
)
_INCOMING_EXPIRING = _Insert(
    "INSERT INTO messages (rowid, peer, direction, id, body, created_ms, stored_ms, state,"
    " legacy, expires_ms)",
    "(?, ?, 'in', ?, ?, ?, ?, 'received', ?, ?)",
    _INCOMING.tail,
    8,
)
_OUTGOING_EXPIRING = _Insert(
    "INSERT INTO messages (rowid, peer, direction, id, body, created_ms, stored_ms, state,"
    " legacy, owed, expires_ms)",
    "(?, ?, 'out', ?, ?, ?, ?, 'queued', ?, ?, ?)",
    "",
    9,
)
_OUTGOING_GROUP = _Insert(
    "INSERT INTO messages (rowid, peer, direction, id, body, created_ms, stored_ms, state,"
    " legacy, owed, expires_ms, grp, lamport, epoch, gseq)",
    "(?, ?, 'out', ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
    "",
    13,
)


def _insert_rows(db: sqlite3.Connection, kind: _Insert, flat: list) -> int:
    """Insert the flat rows in statements of up to ``_INSERT_CHUNK`` rows; returns how
    many went in (a duplicate's ``DO NOTHING`` does not count)."""
    width, inserted = kind.width, 0
    rows, start, size = len(flat) // width, 0, _INSERT_CHUNK
    while start < rows:
        while size > rows - start:
            size //= 2
        sql = _values_sql(kind, size)
        inserted += db.execute(sql, flat[start * width : (start + size) * width]).rowcount
        start += size
    return inserted


@functools.lru_cache(maxsize=32)
def _values_sql(kind: _Insert, count: int) -> str:
    return f"{kind.head} VALUES {', '.join([kind.row] * count)}{kind.tail}"
