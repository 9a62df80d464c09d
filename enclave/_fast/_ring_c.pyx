# cython: language_level=3, binding=False
"""Replay-ID ring, compiled twin of ``_ring_py``.

Rules of the module are those of ``_ring_py`` (read its header); this twin adds:
- Everything is allocated once, in ``__cinit__``: a ring of ``capacity`` fixed-width
  key slots (oldest at ``_head``) and an open-addressing table of at least four times
  as many entries. The load factor never passes one quarter, so every probe ends and
  probe runs stay short (measured: a table of twice the capacity made an insert into
  a full ring ~25% slower, mostly in mispredicted branches of the probe and shift).
- The table uses linear probing and backward-shift deletion: no tombstones, so a
  ring that has evicted a billion keys probes exactly as fast as a fresh one.
- Keys are hashed with CPython's keyed SipHash (``_Py_HashBytes``, seeded per
  process): an authenticated but hostile peer cannot aim its IDs at one bucket.
  For a bytes key that is exactly ``hash(key)``, which the object caches: the node
  asks ``key in ring`` and later inserts the same object, and hashes it once.
  Each entry keeps 32 bits of that hash to skip most key comparisons.
- With ``digests=True`` a key is already a secret, uniformly random hash (the caller
  promises it: a truncated SHA-256 over a per-process secret and the ID, which no
  peer can predict or grind), so the key is its own hash: its first 8 bytes read as
  a native uint64, of which entries keep the low 32 bits as they keep SipHash's. No
  SipHash on either call. Mixing the bits with a multiply first measured the same:
  they are uniform already. The full key is still compared (a 16-byte one inline, as
  two words); keys that share their first 8 bytes only make their probe runs longer.
- bytes and str keys are read in place (a str through its cached UTF-8 form); no
  key is copied except into its slot.
- ``binding=False`` makes the methods plain C methods, and ``check_and_insert`` takes
  its key positionally only (in both twins), which gives it the cheapest call
  convention (METH_O); together they cut ~10% per call.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_Check
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_CheckExact,
    PyBytes_GET_SIZE,
)
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

from enclave._fast._ring_py import (
    MAX_CAPACITY,
    MAX_KEY_LEN,
    MIN_DIGEST_LEN,
    bad_digest_length,
    bad_digest_type,
    bad_key_length,
    bad_key_type,
    check_capacity,
)

cdef extern from "Python.h":
    Py_hash_t _Py_HashBytes(const void* src, Py_ssize_t size)
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL
    bint PyMemoryView_Check(object obj)
    Py_hash_t bytes_hash "PyObject_Hash"(object key)  # cannot fail on bytes

cdef struct Entry:
    int32_t slot   # ring slot holding the key, or EMPTY
    uint32_t hash  # low 32 bits of the key's SipHash; the probe starts at hash & mask

cdef enum:
    EMPTY = -1

cdef Py_ssize_t WIDTH = MAX_KEY_LEN  # slot width, fixed by the Python constant
cdef Py_ssize_t DIGEST_MIN = MIN_DIGEST_LEN


cdef inline uint32_t key_hash(const unsigned char* raw, Py_ssize_t size) noexcept:
    return <uint32_t>_Py_HashBytes(raw, size)


cdef inline uint32_t object_hash(object key, const unsigned char* raw,
                                 Py_ssize_t size) noexcept:
    # A bytes object caches its hash, which is _Py_HashBytes of its contents: the
    # node asks ``key in ring`` and later inserts the same object, so the second
    # call does not hash again. A str hashes its code points, not its UTF-8 bytes,
    # so it (like a buffer) is hashed here.
    if PyBytes_CheckExact(key):  # a subclass may hash otherwise
        return <uint32_t>bytes_hash(key)
    return <uint32_t>_Py_HashBytes(raw, size)


cdef inline uint32_t digest_hash(const unsigned char* raw) noexcept:
    # digests=True: the key's first 8 bytes are already a secret random hash.
    cdef uint64_t head
    memcpy(&head, raw, 8)  # one unaligned load
    return <uint32_t>head


cdef inline bint same_bytes(const unsigned char* a, const unsigned char* b,
                            Py_ssize_t size) noexcept:
    if size == 16:  # the node's keys: a constant size, compared inline as two words
        return memcmp(a, b, 16) == 0
    return memcmp(a, b, size) == 0


cdef size_t table_size(Py_ssize_t capacity) noexcept:
    # A power of two, at least four times the capacity: load factor at most 1/4.
    cdef size_t size = 8
    while size < <size_t>(4 * capacity):
        size <<= 1
    return size


cdef inline const unsigned char* borrow(object key, Py_ssize_t* size) except? NULL:
    """The bytes of a bytes or str key, in place; NULL (no error) for other types."""
    if PyBytes_Check(key):
        size[0] = PyBytes_GET_SIZE(key)
        return <const unsigned char*>PyBytes_AS_STRING(key)
    if PyUnicode_Check(key):
        return <const unsigned char*>PyUnicode_AsUTF8AndSize(key, size)
    return NULL


cdef inline const unsigned char* digest(object key, Py_ssize_t* size) except NULL:
    """The bytes of a digests=True key, in place: exact bytes, DIGEST_MIN..WIDTH long."""
    if PyBytes_CheckExact(key):
        size[0] = PyBytes_GET_SIZE(key)
        if DIGEST_MIN <= size[0] <= WIDTH:
            return <const unsigned char*>PyBytes_AS_STRING(key)
    return refuse_digest(key)


cdef const unsigned char* refuse_digest(object key) except NULL:
    # Kept out of ``digest`` so that the check above stays small enough to inline.
    if not PyBytes_CheckExact(key):
        raise bad_digest_type(key)
    raise bad_digest_length(PyBytes_GET_SIZE(key))


cdef inline int check_size(Py_ssize_t size) except -1:
    if size < 1 or size > WIDTH:
        raise bad_key_length(size)
    return 0


@cython.final
@cython.auto_pickle(False)
cdef class ReplayRing:
    """Fixed-capacity FIFO set of recently seen message IDs."""

    cdef Entry* _table
    cdef size_t _mask
    cdef unsigned char* _keys   # slot i is _keys[i * WIDTH : i * WIDTH + _lens[i]]
    cdef unsigned char* _lens
    cdef uint32_t* _hashes      # per slot, to find its table entry on eviction
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t _head       # the oldest slot
    cdef Py_ssize_t _count
    cdef bint _digests          # keys are secret random digests: hash = first 8 bytes

    def __cinit__(self, capacity=10000, *, digests=False):
        self._capacity = check_capacity(capacity)
        self._digests = bool(digests)
        self._mask = table_size(self._capacity) - 1
        self._table = <Entry*>PyMem_Malloc((self._mask + 1) * sizeof(Entry))
        self._keys = <unsigned char*>PyMem_Malloc(self._capacity * WIDTH)
        self._lens = <unsigned char*>PyMem_Malloc(self._capacity)
        self._hashes = <uint32_t*>PyMem_Malloc(self._capacity * sizeof(uint32_t))
        if not (self._table and self._keys and self._lens and self._hashes):
            raise MemoryError()
        self.clear()

    def __dealloc__(self):
        PyMem_Free(self._table)
        PyMem_Free(self._keys)
        PyMem_Free(self._lens)
        PyMem_Free(self._hashes)

    @property
    def capacity(self):
        return self._capacity

    @property
    def digests(self):
        return self._digests

    def __len__(self):
        return self._count

    def __sizeof__(self):
        return (object.__sizeof__(self) + (self._mask + 1) * sizeof(Entry)
                + self._capacity * (WIDTH + 1 + sizeof(uint32_t)))

    def clear(self):
        memset(self._table, 0xFF, (self._mask + 1) * sizeof(Entry))  # every slot EMPTY
        self._head = self._count = 0

    def __contains__(self, key):
        cdef Py_ssize_t size
        cdef const unsigned char* raw
        if self._digests:
            raw = digest(key, &size)
            return self._has(raw, size, digest_hash(raw))
        raw = borrow(key, &size)
        if raw == NULL:
            return self._via_buffer(key, False)
        check_size(size)
        return self._has(raw, size, object_hash(key, raw, size))

    def check_and_insert(self, key, /):
        cdef Py_ssize_t size
        cdef const unsigned char* raw
        if self._digests:
            raw = digest(key, &size)
            return self._insert(raw, size, digest_hash(raw))
        raw = borrow(key, &size)
        if raw == NULL:
            return self._via_buffer(key, True)
        check_size(size)
        return self._insert(raw, size, object_hash(key, raw, size))

    cdef bint _via_buffer(self, object key, bint insert) except -1:
        # bytearray and memoryview: read through a buffer view, released on every path.
        cdef Py_buffer view
        cdef const unsigned char* raw
        if not (PyByteArray_Check(key) or PyMemoryView_Check(key)):
            raise bad_key_type(key)
        PyObject_GetBuffer(key, &view, PyBUF_SIMPLE)
        try:
            check_size(view.len)
            raw = <const unsigned char*>view.buf
            if insert:
                return self._insert(raw, view.len, key_hash(raw, view.len))
            return self._has(raw, view.len, key_hash(raw, view.len))
        finally:
            PyBuffer_Release(&view)

    cdef inline bint _has(self, const unsigned char* raw, Py_ssize_t size,
                          uint32_t h) noexcept:
        return self._table[self._probe(raw, size, h)].slot != EMPTY

    cdef bint _insert(self, const unsigned char* raw, Py_ssize_t size, uint32_t h) noexcept:
        cdef size_t pos = self._probe(raw, size, h)
        cdef size_t gap
        if self._table[pos].slot != EMPTY:
            return False
        if self._count == self._capacity:
            gap = self._evict_oldest()
            # The shift leaves one new gap; if it lies on our probe run, it comes first.
            if ((gap - h) & self._mask) < ((pos - h) & self._mask):
                pos = gap
        self._store(pos, raw, size, h)
        return True

    cdef void _store(self, size_t pos, const unsigned char* raw, Py_ssize_t size,
                     uint32_t h) noexcept:
        cdef Py_ssize_t slot = self._head + self._count
        if slot >= self._capacity:
            slot -= self._capacity
        memcpy(self._keys + slot * WIDTH, raw, size)
        self._lens[slot] = <unsigned char>size
        self._hashes[slot] = h
        self._table[pos].slot = <int32_t>slot
        self._table[pos].hash = h
        self._count += 1

    cdef inline size_t _probe(self, const unsigned char* raw, Py_ssize_t size,
                              uint32_t h) noexcept:
        """The table position holding the key, or the empty one where it belongs."""
        cdef size_t pos = h & self._mask
        cdef Entry* entry
        while True:
            entry = &self._table[pos]
            if entry.slot == EMPTY:
                return pos
            if (entry.hash == h and self._lens[entry.slot] == size
                    and same_bytes(self._keys + entry.slot * WIDTH, raw, size)):
                return pos
            pos = (pos + 1) & self._mask

    cdef size_t _evict_oldest(self) noexcept:
        """Forget the oldest key; returns the table position left empty."""
        cdef int32_t slot = <int32_t>self._head
        cdef size_t pos = self._hashes[slot] & self._mask
        while self._table[pos].slot != slot:
            pos = (pos + 1) & self._mask
        self._head += 1
        if self._head == self._capacity:
            self._head = 0
        self._count -= 1
        return self._delete_at(pos)

    cdef size_t _delete_at(self, size_t gap) noexcept:
        # Backward shift: pull later members of the probe run into the gap unless that
        # would move one before its home position; the run ends at the first EMPTY.
        cdef size_t pos = gap
        cdef size_t home
        while True:
            pos = (pos + 1) & self._mask
            if self._table[pos].slot == EMPTY:
                break
            home = self._table[pos].hash & self._mask
            if ((pos - home) & self._mask) >= ((pos - gap) & self._mask):
                self._table[gap] = self._table[pos]
                gap = pos
        self._table[gap].slot = EMPTY
        return gap

