"""Pure helpers of file transfer: digests, the sender's manifest, the receiver's checks
(docs/PROTOCOL.md, "File transfer").

Rules:
- Everything here takes bytes and returns values: no file, clock or thread. The node's
  transfer engine reads and writes the files and calls these.
- A chunk is ``chunk_size`` bytes of the file (the last one may be shorter); it is the
  unit of digests, requests and resumption. A piece is PIECE_SIZE bytes of a chunk (the
  last one may be shorter); it is the unit of FILE_CHUNK, so that one fits a record.
- Digests are over the original bytes, never over compressed data. BLAKE3 is the
  default (about 4x SHA-256 here, docs/PROTOCOL.md "Digest choice"); SHA-256 stays
  accepted. A digest is compared with ``hmac.compare_digest``.
- Names are the node's: ``enclave.node.filenames.safe_name`` makes an offered name one
  that is safe to create in a folder (the offer is refused with "bad_name" when nothing
  is left).
"""

import hashlib
import hmac
from collections.abc import Callable, Iterable

import blake3

from ..errors import UsageError
from .file_messages import (
    BLAKE3,
    DEFAULT_CHUNK_SIZE,
    FLAG_ZSTD,
    MAX_CHUNK_SIZE,
    MAX_CHUNKS,
    MAX_FILE_SIZE,
    MAX_RANGES,
    MAX_REQUEST_CHUNKS,
    PIECE_SIZE,
    SHA256,
    FileChunk,
    FileOffer,
    chunk_count,
)

MAX_CHUNK_FAILURES = 3  # a chunk that fails its digest this often fails the transfer
WINDOW_CHUNKS = 8  # chunks a receiver has requested and not yet received, at most

_HASHERS: dict[int, Callable] = {SHA256: hashlib.sha256, BLAKE3: blake3.blake3}


def hasher(algorithm: int):
    """A fresh incremental hasher (``update``, ``digest``) for ``algorithm``."""
    try:
        return _HASHERS[algorithm]()
    except KeyError:
        raise UsageError(f"unknown digest algorithm {algorithm!r}") from None


def digest(algorithm: int, data: bytes) -> bytes:
    h = hasher(algorithm)
    h.update(data)
    return h.digest()


def choose_chunk_size(size: int) -> int:
    """DEFAULT_CHUNK_SIZE, doubled until the file needs at most MAX_CHUNKS chunks."""
    if not 0 <= size <= MAX_FILE_SIZE:
        raise UsageError(f"a file of {size} bytes cannot be offered (at most {MAX_FILE_SIZE})")
    chunk_size = DEFAULT_CHUNK_SIZE
    while chunk_count(size, chunk_size) > MAX_CHUNKS and chunk_size < MAX_CHUNK_SIZE:
        chunk_size *= 2
    return chunk_size


class OfferBuilder:
    """The sender's offer built chunk by chunk, so that the engine can digest a file as
    it reads it (nothing but the digests is kept): ``add`` each chunk in order, every
    one ``chunk_size`` bytes but the last, then ``offer``."""

    __slots__ = ("algorithm", "chunk_size", "size", "_whole", "_digests", "_short")

    def __init__(self, chunk_size: int, algorithm: int = BLAKE3) -> None:
        self.algorithm = algorithm
        self.chunk_size = chunk_size
        self.size = 0
        self._whole = hasher(algorithm)
        self._digests: list[bytes] = []
        self._short = False  # a chunk shorter than chunk_size came: it was the last

    def add(self, chunk: bytes) -> None:
        if self._short or not 0 < len(chunk) <= self.chunk_size:
            raise UsageError(f"chunk {len(self._digests)} of {len(chunk)} bytes out of place")
        self._short = len(chunk) < self.chunk_size
        self._whole.update(chunk)
        self._digests.append(digest(self.algorithm, chunk))
        self.size += len(chunk)

    def offer(self, transfer_id: bytes, name: str) -> FileOffer:
        return FileOffer(
            transfer_id,
            name,
            self.size,
            self.chunk_size,
            self.algorithm,
            self._whole.digest(),
            tuple(self._digests),
        )


def make_offer(
    transfer_id: bytes,
    name: str,
    data: bytes,
    *,
    chunk_size: int | None = None,
    algorithm: int = BLAKE3,
) -> FileOffer:
    """The sender's offer for ``data``: a digest per chunk and one over the whole file."""
    builder = OfferBuilder(chunk_size or choose_chunk_size(len(data)), algorithm)
    view = memoryview(data)
    for start in range(0, len(data), builder.chunk_size):
        builder.add(view[start : start + builder.chunk_size])
    return builder.offer(transfer_id, name)


def chunk_span(offer: FileOffer, index: int) -> tuple[int, int]:
    """(offset in the file, length) of chunk ``index``."""
    if not 0 <= index < len(offer.digests):
        raise UsageError(f"chunk {index} of {len(offer.digests)}")
    start = index * offer.chunk_size
    return start, min(offer.chunk_size, offer.size - start)


def piece_count(offer: FileOffer, index: int) -> int:
    return -(-chunk_span(offer, index)[1] // PIECE_SIZE)


def piece_length(offer: FileOffer, index: int, piece: int) -> int | None:
    """The original length of ``piece`` of chunk ``index``, or None if there is no such
    piece (the host refuses that FILE_CHUNK)."""
    if not 0 <= index < len(offer.digests):
        return None
    length = chunk_span(offer, index)[1]
    if not 0 <= piece < -(-length // PIECE_SIZE):
        return None
    return min(PIECE_SIZE, length - piece * PIECE_SIZE)


def chunk_messages(transfer_id: bytes, index: int, chunk: bytes) -> list[FileChunk]:
    """The FILE_CHUNK messages that carry ``chunk`` (uncompressed; the engine may
    compress a piece and set FLAG_ZSTD when that saves at least 10%). Their data are
    views into ``chunk``: it is copied once, when each piece is queued to be sealed."""
    view = memoryview(chunk)
    return [
        FileChunk(transfer_id, index, p, 0, view[start : start + PIECE_SIZE])
        for p, start in enumerate(range(0, len(chunk), PIECE_SIZE))
    ]


def worth_compressing(original: int, compressed: int) -> bool:
    """Send a piece compressed only when that saves at least 10% of its bytes."""
    return compressed * 10 <= original * 9


def assemble(offer: FileOffer, index: int, pieces: dict[int, bytes]) -> bytes | None:
    """Chunk ``index`` from its (decompressed) pieces, once all are there with their exact
    lengths; None while some are missing. A piece of the wrong length is the host's
    refusal (``piece_length`` tells it the right one)."""
    ordered = ordered_pieces(offer, index, pieces)
    return None if ordered is None else b"".join(ordered)


def ordered_pieces(offer: FileOffer, index: int, pieces: dict[int, bytes]) -> list | None:
    """``assemble`` without the join: the pieces in order (a receiver hashes and writes
    them as they are, with no copy of the chunk)."""
    count = piece_count(offer, index)
    if len(pieces) != count or any(p not in pieces for p in range(count)):
        return None
    if any(len(pieces[p]) != piece_length(offer, index, p) for p in range(count)):
        return None
    return [pieces[p] for p in range(count)]


def verify_chunk(offer: FileOffer, index: int, chunk: bytes) -> bool:
    """Chunk ``index`` is exactly what was offered (checked before it is written)."""
    return verify_pieces(offer, index, [chunk])


def verify_pieces(offer: FileOffer, index: int, parts: Iterable[bytes]) -> bool:
    """Chunk ``index``, given as consecutive parts, is exactly what was offered."""
    if not 0 <= index < len(offer.digests):
        return False
    h, size = hasher(offer.algorithm), 0
    for part in parts:
        h.update(part)
        size += len(part)
    if size != chunk_span(offer, index)[1]:
        return False
    return hmac.compare_digest(h.digest(), offer.digests[index])


def verify_file(offer: FileOffer, chunks: Iterable[bytes]) -> bool:
    """The whole file, given in order (e.g. read back chunk by chunk), matches the offer."""
    whole = hasher(offer.algorithm)
    size = 0
    for chunk in chunks:
        whole.update(chunk)
        size += len(chunk)
    return size == offer.size and hmac.compare_digest(whole.digest(), offer.file_digest)


def ranges_within(offer: FileOffer, ranges: tuple) -> bool:
    """A FILE_REQUEST's ranges (already well formed) stay inside the offer's chunks:
    the sender's check, since the core does not know the offer."""
    return not ranges or ranges[-1][1] <= len(offer.digests)


def missing_ranges(
    count: int, have: Iterable[int], limit: int = WINDOW_CHUNKS
) -> tuple[tuple[int, int], ...]:
    """The first ``limit`` chunks of ``0..count-1`` not in ``have`` (received or already
    requested), as the (start, stop) ranges of one FILE_REQUEST: what a receiver asks for
    to fill its window, and after a restart only what it does not hold (resumption)."""
    limit = min(limit, MAX_REQUEST_CHUNKS)
    skip = set(have)
    ranges: list[list[int]] = []
    wanted = 0
    for index in range(count):
        if wanted == limit:
            break
        if index in skip:
            continue
        if ranges and ranges[-1][1] == index:
            ranges[-1][1] = index + 1
        elif len(ranges) == MAX_RANGES:
            break
        else:
            ranges.append([index, index + 1])
        wanted += 1
    return tuple((start, stop) for start, stop in ranges)


__all__ = [
    "FLAG_ZSTD",
    "MAX_CHUNK_FAILURES",
    "OfferBuilder",
    "WINDOW_CHUNKS",
    "assemble",
    "choose_chunk_size",
    "chunk_messages",
    "chunk_span",
    "digest",
    "hasher",
    "make_offer",
    "missing_ranges",
    "piece_count",
    "piece_length",
    "ranges_within",
    "verify_chunk",
    "verify_file",
    "worth_compressing",
]
