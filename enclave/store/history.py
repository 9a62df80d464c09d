"""Reading and erasing the history of messages with a peer."""

from __future__ import annotations

from .core import StoreCore
from .records import FileNote, Message
from .sealing import OVERHEAD

_SEARCH_PAGE = 1024  # rows read per query of a search

# A file message is a row a transfer points at (schema 5): the page carries its name,
# size, state and progress. The joins go through transfers' UNIQUE (message) index and
# transfer_chunks' primary key: one lookup per row of the page.
_MSG_COLS = (
    "m.rowid, p.fingerprint, m.direction, m.id, m.body, m.created_ms, m.stored_ms, m.state,"
    " m.delivered_ms, m.reason, m.legacy,"
    " t.key, t.name, t.size, t.chunk_size, t.state, t.reason, c.done, m.read_ms, m.broadcast,"
    " m.reply_to, m.timer_s, m.expires_ms, m.peer"
)
_MSG_FROM = (
    "messages m JOIN peers p ON p.id = m.peer"
    " LEFT JOIN transfers t ON t.message = m.rowid"
    " LEFT JOIN transfer_chunks c ON c.transfer = t.key"
)


def _message(r: tuple, open_body, open_name) -> Message:
    note = None if r[11] is None else _note(r[11:18], open_name(r[12], r[0], r[23], r[2]))
    body = open_body(r[4], r[0], r[23], r[2])
    return Message(
        r[0], r[1], r[2], r[3], body, r[5], r[6], r[7], r[8], r[9], bool(r[10]), note,
        r[18], bool(r[19]), r[20], r[21], r[22],
    )  # fmt: skip


def _note(r: tuple, name: str) -> FileNote:
    key, _, size, chunk_size, state, reason, done = r
    chunks = -(-size // chunk_size)
    percent = done * 100 // chunks if chunks else 100 if state == "delivered" else 0
    return FileNote(key, name, size, state, reason, percent)


class HistoryMixin(StoreCore):
    """Pages of a conversation, search, failed messages, and erasing a history.

    A conversation is the direct messages with a peer (``grp IS NULL``): group posts
    (schema 6) are read by ``GroupsMixin.group_history``, and a failed one is never
    listed here, so a retry cannot send a group post as a direct chat."""

    def failed_messages(self, fingerprint: str | None = None) -> list[Message]:
        sql = f"SELECT {_MSG_COLS} FROM {_MSG_FROM} WHERE m.state = 'failed' AND m.grp IS NULL"
        if fingerprint is None:
            return self._messages(self._rows(sql + " ORDER BY m.rowid"))
        sql += " AND p.fingerprint = ? ORDER BY m.rowid"
        return self._messages(self._rows(sql, (fingerprint,)))

    def _messages(self, rows) -> list[Message]:
        return [_message(r, self._open_body, self._open_file_name) for r in rows]

    def history(
        self, fingerprint: str, limit: int = 50, before_rowid: int | None = None
    ) -> list[Message]:
        """The newest ``limit`` messages with this peer (older than ``before_rowid`` if
        given), oldest first. Deleted messages are not shown."""
        sql = (
            f"SELECT {_MSG_COLS} FROM {_MSG_FROM} WHERE p.fingerprint = ? AND m.rowid < ?"
            " AND m.state != 'deleted' AND m.grp IS NULL ORDER BY m.rowid DESC LIMIT ?"
        )
        before = (1 << 63) - 1 if before_rowid is None else before_rowid
        rows = self._rows(sql, (fingerprint, before, limit))
        return self._messages(reversed(rows))

    def search_messages(self, text: str, limit: int = 50) -> list[Message]:
        """The newest ``limit`` direct messages containing ``text`` (case ignored), oldest
        first. Bodies are sealed, so SQL cannot look inside them: this opens them newest
        first, a page of rows at a time, until ``limit`` match (PERFORMANCE.md measures
        the cost of a search that reaches the oldest message)."""
        wanted, found, before = text.casefold(), [], (1 << 63) - 1
        sql = (
            f"SELECT {_MSG_COLS} FROM {_MSG_FROM} WHERE m.rowid < ? AND m.grp IS NULL"
            " AND m.body IS NOT NULL ORDER BY m.rowid DESC LIMIT ?"
        )
        while len(found) < limit:
            rows = self._rows(sql, (before, _SEARCH_PAGE))
            for r in rows:
                body = self._open_body(r[4], r[0], r[23], r[2])
                if wanted in body.casefold():
                    found.append(_message(r, lambda *_: body, self._open_file_name))  # noqa: B023
                    if len(found) == limit:
                        break
            if len(rows) < _SEARCH_PAGE:
                break
            before = rows[-1][0]
        return found[::-1]

    def highest_received(self, fingerprint: str) -> tuple[int, bytes] | None:
        """The highest (created_ms, id) of what this peer ever had stored here, erased
        rows included (they keep their dedupe key), or None: a chat above it is new.
        One step down messages_in_id; call it off the event loop."""
        with self._lock:
            pid = self._peer_id(self._db, fingerprint)
            if pid is None:
                return None
            row = self._db.execute(
                "SELECT created_ms, id FROM messages WHERE peer = ? AND direction = 'in'"
                " ORDER BY created_ms DESC, id DESC LIMIT 1",
                (pid,),
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def incoming_size(self, fingerprint: str) -> tuple[int, int]:
        """(messages, UTF-8 bytes of their bodies) this peer sent us that the store still
        holds (deleted ones not counted): the base of its stored-bytes quota. It reads the
        peer's rows through messages_by_peer; call it off the event loop."""
        with self._lock:
            pid = self._peer_id(self._db, fingerprint)
            if pid is None:
                return 0, 0
            # A sealed body is its UTF-8 bytes and OVERHEAD more (sealing.py).
            sql = (
                "SELECT count(*), coalesce(sum(CASE typeof(body) WHEN 'blob'"
                f" THEN length(body) - {OVERHEAD} ELSE length(CAST(body AS BLOB)) END), 0)"
                " FROM messages"
                " WHERE peer = ? AND direction = 'in' AND body IS NOT NULL AND grp IS NULL"
            )
            count, size = self._db.execute(sql, (pid,)).fetchone()
        return count, size

    def delete_history(self, fingerprint: str) -> int:
        """Erase the bodies of all direct messages with this peer, keeping (peer, id)
        tombstones so a late resend is not shown again. Unsent messages leave the outbox.
        Its group posts stay (``delete_group`` erases those). Returns how many messages
        were erased."""
        with self._tx() as db:
            pid = self._peer_id(db, fingerprint)
            erased = db.execute(
                "UPDATE messages SET body = NULL, state = 'deleted', reason = NULL, owed = NULL"
                " WHERE peer = ? AND state != 'deleted' AND grp IS NULL",
                (pid,),
            ).rowcount
        self._scrub_wal()
        return erased

    def message(
        self, fingerprint: str, rowid: int | None = None, mid: bytes | None = None, direction=None
    ):
        """One direct message with this peer, by row id or by message id and direction
        (None: no such message, or deleted)."""
        if mid is None:
            where, args = "m.rowid = ?", (rowid,)
        else:
            where, args = "m.id = ? AND m.direction = ?", (mid, direction)
        sql = (
            f"SELECT {_MSG_COLS} FROM {_MSG_FROM} WHERE {where} AND p.fingerprint = ?"
            " AND m.state != 'deleted' AND m.grp IS NULL"
        )
        rows = self._rows(sql, (*args, fingerprint))
        return _message(rows[0], self._open_body, self._open_file_name) if rows else None

    def delete_message(self, fingerprint: str, rowid: int) -> bool:
        """Erase one settled direct message here (received, delivered or failed): its
        body is zeroed and a (peer, id) tombstone stays, so a late resend is not shown
        again. A message still on its way, or a file's row (its transfer has the file),
        is left alone: False."""
        with self._tx() as db:
            pid = self._peer_id(db, fingerprint)
            erased = db.execute(
                "UPDATE messages SET body = NULL, state = 'deleted', reason = NULL, owed = NULL"
                " WHERE rowid = ? AND peer = ? AND grp IS NULL"
                " AND state IN ('received', 'delivered', 'failed')"
                " AND NOT EXISTS (SELECT 1 FROM transfers t WHERE t.message = messages.rowid)",
                (rowid, pid),
            ).rowcount
        if erased:
            self._scrub_wal()
        return bool(erased)

    # --- read receipts and broadcasts (schema 9) ------------------------------------------

    def set_receipts(self, fingerprint: str, allowed: bool) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE peers SET receipts = ? WHERE fingerprint = ?", (int(allowed), fingerprint)
            )

    def newest_received_id(self, fingerprint: str) -> bytes | None:
        """The id of the newest direct message this peer sent us over v2 (ids grow in
        creation order: a read receipt names the last one read)."""
        rows = self._rows(
            "SELECT m.id FROM messages m JOIN peers p ON p.id = m.peer"
            " WHERE p.fingerprint = ? AND m.direction = 'in' AND m.grp IS NULL"
            " AND m.legacy = 0 AND length(m.id) = 16 ORDER BY m.rowid DESC LIMIT 1",
            (fingerprint,),
        )
        return rows[0][0] if rows else None

    def mark_read(self, fingerprint: str, upto: bytes, now_ms: int) -> int:
        """Our direct messages to this peer up to id ``upto`` (byte order is creation
        order) were read: those sent or delivered and not marked yet get ``now_ms``.
        How many changed."""
        with self._tx() as db:
            pid = self._peer_id(db, fingerprint)
            return db.execute(
                "UPDATE messages SET read_ms = ? WHERE peer = ? AND direction = 'out'"
                " AND grp IS NULL AND read_ms IS NULL AND state IN ('sent', 'delivered')"
                " AND id <= ?",
                (now_ms, pid, upto),
            ).rowcount

    def mark_broadcast(self, rowids: list[int]) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE messages SET broadcast = 1 WHERE rowid = ?", [(r,) for r in rowids]
            )

    def scrub(self) -> None:
        """Overwrite what erased bodies left in the WAL and the sending log
        (``_scrub_wal``); the node calls it after a commit erased messages of a
        conversation with history off."""
        self._scrub_wal()
