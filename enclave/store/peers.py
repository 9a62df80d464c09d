"""The peers table: the people a node talks to, their keys, addresses and marks."""

from __future__ import annotations

import sqlite3
import unicodedata

from enclave.errors import UserError

from .checks import HEX, check_address, check_fingerprint, check_name
from .core import StoreCore
from .records import PROTOS, Peer
from .sealing import DAMAGED, LOCKED

_UNNAMED = (LOCKED, DAMAGED)  # what a sealed name reads as when it cannot be read

_PEER_COLS = (
    "id, fingerprint, name, public_key, address, verified, proto, v2_seen, blocked, "
    "hwm_ms, added_at, last_seen, learned_address, contact, revoked IS NOT NULL, receipts,"
    " keep_history, disappear_s"
)


def _folded(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def _short(fp: str) -> str:
    """The start of a fingerprint as every face shows it: groups of four."""
    return f"{fp[:4]} {fp[4:8]}"


def _listed(p: Peer) -> tuple:
    """The order of ``list_peers``: named first, by name in any case, then fingerprint."""
    return p.name is None, (p.name or "").casefold(), p.fingerprint


def _check_pem(public_key: object) -> None:
    if not isinstance(public_key, str) or "BEGIN PUBLIC KEY" not in public_key:
        raise ValueError("public_key must be an SPKI PEM string")


def _check_same_key(fp: str, stored: str, public_key: str) -> None:
    if stored.split() != public_key.split():  # same PEM up to whitespace
        raise ValueError(f"peer {_short(fp)}… is already known with a different public key")


class PeersMixin(StoreCore):
    """Adding, finding and marking peers; the node's per-peer bookkeeping.

    A name is sealed like what people wrote (``peers.name``, bound to ``peers.id``):
    so the lookups by name and the order by name are made here, on the opened names
    (contacts are few), not by SQL."""

    def _peer(self, r: tuple) -> Peer:
        """A ``_PEER_COLS`` row as a ``Peer``, its name opened."""
        name = self._open_peer_name(r[2], r[0])
        flags = bool(r[5]), r[6], bool(r[7]), bool(r[8])
        tail = bool(r[13]), bool(r[14]), bool(r[15]), bool(r[16])
        return Peer(r[1], name, r[3], r[4], *flags, r[9], r[10], r[11], r[12], *tail, r[17])

    def _peers(self, sql: str, args: tuple = ()) -> list[Peer]:
        return [self._peer(r) for r in self._rows(sql, args)]

    def upsert_peer(
        self, fingerprint: str, public_key: str, address: str | None, name: str | None, now: float
    ) -> bool:
        """Add a peer (True) or update the address/name given for a known one (False).

        An address given here is the user's word: it replaces the given address and
        forgets a learned one (``learn_address``). A group member that was not a contact
        becomes one."""
        fp = check_fingerprint(fingerprint)
        name = check_name(name)
        address = check_address(address)
        _check_pem(public_key)
        with self._tx() as db:
            self._check_name_free(db, name, fp)
            row = db.execute(
                "SELECT id, public_key FROM peers WHERE fingerprint = ?", (fp,)
            ).fetchone()
            if row is None:
                # The name is sealed under the row's id: the row comes first.
                pid = db.execute(
                    "INSERT INTO peers (fingerprint, public_key, address, added_at)"
                    " VALUES (?, ?, ?, ?)",
                    (fp, public_key, address, now),
                ).lastrowid
                if name is not None:
                    sealed = self._seal_peer_name(name, pid)
                    db.execute("UPDATE peers SET name = ? WHERE id = ?", (sealed, pid))
                return True
            pid, stored = row
            _check_same_key(fp, stored, public_key)
            db.execute(
                "UPDATE peers SET address = coalesce(?1, address), name = coalesce(?2, name),"
                " learned_address = CASE WHEN ?1 IS NULL THEN learned_address END, contact = 1"
                " WHERE id = ?3",
                (address, self._seal_peer_name(name, pid), pid),
            )
            return False

    def add_member_peer(
        self, fingerprint: str, public_key: str, now: float, address: str | None = None
    ) -> bool:
        """Make sure a group member has a peer row (its sessions and posts need one):
        a new one is not a contact (``contact`` False), with no name and ``address``
        (the group log's hint, where it is dialled) (True). A known peer is left as it
        is (False)."""
        fp = check_fingerprint(fingerprint)
        _check_pem(public_key)
        address = check_address(address)
        with self._tx() as db:
            row = db.execute("SELECT public_key FROM peers WHERE fingerprint = ?", (fp,)).fetchone()
            if row is not None:
                _check_same_key(fp, row[0], public_key)
                return False
            db.execute(
                "INSERT INTO peers (fingerprint, public_key, address, added_at, contact)"
                " VALUES (?, ?, ?, ?, 0)",
                (fp, public_key, address, now),
            )
            return True

    def _check_name_free(self, db: sqlite3.Connection, name: str | None, fp: str) -> None:
        if name is None:
            return
        # Names that only look different (case, compatibility forms: "Bob", "ｂｏｂ") are
        # one name: a second contact may not pose as the first.
        want = _folded(name)
        rows = db.execute(
            "SELECT id, fingerprint, name FROM peers WHERE name IS NOT NULL AND fingerprint != ?",
            (fp,),
        ).fetchall()
        for pid, other_fp, other in rows:
            if _folded(self._open_peer_name(other, pid)) == want:
                raise UserError(f"the name '{name}' is already used by peer {_short(other_fp)}…")

    def get_peer(self, fingerprint: str) -> Peer | None:
        peers = self._peers(f"SELECT {_PEER_COLS} FROM peers WHERE fingerprint = ?", (fingerprint,))
        return peers[0] if peers else None

    def list_peers(self, members: bool = False) -> list[Peer]:
        """The contacts; with ``members`` also the group members that are not contacts."""
        where = "" if members else " WHERE contact = 1"
        return sorted(self._peers(f"SELECT {_PEER_COLS} FROM peers{where}"), key=_listed)

    def find_peers(self, query: str) -> list[Peer]:
        """The peer named ``query`` (any case); else peers whose fingerprint starts with
        it (at least 8 hex digits, any case, spaces and colons ignored); else []."""
        query = query.strip()
        wanted = query.casefold()
        for peer in self._peers(f"SELECT {_PEER_COLS} FROM peers WHERE name IS NOT NULL"):
            if peer.name not in _UNNAMED and peer.name.casefold() == wanted:
                return [peer]
        prefix = "".join(query.split()).replace(":", "").lower()
        if len(prefix) < 8 or len(prefix) > 64 or not HEX.issuperset(prefix):
            return []
        sql = f"SELECT {_PEER_COLS} FROM peers WHERE substr(fingerprint, 1, ?) = ? ORDER BY fingerprint"
        return self._peers(sql, (len(prefix), prefix))

    def remove_peer(self, fingerprint: str) -> bool:
        """Forget a peer together with its history and outbox. True if it existed."""
        with self._lock:
            self._ids.pop(fingerprint, None)
            return self._update("DELETE FROM peers WHERE fingerprint = ?", (fingerprint,)) > 0

    def set_name(self, fingerprint: str, name: str | None) -> None:
        """Rename a peer (None: no name); a name another peer has is refused."""
        name = check_name(name)
        with self._tx() as db:
            self._check_name_free(db, name, fingerprint)
            row = db.execute(
                "SELECT id FROM peers WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()
            if row is None:
                raise UserError(f"no peer {_short(fingerprint)}… (was it removed?)")
            sealed = self._seal_peer_name(name, row[0])
            db.execute("UPDATE peers SET name = ? WHERE id = ?", (sealed, row[0]))

    def owed_count(self, fingerprint: str) -> int:
        """Outgoing messages not yet delivered to this peer (what removing it drops)."""
        sql = (
            "SELECT count(*) FROM messages m JOIN peers p ON p.id = m.peer"
            " WHERE p.fingerprint = ? AND m.owed IS NOT NULL"
        )
        return self._rows(sql, (fingerprint,))[0][0]

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

    def set_keep_history(self, fingerprint: str, keep: bool) -> None:
        """History on (the default) or off with this peer (schema 11): with it off the
        node stores what it receives as tombstones and erases what it sent once settled."""
        self._set_user_flag(fingerprint, "keep_history", int(bool(keep)))

    def set_blocked(self, fingerprint: str, blocked: bool) -> None:
        self._set_user_flag(fingerprint, "blocked", int(bool(blocked)))

    def _set_user_flag(self, fingerprint: str, column: str, value: object) -> None:
        # The user named this peer a moment ago; it may have been removed meanwhile.
        if not self._update(
            f"UPDATE peers SET {column} = ? WHERE fingerprint = ?", (value, fingerprint)
        ):
            raise UserError(f"no peer {_short(fingerprint)}… (was it removed?)")

    # The node calls these for a peer it is talking to; a peer removed meanwhile is ignored.

    def mark_v2_seen(self, fingerprint: str) -> None:
        self._update("UPDATE peers SET v2_seen = 1 WHERE fingerprint = ?", (fingerprint,))

    def touch_peer(self, fingerprint: str, now: float) -> None:
        self._update("UPDATE peers SET last_seen = ? WHERE fingerprint = ?", (now, fingerprint))

    def learn_address(self, fingerprint: str, address: str | None) -> bool:
        """Record where a peer's authenticated session came from (None: from its given
        address again). The given address is kept as the fallback. True if it changed."""
        address = check_address(address)
        sql = (
            "UPDATE peers SET learned_address = ?1 WHERE fingerprint = ?2"
            " AND learned_address IS NOT ?1"
        )
        return self._update(sql, (address, fingerprint)) > 0

    def raise_hwm(self, fingerprint: str, ts_ms: int) -> None:
        sql = "UPDATE peers SET hwm_ms = max(hwm_ms, ?) WHERE fingerprint = ?"
        self._update(sql, (int(ts_ms), fingerprint))

    def mark_peers(self, marks: dict[str, tuple[int | None, float | None]]) -> None:
        """The node's bookkeeping of several peers in one transaction: fingerprint ->
        (handshake high-water mark to raise to, last-seen time); None leaves that one
        as it is. A peer removed meanwhile is ignored, as by ``raise_hwm`` and ``touch_peer``."""
        hwm = [(int(h), fp) for fp, (h, _seen) in marks.items() if h is not None]
        seen = [(t, fp) for fp, (_h, t) in marks.items() if t is not None]
        with self._tx() as db:
            db.executemany("UPDATE peers SET hwm_ms = max(hwm_ms, ?) WHERE fingerprint = ?", hwm)
            db.executemany("UPDATE peers SET last_seen = ? WHERE fingerprint = ?", seen)
