# cython: language_level=3, binding=False
"""Length-prefixed frame splitter, compiled twin of ``_frames_py``.

Rules of the module are those of ``_frames_py`` (read its header); this twin adds:
- Every read of the caller's chunk or of the buffer is preceded by an explicit length
  check; no directive turns bounds checking off in this parser of hostile input.
- The buffer is a C block holding ``_buf[_start:_end]``. It grows with the bytes that
  actually arrive (never to the declared size up front, so a peer that declares 1 MiB
  and sends 4 bytes costs 4 bytes), is freed when it empties, and shrinks when a large
  frame leaves only a small remainder behind.
- The limit, its validation and the exception come from Python (``_frames_py`` and
  ``enclave.errors``), so both twins raise the same errors with the same messages.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize
from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memcpy, memmove

from enclave._fast._frames_py import MAX_FRAME_LIMIT, check_max_frame
from enclave.errors import FrameTooLarge

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX

cdef enum:
    HEADER_SIZE = 4
    NO_HEADER = -1       # _declared before the front frame's header is parsed
    MIN_CAPACITY = 64    # smallest block worth a malloc
    SHRINK_FLOOR = 4096  # blocks up to this size are never worth shrinking


cdef inline uint32_t read_be32(const unsigned char* p) noexcept:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


@cython.final
@cython.auto_pickle(False)
cdef class FrameSplitter:
    """Incremental splitter of 4-byte big-endian length-prefixed frames."""

    cdef unsigned char* _buf    # NULL while idle; the bytes held are _buf[_start:_end]
    cdef Py_ssize_t _start
    cdef Py_ssize_t _end
    cdef Py_ssize_t _cap
    cdef int64_t _declared      # payload size of the front frame once its header passed
    cdef uint32_t _limit
    cdef object _poison         # (declared, limit) of the violation, re-raised forever

    def __cinit__(self, max_frame):
        self._limit = check_max_frame(max_frame)
        self._declared = NO_HEADER

    def __dealloc__(self):
        PyMem_Free(self._buf)

    @property
    def max_frame(self):
        return self._limit

    @max_frame.setter
    def max_frame(self, value):
        self._limit = check_max_frame(value)

    @property
    def buffered(self):
        return self._end - self._start

    def __sizeof__(self):
        return object.__sizeof__(self) + self._cap

    def feed(self, data=b"", max_frames=0):
        cdef Py_buffer view
        cdef Py_ssize_t want
        if self._poison is not None:
            raise FrameTooLarge(*self._poison)
        want = max_frames
        if want <= 0:
            want = PY_SSIZE_T_MAX
        if PyBytes_CheckExact(data):  # the common case needs no buffer view
            return self._feed(<const unsigned char*>PyBytes_AS_STRING(data),
                              PyBytes_GET_SIZE(data), want)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self._feed(<const unsigned char*>view.buf, view.len, want)
        finally:
            PyBuffer_Release(&view)

    cdef list _feed(self, const unsigned char* data, Py_ssize_t size, Py_ssize_t want):
        cdef list frames = []
        cdef Py_ssize_t pos = 0
        if self._end > self._start:
            pos = self._drain(data, size, frames, want)
        if self._end == self._start:
            pos = self._split(data, pos, size, frames, want)
        if pos < size:  # an incomplete frame, or bytes left unparsed by max_frames
            self._append(data + pos, size - pos)
        return frames

    cdef Py_ssize_t _drain(self, const unsigned char* data, Py_ssize_t size,
                           list frames, Py_ssize_t want) except -1:
        """Complete frames from the buffer, topping it up from ``data``; returns bytes used."""
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t frame_size
        while self._end > self._start and len(frames) < want:
            if self._declared == NO_HEADER:
                pos = self._top_up(data, pos, size, HEADER_SIZE)
                if self._end - self._start < HEADER_SIZE:
                    break
                self._declared = self._check(read_be32(self._buf + self._start))
            frame_size = <Py_ssize_t>(HEADER_SIZE + self._declared)
            pos = self._top_up(data, pos, size, frame_size)
            if self._end - self._start < frame_size:
                break
            frames.append(PyBytes_FromStringAndSize(
                <const char*>self._buf + self._start + HEADER_SIZE, frame_size - HEADER_SIZE))
            self._consume(frame_size)
        return pos

    cdef Py_ssize_t _top_up(self, const unsigned char* data, Py_ssize_t pos, Py_ssize_t size,
                            Py_ssize_t need) except -1:
        # Copy from the chunk only what the frame at the front of the buffer still lacks.
        cdef Py_ssize_t missing = need - (self._end - self._start)
        if missing > size - pos:
            missing = size - pos
        if missing > 0:
            self._append(data + pos, missing)
            pos += missing
        return pos

    cdef Py_ssize_t _split(self, const unsigned char* data, Py_ssize_t pos, Py_ssize_t size,
                           list frames, Py_ssize_t want) except -1:
        """Slice whole frames straight out of the chunk; returns where the tail starts."""
        cdef Py_ssize_t count = len(frames)
        cdef uint32_t declared
        while count < want and size - pos >= HEADER_SIZE:
            declared = read_be32(data + pos)
            if declared > self._limit:
                self._check(declared)
            if <int64_t>declared > <int64_t>(size - pos - HEADER_SIZE):
                self._declared = declared
                break
            frames.append(PyBytes_FromStringAndSize(
                <const char*>data + pos + HEADER_SIZE, <Py_ssize_t>declared))
            pos += HEADER_SIZE + <Py_ssize_t>declared
            count += 1
        return pos

    cdef int64_t _check(self, uint32_t declared) except -2:
        if declared > self._limit:
            self._poison = (declared, self._limit)
            self._release()
            raise FrameTooLarge(declared, self._limit)
        return declared

    cdef int _append(self, const unsigned char* src, Py_ssize_t count) except -1:
        if self._end + count > self._cap:
            self._make_room(count)
        memcpy(self._buf + self._end, src, count)
        self._end += count
        return 0

    cdef int _make_room(self, Py_ssize_t count) except -1:
        cdef Py_ssize_t held = self._end - self._start
        cdef Py_ssize_t need = held + count
        if self._start:  # slide the live bytes to the front before growing
            memmove(self._buf, self._buf + self._start, held)
            self._start, self._end = 0, held
        if need > self._cap:
            self._resize(self._grown(need))
        return 0

    cdef Py_ssize_t _grown(self, Py_ssize_t need) noexcept:
        # Double, but never past the frame being assembled: its size is known and final.
        cdef Py_ssize_t cap = max(need, self._cap * 2, MIN_CAPACITY)
        cdef int64_t frame = HEADER_SIZE + self._declared
        if self._declared != NO_HEADER and need <= frame < cap:
            cap = <Py_ssize_t>frame
        return cap

    cdef int _resize(self, Py_ssize_t cap) except -1:
        cdef unsigned char* block = <unsigned char*>PyMem_Realloc(self._buf, cap)
        if block == NULL:
            raise MemoryError()
        self._buf, self._cap = block, cap
        return 0

    cdef int _consume(self, Py_ssize_t count) except -1:
        cdef Py_ssize_t held
        self._start += count
        self._declared = NO_HEADER
        held = self._end - self._start
        if held == 0:
            self._release()
        elif self._cap > SHRINK_FLOOR and held <= self._cap // 4:
            # A large frame left a small tail: keep the tail, not the capacity.
            memmove(self._buf, self._buf + self._start, held)
            self._start, self._end = 0, held
            self._resize(max(held, MIN_CAPACITY))
        return 0

    cdef void _release(self) noexcept:
        PyMem_Free(self._buf)
        self._buf = NULL
        self._start = self._end = self._cap = 0
        self._declared = NO_HEADER
