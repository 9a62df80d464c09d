"""Taking a store file from its schema version to the current one, forward only.

Rules:
- The schema version lives in ``PRAGMA user_version``. ``MIGRATIONS[n]`` takes a
  database from version n to n + 1, so ``SCHEMA_VERSION == len(MIGRATIONS)``.
- Steps are only ever appended. A released step is never edited: a database that
  already ran it would not run it again, and two Enclaves would disagree on the schema.
  The SQL of each step is in ``schema``.
- Each step runs in its own ``BEGIN IMMEDIATE`` transaction together with the version
  bump, so a crash leaves the database at n or at n + 1, never in between. The version
  is re-read inside that transaction, so two processes opening the same file at once
  apply each step exactly once.
- Steps are plain SQL statements run one by one (never ``executescript``, which commits
  on its own). Python may be used where SQL cannot express a step.
- Version 1 stamps ``PRAGMA application_id`` so a foreign SQLite file is recognised and
  refused instead of being migrated (``dbfile.check_file``).
"""

import sqlite3
from collections.abc import Callable, Sequence

from .schema import (
    V1,
    V2_COPY,
    V2_SWAP,
    V2_TABLES,
    V3,
    V4,
    V5,
    V6,
    V7,
    V8,
    V9,
    V10,
    V11,
    V12,
    V13,
    V14,
)

Migration = Callable[[sqlite3.Connection], None]


def sql_step(*statements: str) -> Migration:
    """A migration made of SQL statements, run in order inside the step's transaction."""

    def step(db: sqlite3.Connection) -> None:
        for statement in statements:
            db.execute(statement)

    return step


MIGRATIONS: list[Migration] = [
    sql_step(*V1),  # 0 -> 1
    sql_step(*V2_TABLES, *V2_COPY, *V2_SWAP),  # 1 -> 2: integer peer ids, lean rows
    sql_step(*V3),  # 2 -> 3: the outbox is messages.owed
    sql_step(*V4),  # 3 -> 4: peers.learned_address
    sql_step(*V5),  # 4 -> 5: file transfers and the chunks they hold
    sql_step(*V6),  # 5 -> 6: groups, their records, group posts, member peers
    sql_step(*V7),  # 6 -> 7: key succession history, key_seq, revocation
    sql_step(*V8),  # 7 -> 8: handing our own key over to each contact
    sql_step(*V9),  # 8 -> 9: read receipts, the broadcast mark
    sql_step(*V10),  # 9 -> 10: replies quote a message by its id
    sql_step(*V11),  # 10 -> 11: history off per conversation (peers.keep_history)
    sql_step(*V12),  # 11 -> 12: disappearing messages (timers, expiry)
    sql_step(*V13),  # 12 -> 13: the store key's check (sealed history)
    sql_step(*V14),  # 13 -> 14: a group's disappearing-messages timer
]

SCHEMA_VERSION = len(MIGRATIONS)  # what this release writes


def user_version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def known_version() -> int:
    """The newest version this Enclave can open: ``len(MIGRATIONS)`` as it is when called."""
    return len(MIGRATIONS)


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration] | None = None) -> int:
    """Apply the steps (default ``MIGRATIONS``) this database has not run yet; return
    the final version.

    ``db`` must be in autocommit mode (``isolation_level=None``). A failing step rolls
    back and raises, leaving the database at the last completed version.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    while (version := user_version(db)) < len(migrations):
        db.execute("BEGIN IMMEDIATE")
        try:
            if user_version(db) == version:  # another process may have just done it
                migrations[version](db)
                db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return version
