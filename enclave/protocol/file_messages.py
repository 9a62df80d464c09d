"""The messages of file transfer: a strict msgpack codec for FILE records
(docs/PROTOCOL.md, "File transfer").

Rules:
- A FILE record (``records.FILE``) carries exactly one message, an array whose first
  element is its type code (the codes continue those of messages.py, so a file message
  in an APP batch, or a chat in a FILE record, is an unknown type):
      FILE_OFFER   = [7, tid bin16, name str, size uint, chunk_size uint, algorithm uint,
                      file_digest bin32, digests [bin32, ...]]
      FILE_REQUEST = [8, tid bin16, ranges [[start uint, stop uint], ...]]
      FILE_CHUNK   = [9, tid bin16, index uint, piece uint, flags uint, data bin]
      FILE_CANCEL  = [10, tid bin16, reason uint]
      FILE_DONE    = [11, tid bin16]
- Bounds checked here, in this order: strict msgpack (one array, no map, no ext, no
  trailing bytes, bins at most PIECE_SIZE, strings at most MAX_NAME_BYTES, arrays at
  most MAX_CHUNKS long); a known code and its arity; each field's exact type and
  length; each field's range; then the cross-field rules (an offer's digest count is
  ceil(size / chunk_size); a request's ranges ascend without overlap and name at most
  MAX_REQUEST_CHUNKS chunks). What needs a transfer's state (is the id known, is the
  index below this transfer's chunk count, is the piece's length right, does the data
  match its digest) is the host's: the core does not keep transfers.
- Errors: ``PeerError("bad_file_message")`` for anything the peer sent wrong (the
  session closes, as for a bad chat batch); ``UsageError`` when we would send it.
- The bulk path copies a piece once on each side: ``encode_chunk_led`` builds our
  FILE_CHUNK in the buffer its record is sealed from, and a FILE_CHUNK in that
  canonical form is read as a view into its record. Any other form goes through the
  strict decoder; both readers give the same answer for every body (tested).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import msgpack

from ..errors import PeerError, UsageError
from .messages import strict_unpack_options  # the one strict-msgpack rule of every codec

FILE_OFFER, FILE_REQUEST, FILE_CHUNK, FILE_CANCEL, FILE_DONE = 7, 8, 9, 10, 11

TID_LEN = 16  # a transfer id: 16 random bytes chosen by the sender of the file
DIGEST_LEN = 32
SHA256, BLAKE3 = 1, 2  # digest algorithm ids (files.py computes them)
ALGORITHMS = {SHA256: "sha256", BLAKE3: "blake3"}
MIN_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 4 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 1024 * 1024
PIECE_SIZE = 256 * 1024  # a FILE_CHUNK carries one piece of a chunk, so it fits a record
MAX_PIECES = MAX_CHUNK_SIZE // PIECE_SIZE
MAX_CHUNKS = 16_384  # digests in one offer: 16,384 * 34 bytes fit one record
MAX_FILE_SIZE = MAX_CHUNKS * MAX_CHUNK_SIZE  # 64 GiB
MAX_NAME_BYTES = 255  # UTF-8 bytes, the common file-system limit for one name
MAX_RANGES = 64  # ranges in one FILE_REQUEST
MAX_REQUEST_CHUNKS = 1024  # chunks one FILE_REQUEST may ask for
FLAG_ZSTD = 1  # the piece's data is zstd-compressed; its digest is over the original
FLAGS = FLAG_ZSTD

# Why a transfer ends early (FILE_CANCEL); the host logs the name.
CANCEL_REASONS = {
    1: "cancelled",  # a person stopped it (either side)
    2: "declined",  # the receiver's user or settings refused the offer
    3: "too_many_offers",  # beyond the receiver's quota of pending offers from this peer
    4: "bad_name",  # the name sanitises to nothing
    5: "too_large",  # more than the receiver accepts (size limit or free space)
    6: "corrupt",  # a chunk failed its digest too many times
    7: "unknown_transfer",  # a request, chunk or done for an id the other side has not
    8: "digest_mismatch",  # every chunk verified, yet the whole file's digest did not
    9: "local_error",  # the side that cancels failed (disk, store)
    10: "flow",  # the peer asked for, or sent, more than the agreed window
    11: "duplicate",  # an offer reused a transfer id known for this peer
}


@dataclass(frozen=True, slots=True)
class FileOffer:
    transfer_id: bytes
    name: str
    size: int
    chunk_size: int
    algorithm: int  # SHA256 or BLAKE3
    file_digest: bytes  # over the whole file's original bytes
    digests: tuple  # one per chunk, over the chunk's original bytes


@dataclass(frozen=True, slots=True)
class FileRequest:
    transfer_id: bytes
    ranges: tuple  # ((start, stop), ...): chunks start..stop-1, ascending, disjoint


@dataclass(frozen=True, slots=True)
class FileChunk:
    transfer_id: bytes
    index: int  # the chunk
    piece: int  # which PIECE_SIZE slice of the chunk
    flags: int  # FLAG_ZSTD or 0
    data: bytes


@dataclass(frozen=True, slots=True)
class FileCancel:
    transfer_id: bytes
    reason: int  # one of CANCEL_REASONS


@dataclass(frozen=True, slots=True)
class FileDone:
    transfer_id: bytes  # the receiver has the whole file and its digest matched


FileMessage = FileOffer | FileRequest | FileChunk | FileCancel | FileDone


# --- field checks, shared by encoding (our own) and decoding (the peer's) ---------------


def _bin(value: object, size: int) -> bool:
    return type(value) is bytes and len(value) == size


def _uint(value: object, end: int) -> bool:
    return type(value) is int and 0 <= value < end


def chunk_count(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


def _offer_problem(o: FileOffer) -> str | None:
    if not _bin(o.transfer_id, TID_LEN):
        return "transfer id"
    if type(o.name) is not str or not o.name:
        return "name"
    try:
        if len(o.name.encode()) > MAX_NAME_BYTES:
            return "name too long"
    except UnicodeEncodeError:
        return "name not UTF-8"
    if not _uint(o.size, MAX_FILE_SIZE + 1):
        return "size"
    cs = o.chunk_size
    if not (_uint(cs, MAX_CHUNK_SIZE + 1) and cs >= MIN_CHUNK_SIZE and cs & (cs - 1) == 0):
        return "chunk size"
    if type(o.algorithm) is not int or o.algorithm not in ALGORITHMS:
        return "algorithm"
    if not _bin(o.file_digest, DIGEST_LEN):
        return "file digest"
    if type(o.digests) is not tuple or not all(_bin(d, DIGEST_LEN) for d in o.digests):
        return "chunk digests"
    if len(o.digests) != chunk_count(o.size, cs):
        return f"{len(o.digests)} digests for {chunk_count(o.size, cs)} chunks"
    return None


def _request_problem(r: FileRequest) -> str | None:
    if not _bin(r.transfer_id, TID_LEN):
        return "transfer id"
    if type(r.ranges) is not tuple or not 1 <= len(r.ranges) <= MAX_RANGES:
        return "range count"
    floor, total = 0, 0
    for item in r.ranges:
        if type(item) is not tuple or len(item) != 2:
            return "range shape"
        start, stop = item
        if not (_uint(start, MAX_CHUNKS) and _uint(stop, MAX_CHUNKS + 1)):
            return "range bounds"
        if not floor <= start < stop:
            return "ranges not ascending and disjoint"
        floor, total = stop, total + stop - start
    if total > MAX_REQUEST_CHUNKS:
        return f"{total} chunks requested"
    return None


def _chunk_problem(c: FileChunk) -> str | None:
    if not _bin(c.transfer_id, TID_LEN):
        return "transfer id"
    if not (_uint(c.index, MAX_CHUNKS) and _uint(c.piece, MAX_PIECES)):
        return "index or piece"
    if not _uint(c.flags, FLAGS + 1):
        return "flags"
    if not _bytes_like(c.data) or not 1 <= len(c.data) <= PIECE_SIZE:
        return "data length"
    return None


def _bytes_like(data: object) -> bool:
    # A piece's data may be a view into a chunk or a record (no copy on the bulk path).
    kind = type(data)
    if kind is bytes or kind is bytearray:
        return True
    return kind is memoryview and data.format == "B" and data.ndim == 1 and data.contiguous


def _cancel_problem(c: FileCancel) -> str | None:
    if not _bin(c.transfer_id, TID_LEN):
        return "transfer id"
    if type(c.reason) is not int or c.reason not in CANCEL_REASONS:
        return "reason"
    return None


def _done_problem(d: FileDone) -> str | None:
    return None if _bin(d.transfer_id, TID_LEN) else "transfer id"


_PROBLEM = {
    FileOffer: _offer_problem,
    FileRequest: _request_problem,
    FileChunk: _chunk_problem,
    FileCancel: _cancel_problem,
    FileDone: _done_problem,
}


def problem(message: object) -> str | None:
    """Why ``message`` is not a valid file message, or None."""
    check = _PROBLEM.get(type(message))
    return "not a file message" if check is None else check(message)


# --- encoding: our own messages, checked so that we never send what we would refuse ---


def encode_file_message(message: FileMessage) -> bytes:
    """The body of the FILE record that carries ``message``."""
    why = problem(message)
    if why is not None:
        raise UsageError(f"malformed {type(message).__name__}: {why}")
    return msgpack.packb(_fields(message), use_bin_type=True)


def encode_chunk_led(chunk: FileChunk) -> bytearray:
    """``encode_file_message(chunk)`` after one free byte, built in one buffer: the data
    is copied once, into the buffer its record is sealed from (RecordSender.seal_led)."""
    why = _chunk_problem(chunk)
    if why is not None:
        raise UsageError(f"malformed FileChunk: {why}")
    fields = [FILE_CHUNK, chunk.transfer_id, chunk.index, chunk.piece, chunk.flags]
    head = msgpack.packb(fields, use_bin_type=True)
    size = len(chunk.data)
    if size < 0x100:
        bin_head = b"\xc4" + size.to_bytes(1, "big")
    elif size < 0x10000:
        bin_head = b"\xc5" + size.to_bytes(2, "big")
    else:
        bin_head = b"\xc6" + size.to_bytes(4, "big")
    # The free byte, an array of six (the five fields above, then the data). A join:
    # bytearray(n) would zero a fresh megabyte first, at several times the copy's cost.
    lead = b"\x00\x96" + head[1:] + bin_head
    return bytearray().join((lead, chunk.data))


def _fields(m: FileMessage) -> list:
    tid = m.transfer_id
    if type(m) is FileOffer:
        return [FILE_OFFER, tid, m.name, m.size, m.chunk_size, m.algorithm, m.file_digest,
                list(m.digests)]  # fmt: skip
    if type(m) is FileRequest:
        return [FILE_REQUEST, tid, [list(r) for r in m.ranges]]
    if type(m) is FileChunk:
        return [FILE_CHUNK, tid, m.index, m.piece, m.flags, m.data]
    if type(m) is FileCancel:
        return [FILE_CANCEL, tid, m.reason]
    return [FILE_DONE, tid]


def request(transfer_id: bytes, ranges: Sequence[tuple[int, int]]) -> FileRequest:
    """A FileRequest from any sequence of (start, stop) pairs."""
    return FileRequest(transfer_id, tuple((int(a), int(b)) for a, b in ranges))


# --- decoding: hostile bytes, even from an authenticated peer ----------------------------


_UNPACK_OPTIONS = strict_unpack_options(
    max_array=MAX_CHUNKS, max_bin=PIECE_SIZE, max_str=MAX_NAME_BYTES
)

_ARITY = {FILE_OFFER: 8, FILE_REQUEST: 3, FILE_CHUNK: 6, FILE_CANCEL: 3, FILE_DONE: 2}


def decode_file_message(body: bytes | memoryview) -> FileMessage:
    """The one message of a FILE record body, or PeerError("bad_file_message")."""
    chunk = _canonical_chunk(body)
    if chunk is not None:
        why = _chunk_problem(chunk)
        if why is not None:
            raise _bad(f"type {FILE_CHUNK}: bad {why}")
        return chunk
    return _decode_strict(body)


def _decode_strict(body) -> FileMessage:
    """Any file message, through the strict msgpack decoder."""
    try:
        m = msgpack.unpackb(body, **_UNPACK_OPTIONS)
    except (ValueError, msgpack.UnpackException) as exc:
        raise _bad(f"not a strict msgpack array ({exc})"[:120]) from None
    if type(m) is not tuple or not m or type(m[0]) is not int:
        raise _bad("not an array with an integer type code")
    arity = _ARITY.get(m[0])
    if arity is None:
        raise _bad(f"unknown type {m[0]}")
    if len(m) != arity:
        raise _bad(f"type {m[0]} with {len(m)} elements, not {arity}")
    message = _build(m)
    why = problem(message)
    if why is not None:
        raise _bad(f"type {m[0]}: bad {why}")
    return message


_UINT_WIDTH = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}  # msgpack uint 8/16/32/64
_BIN_WIDTH = {0xC4: 1, 0xC5: 2, 0xC6: 4}  # msgpack bin 8/16/32


def _canonical_chunk(body) -> FileChunk | None:
    """A FILE_CHUNK in the form encode_file_message writes, read without copying its
    data (a view into the record); None for anything else, which the strict decoder
    then judges. Only a subset of what msgpack accepts is read here, and it reads to
    the same fields, so the two paths agree on every body."""
    view = memoryview(body)
    end = len(view)
    if end < 4 + TID_LEN or view[0] != 0x96 or view[1] != FILE_CHUNK:
        return None
    if view[2] != 0xC4 or view[3] != TID_LEN:
        return None
    pos = 4 + TID_LEN
    ints = []
    for _ in range(3):  # index, piece, flags
        if pos >= end:
            return None
        lead = view[pos]
        if lead < 0x80:
            ints.append(lead)
            pos += 1
            continue
        width = _UINT_WIDTH.get(lead)
        if width is None or pos + 1 + width > end:
            return None
        ints.append(int.from_bytes(view[pos + 1 : pos + 1 + width], "big"))
        pos += 1 + width
    width = _BIN_WIDTH.get(view[pos]) if pos < end else None
    if width is None or pos + 1 + width > end:
        return None
    size = int.from_bytes(view[pos + 1 : pos + 1 + width], "big")
    pos += 1 + width
    if pos + size != end:
        return None  # short or trailing bytes: the strict decoder says which
    return FileChunk(bytes(view[4 : 4 + TID_LEN]), *ints, view[pos:])


def _build(m: tuple) -> FileMessage:
    code, tid = m[0], m[1]
    if code == FILE_OFFER:
        return FileOffer(tid, *m[2:])
    if code == FILE_REQUEST:
        return FileRequest(tid, m[2])
    if code == FILE_CHUNK:
        return FileChunk(tid, *m[2:])
    if code == FILE_CANCEL:
        return FileCancel(tid, m[2])
    return FileDone(tid)


def _bad(detail: str) -> PeerError:
    return PeerError("bad_file_message", detail)
