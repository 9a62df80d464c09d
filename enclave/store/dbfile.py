"""The store's SQLite file before and after SQLite opens it: creating it private,
refusing a file we must not write to, and the settings every connection makes.

Before anything writes to an existing file, ``check_file`` reads it through a read-only
connection and refuses (``UserError``, file untouched) a corrupt file, a foreign one, or
one from a newer Enclave. A read-write connection is not used for that because closing
it could checkpoint a leftover WAL into the file.
"""

import os
import sqlite3
from pathlib import Path

from enclave.errors import UserError

from .migrations import known_version, user_version
from .schema import APPLICATION_ID

BUSY_TIMEOUT_S = 5.0


def create_private(path: Path) -> None:
    """Create an empty database file with mode 0600 unless one exists (never truncate)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as err:
        raise UserError(f"cannot create {path}: {err.strerror}") from None


def check_file(path: Path) -> None:
    """Refuse a file we must not write to, reading it through a read-only connection
    (a read-write one could checkpoint a leftover WAL into it on close)."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as err:
        raise UserError(f"cannot open {path}: {err}") from None
    try:
        version = user_version(db)
        if version > known_version():
            raise UserError(
                f"{path} was written by a newer Enclave (schema {version}, this one knows"
                f" {known_version()}); upgrade Enclave — the file was left untouched"
            )
        check_ours(db, path, version)
        problems = [r[0] for r in db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            lines = [x for p in problems for x in p.splitlines() if not x.startswith("***")]
            raise sqlite3.DatabaseError(lines[0] if lines else "integrity check failed")
    except sqlite3.OperationalError as err:  # locked, unreadable, I/O error: not corruption
        raise UserError(f"cannot read {path}: {err}; the file was left untouched") from None
    except sqlite3.DatabaseError as err:
        raise UserError(
            f"{path} is corrupt or not a database ({err}); the file was left untouched"
            " — restore it from a backup, or move it away to start an empty one"
        ) from None
    finally:
        db.close()


def check_ours(db: sqlite3.Connection, path: Path, version: int) -> None:
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    if version == 0:
        foreign = db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] > 0
    else:
        foreign = app_id != APPLICATION_ID
    if foreign:
        raise UserError(
            f"{path} is an SQLite database of another program, not Enclave's;"
            " the file was left untouched — choose another Enclave home"
        )


SYNC_MODES = ("full", "normal")


def configure(db: sqlite3.Connection, path: Path, sync: str = "full") -> None:
    """``sync`` "full" (the default) makes every commit survive power loss; "normal"
    (WAL) survives a crash of Enclave, but the last commits may be lost on power loss."""
    if sync not in SYNC_MODES:
        raise ValueError(f"sync must be one of {SYNC_MODES}, not {sync!r}")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise UserError(f"{path}: SQLite cannot use WAL mode here (got {mode}); use a local disk")
    for pragma in (
        f"synchronous = {sync.upper()}",  # WAL + NORMAL can lose the last commits on power loss
        "foreign_keys = ON",
        f"busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}",
        "secure_delete = ON",  # deleted history is zeroed, not just unlinked
        "trusted_schema = OFF",
        "journal_size_limit = 67108864",
    ):
        db.execute(f"PRAGMA {pragma}")
