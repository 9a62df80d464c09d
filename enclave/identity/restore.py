"""Restoring a home from a backup file (``enclave restore FILE --home DIR``; the file
format is in ``backup.py``).

Rules:
- The header is checked before the password is asked (not a backup, a newer format, a
  file cut inside its header); then the password against the header's check, before
  anything is decrypted; then the file's size against the header's, so a file cut
  short is named so. A chunk whose tag fails (changed, swapped, reordered, or the
  last one missing its final flag) is "damaged". Each is one line; nothing is written.
- Everything is decrypted and checked into a new private folder beside the home
  first. A name that could land outside it (absolute, ``..``, empty parts, a
  backslash) or that a backup never holds (``downloads/``, the store's ``-wal``)
  refuses the whole backup; nothing is created through a link or over another file.
  Only when every chunk checked out and the folder holds a matching identity pair is
  it renamed into place; a refused restore's folder is overwritten and removed.
- A home that holds an identity is replaced only with ``force``. A home that was there
  is moved aside (``DIR.before-restore-TIME``), never erased; its received files
  (``downloads/``) move into the new home.
- After a restore the modes are a fresh home's, whatever the backup says: folders
  0700, files 0600 (the key and the store among them), ``identity.pub`` 0644.
- The identity keeps its own password: a backup sealed under another one needs that
  other password here, and the restored ``identity.key`` is unlocked, as before, by
  the password it had when the backup was made.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclave.errors import UserError

from . import home as homes
from . import keys
from . import wipe as wiping
from .backup import (
    END,
    FILE,
    FOLDER,
    FORMAT,
    HEADER_FIELDS,
    HEADER_LEN,
    KDF_SCRYPT,
    MAGIC,
    MANIFEST,
    MAX_CHUNK,
    MIN_CHUNK,
    NEVER_HELD,
    PRIVATE,
    RECORD,
    TAG_BYTES,
    Header,
    Sealing,
    chunk_aad,
    chunk_nonce,
    scratch_folder,
)

CUT_SHORT = "this backup is damaged or incomplete (it was cut short); nothing was restored"
WRONG_PASSWORD = (
    "the password does not open this backup (or its header was damaged); nothing was restored"
)
MAX_NAME = 1024
MAX_MANIFEST = 64 * 1024
_BINARY = getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True)
class Opened:
    """A backup whose password checked out and whose size is the one its header says."""

    source: Path
    header: Header
    sealing: Sealing


@dataclass(frozen=True)
class Restored:
    fingerprint: str
    files: int
    created_ms: int
    separate: bool  # sealed under a password of its own, not the identity's
    aside: Path | None  # where the home that was there went


def read_header(source: Path) -> Header:
    """The header of a backup file, checked without the password."""
    with _open_source(source) as fh:
        return parse_header(fh.read(HEADER_LEN), source)


def parse_header(raw: bytes, source: Path) -> Header:
    if not raw:
        raise UserError(f"{source} is empty, not an Enclave backup")
    stem = MAGIC[:-1]
    if raw[: len(stem)] != stem[: len(raw)]:
        raise UserError(f"{source} is not an Enclave backup")
    if len(raw) > len(stem) and raw[len(stem) : len(MAGIC)] != MAGIC[-1:]:
        version = raw[len(stem) : len(MAGIC)].decode("latin-1")
        if version.isdigit() and version > MAGIC[-1:].decode():
            raise UserError(f"{source} was written by a newer Enclave (backup format {version})")
        raise UserError(f"{source} is an Enclave backup of an unknown format {version!r}")
    if len(raw) < HEADER_LEN:
        raise UserError(CUT_SHORT)
    _, kdf_id, log_n, r, p, salt, chunk, payload = HEADER_FIELDS.unpack(raw[: HEADER_FIELDS.size])
    if kdf_id != KDF_SCRYPT:
        raise UserError(f"{source} uses an unknown key derivation ({kdf_id})")
    if not 1 <= log_n <= 40:
        raise UserError(f"{source} is damaged: scrypt n = 2^{log_n}")
    if not MIN_CHUNK <= chunk <= MAX_CHUNK or payload < 2 * RECORD.size:
        raise UserError(f"{source} is damaged: chunks of {chunk} bytes, {payload} in all")
    kdf = keys.KdfCost(1 << log_n, r, p)
    keys.check_kdf(kdf, str(source), floor=None)
    return Header(kdf, salt, chunk, payload, raw[HEADER_FIELDS.size : HEADER_LEN])


def open_backup(source: Path, password: str, *, min_kdf: keys.KdfCost = keys.MIN_KDF) -> Opened:
    """Check ``password`` against the header, then the file's size against it."""
    header = read_header(source)
    keys.check_kdf(header.kdf, str(source), floor=min_kdf)
    sealing = Sealing.derive(password, header.salt, header.kdf)
    if not hmac.compare_digest(sealing.header(header.payload, header.chunk).check, header.check):
        raise UserError(WRONG_PASSWORD)
    size = source.stat().st_size
    if size < header.file_size:
        raise UserError(CUT_SHORT)
    if size > header.file_size:
        extra = size - header.file_size
        raise UserError(
            f"this backup is damaged ({extra:,} bytes after its end); nothing was restored"
        )
    return Opened(source, header, sealing)


def _open_source(source: Path):
    # Only the opening is translated here: an error while the restore writes is its own.
    try:
        return open(source, "rb")
    except FileNotFoundError:
        raise UserError(f"backup {source}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"backup {source} is a folder, not a file") from None
    except OSError as err:
        raise UserError(f"cannot read backup {source}: {homes.os_reason(err)}") from None


def _chunks(fh, opened: Opened, progress) -> Iterator[bytes]:
    """Each chunk's plaintext, in order, once its tag checked out."""
    header, raw = opened.header, opened.header.raw()
    aead = AESGCM(opened.sealing.cipher)
    fh.seek(HEADER_LEN)
    done = 0
    for index in range(header.chunks):
        size = min(header.chunk, header.payload - index * header.chunk)
        sealed = fh.read(size + TAG_BYTES)
        if len(sealed) != size + TAG_BYTES:  # it shrank since its size was checked
            raise UserError(CUT_SHORT)
        final = index == header.chunks - 1
        try:
            plain = aead.decrypt(chunk_nonce(index), sealed, chunk_aad(raw, index, final))
        except InvalidTag:
            raise UserError(
                f"this backup is damaged (part {index + 1:,} of {header.chunks:,} fails its "
                "check); nothing was restored"
            ) from None
        done += len(plain)
        if progress is not None:
            progress(done, header.payload)
        yield plain


class _Reader:
    """Exact reads across the chunks of a payload."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buf = chunks, memoryview(b"")

    def take(self, n: int) -> bytes:
        return b"".join(self.pieces(n))

    def pieces(self, n: int) -> Iterator[memoryview]:
        while n > 0:
            if not self.buf:
                self.buf = memoryview(next(self.chunks, b""))
                if not self.buf:
                    raise UserError(_damaged("a record runs past its end"))
            piece, self.buf = self.buf[:n], self.buf[n:]
            n -= len(piece)
            yield piece

    def at_end(self) -> bool:
        return not self.buf and next(self.chunks, None) is None


def _damaged(why: str) -> str:
    return f"this backup is damaged ({why}); nothing was restored"


def restore(opened: Opened, place: homes.Home, *, force: bool, progress=None) -> Restored:
    """Decrypt and check all of ``opened`` into a private folder beside ``place``, then
    rename it into place (a home that was there is moved aside)."""
    check_destination(place, force)
    parent = place.path.parent
    made = [p for p in (parent, *parent.parents) if not p.exists()]  # to undo on refusal
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staged = scratch_folder(parent, f".{place.path.name}.restore-")
    except OSError as err:
        raise UserError(f"cannot write in {parent}: {homes.os_reason(err)}") from None
    try:
        with _open_source(opened.source) as fh:
            manifest, files = _unpack(_Reader(_chunks(fh, opened, progress)), staged)
        fingerprint = _check_identity(staged, manifest)
        check_destination(place, force)  # again: the checks took a while
        aside = _put_in_place(staged, place)
    except BaseException as err:
        _discard(staged, made)
        if isinstance(err, OSError):
            raise UserError(f"cannot restore into {place.path}: {homes.os_reason(err)}") from None
        raise
    separate = manifest.get("password") == "separate"
    return Restored(fingerprint, files, int(manifest.get("created_ms", 0)), separate, aside)


def check_destination(place: homes.Home, force: bool) -> None:
    """Refuse a home that holds an identity (unless ``force``) or is not a folder."""
    path = place.path
    if path.is_symlink():
        raise UserError(f"{path} is a link; restore into the folder itself (--home)")
    if not path.exists():
        return
    if not path.is_dir():
        raise UserError(f"{path} is not a folder")
    if place.has_identity() and not force:
        raise UserError(
            f"{path} already holds an identity; restore into another folder (--home DIR), "
            "or add --force to replace it (the old home is moved aside, not erased)"
        )
    if not force and not place.has_identity() and any(path.iterdir()):
        # Not a home (or not one we know): someone's folder, never moved aside unasked.
        raise UserError(
            f"{path} is not empty and holds no Enclave identity; restore into a new or "
            "empty folder (--home DIR), or add --force to move it aside first"
        )


def _unpack(reader: _Reader, root: Path) -> tuple[dict, int]:
    manifest = _read_manifest(reader)
    seen: set[bytes] = set()
    files = 0
    while True:
        kind, name, _, size = _read_record(reader)
        if kind == END:
            if name or size:
                raise UserError(_damaged("its end record holds data"))
            break
        path = _inside(root, name)
        if name in seen:
            raise UserError(_damaged(f"{os.fsdecode(name)!r} is in it twice"))
        seen.add(name)
        if kind == FOLDER:
            if size:
                raise UserError(_damaged(f"folder {os.fsdecode(name)!r} has bytes"))
            path.mkdir(mode=0o700)
            os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
        elif kind == FILE:
            _unpack_file(path, _restored_mode(name), reader.pieces(size))
            files += 1
        else:
            raise UserError(_damaged(f"a record of unknown kind {kind!r}"))
    if not reader.at_end():
        raise UserError(_damaged("data after its end"))
    return manifest, files


def _read_record(reader: _Reader) -> tuple[bytes, bytes, int, int]:
    kind, length, mode, size = RECORD.unpack(reader.take(RECORD.size))
    if length > MAX_NAME:
        raise UserError(_damaged(f"a name of {length} bytes"))
    return kind, reader.take(length), mode, size


def _read_manifest(reader: _Reader) -> dict:
    kind, name, _, size = _read_record(reader)
    if kind != MANIFEST or name or size > MAX_MANIFEST:
        raise UserError(_damaged("it does not start with its manifest"))
    try:
        doc = json.loads(reader.take(size))
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(_damaged("its manifest is not an Enclave backup's"))
    return doc


def _inside(root: Path, name: bytes) -> Path:
    """Where ``name`` goes under ``root``; refused when it could land anywhere else."""
    parts = name.split(b"/")
    shown = os.fsdecode(name)
    if (
        not name
        or name.startswith(b"/")
        or b"\\" in name
        or b"\0" in name
        or any(p in (b"", b".", b"..") for p in parts)
    ):
        raise UserError(
            f"this backup names a file outside its home ({shown!r}); nothing was restored"
        )
    if os.fsdecode(parts[0]) in NEVER_HELD:
        raise UserError(f"this backup holds {shown!r}, which no backup holds; nothing was restored")
    path = root.joinpath(shown)
    # Its folder was made by this restore (a record before it), never a link; checked
    # on the real path all the same.
    parent, real_root = path.parent, root.resolve()
    if parent.is_symlink() or not parent.is_dir():
        raise UserError(_damaged(f"{shown!r} comes before its folder"))
    real = parent.resolve()
    if real != real_root and real_root not in real.parents:
        raise UserError(
            f"this backup names a file outside its home ({shown!r}); nothing was restored"
        )
    return path


def _restored_mode(name: bytes) -> int:
    # A fresh home's modes, whatever the backup says: only the public key is for others.
    return homes.PUB_MODE if name == os.fsencode(homes.PUB_NAME) else PRIVATE


def _unpack_file(path: Path, mode: int, pieces: Iterator[memoryview]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY | _NOFOLLOW, PRIVATE)
    try:
        for piece in pieces:
            homes.write_all(fd, piece)
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_identity(staged: Path, manifest: dict) -> str:
    """The fingerprint of the identity pair in ``staged``, which must be the manifest's."""
    place = homes.Home(staged)
    if not (place.key_path.is_file() and place.pub_path.is_file()):
        raise UserError(_damaged("it holds no identity"))
    try:
        fingerprint = keys.read_public_identity(place).fingerprint
    except UserError as err:
        raise UserError(_damaged(f"its identity files: {err}")) from None
    if fingerprint != manifest.get("fingerprint"):
        raise UserError(_damaged("its identity is not the one its manifest names"))
    return fingerprint


def _put_in_place(staged: Path, place: homes.Home) -> Path | None:
    """Rename ``staged`` to the home. A folder already there is moved aside first and its
    received files move into the new home; the aside folder, unless nothing stayed in it."""
    home = place.path
    homes.fsync_dir(staged)
    if not home.exists():
        os.rename(staged, home)
        homes.fsync_dir(home.parent)
        return None
    aside = _aside_name(home)
    os.rename(home, aside)
    try:
        os.rename(staged, home)
    except OSError:
        os.rename(aside, home)
        raise
    for name in wiping.KEPT:
        if (aside / name).exists():
            os.rename(aside / name, home / name)
    homes.fsync_dir(home.parent)
    if not any(aside.iterdir()):
        aside.rmdir()
        return None
    return aside


def _aside_name(home: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        aside = home.with_name(f"{home.name}.before-restore-{stamp}" + (f"-{n}" if n > 1 else ""))
        if not aside.exists() and not aside.is_symlink():
            return aside
    raise UserError(f"too many earlier homes beside {home}; remove some")


def _discard(staged: Path, made: list[Path]) -> None:
    """Remove a refused restore's folder, each file overwritten first (wipe's way: it may
    hold a whole decrypted store), and the folders made for it (``made``, deepest first)."""
    if staged.exists():
        try:
            wiping.wipe(homes.Home(staged))
        except UserError:
            pass
        shutil.rmtree(staged, ignore_errors=True)
    for folder in made:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty: never anything else's
