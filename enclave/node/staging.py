"""Copies staged for sending: ``<home>/outgoing``, where a face puts a file it received
(an upload from the page) so the node can read it while its transfers are open.

Rules:
- A copy lives in a private folder of its own (0700, under a 0700 ``outgoing``), so
  its name can be the user's and two uploads of one name never meet.
- A file is a staged copy only if its real path (symlinks resolved) lies inside the
  real ``outgoing`` folder; anything else is the user's own file and is never removed.
  An ``outgoing`` that is a symlink is not ours either: nothing in it is removed.
- A copy goes, with its folder, once no open outgoing transfer reads it and no send is
  recording transfers of it (a broadcast records one per contact, one at a time): when
  a transfer of it settles, when a send of it fails, and at start for any copy no open
  transfer names (a crash between the upload and the record).
- ``release`` runs on the store's writer thread when a transfer settles, so it is
  ordered with the records of a broadcast; ``held`` covers the gaps between them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections import Counter
from pathlib import Path

log = logging.getLogger("enclave.node.files")
FOLDER = "outgoing"


class Staging:
    def __init__(self, home: Path, store) -> None:
        self.root = Path(home) / FOLDER
        self.store = store
        self.held: Counter[str] = Counter()  # real paths a send is recording transfers of

    def new_folder(self) -> Path:
        """A fresh private folder for one copy."""
        self.root.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)  # an older or hand-made folder may be wider
        folder = self.root / secrets.token_hex(8)
        folder.mkdir(mode=0o700)
        return folder

    def _real_root(self) -> str | None:
        if self.root.is_symlink() or not self.root.is_dir():
            return None
        return os.path.realpath(self.root)

    def staged(self, path: str) -> str | None:
        """The real path of ``path`` if it is a staged copy, else None."""
        root = self._real_root()
        real = os.path.realpath(path)
        if root is None or real == root:
            return None
        return real if os.path.commonpath([root, real]) == root else None

    @contextlib.contextmanager
    def holding(self, path: str):
        """While a send records transfers of ``path``; after it, the copy goes if no
        transfer took it (the send failed) or every one settled meanwhile."""
        real = os.path.realpath(path)
        self.held[real] += 1
        try:
            yield
        finally:
            self.held[real] -= 1
            if not self.held[real]:
                del self.held[real]
            self.release(path)

    def _in_use(self) -> set[str]:
        return {os.path.realpath(p) for p in self.store.open_sources()} | set(self.held)

    def release(self, path: str) -> bool:
        """Remove the copy at ``path`` (and its folder) if nothing reads it; True if gone."""
        real = self.staged(path)
        if real is None or real in self._in_use():
            return False
        self._remove(real)
        return True

    def _remove(self, real: str) -> None:
        folder = os.path.dirname(real)
        try:
            os.unlink(real)
        except FileNotFoundError:
            pass
        except OSError as err:
            log.warning("cannot remove the sent copy %s: %s", real, err.strerror)
            return
        if os.path.dirname(folder) == self._real_root():
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only if empty: its own copy was all it held

    def sweep(self) -> int:
        """At start: remove every copy no open transfer names; how many went."""
        root = self._real_root()
        if root is None:
            return 0
        used, gone = self._in_use(), 0
        for entry in os.scandir(root):
            inside = [entry.path]
            if entry.is_dir(follow_symlinks=False):
                inside = [e.path for e in os.scandir(entry.path)]
            if any(os.path.realpath(p) in used for p in inside):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)  # a stray file or symlink: the link goes, not its target
            gone += 1
        return gone
