"""The sans-IO Enclave protocol: bytes in, bytes and events out.

Nothing in this package imports asyncio, sockets, sqlite3, the store, the node or a
face, and nothing reads a clock: time comes in as ``now``. One stated exception:
``crypto.Identity`` counts its RSA private operations under a ``threading.Lock``,
because the node runs those operations on its crypto threads; the lock guards that
counter only, never protocol state. tests/test_layers.py holds the package to this.
"""
