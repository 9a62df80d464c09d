"""Handing our own key over: which contacts have not yet applied which of our rotations.

Rules:
- ``begin_handover(seq)`` makes one row per contact for our rotation ``seq``, once: a
  second call (a restart) changes nothing, so a contact that switched stays switched.
- A contact's pending rotations are handed over oldest first; ``handover_done`` clears
  those up to a rotation (the contact named its new key) or all of them (a session under
  our current key proves it knows it).
- Contacts added after a rotation get no row: they only ever met the new key.
"""

from __future__ import annotations

from .checks import check_fingerprint
from .core import StoreCore


class HandoverMixin(StoreCore):
    """Rows of ``key_handover`` and ``own_rotations``."""

    def begin_handover(self, seq: int, now: float) -> int:
        """Every contact owes rotation ``seq`` unless it was begun before; the rows made."""
        if type(seq) is not int or seq < 1:
            raise ValueError(f"a rotation is numbered from 1, not {seq!r}")
        with self._tx() as db:
            if db.execute("SELECT 1 FROM own_rotations WHERE seq = ?", (seq,)).fetchone():
                return 0
            db.execute("INSERT INTO own_rotations (seq, started_at) VALUES (?, ?)", (seq, now))
            return db.execute(
                "INSERT INTO key_handover (peer, seq) SELECT id, ? FROM peers", (seq,)
            ).rowcount

    def handover_pending(self, fingerprint: str) -> int | None:
        """The oldest of our rotations contact ``fingerprint`` has not applied, or None."""
        rows = self._rows(
            "SELECT min(h.seq) FROM key_handover h JOIN peers p ON p.id = h.peer"
            " WHERE p.fingerprint = ?",
            (check_fingerprint(fingerprint),),
        )
        return rows[0][0]

    def handover_done(self, fingerprint: str, upto: int | None = None) -> int:
        """Contact ``fingerprint`` applied our rotations up to ``upto`` (None: all);
        the rows cleared."""
        fp = check_fingerprint(fingerprint)
        return self._update(
            "DELETE FROM key_handover WHERE peer = (SELECT id FROM peers WHERE fingerprint = ?)"
            " AND seq <= ?",
            (fp, (1 << 62) if upto is None else upto),
        )

    def handover_waiting(self) -> dict[int, int]:
        """Our rotation seq -> how many contacts have not applied it yet (0s omitted)."""
        return dict(self._rows("SELECT seq, count(*) FROM key_handover GROUP BY seq"))

    def handover_table(self) -> dict[str, int]:
        """Contact fingerprint -> the oldest of our rotations it has not applied."""
        return dict(
            self._rows(
                "SELECT p.fingerprint, min(h.seq) FROM key_handover h"
                " JOIN peers p ON p.id = h.peer GROUP BY h.peer"
            )
        )
