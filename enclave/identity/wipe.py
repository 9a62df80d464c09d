"""Erasing a home folder (``enclave wipe``): the identity, the keys it rotated away
from, the message store, settings and everything else Enclave wrote there.

Rules:
- Received files (``downloads/``, the default place for them) are the user's, not
  Enclave's state: they stay, and the command says where.
- Each regular file is overwritten with zeros and flushed before it is unlinked, so its
  blocks no longer hold the text on a plain disk. On SSDs (wear levelling) and
  copy-on-write or snapshotting file systems old blocks may survive anyway: full-disk
  encryption is what protects those (README, "Security").
- Symbolic links are removed, never followed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from enclave.errors import UserError

from . import home as homes

KEPT = ("downloads",)
_CHUNK = 1 << 20


def wipe(place: homes.Home) -> list[str]:
    """Erase everything in ``place`` but KEPT; the names removed (UserError when the
    folder cannot be read or a file cannot be removed)."""
    if not place.path.is_dir():
        raise UserError(f"{place.path} is not a home folder")
    removed = []
    for entry in sorted(place.path.iterdir()):
        if entry.name in KEPT:
            continue
        try:
            _erase(entry)
        except OSError as err:
            raise UserError(f"cannot erase {entry}: {err.strerror or err}") from None
        removed.append(entry.name)
    if not any(place.path.iterdir()):
        place.path.rmdir()
    return removed


def erase(path: Path) -> None:
    """Erase one file or folder as ``wipe`` does (files zeroed first, links unlinked)."""
    _erase(path)


def _erase(path: Path) -> None:
    st = path.lstat()
    if stat.S_ISDIR(st.st_mode):
        for child in path.iterdir():
            _erase(child)
        path.rmdir()
        return
    if stat.S_ISREG(st.st_mode):
        _zero(path, st.st_size)
    path.unlink()


def _zero(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        zeros = bytes(min(size, _CHUNK))
        left = size
        while left > 0:
            left -= os.write(fd, zeros[: min(left, _CHUNK)])
        os.fsync(fd)
    finally:
        os.close(fd)
