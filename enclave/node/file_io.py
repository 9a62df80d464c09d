"""The disk side of file transfer: blocking work the engine runs on its own threads.

Rules:
- Nothing here touches the event loop, the store or a session. Each function or
  object is used from one thread at a time (the engine's reader or its writer).
- A sender digests a file once, when it is offered (``digest_file``), and keeps only
  the digests. Every chunk it later reads is checked against its digest and the file's
  size and mtime against what was offered (``SourceChanged`` otherwise): a file edited
  during a transfer fails it instead of mixing versions.
- ``ChunkReader`` keeps a chunk it read until the slowest recipient of that file has
  taken it, and a window more (what a session that closes had in flight is asked for
  again; the sender says where that is: ``Keep``), so a file sent to several peers
  at once (a broadcast) is read from disk once per chunk (``reads`` counts) while the
  recipients' spread (the fastest's chunk to the slowest's) fits the cache, which is
  bounded: per file, WINDOW_CHUNKS chunks per recipient (at least READ_CACHE_CHUNKS),
  and CACHE_BYTES over all files; past a bound the lowest chunks go, i.e. a recipient
  that far behind (or stalled) reads again, and nobody waits for it. Nothing is kept of
  a file once no recipient of it has a session.
- Compression is per piece, zstd level 1, only for a file whose sample compresses by
  10% or more, and a piece is sent compressed only when it saved that much itself.
  Decompression is bounded by the piece's known length: a zstd bomb gets nowhere.
- ``PartFile`` writes verified chunks at their offsets in the ``.part`` and hashes the
  file in order as it goes (chunks that arrive early wait in memory, at most a window
  of them), so the whole-file digest costs no second read unless a restart interrupted
  the order.
"""

from __future__ import annotations

import hmac
import os
from collections import OrderedDict
from dataclasses import dataclass, replace

import zstandard

from enclave.protocol import files
from enclave.protocol.file_messages import BLAKE3, FileOffer

READ_CACHE_CHUNKS = 16  # chunks of one file a reader may keep for a single recipient
CACHE_BYTES = 64 << 20  # what a reader's cache holds at most, over every file
SAMPLE_BYTES = 1 << 20  # how much of a file decides whether it is worth compressing
ZSTD_LEVEL = 1  # fast: compression must not be what limits a transfer


class SourceChanged(Exception):
    """The file being sent is not the one offered any more (a one-line reason)."""


@dataclass(frozen=True, slots=True)
class Digested:
    """A file as it was read for its offer: where it is, its size and mtime then, its
    digests (``made``: the builder's offer, its id and name still placeholders) and
    whether it is worth compressing."""

    path: str
    mtime_ns: int
    made: FileOffer
    compress: bool

    @property
    def size(self) -> int:
        return self.made.size

    def offer(self, transfer_id: bytes, name: str) -> FileOffer:
        return replace(self.made, transfer_id=transfer_id, name=name)


def digest_file(path: str, algorithm: int = BLAKE3) -> Digested:
    """Read ``path`` once: the digests of its chunks and of the whole, and whether its
    start compresses. Raises OSError for a file that cannot be read, SourceChanged if
    it changed while it was read."""
    with open(path, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        builder = files.OfferBuilder(files.choose_chunk_size(st.st_size), algorithm)
        compress = None
        while chunk := f.read(builder.chunk_size):
            builder.add(chunk)
            if compress is None:
                compress = _compressible(chunk[:SAMPLE_BYTES])
        after = os.fstat(f.fileno())
    if (after.st_size, after.st_mtime_ns) != (
        st.st_size,
        st.st_mtime_ns,
    ) or builder.size != st.st_size:
        raise SourceChanged("the file changed while it was read")
    return Digested(path, st.st_mtime_ns, builder.offer(bytes(16), "x"), bool(compress))


def _compressible(sample: bytes) -> bool:
    packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(sample)
    return files.worth_compressing(len(sample), len(packed))


@dataclass(frozen=True, slots=True)
class Keep:
    """What the sender tells the reader about the recipients of one file (computed on
    the event loop, where the transfers are): no recipient will ask again for a chunk
    below ``floor``, and ``chunks`` of the file's chunks may stay cached."""

    floor: int = 0
    chunks: int = READ_CACHE_CHUNKS


class ChunkReader:
    """Reads checked chunks of outgoing files (one thread: the engine's reader).

    The cache keeps, per file, the chunks from the slowest recipient's next chunk
    (``Keep.floor``) on: a chunk read for the fastest stays until the slowest has taken
    it. It holds at most ``Keep.chunks`` chunks of a file and ``cache_bytes`` in all;
    past either, the lowest chunks go first (only a recipient that far behind wanted
    them: it reads them again, the others never wait for it)."""

    def __init__(self, cache_bytes: int = CACHE_BYTES) -> None:
        self._files: dict[tuple, dict[int, bytes]] = {}  # (path, mtime, chunk size)
        self._limit = cache_bytes
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
        self.reads = 0  # chunks read from disk
        self.hits = 0  # chunks served from the cache
        self.held = 0  # bytes in the cache
        self.peak = 0  # the most bytes the cache ever held

    def pieces(
        self,
        path: str,
        size: int,
        mtime_ns: int,
        offer: FileOffer,
        index: int,
        compress: bool,
        keep: Keep = Keep(),
    ):
        """The FILE_CHUNK messages of chunk ``index``, compressed where that pays."""
        chunk = self.read(path, size, mtime_ns, offer, index, keep)
        out = files.chunk_messages(offer.transfer_id, index, chunk)
        if not compress:
            return out
        packed = []
        for piece in out:
            small = self._zstd.compress(piece.data)
            if files.worth_compressing(len(piece.data), len(small)):
                piece = type(piece)(
                    piece.transfer_id, piece.index, piece.piece, files.FLAG_ZSTD, small
                )
            packed.append(piece)
        return packed

    def read(
        self, path: str, size: int, mtime_ns: int, offer: FileOffer, index: int, keep: Keep = Keep()
    ) -> bytes:
        cached = self._files.setdefault((path, mtime_ns, offer.chunk_size), {})
        chunk = cached.get(index)
        if chunk is not None:
            self.hits += 1
        else:
            chunk = self._read(path, size, mtime_ns, offer, index)
            cached[index] = chunk
            self.held += len(chunk)
        self._trim(cached, keep)
        self.peak = max(self.peak, self.held)
        return chunk

    def _read(self, path: str, size: int, mtime_ns: int, offer: FileOffer, index: int) -> bytes:
        fd = self._fd(path)
        st = os.fstat(fd)
        if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
            self.forget(path)
            raise SourceChanged("the file changed after it was offered")
        start, length = files.chunk_span(offer, index)
        chunk = os.pread(fd, length, start)
        self.reads += 1
        if not files.verify_chunk(offer, index, chunk):
            self.forget(path)
            raise SourceChanged(f"chunk {index} of the file changed after it was offered")
        return chunk

    def _trim(self, cached: dict[int, bytes], keep: Keep) -> None:
        """Drop what no recipient will ask for, then the lowest chunks past the limits
        (those only a recipient far behind the others still wants)."""
        for index in [i for i in cached if i < keep.floor]:
            self.held -= len(cached.pop(index))
        while len(cached) > keep.chunks:
            self.held -= len(cached.pop(min(cached)))
        while self.held > self._limit:
            fullest = max(self._files.values(), key=len)
            self.held -= len(fullest.pop(min(fullest)))
        for key in [k for k, c in self._files.items() if not c]:
            del self._files[key]

    def retain(self, source: tuple, keep: Keep) -> None:
        """Trim the cache of one file (``(path, mtime_ns, chunk_size)``) to ``keep``."""
        cached = self._files.get(source)
        if cached is not None:
            self._trim(cached, keep)

    @property
    def cached_chunks(self) -> int:
        return sum(map(len, self._files.values()))

    def _fd(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is None:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise SourceChanged("the file is gone") from None
            except OSError as err:
                raise SourceChanged(f"the file cannot be read ({err.strerror})") from None
            self._fds[path] = fd
            if len(self._fds) > 64:
                os.close(self._fds.popitem(last=False)[1])
        return fd

    def forget(self, path: str) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)
        for key in [k for k in self._files if k[0] == path]:
            self.held -= sum(map(len, self._files.pop(key).values()))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._files.clear()
        self.held = 0


_unzstd = zstandard.ZstdDecompressor()


def unpack_piece(data: bytes, compressed: bool, length: int) -> bytes | None:
    """A piece's original bytes (``length`` of them), or None if they cannot be."""
    if not compressed:
        return data if len(data) == length else None
    try:
        out = _unzstd.decompress(data, max_output_size=length)
    except zstandard.ZstdError:
        return None
    return out if len(out) == length else None


class PartFile:
    """The ``.part`` of one incoming file: verified chunks written at their offsets,
    the whole-file digest computed in order. Used from the engine's writer thread."""

    def __init__(self, path: str, offer: FileOffer, held: set[int]) -> None:
        self.path = path
        self.offer = offer
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        self._whole = files.hasher(offer.algorithm)
        self._next = 0  # chunks 0.._next-1 are in the whole-file hasher
        self._early: dict[int, list] = {}  # verified chunks (their pieces) ahead of _next
        self._held = set(held)  # on disk from before (a restart): hashed from disk
        self.written = 0  # bytes written

    def write(self, index: int, pieces: dict[int, bytes]) -> bool:
        """Verify and write chunk ``index`` from its pieces; False if it fails its digest.
        The pieces are hashed and written as they are: the chunk is never joined."""
        parts = files.ordered_pieces(self.offer, index, pieces)
        if parts is None or not files.verify_pieces(self.offer, index, parts):
            return False
        start, length = files.chunk_span(self.offer, index)
        _pwrite_all(self.fd, parts, start)
        self.written += length
        self._early[index] = parts
        self._advance()
        return True

    def _advance(self) -> None:
        while self._next < len(self.offer.digests):
            parts = self._early.pop(self._next, None)
            if parts is None:
                if self._next not in self._held:
                    return
                parts = [os.pread(self.fd, files.chunk_span(self.offer, self._next)[1],
                                  self._next * self.offer.chunk_size)]  # fmt: skip
            for part in parts:
                self._whole.update(part)
            self._next += 1

    def sync(self) -> None:
        os.fsync(self.fd)

    def complete(self) -> bool:
        """Every chunk is in and the whole file matches the offered digest."""
        self._advance()
        if self._next < len(self.offer.digests):
            return False
        return hmac.compare_digest(self._whole.digest(), self.offer.file_digest)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _pwrite_all(fd: int, parts: list, offset: int) -> None:
    """Write ``parts`` back to back at ``offset`` (one pwritev, again after a short one)."""
    views = [memoryview(p) for p in parts]
    while views:
        n = os.pwritev(fd, views, offset)
        offset += n
        while n:
            if n >= len(views[0]):
                n -= len(views.pop(0))
            else:
                views[0], n = views[0][n:], 0


__all__ = [
    "ChunkReader",
    "Digested",
    "Keep",
    "PartFile",
    "SourceChanged",
    "digest_file",
    "unpack_piece",
]
