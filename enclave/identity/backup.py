"""Backups of a home folder: one file, sealed under a password, that rebuilds a working
home (``enclave backup FILE``, ``enclave restore FILE --home DIR``).

Rules:
- A backup holds every regular file and folder of the home: ``identity.key`` as it is
  (still sealed by the identity's own password), ``identity.pub``, the keys it rotated
  away from (``retired/``), settings and any other state. The store goes in as a
  consistent snapshot made with SQLite's online backup API, never as a byte copy of a
  live WAL database. Left out: received files (``downloads/``, the user's own, as
  ``wipe`` keeps them), the store's ``-wal``/``-shm``/``-journal`` (the snapshot holds
  what they held) and ``-sending`` (the running store's log), the running page's
  ``web.url`` (a launch token), sockets, links and temporary files.
- The password becomes keys with scrypt at the identity key file's own cost
  (``keys.DEFAULT_KDF``: n = 2^17, r = 8, p = 1, 128 MiB), so a guess at a backup costs
  what a guess at the ``identity.key`` inside it costs. It is memory-hard and already
  guards the key, so Argon2id would add a dependency (argon2-cffi) without making
  either file harder to guess. A file asking for less than ``keys.MIN_KDF``, or for a
  cost that would hang the machine, is refused before any guess.
- The file (integers big-endian): a 72-byte header
      "ENCLBAK1" (the digit is the version) | KDF 1 = scrypt (1) | log2 n (1) | r (1) |
      p (1) | salt (16) | chunk size (4) | payload size (8) | check (32)
  where check = HMAC-SHA256 of the 40 bytes before it under the password's check key;
  then the payload in chunks of ``chunk size`` bytes (the last may be shorter), each
  sealed with AES-256-GCM under the password's cipher key: nonce = the chunk's index,
  associated data = the header + the index (8) + a final-chunk flag (1). The two keys
  are HKDF-Expand of scrypt's output; a new salt per file makes the counter nonces safe.
- So: a wrong password fails the check before anything is decrypted; a file cut short
  is shorter than its header says (and its last chunk is not marked final); a changed,
  swapped or reordered chunk fails its tag. Each is one line, and nothing is written.
- The payload is records ``kind (1) | name length (2) | mode (2) | size (8) | name |
  data``: a manifest first (``M``, JSON), then folders (``D``) and files (``F``) by their
  "/"-separated names relative to the home, then the end (``E``); nothing may follow.
- Restoring it (checks, placing, modes) is ``restore.py``'s.
- The backup is written to ``FILE.part`` (0600, made new, never reused), synced, then
  renamed over FILE; on any error or Ctrl-C the ``.part`` is removed.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import shutil
import sqlite3
import stat
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from enclave.errors import UserError

from . import home as homes
from . import keys
from . import wipe as wiping

MAGIC = b"ENCLBAK1"
FORMAT = "enclave-backup"
KDF_SCRYPT = 1
CHUNK = 1 << 20
MIN_CHUNK, MAX_CHUNK = 1 << 12, 1 << 24
SALT_BYTES = 16
TAG_BYTES = 16
HEADER_FIELDS = struct.Struct(">8sBBBB16sIQ")  # the header before its check: 40 bytes
HEADER_LEN = HEADER_FIELDS.size + 32
RECORD = struct.Struct(">cHHQ")  # kind, name length, mode, size: 13 bytes
MANIFEST, FOLDER, FILE, END = b"M", b"D", b"F", b"E"
PRIVATE = 0o600
_BINARY = getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# Top-level names a backup never holds: received files are the user's; the store goes
# in as one snapshot, and a -wal beside it would replay other pages into it; its
# -sending log names rows of the running store (store/sending.py), not the snapshot's.
_STORE_COMPANIONS = {
    homes.DB_NAME + s for s in ("-wal", "-shm", "-journal", "-sending", "-sending.tmp")
}
# web.url: the running page's address with this launch's token (removed at stop); the
# identity lock only orders programs running on this machine.
NEVER_HELD = {*wiping.KEPT, *_STORE_COMPANIONS, "web.url", homes.LOCK_NAME}
_SCRATCH_PREFIX = ".backup-"  # the snapshot's folder while a backup is written


Progress = Callable[[int, int], None]  # (payload bytes done, payload bytes in all)


# --- the header and the keys ------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """The clear start of a backup file; ``check`` proves the password (and the fields)."""

    kdf: keys.KdfCost
    salt: bytes
    chunk: int
    payload: int  # plaintext bytes of the payload
    check: bytes = b""

    def fixed(self) -> bytes:
        log_n = self.kdf.n.bit_length() - 1
        return HEADER_FIELDS.pack(
            MAGIC, KDF_SCRYPT, log_n, self.kdf.r, self.kdf.p, self.salt, self.chunk, self.payload
        )

    def raw(self) -> bytes:
        return self.fixed() + self.check

    @property
    def chunks(self) -> int:
        return -(-self.payload // self.chunk)

    @property
    def file_size(self) -> int:
        return HEADER_LEN + self.payload + self.chunks * TAG_BYTES


@dataclass(frozen=True)
class Sealing:
    """What one password gives one backup (its salt and cost): the two keys."""

    kdf: keys.KdfCost
    salt: bytes
    cipher: bytes = field(repr=False)
    checker: bytes = field(repr=False)

    @classmethod
    def derive(cls, password: str, salt: bytes, kdf: keys.KdfCost) -> Sealing:
        master = keys.derive_key(password, salt, kdf)  # scrypt, as the key file's
        return cls(kdf, salt, _expand(master, b"cipher"), _expand(master, b"check"))

    @classmethod
    def new(cls, password: str, kdf: keys.KdfCost = keys.DEFAULT_KDF) -> Sealing:
        keys.check_kdf(kdf, "the requested cost", floor=None)
        if kdf.r > 255 or kdf.p > 255:
            raise UserError(f"scrypt r={kdf.r}, p={kdf.p} do not fit a backup header")
        return cls.derive(password, secrets.token_bytes(SALT_BYTES), kdf)

    def header(self, payload: int, chunk: int = CHUNK) -> Header:
        bare = Header(self.kdf, self.salt, chunk, payload)
        return replace(bare, check=hmac.digest(self.checker, bare.fixed(), "sha256"))


def _expand(master: bytes, label: bytes) -> bytes:
    return HKDFExpand(hashes.SHA256(), 32, b"enclave-backup/1 " + label).derive(master)


def chunk_nonce(index: int) -> bytes:
    return bytes(4) + index.to_bytes(8, "big")


def chunk_aad(header: bytes, index: int, final: bool) -> bytes:
    return header + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


# --- writing a backup ---------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One record of the payload; a file's bytes are read from ``source`` as it is sealed."""

    kind: bytes
    name: bytes
    mode: int = PRIVATE
    size: int = 0
    source: Path | None = None
    data: bytes = b""  # the manifest's

    @property
    def length(self) -> int:
        return RECORD.size + len(self.name) + self.size


@dataclass(frozen=True)
class Written:
    fingerprint: str
    files: int
    payload: int  # plaintext bytes
    size: int  # bytes of the backup file


def check_target(place: homes.Home, target: Path) -> None:
    """Refuse a backup file that would be lost with the home, or that would replace a
    file of something else (an older backup is replaced: nightly backups reuse a name)."""
    real, home = target.resolve(), place.path.resolve()
    if real == home or home in real.parents:
        raise UserError(
            f"{target} is inside the home it backs up (lost and wiped with it); "
            "choose a place outside it"
        )
    if not target.parent.is_dir():
        raise UserError(f"cannot write {target}: folder {target.parent} does not exist")
    if target.is_dir():
        raise UserError(f"{target} is a folder; give the name of the backup file")
    if target.exists() and _magic_of(target) != MAGIC:
        raise UserError(f"{target} exists and is not an Enclave backup; choose another name")


def _magic_of(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC))
    except OSError:
        return b""


def write_backup(
    place: homes.Home,
    target: Path,
    password: str,
    *,
    separate: bool,
    progress: Progress | None = None,
    kdf: keys.KdfCost = keys.DEFAULT_KDF,
) -> Written:
    """Back ``place`` up into ``target`` under ``password`` (``separate``: not the
    identity's own, which the manifest notes so a restore can say which one unlocks)."""
    return write_sealed(place, target, Sealing.new(password, kdf), separate, progress)


def write_sealed(
    place: homes.Home, target: Path, sealing: Sealing, separate: bool, progress=None
) -> Written:
    """``write_backup`` once the keys are made (the bench times this part)."""
    fingerprint = keys.read_public_identity(place).fingerprint
    with _scratch(place.path) as scratch:
        found = collect(place, scratch)
        header = write_entries(target, sealing, [manifest(fingerprint, separate), *found], progress)
    files = sum(e.kind == FILE for e in found)
    return Written(fingerprint, files, header.payload, header.file_size)


def write_entries(target: Path, sealing: Sealing, entries: list[Entry], progress=None) -> Header:
    """Seal ``entries`` (the manifest first), then the end record, into ``target``."""
    header = sealing.header(sum(e.length for e in entries) + RECORD.size)
    _write_atomic(target, lambda fd: _seal_all(fd, header, sealing, entries, progress))
    return header


def collect(place: homes.Home, scratch: Path) -> list[Entry]:
    """What a backup of ``place`` holds; the store as a snapshot made in ``scratch``."""
    found = []
    if place.db_path.is_file():
        snapshot = scratch / homes.DB_NAME
        snapshot_store(place.db_path, snapshot)
        size = snapshot.stat().st_size
        found.append(Entry(FILE, os.fsencode(homes.DB_NAME), PRIVATE, size, snapshot))
    return found + list(_walk(place.path, b"", scratch))


def _walk(folder: Path, prefix: bytes, scratch: Path) -> Iterator[Entry]:
    for path in sorted(folder.iterdir()):
        name = prefix + os.fsencode(path.name)
        if path == scratch or _left_out(name):
            continue
        st = path.lstat()
        if stat.S_ISDIR(st.st_mode):
            yield Entry(FOLDER, name, stat.S_IMODE(st.st_mode))
            yield from _walk(path, name + b"/", scratch)
        elif stat.S_ISREG(st.st_mode):
            yield Entry(FILE, name, stat.S_IMODE(st.st_mode), st.st_size, path)
        # Links, sockets (control.sock) and pipes are not state: never followed, never kept.


def _left_out(name: bytes) -> bool:
    text = os.fsdecode(name)
    if text == homes.DB_NAME or text in NEVER_HELD:  # (the store goes in as its snapshot)
        return True
    base = text.rpartition("/")[2]
    # Temporary files: our scratch folders, write_atomic's ".NAME.tmp-PID".
    return base.startswith(_SCRATCH_PREFIX) or (base.startswith(".") and ".tmp-" in base)


def snapshot_store(db_path: Path, snapshot: Path) -> None:
    """A consistent copy of the live store through SQLite's online backup API: one read
    transaction, so a node writing meanwhile neither blocks it nor tears it, and what
    only the WAL holds yet is in the copy."""
    os.close(os.open(snapshot, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))
    try:
        # Read-write but query-only: a read-only connection to a WAL store would leave
        # its -wal and -shm behind in the home; this one, closing last, tidies as a node does.
        uri = f"{db_path.resolve().as_uri()}?mode=rw"
        source = sqlite3.connect(uri, uri=True, timeout=5.0)
        try:
            source.execute("PRAGMA query_only = 1")
            copy = sqlite3.connect(snapshot)
            try:
                source.backup(copy)
            finally:
                copy.close()
        finally:
            source.close()
    except sqlite3.Error as err:
        raise UserError(f"cannot read the message store {db_path}: {err}") from None


def scratch_folder(parent: Path, prefix: str) -> Path:
    """A new private folder ``PREFIX<pid>-<random>`` in ``parent``, after erasing the
    ones a killed run of ours left there (their process is gone): they hold decrypted
    copies (a store snapshot, a restored home) that nothing else would remove."""
    for old in parent.glob(f"{prefix}*"):
        pid = old.name[len(prefix) :].partition("-")[0]
        if old.is_dir() and not old.is_symlink() and pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                wiping.erase(old)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: not ours to judge
    return True


@contextlib.contextmanager
def _scratch(home: Path) -> Iterator[Path]:
    # Inside the home (0700), beside the store it copies: the snapshot is exposed to no
    # one the store is not. Plainly removed after: the same bytes stay in the store.
    try:
        path = scratch_folder(home, _SCRATCH_PREFIX)
    except OSError as err:
        raise UserError(f"cannot write in {home}: {homes.os_reason(err)}") from None
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def manifest(fingerprint: str, separate: bool) -> Entry:
    doc = {
        "format": FORMAT,
        "version": 1,
        "fingerprint": fingerprint,
        "created_ms": time.time_ns() // 10**6,
        "password": "separate" if separate else "identity",
    }
    data = json.dumps(doc, sort_keys=True).encode("ascii")
    return Entry(MANIFEST, b"", 0, len(data), data=data)


def _seal_all(fd: int, header: Header, sealing: Sealing, entries, progress) -> None:
    out = _Sealer(fd, header, sealing.cipher, progress)
    for entry in entries:
        out.write(RECORD.pack(entry.kind, len(entry.name), entry.mode, entry.size) + entry.name)
        if entry.source is None:
            out.write(entry.data)
        else:
            _copy_in(out, entry)
    out.write(RECORD.pack(END, 0, 0, 0))
    out.close()


def _copy_in(out: _Sealer, entry: Entry) -> None:
    left = entry.size
    with open(entry.source, "rb") as fh:
        while left > 0:
            piece = fh.read(min(left, CHUNK))
            if not piece:
                break
            out.write(piece)
            left -= len(piece)
        if left or fh.read(1):
            raise UserError(
                f"{entry.source} changed while it was being backed up; run the backup again"
            )


class _Sealer:
    """The payload, sealed chunk by chunk as it is written to ``fd``."""

    def __init__(self, fd: int, header: Header, cipher: bytes, progress) -> None:
        self.fd, self.header, self.raw = fd, header, header.raw()
        self.aead, self.progress = AESGCM(cipher), progress
        self.buf, self.index, self.done = bytearray(), 0, 0
        homes.write_all(fd, self.raw)

    def write(self, data: bytes) -> None:
        self.buf += data
        chunk = self.header.chunk
        while len(self.buf) >= chunk:
            self._seal(memoryview(self.buf)[:chunk])
            del self.buf[:chunk]

    def close(self) -> None:
        if self.buf:
            self._seal(memoryview(self.buf))
        if self.done != self.header.payload:  # the sizes counted and the bytes read differ
            raise UserError("the home changed while it was being backed up; run the backup again")

    def _seal(self, piece: memoryview) -> None:
        final = self.index == self.header.chunks - 1
        sealed = self.aead.encrypt(
            chunk_nonce(self.index), piece, chunk_aad(self.raw, self.index, final)
        )
        piece.release()
        homes.write_all(self.fd, sealed)
        self.index += 1
        self.done += len(sealed) - TAG_BYTES
        if self.progress is not None:
            self.progress(self.done, self.header.payload)


def _write_atomic(target: Path, fill: Callable[[int], None]) -> None:
    """``fill(fd)`` into ``target.part`` (0600, made new), synced, renamed over ``target``;
    on any failure (Ctrl-C too) the ``.part`` goes."""
    part = target.with_name(target.name + ".part")
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY | _NOFOLLOW, PRIVATE)
    except FileExistsError:
        raise UserError(
            f"{part} already exists (another backup being written, or one that was "
            "interrupted); remove it and run again"
        ) from None
    except OSError as err:
        raise UserError(f"cannot write {part}: {homes.os_reason(err)}") from None
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, PRIVATE)  # the umask filtered the mode given to open()
            fill(fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(part, target)
        homes.fsync_dir(target.parent)
    except BaseException as err:
        part.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise UserError(f"cannot write {target}: {homes.os_reason(err)}") from None
        raise
