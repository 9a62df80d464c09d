"""A contact's chain of identity keys: successions applied in place, and revocation.

Rules:
- A succession changes the peer row's fingerprint and public key in place: the row's
  integer id, and so its history, outbox, transfers and group rows, stay with the person.
- The store does not judge statements (that is ``protocol.succession.judge``, run by the
  node against ``key_chain``); it only refuses what would break its own invariants: an
  unknown old key, a seq that is not above the current one, a new key that another peer row holds,
  an old key that already has a successor. Each refusal changes nothing.
- A revoked key stays revoked until the row is removed (re-pairing makes a new row).
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from .checks import check_fingerprint
from .core import StoreCore


class KeyChain(NamedTuple):
    """What the node needs to judge a statement for one contact."""

    fingerprint: str
    public_key: str
    seq: int  # the current key's place in its chain, 0 for the key met at pairing
    retired: dict  # old fp (hex) -> the successor applied (hex)
    revoked: bool


class KeyChainMixin(StoreCore):
    """Applying successions and revocations to peer rows; reading a contact's chain."""

    def key_chain(self, fingerprint: str) -> KeyChain | None:
        fp = check_fingerprint(fingerprint)
        with self._lock:
            db = self._db
            row = db.execute(
                "SELECT id, public_key, key_seq, revoked IS NOT NULL FROM peers"
                " WHERE fingerprint = ?",
                (fp,),
            ).fetchone()
            if row is None:
                return None
            history = db.execute(
                "SELECT old_fp, new_fp FROM key_history WHERE peer = ?", (row[0],)
            ).fetchall()
        return KeyChain(fp, row[1], row[2], dict(history), bool(row[3]))

    def apply_succession(
        self, old_fp: str, new_fp: str, new_pem: str, seq: int, statement: bytes, now: float
    ) -> None:
        """Move the contact known by ``old_fp`` to its successor, in one transaction;
        ValueError (and nothing changed) for what the module docstring refuses."""
        old_fp, new_fp = check_fingerprint(old_fp), check_fingerprint(new_fp)
        with self._tx() as db:
            pid = self._current_row(db, old_fp, seq)
            if db.execute("SELECT 1 FROM peers WHERE fingerprint = ?", (new_fp,)).fetchone():
                raise ValueError("the new key is already another contact's")
            try:
                db.execute(
                    "INSERT INTO key_history (peer, seq, old_fp, new_fp, statement, applied_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (pid, seq, old_fp, new_fp, statement, now),
                )
            except sqlite3.IntegrityError:
                raise ValueError("the old key already has a successor") from None
            db.execute(
                "UPDATE peers SET fingerprint = ?, public_key = ?, key_seq = ? WHERE id = ?",
                (new_fp, new_pem, seq, pid),
            )
            self._ids.pop(old_fp, None)

    def _current_row(self, db: sqlite3.Connection, fp: str, seq: int) -> int:
        row = db.execute("SELECT id, key_seq FROM peers WHERE fingerprint = ?", (fp,)).fetchone()
        if row is None:
            raise ValueError("no contact holds the old key")
        if seq <= row[1]:
            raise ValueError(f"seq {seq} does not follow {row[1]}")
        return row[0]

    def key_history(self, fingerprint: str) -> list[tuple[int, str, str, float]]:
        """(seq, old fp, new fp, applied at) of every key this contact left, oldest first."""
        return self._rows(
            "SELECT h.seq, h.old_fp, h.new_fp, h.applied_at FROM key_history h"
            " JOIN peers p ON p.id = h.peer WHERE p.fingerprint = ? ORDER BY h.seq",
            (check_fingerprint(fingerprint),),
        )

    def succession_statement(self, old_fp: str) -> bytes | None:
        """The statement that retired ``old_fp``, as applied (for re-sending an ack)."""
        rows = self._rows(
            "SELECT statement FROM key_history WHERE old_fp = ?", (check_fingerprint(old_fp),)
        )
        return rows[0][0] if rows else None

    def set_revoked(self, fingerprint: str, certificate: bytes) -> bool:
        """Mark the contact's current key revoked (True), or False if it was already."""
        fp = check_fingerprint(fingerprint)
        return bool(
            self._update(
                "UPDATE peers SET revoked = ? WHERE fingerprint = ? AND revoked IS NULL",
                (certificate, fp),
            )
        )

    def is_revoked(self, fingerprint: str) -> bool:
        rows = self._rows(
            "SELECT 1 FROM peers WHERE fingerprint = ? AND revoked IS NOT NULL",
            (check_fingerprint(fingerprint),),
        )
        return bool(rows)
