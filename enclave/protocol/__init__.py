"""The sans-IO Enclave protocol: bytes in, bytes and events out.

Nothing in this package imports asyncio, sockets, threads, the store or a face,
and nothing reads a clock: time comes in as ``now``.
"""
