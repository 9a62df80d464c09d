# cython: language_level=3, binding=False
"""AES-256-GCM with counted nonces, compiled twin of ``_gcm_py``.

Rules of the module are those of ``_gcm_py`` (read its header); this twin adds:
- It calls OpenSSL's libcrypto (EVP, the system's OpenSSL 3) directly: the key is
  expanded once, in ``__cinit__``, and each value then costs one IV reset, one AAD
  update, one update, a final and a tag read, with no Python object in between.
- ``seal_rows`` makes every result object and reads every body's UTF-8 (in place: a
  str caches it) while it holds the GIL, then seals the whole batch without it, so
  the event loop runs while the store's writer thread seals. A batch that small
  (under ``_NOGIL_ROWS`` rows) stays under the GIL: letting it go and taking it back
  costs more than it frees.
- One EVP context serves the calls made under the GIL (they cannot overlap); a batch
  sealed without the GIL uses a context of its own, so a ``seal`` from another thread
  meanwhile never shares one.
- The nonce counter is two C integers (high 32 and low 64 bits), advanced while the
  GIL is held: a reservation is atomic without a lock.
- The key is wiped from this object's memory when it is freed (OpenSSL's context
  wipes its own copy).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.unicode cimport PyUnicode_CheckExact, PyUnicode_GET_LENGTH
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy

from enclave._fast._gcm_py import (
    bad_value,
    check_bytes,
    check_copy,
    check_key,
    check_layout,
    check_row,
    check_size,
    check_start,
)

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL

cdef extern from "openssl/evp.h" nogil:
    ctypedef struct EVP_CIPHER_CTX:
        pass
    ctypedef struct EVP_CIPHER:
        pass
    ctypedef struct ENGINE:
        pass
    EVP_CIPHER_CTX* EVP_CIPHER_CTX_new()
    void EVP_CIPHER_CTX_free(EVP_CIPHER_CTX* ctx)
    const EVP_CIPHER* EVP_aes_256_gcm()
    int EVP_EncryptInit_ex(EVP_CIPHER_CTX* ctx, const EVP_CIPHER* cipher, ENGINE* impl,
                           const unsigned char* key, const unsigned char* iv)
    int EVP_EncryptFinal_ex(EVP_CIPHER_CTX* ctx, unsigned char* out, int* outl)
    int EVP_DecryptInit_ex(EVP_CIPHER_CTX* ctx, const EVP_CIPHER* cipher, ENGINE* impl,
                           const unsigned char* key, const unsigned char* iv)
    int EVP_DecryptFinal_ex(EVP_CIPHER_CTX* ctx, unsigned char* out, int* outl)
    int EVP_CipherUpdate(EVP_CIPHER_CTX* ctx, unsigned char* out, int* outl,
                         const unsigned char* data, int inl)
    int EVP_CIPHER_CTX_ctrl(EVP_CIPHER_CTX* ctx, int type, int arg, void* ptr)
    int EVP_CTRL_GCM_GET_TAG
    int EVP_CTRL_GCM_SET_TAG

cdef extern from "openssl/crypto.h" nogil:
    void OPENSSL_cleanse(void* ptr, size_t len)

cdef enum:
    KEY_LEN = 32
    NONCE_LEN = 12
    TAG_LEN = 16
    ROW_AD_LEN = 18  # b"m", rowid, peer id, direction
    MAX_LEN = 0x7FFFFFFF  # EVP counts in int: a longer value is refused (OverflowError)

KEY_BYTES = KEY_LEN
NONCE = NONCE_LEN
TAG = TAG_LEN
MAX_VALUE = MAX_LEN

# Measured with bench/bench_store.py: below this a batch seals faster under the GIL.
_NOGIL_ROWS = 64


cdef inline void put_be64(unsigned char* out, uint64_t value) noexcept nogil:
    cdef int i
    for i in range(8):
        out[7 - i] = <unsigned char>(value >> (8 * i))


cdef inline void put_nonce(unsigned char* out, uint32_t hi, uint64_t lo) noexcept nogil:
    cdef int i
    for i in range(4):
        out[3 - i] = <unsigned char>(hi >> (8 * i))
    put_be64(out + 4, lo)


cdef inline bint as_int64(object value, int64_t* out) except -1:
    """True, with ``out`` set, for an exact int that fits 64 bits signed."""
    cdef int overflow = 0
    cdef long long number
    if not PyLong_CheckExact(value):
        return False
    number = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow:
        return False
    out[0] = number
    return True


cdef inline int cipher_update(EVP_CIPHER_CTX* ctx, unsigned char* out,
                              const unsigned char* data, Py_ssize_t size) noexcept nogil:
    """Pass ``size`` bytes (at most ``MAX_LEN``: checked before) through the context
    (``out`` NULL: they are associated data); 1 on success."""
    cdef int n = 0
    if size == 0:
        return 1
    return EVP_CipherUpdate(ctx, out, &n, data, <int>size) == 1


cdef int gcm_seal(EVP_CIPHER_CTX* ctx, const unsigned char* nonce, const unsigned char* ad,
                  Py_ssize_t ad_len, const unsigned char* data, Py_ssize_t size,
                  unsigned char* out) noexcept nogil:
    """Write ``nonce || ciphertext || tag`` of ``data`` to ``out``; 1 on success."""
    cdef int n = 0
    memcpy(out, nonce, NONCE_LEN)
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1
            or not cipher_update(ctx, NULL, ad, ad_len)
            or not cipher_update(ctx, out + NONCE_LEN, data, size)
            or EVP_EncryptFinal_ex(ctx, out + NONCE_LEN + size, &n) != 1):
        return 0
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + NONCE_LEN + size)


cdef int gcm_open(EVP_CIPHER_CTX* ctx, const unsigned char* value, Py_ssize_t size,
                  const unsigned char* ad, Py_ssize_t ad_len,
                  unsigned char* out) noexcept nogil:
    """Open ``nonce || ciphertext || tag`` into ``out``; 1 when the tag checks."""
    cdef int n = 0
    cdef Py_ssize_t body = size - NONCE_LEN - TAG_LEN
    if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, value) != 1
            or not cipher_update(ctx, NULL, ad, ad_len)
            or not cipher_update(ctx, out, value + NONCE_LEN, body)
            or EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                                   <void*>(value + NONCE_LEN + body)) != 1):
        return 0
    return EVP_DecryptFinal_ex(ctx, out + body, &n)


cdef EVP_CIPHER_CTX* keyed_context(const unsigned char* key, bint decrypt) nogil:
    cdef EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new()
    cdef int ok
    if ctx == NULL:
        return NULL
    if decrypt:
        ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, NULL)
    else:
        ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, NULL)
    if ok != 1:
        EVP_CIPHER_CTX_free(ctx)
        return NULL
    return ctx


cdef class CountedGcm:
    cdef unsigned char _key[KEY_LEN]
    cdef EVP_CIPHER_CTX* _enc
    cdef EVP_CIPHER_CTX* _dec
    cdef uint32_t _hi
    cdef uint64_t _lo

    def __cinit__(self, key, start):
        check_key(key)
        check_start(start)
        memcpy(self._key, PyBytes_AS_STRING(key), KEY_LEN)
        self._hi = <uint32_t>(start >> 64)
        self._lo = <uint64_t>(start & 0xFFFFFFFFFFFFFFFF)
        self._enc = keyed_context(self._key, False)
        self._dec = keyed_context(self._key, True)
        if self._enc == NULL or self._dec == NULL:
            raise MemoryError("OpenSSL could not set up AES-256-GCM")

    def __dealloc__(self):
        OPENSSL_cleanse(self._key, KEY_LEN)
        if self._enc != NULL:
            EVP_CIPHER_CTX_free(self._enc)
        if self._dec != NULL:
            EVP_CIPHER_CTX_free(self._dec)

    cdef inline void _reserve(self, uint64_t count, uint32_t* hi, uint64_t* lo) noexcept:
        # Runs with the GIL held and calls nothing that could release it: atomic.
        hi[0], lo[0] = self._hi, self._lo
        self._lo = self._lo + count
        if self._lo < lo[0]:  # carried out of the low 64 bits (the high 32 wrap)
            self._hi += 1

    def seal(self, data, ad):
        check_bytes(data, ad)
        cdef uint32_t hi
        cdef uint64_t lo
        cdef unsigned char nonce[NONCE_LEN]
        cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
        out = PyBytes_FromStringAndSize(NULL, NONCE_LEN + size + TAG_LEN)
        self._reserve(1, &hi, &lo)
        put_nonce(nonce, hi, lo)
        if not gcm_seal(self._enc, nonce, <const unsigned char*>PyBytes_AS_STRING(ad),
                        PyBytes_GET_SIZE(ad), <const unsigned char*>PyBytes_AS_STRING(data),
                        size, <unsigned char*>PyBytes_AS_STRING(out)):
            raise RuntimeError("OpenSSL failed to seal a value")
        return out

    def open(self, value, ad):
        check_bytes(value, ad)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(value)
        if size < NONCE_LEN + TAG_LEN:
            raise bad_value()
        out = PyBytes_FromStringAndSize(NULL, size - NONCE_LEN - TAG_LEN)
        if not gcm_open(self._dec, <const unsigned char*>PyBytes_AS_STRING(value), size,
                        <const unsigned char*>PyBytes_AS_STRING(ad), PyBytes_GET_SIZE(ad),
                        <unsigned char*>PyBytes_AS_STRING(out)):
            raise bad_value()
        return out

    def seal_rows(self, flat, width, direction):
        cdef Py_ssize_t rows = check_layout(flat, width, direction)
        cdef Py_ssize_t step, i, at
        cdef const char** texts = NULL
        cdef Py_ssize_t* sizes = NULL
        cdef int64_t* ids = NULL
        cdef unsigned char** outs = NULL
        cdef uint32_t hi
        cdef uint64_t lo
        cdef int ok = 1
        cdef unsigned char way = direction[0]
        if rows == 0:
            return None
        step = width
        # Everything is read from one copy: another thread (or a collection the
        # allocations below set off) changing ``flat`` meanwhile cannot move a row or
        # free a body, whose UTF-8 is read in place and sealed without the GIL.
        copy = flat[:]
        check_copy(copy, rows, step)
        sealed = [None] * rows
        texts = <const char**>PyMem_Malloc(rows * sizeof(char*))
        sizes = <Py_ssize_t*>PyMem_Malloc(rows * sizeof(Py_ssize_t))
        ids = <int64_t*>PyMem_Malloc(2 * rows * sizeof(int64_t))
        outs = <unsigned char**>PyMem_Malloc(rows * sizeof(unsigned char*))
        try:
            if texts == NULL or sizes == NULL or ids == NULL or outs == NULL:
                raise MemoryError()
            for i in range(rows):  # every row is checked before anything is made
                at = i * step
                rowid = <object>PyList_GET_ITEM(copy, at)
                peer = <object>PyList_GET_ITEM(copy, at + 1)
                body = <object>PyList_GET_ITEM(copy, at + 3)
                if not (as_int64(rowid, &ids[2 * i]) and as_int64(peer, &ids[2 * i + 1])
                        and PyUnicode_CheckExact(body) and PyUnicode_GET_LENGTH(body) <= MAX_LEN):
                    check_row(rowid, peer, body)  # raises what the pure twin raises
            for i in range(rows):
                texts[i] = PyUnicode_AsUTF8AndSize(<object>PyList_GET_ITEM(copy, i * step + 3),
                                                   &sizes[i])
            for i in range(rows):
                if sizes[i] > MAX_LEN:
                    check_size(sizes[i])
                value = PyBytes_FromStringAndSize(NULL, NONCE_LEN + sizes[i] + TAG_LEN)
                outs[i] = <unsigned char*>PyBytes_AS_STRING(value)
                sealed[i] = value
            self._reserve(rows, &hi, &lo)
            if rows < _NOGIL_ROWS:
                ok = seal_batch(self._enc, self._key, rows, texts, sizes, ids,
                                way, outs, hi, lo, False)
            else:
                with nogil:
                    ok = seal_batch(NULL, self._key, rows, texts, sizes, ids,
                                    way, outs, hi, lo, True)
        finally:
            PyMem_Free(texts)
            PyMem_Free(sizes)
            PyMem_Free(ids)
            PyMem_Free(outs)
        if not ok:
            raise RuntimeError("OpenSSL failed to seal a batch")
        flat[3::width] = sealed


cdef int seal_batch(EVP_CIPHER_CTX* ctx, const unsigned char* key, Py_ssize_t rows,
                    const char** texts, Py_ssize_t* sizes, int64_t* ids,
                    unsigned char direction, unsigned char** outs, uint32_t hi,
                    uint64_t lo, bint own_context) noexcept nogil:
    """Seal every row's body into its result (1 on success). With ``own_context`` the
    batch keys a context of its own (it runs without the GIL)."""
    cdef unsigned char nonce[NONCE_LEN]
    cdef unsigned char ad[ROW_AD_LEN]
    cdef Py_ssize_t i
    cdef int ok = 1
    if own_context:
        ctx = keyed_context(key, False)
        if ctx == NULL:
            return 0
    ad[0] = 0x6D  # b"m": a message body
    ad[ROW_AD_LEN - 1] = direction
    for i in range(rows):
        put_nonce(nonce, hi, lo)
        lo += 1
        if lo == 0:
            hi += 1
        put_be64(ad + 1, <uint64_t>ids[2 * i])
        put_be64(ad + 9, <uint64_t>ids[2 * i + 1])
        if not gcm_seal(ctx, nonce, ad, ROW_AD_LEN, <const unsigned char*>texts[i],
                        sizes[i], outs[i]):
            ok = 0
            break
    if own_context:
        EVP_CIPHER_CTX_free(ctx)
    return ok
