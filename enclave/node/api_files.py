"""The Node's file calls: send, accept, decline, cancel and list file transfers.

Rules:
- A face names a transfer by its ``key`` (``FileChanged.key``) or by the short
  reference every face shows (``#k3f9``, ``display.message_ref`` of its id).
  ``accept_file()`` and ``decline_file()`` with no reference take the one file that
  waits; with several waiting the user must say which.
- Files go to v2 contacts only: a contact marked v1 (the original protocol) cannot
  carry them, and saying so is a ``UserError``, as is a blocked contact, a missing or
  unreadable path, a folder, or a file over 64 GiB.
- A face that must copy a file before sending it (an upload) stages it in
  ``upload_folder()``; the node removes that copy when its last transfer settles, or
  at once if the send fails (staging.py).
- ``queue_file`` offers a file with no node running (``enclave send-file`` when none
  is): the transfer waits in the store and the node offers it at its next session
  with the contact.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from enclave.errors import UserError
from enclave.identity import keys
from enclave.node.display import message_ref
from enclave.node.events import FileChanged
from enclave.node.file_io import SourceChanged, digest_file
from enclave.node.files import record_outgoing
from enclave.protocol.file_messages import MAX_FILE_SIZE
from enclave.store import records


def check_source(path: str) -> str:
    """``path`` as an absolute path to a regular, readable file of a sendable size."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as err:
        raise UserError(f"{path}: {err.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{path} is a folder; send the files in it, or an archive of it")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{path} is not a regular file")
    if st.st_size > MAX_FILE_SIZE:
        raise UserError(f"{path} is {st.st_size} bytes; a file can be at most 64 GiB")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: permission denied")
    return path


def check_recipient(peer: records.Peer) -> None:
    label = peer.name or keys.group(peer.fingerprint, 4)
    if peer.blocked:
        raise UserError(f"{label} is blocked; unblock it to send files")
    if peer.protocol == "v1":
        raise UserError(f"{label} speaks only the original protocol (v1), which cannot carry files")


def _digest(path: str):
    try:
        return digest_file(path)
    except SourceChanged as why:
        raise UserError(f"{path}: {why}; try again") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read it ({err.strerror})") from None


def queue_file(store, peer: records.Peer, path: str) -> records.Transfer:
    """Offer ``path`` to ``peer`` with no node running: it leaves at the next start."""
    check_recipient(peer)
    return record_outgoing(store, peer.fingerprint, _digest(check_source(path)))[1]


class FilesApi:
    """Mixed into ``Node``: ``self.files`` is the engine, ``self.store`` the store."""

    async def send_file(self, query: str, path: str) -> FileChanged:
        """Offer a file to one contact; returns once it is recorded (it leaves now if
        the contact is online, else at its next session)."""
        return (await self.send_file_to_many([query], path))[0]

    async def send_file_to_many(self, queries: list[str] | None, path: str) -> list[FileChanged]:
        """The same file to several contacts (every unblocked v2-capable one when
        ``queries`` is None): digested once, read about once per chunk, encrypted per
        session."""
        with self.files.staging.holding(path):  # a staged copy no transfer took goes after
            if queries is None:
                peers = [p for p in self.store.list_peers() if not p.blocked and p.protocol != "v1"]
                if not peers:
                    raise UserError("no contact can take files (v1 and blocked ones cannot)")
            else:
                peers = list({p.fingerprint: p for p in map(self.resolve, queries)}.values())
            for peer in peers:
                check_recipient(peer)
            path = check_source(path)
            digested = await asyncio.get_running_loop().run_in_executor(None, _digest, path)
            made = [await self.files.offer_digested(p.fingerprint, digested) for p in peers]
        return [self.files.describe(t) for t in made]

    def upload_folder(self) -> Path:
        """A fresh private folder under ``<home>/outgoing`` for a face's copy of a file it
        will send by ``send_file``: the node removes the copy once no transfer reads it."""
        return self.files.staging.new_folder()

    def files_of(self, query: str | None = None, open_only: bool = True) -> list[FileChanged]:
        """Transfers (of one contact if ``query``), oldest first: the open ones, or with
        ``open_only=False`` every one the conversation history shows."""
        fp = self.resolve(query).fingerprint if query else None
        if open_only:
            found = self.store.open_transfers(fp)
        else:
            found = self.store.transfers_of(fp)
        return [self.files.describe(t) for t in found]

    def file(self, key: int) -> FileChanged | None:
        t = self.store.get_transfer(int(key))
        return None if t is None else self.files.describe(t)

    def find_file(self, ref: str | int | None, waiting: bool = False) -> FileChanged:
        """The transfer a face names: its key, its ``#ref``, or (None) the one waiting."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            found = self.file(int(ref))
            if found is None:
                raise UserError(f"no file transfer {ref}")
            return found
        candidates = [f for f in self.files_of(None) if not waiting or f.waiting]
        if ref:
            want = "#" + ref.lstrip("#").upper()
            candidates = [f for f in candidates if message_ref(f.id).upper() == want]
            if not candidates:
                raise UserError(f"no open file transfer {want}")
        if not candidates:
            raise UserError(
                "no file waits for an answer" if waiting else "no file transfer is open"
            )
        if len(candidates) > 1:
            named = ", ".join(f"{message_ref(f.id)} {f.name}" for f in candidates[:5])
            raise UserError(
                f"{len(candidates)} files: {named}; say which (e.g. {message_ref(candidates[0].id)})"
            )
        return candidates[0]

    async def accept_file(self, ref: str | int | None = None) -> FileChanged:
        f = self.find_file(ref, waiting=True)
        return self.files.describe(await self.files.accept(f.key))

    async def decline_file(self, ref: str | int | None = None) -> FileChanged:
        f = self.find_file(ref, waiting=True)
        await self.files.decline(f.key)
        return self.file(f.key)

    async def cancel_file(self, ref: str | int) -> FileChanged:
        f = self.find_file(ref)
        await self.files.cancel(f.key)
        return self.file(f.key)
