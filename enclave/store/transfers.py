"""File transfers: the offer, its place in the history, its state, and the chunks done
(schema 5; issue 17).

Rules:
- A transfer is created with its history row (a ``messages`` row whose body is the
  file's name) in one transaction, so the conversation shows every file, and removing
  the peer (or its message row) takes the transfer with it.
- States, the only moves (anything else is refused and changes nothing; a settled
  transfer stays settled, so a late cancel or a late "delivered" from a race is a
  no-op)::

      offered -> accepted -> transferring -> delivered
         |           |            |
         +-----------+------------+------> failed (with a reason) | cancelled

  ``accepted -> delivered`` is an empty or one-batch file.
- Chunks done are a bitmap per transfer (``transfer_chunks``): held and synced to the
  ``.part`` for an incoming transfer, confirmed by the receiver for an outgoing one.
  ``mark_chunks`` writes the chunks of any number of transfers in one transaction, to
  be called after the data it records is synced (the fsync policy of the data is the
  promise of the record). Only an open transfer takes chunks.
- An outgoing file row is not in the outbox (``owed`` stays NULL): delivery would send
  its body as a chat. An open outgoing transfer is its own queue (``open_transfers``);
  its message row is ``sent`` and becomes ``delivered`` with the transfer.
- Offers are peer input: ``checks.check_offer`` refuses absurd ones with
  ``OfferRefused`` before anything is written; ``create_incoming`` also refuses an
  offer beyond the peer's quota of open offers, in the same transaction that counts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from .checks import OfferRefused, check_fingerprint, check_ms, check_offer
from .core import StoreCore
from .records import OPEN_STATES, TRANSFER_STATES, FileOffer, SourceFile, Transfer

# The moves between states (see the module's rules).
_NEXT: dict[str, frozenset[str]] = {
    "offered": frozenset({"accepted", "failed", "cancelled"}),
    "accepted": frozenset({"transferring", "delivered", "failed", "cancelled"}),
    "transferring": frozenset({"delivered", "failed", "cancelled"}),
    "delivered": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
_OPEN_SQL = "('offered', 'accepted', 'transferring')"

_COLS = (
    "t.key, p.fingerprint, t.direction, t.message, t.id, t.name, t.size, t.chunk_size,"
    " t.algorithm, t.digest, t.chunk_digests, t.compress, t.state, t.reason, c.done,"
    " t.source_path, t.source_size, t.source_mtime_ns, t.part_path, t.final_path,"
    " t.created_ms, t.updated_ms, t.peer"
)
_FROM = "transfers t JOIN peers p ON p.id = t.peer JOIN transfer_chunks c ON c.transfer = t.key"


def _transfer(r: tuple, open_name) -> Transfer:
    name = open_name(r[5], r[3], r[22], r[2])
    offer = FileOffer(r[4], name, r[6], r[7], r[8], r[9], r[10], bool(r[11]))
    source = SourceFile(r[15], r[16], r[17]) if r[15] is not None else None
    return Transfer(r[0], r[1], r[2], r[3], offer, r[12], r[13], r[14], source, *r[18:22])


class TransfersMixin(StoreCore):
    """Creating transfers, moving them through their states, and their chunks."""

    # -- creating ---------------------------------------------------------------------

    def create_outgoing(
        self, fingerprint: str, offer: FileOffer, source: SourceFile, now_ms: int
    ) -> Transfer:
        """A file we offer (``offered``), with its history row."""
        check_offer(offer)
        check_ms(now_ms)
        if not isinstance(source, SourceFile):
            raise TypeError("source must be a SourceFile")
        with self._tx() as db:
            pid = self._known_peer_id(db, check_fingerprint(fingerprint))
            rowid, name = self._file_row(db, pid, "out", offer, now_ms, now_ms)
            key = self._insert_transfer(db, pid, "out", rowid, offer, name, now_ms, source)
        return self._get(key)

    def create_incoming(
        self, fingerprint: str, offer: FileOffer, created_ms: int, now_ms: int, max_open: int
    ) -> tuple[Transfer, bool]:
        """A file a peer offers us (``offered``), with its history row; ``created_ms`` is
        the sender's time. Returns (transfer, True), or (the one stored, False) when the
        peer offers the same id again. Raises ``OfferRefused`` for an absurd offer, or
        when the peer already has ``max_open`` open incoming transfers."""
        check_offer(offer)
        check_ms(created_ms)
        check_ms(now_ms)
        if type(max_open) is not int or max_open < 0:
            raise ValueError(f"max_open must be a count, not {max_open!r}")
        with self._tx() as db:
            pid = self._known_peer_id(db, check_fingerprint(fingerprint))
            known = db.execute(
                "SELECT key FROM transfers WHERE peer = ? AND direction = 'in' AND id = ?",
                (pid, offer.id),
            ).fetchone()
            if known is None:
                if _open_count(db, pid, "in") >= max_open:
                    raise OfferRefused(f"too many pending offers (at most {max_open})")
                rowid, name = self._file_row(db, pid, "in", offer, created_ms, now_ms)
                key = self._insert_transfer(db, pid, "in", rowid, offer, name, now_ms, None)
        return (self._get(key), True) if known is None else (self._get(known[0]), False)

    def _file_row(self, db, pid: int, direction: str, offer: FileOffer, created: int, stored: int):
        """A file's history row (its body: the file's name, sealed); (its rowid, the name
        sealed for the transfer's own row)."""
        rowid = self.reserve_rowid()
        state = "sent" if direction == "out" else "received"
        db.execute(
            "INSERT INTO messages (rowid, peer, direction, id, body, created_ms, stored_ms,"
            " state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (rowid, pid, direction, offer.id, self._seal_body(offer.name, rowid, pid, direction),
             created, stored, state),
        )  # fmt: skip
        return rowid, self._seal_file_name(offer.name, rowid, pid, direction)

    @staticmethod
    def _insert_transfer(
        db: sqlite3.Connection,
        pid: int,
        direction: str,
        rowid: int,
        offer: FileOffer,
        name,
        now_ms: int,
        source: SourceFile | None,
    ) -> int:
        path, size, mtime = (source.path, source.size, source.mtime_ns) if source else (None,) * 3
        key = db.execute(
            "INSERT INTO transfers (peer, direction, id, message, name, size, chunk_size,"
            " algorithm, digest, chunk_digests, compress, source_path, source_size,"
            " source_mtime_ns, state, created_ms, updated_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'offered', ?, ?)",
            (pid, direction, offer.id, rowid, name, offer.size, offer.chunk_size)
            + (offer.algorithm, offer.digest, offer.chunk_digests, int(bool(offer.compress)))
            + (path, size, mtime, now_ms, now_ms),
        ).lastrowid
        bitmap = bytes(-(-offer.chunks // 8))
        db.execute("INSERT INTO transfer_chunks (transfer, bitmap) VALUES (?, ?)", (key, bitmap))
        return key

    # -- reading ----------------------------------------------------------------------

    def _get(self, key: int) -> Transfer:
        found = self.get_transfer(key)
        assert found is not None  # just written, in this store's one connection
        return found

    def get_transfer(self, key: int) -> Transfer | None:
        rows = self._rows(f"SELECT {_COLS} FROM {_FROM} WHERE t.key = ?", (int(key),))
        return _transfer(rows[0], self._open_file_name) if rows else None

    def find_transfer(
        self, fingerprint: str, direction: str, transfer_id: bytes
    ) -> Transfer | None:
        """The transfer a peer's message names: ids are unique per (peer, direction)."""
        sql = (
            f"SELECT {_COLS} FROM {_FROM} WHERE p.fingerprint = ? AND t.direction = ? AND t.id = ?"
        )
        rows = self._rows(sql, (fingerprint, direction, transfer_id))
        return _transfer(rows[0], self._open_file_name) if rows else None

    def open_transfers(
        self, fingerprint: str | None = None, direction: str | None = None
    ) -> list[Transfer]:
        """Transfers not yet settled (offered, accepted, transferring), oldest first; of
        one peer and one direction if given. What a node resumes when a peer is back."""
        sql = f"SELECT {_COLS} FROM {_FROM} WHERE t.state IN {_OPEN_SQL}"
        args: tuple = ()
        if fingerprint is not None:
            sql, args = sql + " AND p.fingerprint = ?", (fingerprint,)
        if direction is not None:
            sql, args = sql + " AND t.direction = ?", (*args, direction)
        return [
            _transfer(r, self._open_file_name) for r in self._rows(sql + " ORDER BY t.key", args)
        ]

    def open_sources(self) -> set[str]:
        """The source paths of open outgoing transfers: the files still read for them."""
        sql = (
            "SELECT DISTINCT source_path FROM transfers"
            f" WHERE direction = 'out' AND state IN {_OPEN_SQL} AND source_path IS NOT NULL"
        )
        return {r[0] for r in self._rows(sql, ())}

    def transfers_of(self, fingerprint: str | None = None, limit: int = 200) -> list[Transfer]:
        """The newest ``limit`` transfers in any state (of one peer if given), oldest first."""
        sql = f"SELECT {_COLS} FROM {_FROM}"
        args: tuple = ()
        if fingerprint is not None:
            sql, args = sql + " WHERE p.fingerprint = ?", (fingerprint,)
        rows = self._rows(sql + " ORDER BY t.key DESC LIMIT ?", (*args, int(limit)))
        return [_transfer(r, self._open_file_name) for r in reversed(rows)]

    def open_offers(self, fingerprint: str) -> int:
        """Open incoming transfers from this peer: what its quota of offers counts."""
        with self._lock:
            pid = self._peer_id(self._db, fingerprint)
            return 0 if pid is None else _open_count(self._db, pid, "in")

    def missing_chunks(self, key: int) -> list[int]:
        """Indexes of the chunks not yet done, in order ([] for an unknown transfer)."""
        sql = (
            "SELECT t.size, t.chunk_size, c.bitmap FROM transfers t"
            " JOIN transfer_chunks c ON c.transfer = t.key WHERE t.key = ?"
        )
        rows = self._rows(sql, (int(key),))
        if not rows:
            return []
        size, chunk_size, bitmap = rows[0]
        chunks = -(-size // chunk_size)
        return [i for i in range(chunks) if not bitmap[i >> 3] >> (i & 7) & 1]

    # -- changing ---------------------------------------------------------------------

    def mark_chunks(self, done: Mapping[int, Iterable[int]]) -> dict[int, int]:
        """Record chunks done for each transfer key, in one transaction; returns each
        open transfer's count of chunks done (a settled or unknown one is skipped).
        An index outside the file is a caller's bug: ValueError, nothing written."""
        counts: dict[int, int] = {}
        with self._tx() as db:
            for key, indexes in done.items():
                count = _mark(db, int(key), indexes)
                if count is not None:
                    counts[int(key)] = count
        return counts

    def accept_transfer(self, key: int, part_path: str, now_ms: int) -> bool:
        """offered -> accepted for an incoming file, writing into ``part_path``."""
        if not isinstance(part_path, str) or not part_path:
            raise TypeError("part_path must be a non-empty str")
        return self._move(key, "accepted", check_ms(now_ms), None, part_path=part_path)

    def set_transfer_state(
        self,
        key: int,
        state: str,
        now_ms: int,
        reason: str | None = None,
        final_path: str | None = None,
    ) -> bool:
        """Move a transfer to ``state`` if the rules allow it (True), else change
        nothing (False). ``failed`` needs a reason; ``final_path`` is where a delivered
        incoming file landed."""
        if state not in TRANSFER_STATES:
            raise ValueError(f"state must be one of {TRANSFER_STATES}, not {state!r}")
        if state == "failed" and not (isinstance(reason, str) and reason.strip()):
            raise ValueError("a failed transfer needs a reason a user can read")
        if final_path is not None and state != "delivered":
            raise ValueError("only a delivered transfer has a final path")
        return self._move(key, state, check_ms(now_ms), reason, final_path=final_path)

    def cancel_transfer(self, key: int, now_ms: int, reason: str | None = None) -> Transfer | None:
        """Cancel an open transfer (either side may). Returns it as it now is, so the
        caller can remove its ``.part``; None if it was settled already or unknown."""
        if not self._move(key, "cancelled", check_ms(now_ms), reason):
            return None
        return self.get_transfer(key)

    def _move(self, key: int, state: str, now_ms: int, reason: str | None, **paths) -> bool:
        paths = {column: path for column, path in paths.items() if path is not None}
        with self._tx() as db:
            row = db.execute(
                "SELECT state, direction, message FROM transfers WHERE key = ?", (int(key),)
            ).fetchone()
            if row is None or state not in _NEXT[row[0]]:
                return False
            sets = "".join(f", {column} = ?" for column in paths)
            db.execute(
                f"UPDATE transfers SET state = ?, reason = ?, updated_ms = ?{sets} WHERE key = ?",
                (state, reason, now_ms, *paths.values(), int(key)),
            )
            if state == "delivered" and row[1] == "out":
                db.execute(
                    "UPDATE messages SET state = 'delivered', delivered_ms = ?"
                    " WHERE rowid = ? AND state = 'sent'",
                    (now_ms, row[2]),
                )
        return True


def _open_count(db: sqlite3.Connection, pid: int, direction: str) -> int:
    sql = (
        "SELECT count(*) FROM transfers INDEXED BY transfers_open WHERE peer = ?"
        f" AND direction = ? AND state IN {_OPEN_SQL}"
    )
    return db.execute(sql, (pid, direction)).fetchone()[0]


def _mark(db: sqlite3.Connection, key: int, indexes: Iterable[int]) -> int | None:
    """Set the bits of ``indexes`` in one transfer's bitmap; its new count, or None if
    the transfer is settled or unknown."""
    row = db.execute(
        "SELECT t.size, t.chunk_size, t.state, c.bitmap, c.done FROM transfers t"
        " JOIN transfer_chunks c ON c.transfer = t.key WHERE t.key = ?",
        (key,),
    ).fetchone()
    if row is None or row[2] not in OPEN_STATES:
        return None
    size, chunk_size, _, bitmap, done = row
    chunks, bits = -(-size // chunk_size), bytearray(bitmap)
    for i in indexes:
        if type(i) is not int or not 0 <= i < chunks:
            raise ValueError(f"chunk {i!r} of a file of {chunks} chunks")
        byte, bit = i >> 3, 1 << (i & 7)
        if not bits[byte] & bit:
            bits[byte] |= bit
            done += 1
    if done != row[4]:
        db.execute(
            "UPDATE transfer_chunks SET bitmap = ?, done = ? WHERE transfer = ?",
            (bytes(bits), done, key),
        )
    return done
