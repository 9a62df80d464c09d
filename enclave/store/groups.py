"""Groups: the user's groups, their signed membership logs, and the pages of their posts
(schema 6).

Rules:
- A group is named by its 16-byte random id; ``groups.key`` is the store's own number
  for it, what its posts' ``messages.grp`` holds.
- The membership log is opaque to the store: record i is epoch i, appended in order
  with no gap, and a record once stored is never replaced (the same record again is
  accepted, another one for a stored epoch is refused and nothing of the call is kept).
- A post we send is one outgoing row per member (same id; ``write_cycle`` writes them),
  each owed in the outbox on its own; a received post is one incoming row. A page shows
  our post once, with the state of each member's row.
- Posts are ordered by (Lamport time, sender fingerprint), the order every member sees.
- Deleting a group takes its records and its posts with it (their queued rows too).
- ``disappear_s`` (schema 14) mirrors the disappearing-messages timer at the log's head:
  the node passes it with the records that change it. A post's own expiry is fixed
  when its row is written (disappear.py), from the timer at the post's epoch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from .history import HistoryMixin
from .records import GROUP_STATES, GroupLine, GroupRow

_NO_LAMPORT = (1 << 63) - 1  # above every Lamport time the store takes


def _check_group_id(group_id: object) -> bytes:
    if type(group_id) is not bytes:
        raise TypeError("a group id must be bytes")
    if len(group_id) != 16:
        raise ValueError(f"a group id is 16 bytes, not {len(group_id)}")
    return group_id


def _check_group_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError("a group name must be str")
    return name


def _check_state(state: object) -> str:
    if state not in GROUP_STATES:
        raise ValueError(f"a group's state is one of {GROUP_STATES}, not {state!r}")
    return state


def _check_timer(seconds: object) -> int:
    if type(seconds) is not int or seconds < 0:
        raise ValueError(f"a group's timer is seconds >= 0, not {seconds!r}")
    return seconds


def _check_records(records: Iterable[bytes]) -> list[bytes]:
    records = list(records)
    for record in records:
        if type(record) is not bytes:
            raise TypeError("a membership record must be bytes")
    return records


class GroupsMixin(HistoryMixin):
    """Creating groups, their membership records and state; pages of their posts."""

    # -- groups and their records -------------------------------------------------------

    def create_group(
        self,
        group_id: bytes,
        name: str,
        records: Iterable[bytes],
        now_ms: int,
        disappear_s: int = 0,
    ) -> int:
        """A group the user is a member of, with its records from epoch 0 (and the
        disappearing-messages timer they set, schema 14); its key. A group id already
        stored raises ``sqlite3.IntegrityError``."""
        gid, name = _check_group_id(group_id), _check_group_name(name)
        records = _check_records(records)
        if type(now_ms) is not int:
            raise TypeError("now_ms must be integer milliseconds")
        with self._tx() as db:
            key = db.execute(
                "INSERT INTO groups (id, name, state, created_ms, disappear_s)"
                " VALUES (?, ?, 'member', ?, ?)",
                (gid, self._seal_group_name(name, gid), now_ms, _check_timer(disappear_s)),
            ).lastrowid
            db.executemany(
                "INSERT INTO group_records (grp, epoch, record) VALUES (?, ?, ?)",
                [(key, e, self._seal_record(r, gid, e)) for e, r in enumerate(records)],
            )
        return key

    def add_group_records(
        self,
        group_id: bytes,
        first_epoch: int,
        records: Sequence[bytes],
        name: str | None = None,
        state: str | None = None,
        disappear_s: int | None = None,
    ) -> int:
        """Append records ``first_epoch``, ``first_epoch + 1``... in one transaction, and
        set the name, state and disappearing-messages timer (the log's at its new head,
        schema 14) if given; returns how many records were new.

        A record for an epoch already stored must be the same bytes; a different one,
        or a gap after the last stored epoch, raises ``ValueError`` and nothing of the
        call is kept. An unknown group raises ``ValueError``."""
        gid = _check_group_id(group_id)
        records = _check_records(records)
        if type(first_epoch) is not int or first_epoch < 0:
            raise ValueError(f"first_epoch must be an integer >= 0, not {first_epoch!r}")
        if name is not None:
            name = self._seal_group_name(_check_group_name(name), gid)
        if state is not None:
            _check_state(state)
        if disappear_s is not None:
            _check_timer(disappear_s)
        with self._tx() as db:
            key = self._group_key(db, gid)
            new = _new_records(db, key, gid, first_epoch, records, self._open_record)
            db.executemany(
                "INSERT INTO group_records (grp, epoch, record) VALUES (?, ?, ?)",
                [(k, e, self._seal_record(r, gid, e)) for k, e, r in new],
            )
            db.execute(
                "UPDATE groups SET name = coalesce(?, name), state = coalesce(?, state),"
                " disappear_s = coalesce(?, disappear_s) WHERE key = ?",
                (name, state, disappear_s, key),
            )
        return len(new)

    def set_group_state(self, group_id: bytes, state: str) -> bool:
        """'member', 'left' or 'removed'; False if the group is not stored."""
        gid, state = _check_group_id(group_id), _check_state(state)
        return self._update("UPDATE groups SET state = ? WHERE id = ?", (state, gid)) > 0

    def list_groups(self) -> list[GroupRow]:
        """Every group, the oldest first, each with its records in epoch order."""
        with self._lock:
            groups = self._db.execute(
                "SELECT key, id, name, state, created_ms, disappear_s FROM groups"
                " ORDER BY created_ms, key"
            ).fetchall()
            ids = {g[0]: g[1] for g in groups}
            records: dict[int, list[bytes]] = {}
            for key, epoch, record in self._db.execute(
                "SELECT grp, epoch, record FROM group_records ORDER BY grp, epoch"
            ):
                records.setdefault(key, []).append(self._open_record(record, ids[key], epoch))
        return [
            GroupRow(k, g, self._open_group_name(n, g), st, at, tuple(records.get(k, ())), t)
            for k, g, n, st, at, t in groups
        ]

    def get_group(self, group_id: bytes) -> GroupRow | None:
        gid = _check_group_id(group_id)
        with self._lock:
            row = self._db.execute(
                "SELECT key, id, name, state, created_ms, disappear_s FROM groups WHERE id = ?",
                (gid,),
            ).fetchone()
            if row is None:
                return None
            records = self._db.execute(
                "SELECT epoch, record FROM group_records WHERE grp = ? ORDER BY epoch", (row[0],)
            ).fetchall()
        key, gid, name, state, created, timer = row
        name = self._open_group_name(name, gid)
        opened = tuple(self._open_record(r, gid, e) for e, r in records)
        return GroupRow(key, gid, name, state, created, opened, timer)

    def delete_group(self, group_id: bytes) -> bool:
        """Forget a group with its records and posts (queued ones leave the outbox).
        True if it existed."""
        gid = _check_group_id(group_id)
        with self._tx() as db:
            row = db.execute("SELECT key FROM groups WHERE id = ?", (gid,)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM messages WHERE grp = ?", (row[0],))
            db.execute("DELETE FROM groups WHERE key = ?", (row[0],))
        self._scrub_wal()
        return True

    @staticmethod
    def _group_key(db: sqlite3.Connection, gid: bytes) -> int:
        row = db.execute("SELECT key FROM groups WHERE id = ?", (gid,)).fetchone()
        if row is None:
            raise ValueError(f"no group {gid.hex()}")
        return row[0]

    # -- posts --------------------------------------------------------------------------

    def group_history(
        self,
        group_id: bytes,
        own_fp: str,
        limit: int = 50,
        before: tuple[int, str] | None = None,
    ) -> list[GroupLine]:
        """The newest ``limit`` posts of a group (before the post at ``before`` = its
        (lamport, sender), if given), in display order: (Lamport time, sender
        fingerprint), oldest first. Our own post is one line with each member's state;
        its sender is ``own_fp``. Deleted rows are not shown; an unknown group has none.

        Rows are read newest first through messages_by_group, only as far back as the
        page reaches (every row of the oldest Lamport time on it, for the ties)."""
        gid = _check_group_id(group_id)
        if before is None:
            top, top_sender = _NO_LAMPORT, None
        else:
            top, top_sender = before
        sql = (
            "SELECT m.rowid, p.fingerprint, m.direction, m.id, m.body, m.created_ms,"
            " m.stored_ms, m.state, m.lamport, m.epoch, m.gseq, m.peer"
            " FROM messages m JOIN peers p ON p.id = m.peer"
            " WHERE m.grp = ? AND m.lamport <= ? AND m.state != 'deleted'"
            " ORDER BY m.lamport DESC"
        )
        with self._lock:
            row = self._db.execute("SELECT key FROM groups WHERE id = ?", (gid,)).fetchone()
            if row is None or limit <= 0:
                return []
            rows = self._db.execute(sql, (row[0], top))
            posts = _page(rows, own_fp, top, top_sender, limit, self._open_body)
        page = sorted(posts.items())[-limit:]
        return [GroupLine(*p[:10], tuple(sorted(p[10]))) for _, p in page]

    def group_post_counters(self, group_id: bytes, own_fp: str) -> tuple[int, int]:
        """(the highest Lamport time of any post of the group, the highest seq of our own
        posts), each 0 if none: where the node's clocks resume after a restart. Deleted
        rows count too (their times were used). ``own_fp`` names us; our posts are the
        outgoing rows."""
        gid = _check_group_id(group_id)
        with self._lock:
            row = self._db.execute("SELECT key FROM groups WHERE id = ?", (gid,)).fetchone()
            if row is None:
                return 0, 0
            lamport, seq = self._db.execute(
                "SELECT coalesce(max(lamport), 0),"
                " coalesce(max(CASE WHEN direction = 'out' THEN gseq END), 0)"
                " FROM messages WHERE grp = ?",
                (row[0],),
            ).fetchone()
        return lamport, seq


def _new_records(db, key: int, gid: bytes, first_epoch: int, records, open_record) -> list[tuple]:
    """The (grp, epoch, record) rows of ``records`` not stored yet; ValueError for a
    gap after the last stored epoch or another record at a stored one."""
    stored = {
        epoch: open_record(record, gid, epoch)
        for epoch, record in db.execute(
            "SELECT epoch, record FROM group_records WHERE grp = ? AND epoch >= ?",
            (key, first_epoch),
        )
    }
    count = db.execute("SELECT count(*) FROM group_records WHERE grp = ?", (key,)).fetchone()[0]
    if first_epoch > count:
        raise ValueError(
            f"group {gid.hex()} holds epochs 0 to {count - 1}: epoch {first_epoch} would leave a gap"
        )
    new = []
    for epoch, record in enumerate(records, first_epoch):
        if epoch >= count:
            new.append((key, epoch, record))
        elif stored[epoch] != record:
            raise ValueError(f"group {gid.hex()} already holds another record for epoch {epoch}")
    return new


def _page(rows, own_fp: str, top: int, top_sender: str | None, limit: int, open_body) -> dict:
    """(lamport, sender, id) -> the fields of a GroupLine, from ``rows`` newest first:
    as far as the page reaches, and every row of its oldest Lamport time (the ties)."""
    posts: dict[tuple, list] = {}
    last = None  # the Lamport time at which the page was full
    for r in rows:
        rowid, fp, direction, mid, body, created, stored, state, lamport = r[:9]
        if last is not None and lamport < last:
            break
        sender = own_fp if direction == "out" else fp
        if top_sender is not None and lamport == top and sender >= top_sender:
            continue
        post = posts.get((lamport, sender, mid))
        if post is None:
            body = open_body(body, rowid, r[11], direction)  # every copy holds the same text
            post = [mid, sender, direction, body, created, stored, lamport, r[9], r[10], {}, []]
            posts[(lamport, sender, mid)] = post
            if last is None and len(posts) >= limit:
                last = lamport
        if direction == "out":
            post[9][fp] = state
        post[10].append(rowid)
    return posts
