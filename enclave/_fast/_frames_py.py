"""Length-prefixed frame splitter, pure-Python twin of ``_frames_c``.

Rules of the module (both twins keep them; the same tests prove it):
- A frame is a 4-byte big-endian length, then that many payload bytes. ``feed``
  returns the payloads of the frames it completed, in order, as ``bytes``.
- A header is checked against ``max_frame`` once, as soon as its 4 bytes are known and
  the splitter reaches it. A declared length above the limit raises ``FrameTooLarge``
  before a single payload byte of that frame is buffered; the splitter is then
  poisoned: its buffer is dropped and every later ``feed`` raises again. Frames
  completed earlier in the same call are discarded with the connection.
- A header already accepted stays accepted: lowering ``max_frame`` affects only the
  headers parsed after the change.
- ``max_frames > 0`` stops after that many frames; the rest is kept unparsed and a
  later ``feed(b"")`` resumes. The handshake raises ``max_frame`` between frames so.
- Whole frames are sliced straight out of the caller's chunk; only a frame that
  straddles chunks is copied into the buffer. An idle splitter holds no buffer, so a
  finished 1 MiB frame leaves no 1 MiB capacity behind.
"""

from __future__ import annotations

import operator
import struct
import sys

from ..errors import FrameTooLarge

HEADER_SIZE = 4
MAX_FRAME_LIMIT = 0xFFFFFFFF  # the largest length a 4-byte prefix can declare

_HEADER = struct.Struct(">I")
_NO_HEADER = -1  # _declared when the header of the first buffered frame is not parsed yet


def check_max_frame(value: object) -> int:
    """Validate a frame limit; both twins call this so their errors agree."""
    limit = operator.index(value)  # type: ignore[arg-type]
    if not 0 <= limit <= MAX_FRAME_LIMIT:
        raise ValueError(f"max_frame must be in 0..{MAX_FRAME_LIMIT}, got {limit}")
    return limit


def _as_bytes_view(data: object) -> bytes | memoryview:
    # bytes slice to bytes with one copy; anything else goes through a flat byte view.
    if type(data) is bytes:
        return data
    view = memoryview(data)  # type: ignore[arg-type]
    if not view.c_contiguous:  # what the compiled twin's buffer request refuses
        raise BufferError("frame data must be a contiguous buffer")
    return view.cast("B")


class FrameSplitter:
    """Incremental splitter of 4-byte big-endian length-prefixed frames."""

    __slots__ = ("_limit", "_buf", "_declared", "_poison")

    def __init__(self, max_frame: int) -> None:
        self._limit = check_max_frame(max_frame)
        self._buf: bytes | bytearray = b""  # the shared empty bytes while idle
        self._declared = _NO_HEADER
        self._poison: tuple[int, int] | None = None

    @property
    def max_frame(self) -> int:
        return self._limit

    @max_frame.setter
    def max_frame(self, value: int) -> None:
        self._limit = check_max_frame(value)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + (sys.getsizeof(self._buf) if self._buf else 0)

    def feed(self, data: bytes | bytearray | memoryview = b"", max_frames: int = 0) -> list[bytes]:
        if self._poison is not None:
            raise FrameTooLarge(*self._poison)
        want = operator.index(max_frames)
        if want <= 0:
            want = sys.maxsize
        view = _as_bytes_view(data)
        frames: list[bytes] = []
        pos = self._drain(view, frames, want) if self._buf else 0
        if self._buf:  # still waiting, or stopped by max_frames: keep the rest
            if pos < len(view):
                self._buf += view[pos:]
        else:
            self._split(view, pos, frames, want)
        return frames

    def _drain(self, view: bytes | memoryview, frames: list[bytes], want: int) -> int:
        """Complete frames from the buffer, topping it up from ``view``; returns bytes used."""
        pos = 0
        while self._buf and len(frames) < want:
            if self._declared == _NO_HEADER:
                pos = self._top_up(view, pos, HEADER_SIZE)
                if len(self._buf) < HEADER_SIZE:
                    break
                self._declared = self._check(_HEADER.unpack_from(self._buf)[0])
            end = HEADER_SIZE + self._declared
            pos = self._top_up(view, pos, end)
            if len(self._buf) < end:
                break
            frames.append(bytes(self._buf[HEADER_SIZE:end]))
            self._pop_front(end)
        return pos

    def _top_up(self, view: bytes | memoryview, pos: int, need: int) -> int:
        # Copy from the chunk only what the frame at the front of the buffer still lacks.
        missing = need - len(self._buf)
        if missing > 0 and pos < len(view):
            self._buf += view[pos : pos + missing]  # type: ignore[operator]
            pos = min(pos + missing, len(view))
        return pos

    def _pop_front(self, size: int) -> None:
        self._declared = _NO_HEADER
        if size == len(self._buf):
            self._buf = b""  # release the capacity, however large the frame was
        else:
            del self._buf[:size]  # type: ignore[union-attr]

    def _split(self, view: bytes | memoryview, pos: int, frames: list[bytes], want: int) -> None:
        """Slice whole frames out of the chunk; buffer only the incomplete tail."""
        end = len(view)
        unpack = _HEADER.unpack_from
        copy = type(view) is not bytes  # a memoryview slice must become bytes
        while len(frames) < want and end - pos >= HEADER_SIZE:
            declared = unpack(view, pos)[0]
            if declared > self._limit:
                self._check(declared)
            stop = pos + HEADER_SIZE + declared
            if stop > end:
                self._declared = declared
                break
            payload = view[pos + HEADER_SIZE : stop]
            frames.append(bytes(payload) if copy else payload)  # type: ignore[arg-type]
            pos = stop
        if pos < end:
            self._buf = bytearray(view[pos:])

    def _check(self, declared: int) -> int:
        if declared > self._limit:
            self._poison = (declared, self._limit)
            self._buf = b""
            self._declared = _NO_HEADER
            raise FrameTooLarge(declared, self._limit)
        return declared
