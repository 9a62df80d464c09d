"""Where a received file lands: a safe name from the one a peer sent, a ``.part`` file
that belongs to this transfer alone, and a final name that never replaces a file.

Rules:
- The name a peer sends is hostile until ``safe_name`` has made it a single plain file
  name: no path separators (each becomes ``_``, and ``.``/``..`` components go), none of
  the characters Windows and macOS refuse or misread (``<>:"|?*``), no control, bidi,
  zero-width or other hidden characters (the faces' rule, ``display.visible``; a joiner
  between two pictographs stays, so emoji sequences survive), no leading dots (a hidden
  file) and no trailing dots or spaces (Windows drops them). A Windows device name
  (``CON``, ``NUL``, ``COM1``, ``LPT9``..., any case, with or without an extension) gets
  a ``_`` in front, since it would open the device instead of a file. The result is
  NFC-normalised and at most 255 UTF-8 bytes, cut in the stem so the extension stays.
  A name with nothing left is refused (``UnsafeName``).
- Nothing is ever overwritten. ``place_download`` picks a final name that does not
  exist (``name (1).ext``, ``name (2).ext``...; ``archive (1).tar.gz`` for a double
  extension) and creates its ``.part`` exclusively (``O_CREAT | O_EXCL``, mode 0600):
  two transfers placed at once, in threads or processes, never share a ``.part``.
  ``finish`` gives the ``.part`` its final name with ``os.link`` (which fails instead of
  replacing), and takes the next free number if a file of that name appeared meanwhile.
- Every name built here, ``.part`` and numbers included, fits 255 UTF-8 bytes (the
  file-name limit of common file systems).
- ``room_for`` says whether the downloads disk takes what is still to come of a file
  and keeps the margin free (``file_disk_margin_bytes``); the node asks before it
  accepts a file without the user, and again when a transfer resumes.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import unicodedata
from pathlib import Path
from typing import NamedTuple

from .display import _HIDDEN, _joins_pictographs  # the faces' one rule of hidden characters

MAX_NAME_BYTES = 255
PART_SUFFIX = ".part"
MAX_RECEIVED_CHARS = 1 << 16  # a longer "name" is not a name; refused before any work
MAX_NUMBER = 10_000  # "name (10000).ext" and then give up: something is wrong with the folder
_MAX_EXT_BYTES = 32  # a longer "extension" is part of the name, not a type
_PART_BYTES = len(PART_SUFFIX)

_SEPARATORS = re.compile(r"[/\\]")
_RESERVED = re.compile(r'[<>:"|?*]')  # refused by Windows; ':' is '/' to the macOS Finder
# Device names open the device on Windows, whatever follows the first dot; COM¹..³ and
# LPT¹..³ count too.
_DEVICE = re.compile(r"(?:CON|PRN|AUX|NUL|COM[1-9¹²³]|LPT[1-9¹²³])", re.IGNORECASE)
_DOUBLE = frozenset({".gz", ".bz2", ".xz", ".zst", ".lz", ".lzma", ".z", ".br"})
_NUMBERED = re.compile(r"^(.*) \((\d+)\)$", re.DOTALL)


class UnsafeName(ValueError):
    """A received name with nothing usable left once made safe."""


class Placed(NamedTuple):
    final: Path  # the name the file gets once its digest matches
    part: Path  # created empty (mode 0600) and owned by this transfer alone


def safe_name(received: str) -> str:
    """The name a received file may have on disk (see the module's rules)."""
    if not isinstance(received, str):
        raise TypeError(f"a file name must be str, not {type(received).__name__}")
    if len(received) > MAX_RECEIVED_CHARS:
        raise UnsafeName(f"a file name of {len(received)} characters")
    name = unicodedata.normalize("NFC", _unhidden(received))
    # Components that are empty or only dots ("", ".", "..") name no file: they go.
    parts = [p.strip() for p in _SEPARATORS.split(name)]
    name = "_".join(p for p in parts if p.strip("."))
    name = _RESERVED.sub("_", name)
    name = name.lstrip(". ").rstrip(". ")
    if _DEVICE.fullmatch(name.split(".", 1)[0].rstrip(" ")):
        name = "_" + name
    name = _fit(name, MAX_NAME_BYTES)
    if not name.strip("_"):
        raise UnsafeName(f"nothing usable is left of the file name {received[:80]!r}")
    return name


def _unhidden(text: str) -> str:
    """``text`` without the characters ``display.visible`` would mark as hidden."""

    def dropped(match: re.Match) -> str:
        if match.group() == "\u200d" and _joins_pictographs(match.string, match.start()):
            return match.group()
        return ""

    return _HIDDEN.sub(dropped, text)


def split_ext(name: str) -> tuple[str, str]:
    """(stem, extension) with a compressed tarball's two suffixes kept together;
    a leading dot is not an extension, nor is one longer than 32 bytes."""
    dot = name.rfind(".")
    if dot <= 0 or len(name[dot:].encode()) > _MAX_EXT_BYTES:
        return name, ""
    stem, ext = name[:dot], name[dot:]
    if ext.lower() in _DOUBLE:
        inner = stem.rfind(".")
        if inner > 0 and stem[inner:].lower() == ".tar":
            stem, ext = stem[:inner], stem[inner:] + ext
    return stem, ext


def _fit(name: str, limit: int) -> str:
    """``name`` cut to ``limit`` UTF-8 bytes in its stem, keeping the extension."""
    if len(name.encode()) <= limit:
        return name
    stem, ext = split_ext(name)
    return _cut(stem, limit - len(ext.encode())) + ext


def _cut(text: str, size: int) -> str:
    """``text`` cut to ``size`` UTF-8 bytes, never inside a character."""
    encoded = text.encode()
    if len(encoded) <= size:
        return text
    cut = encoded[:size].decode("utf-8", "ignore")
    # A cut may leave a joiner or a combining mark with nothing to join or mark, or
    # a trailing dot or space that Windows would drop.
    while cut and (cut[-1] in "\u200d\ufe0f. " or unicodedata.combining(cut[-1])):
        cut = cut[:-1]
    return cut


def numbered(name: str, n: int) -> str:
    """The n-th alternative to ``name`` (0 is ``name``): ``stem (n).ext``, cut so that
    it and its ``.part`` fit the file-name limit."""
    stem, ext = split_ext(name)
    tag = f" ({n})" if n else ""
    room = MAX_NAME_BYTES - _PART_BYTES - len(tag.encode()) - len(ext.encode())
    return _cut(stem, room) + tag + ext


def place_download(folder: Path, name: str) -> Placed:
    """Reserve a download of ``name`` (already ``safe_name``'d) in ``folder``: the first
    ``numbered`` name with neither a file nor a ``.part`` of that name, whose ``.part``
    this call created."""
    folder = Path(folder)
    for n in range(MAX_NUMBER + 1):
        candidate = numbered(name, n)
        final, part = folder / candidate, folder / (candidate + PART_SUFFIX)
        if os.path.lexists(final):
            continue
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue  # another transfer is writing this name
        os.close(fd)
        return Placed(final, part)
    raise FileExistsError(errno.EEXIST, f"no free name for {name!r} in {folder}")


def finish(part: Path, final: Path) -> Path:
    """Give the complete ``part`` its final name without replacing any file; if
    ``final`` appeared meanwhile, the next free number. Returns the name it got."""
    part, final = Path(part), Path(final)
    base, first = _unnumbered(final.name)
    for n in range(first, MAX_NUMBER + 1):
        target = final.with_name(numbered(base, n))
        if _claim(part, target):
            _sync_folder(final.parent)
            return target
    raise FileExistsError(errno.EEXIST, f"no free name for {final.name!r} in {final.parent}")


def _unnumbered(name: str) -> tuple[str, int]:
    """``name`` without its `` (n)`` and n: the next alternatives count on from there."""
    stem, ext = split_ext(name)
    match = _NUMBERED.match(stem)
    return (match[1] + ext, int(match[2])) if match else (name, 0)


def _claim(part: Path, target: Path) -> bool:
    """Move ``part`` to ``target`` unless ``target`` exists; False if it does."""
    try:
        os.link(part, target, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK):
            raise
        return _claim_without_links(part, target)
    os.unlink(part)
    return True


def _claim_without_links(part: Path, target: Path) -> bool:
    # A file system without hard links (FAT, some network shares): reserve the name
    # exclusively, then replace only our own empty placeholder.
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        return False
    os.replace(part, target)
    return True


def room_for(folder: Path, size: int, margin: int, held: int = 0) -> bool:
    """Whether ``folder``'s disk can take the ``size - held`` bytes still to come of a
    file and keep ``margin`` bytes free (``file_disk_margin_bytes``). A folder that
    cannot be asked has no room: a file is then left for the user to accept."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return False
    return free - max(0, size - held) >= margin


def discard(part: Path) -> None:
    """Remove a cancelled or failed transfer's ``.part`` (gone already is fine)."""
    Path(part).unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """Make the new name survive power loss (best effort: not every system can)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
