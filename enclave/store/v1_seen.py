"""The v1 seen tables: persistent replay protection for legacy (v1) envelopes and the
re-signing detector (PROTOCOL.md d, receive steps 6 and 9). They are not tied to
``peers``, so removing and re-adding a peer does not reopen a replay window."""

from __future__ import annotations

from .core import StoreCore


class V1SeenMixin(StoreCore):
    """``v1_seen`` (sender, message_id) and ``v1_wrapped`` (hash of the wrapped key ->
    the sender that first presented it), both pruned by the envelope's ``ts``."""

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
