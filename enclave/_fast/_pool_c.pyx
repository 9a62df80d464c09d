# cython: language_level=3, binding=False
"""Per-peer connection bookkeeping, compiled twin of ``_pool_py``.

Rules of the module are those of ``_pool_py`` (read its header); this twin adds:
- The idle list is intrusive: each idle ``_Conn`` links to its neighbours, so moving
  one to the end, taking one out and expiring the oldest are pointer updates.
- In-flight counts and times are C integers and doubles; lookups by id and by peer
  stay Python dicts, because peers are arbitrary hashable objects.
- Validation and error messages come from ``_pool_py``, so both twins raise alike.
- ``binding=False`` makes the methods plain C methods, and the methods of one
  argument take it positionally only (METH_O): the cheapest calls CPython offers.
"""

cimport cython

from cpython.number cimport PyNumber_Index
from cpython.object cimport PyObject

from enclave._fast._pool_py import check_settings, duplicate_conn, release_below_zero


@cython.final
@cython.freelist(64)
@cython.auto_pickle(False)
cdef class _Conn:
    cdef object peer
    cdef object conn_id
    cdef Py_ssize_t in_flight
    cdef double last_used
    cdef bint idle      # linked into the pool's idle list
    # Idle-list neighbours, NULL at the ends or when busy. Borrowed: the pool's
    # ``_conns`` owns every connection, and one leaves the list before it leaves
    # ``_conns``, so moving one costs pointer stores and no reference counting.
    cdef PyObject* prev
    cdef PyObject* next


@cython.final
@cython.auto_pickle(False)
cdef class Pool:
    """Connections per peer: limits, least-loaded pick, idle expiry."""

    cdef Py_ssize_t _max_per_peer
    cdef double _idle_timeout
    cdef dict _conns    # conn_id -> _Conn
    cdef dict _peers    # peer -> list of _Conn, in add order
    cdef PyObject* _oldest  # idle list, least recently used first (borrowed)
    cdef PyObject* _newest

    def __cinit__(self, max_per_peer=3, idle_timeout=30.0):
        self._max_per_peer, self._idle_timeout = check_settings(max_per_peer, idle_timeout)
        self._conns = {}
        self._peers = {}

    @property
    def max_per_peer(self):
        return self._max_per_peer

    @property
    def idle_timeout(self):
        return self._idle_timeout

    def __len__(self):
        return len(self._conns)

    def __contains__(self, conn_id):
        return conn_id in self._conns

    def add(self, peer, conn_id, double now):
        cdef _Conn conn
        cdef list conns
        conn_id = PyNumber_Index(conn_id)  # what operator.index does in the pure twin
        if conn_id in self._conns:
            raise duplicate_conn(conn_id)
        conns = self._peers.get(peer)
        if conns is None:
            conns = self._peers[peer] = []
        elif len(conns) >= self._max_per_peer:
            return False
        conn = _Conn.__new__(_Conn)
        conn.peer, conn.conn_id, conn.last_used = peer, conn_id, now
        conns.append(conn)
        self._conns[conn_id] = conn
        self._link(conn)
        return True

    def remove(self, conn_id, /):
        cdef _Conn conn = self._conns.get(conn_id)
        if conn is None:
            return None
        self._drop(conn)
        return conn.peer

    def pick(self, peer, /):
        cdef list conns = self._peers.get(peer)
        cdef _Conn best, conn
        if not conns:
            return None
        best = conns[0]
        if best.in_flight == 0:  # nothing in flight: no connection can beat the first
            return best.conn_id
        for conn in conns:
            if conn.in_flight < best.in_flight:
                best = conn
        return best.conn_id

    def acquire(self, conn_id, double now):
        cdef _Conn conn = self._conns[conn_id]
        if conn.in_flight == 0:
            self._unlink(conn)
        conn.in_flight += 1
        conn.last_used = now

    def release(self, conn_id, double now):
        cdef _Conn conn = self._conns[conn_id]
        if conn.in_flight == 0:
            raise release_below_zero(conn.conn_id)
        conn.in_flight -= 1
        conn.last_used = now
        if conn.in_flight == 0:
            self._link(conn)

    def touch(self, conn_id, double now, /):
        cdef _Conn conn = self._conns[conn_id]
        conn.last_used = now
        if conn.idle and <PyObject*>conn is not self._newest:
            self._unlink(conn)
            self._link(conn)

    def expire(self, double now, /):
        cdef list expired = []
        cdef _Conn conn
        while self._oldest is not NULL:
            conn = <_Conn>self._oldest
            if not now >= conn.last_used + self._idle_timeout:  # NaN expires nothing
                break
            self._drop(conn)
            expired.append((conn.peer, conn.conn_id))
        return expired

    def next_expiry(self):
        if self._oldest is NULL:
            return None
        return (<_Conn>self._oldest).last_used + self._idle_timeout

    def in_flight(self, conn_id, /):
        return (<_Conn>self._conns[conn_id]).in_flight

    def peer_of(self, conn_id, /):
        return (<_Conn>self._conns[conn_id]).peer

    def count(self, peer, /):
        cdef list conns = self._peers.get(peer)
        return len(conns) if conns else 0

    def connections(self, peer, /):
        cdef list conns = self._peers.get(peer, [])
        cdef _Conn conn
        return [conn.conn_id for conn in conns]

    cdef void _link(self, _Conn conn) noexcept:
        # Append to the idle list: the newest idle connection goes last.
        conn.idle = True
        conn.prev = self._newest
        conn.next = NULL
        if self._newest is NULL:
            self._oldest = <PyObject*>conn
        else:
            (<_Conn>self._newest).next = <PyObject*>conn
        self._newest = <PyObject*>conn

    cdef void _unlink(self, _Conn conn) noexcept:
        if conn.prev is NULL:
            self._oldest = conn.next
        else:
            (<_Conn>conn.prev).next = conn.next
        if conn.next is NULL:
            self._newest = conn.prev
        else:
            (<_Conn>conn.next).prev = conn.prev
        conn.prev = conn.next = NULL
        conn.idle = False

    cdef int _drop(self, _Conn conn) except -1:
        cdef list conns
        if conn.idle:  # out of the idle list while _conns still owns it
            self._unlink(conn)
        del self._conns[conn.conn_id]
        conns = self._peers[conn.peer]
        conns.remove(conn)
        if not conns:
            del self._peers[conn.peer]
        return 0
