"""enclave._fast: each compiled module against its pure twin.

Run:      pytest bench/bench_fast.py --benchmark-only
CI smoke: pytest bench/ --benchmark-disable   (each case runs once, checks its result)

Each case sets ``benchmark.group`` so the twins sit side by side, and
``extra_info["ops"]`` so the summary can print a per-operation median and the
speed-up (pure time ÷ native time). The ring cases make the calls
enclave/node/commits.py and delivery.py make, in a plain loop like theirs, on a
``ReplayRing(capacity, digests=True)`` with keys made as the node makes them; both twins
pay that loop, as they do in the node, so the times are what a caller pays. (``Pool``
has no compiled twin any more: see PERFORMANCE.md, "_fast twins".)
"""

from __future__ import annotations

import os
import struct
import threading
from collections import deque
from hashlib import sha256
from itertools import count

FRAME = struct.Struct(">I")
BATCH = 1000


def _label(benchmark, request, group: str, ops: int) -> None:
    benchmark.group = group
    (twin,) = request.node.callspec.params.values()  # "native" or "pure"
    benchmark.extra_info.update(ops=ops, twin=twin)


def consume(iterator) -> None:
    deque(iterator, maxlen=0)


# --- FrameSplitter ---------------------------------------------------------------------


def test_splitter_64_frames_per_chunk(benchmark, request, frames):
    _label(benchmark, request, "splitter: 64 x 100 B frames per chunk (per frame)", 64)
    chunk = b"".join(FRAME.pack(100) + bytes([i]) * 100 for i in range(64))
    splitter = frames.FrameSplitter(1 << 20)
    out = benchmark(splitter.feed, chunk)
    assert len(out) == 64 and out[-1] == bytes([63]) * 100 and splitter.buffered == 0


def test_splitter_byte_at_a_time(benchmark, request, frames):
    data = FRAME.pack(16) + b"0123456789abcdef"
    pieces = [data[i : i + 1] for i in range(len(data))]
    _label(benchmark, request, "splitter: 20 B frame fed 1 byte at a time (per byte)", len(pieces))
    splitter = frames.FrameSplitter(4096)

    def one_frame():
        return [f for piece in pieces for f in splitter.feed(piece)]

    assert benchmark(one_frame) == [b"0123456789abcdef"]


# --- ReplayRing ------------------------------------------------------------------------
# What enclave/node/commits.py and delivery.py do per received chat: its key is a fresh
# 16 B object, SHA-256 over the node's per-process secret and the chat's (sender,
# created_ms, id), truncated; the ring takes it with ``digests=True``. ``key in ring``
# decides whether it costs SQL, and once committed ``check_and_insert`` records it.
# Each round gets fresh key objects from ``pedantic``'s setup, untimed.

RING = 10000
ROUNDS = 300
SECRET = os.urandom(16)  # the node's per-process secret


def _digests(n: int, start: int = 0) -> list[bytes]:
    """Keys as the node makes them: each a new object, a slice of a salted digest."""
    return [sha256(SECRET + (start + i).to_bytes(16, "big")).digest()[:16] for i in range(n)]


def _full_ring(module):
    replay = module.ReplayRing(RING, digests=True)
    consume(map(replay.check_and_insert, _digests(RING, 1 << 40)))
    return replay


def test_ring_received_chat(benchmark, request, ring):
    _label(benchmark, request, "ring: new chat: `key in ring` + check_and_insert", BATCH)
    replay = _full_ring(ring)
    rounds = count()

    def fresh_batch():
        return (_digests(BATCH, next(rounds) * BATCH),), {}

    def received(keys):
        # commits.py: incoming_rows asks, delivery.py: _received inserts what was committed
        insert = replay.check_and_insert
        new = 0
        for key in keys:
            if key not in replay:
                new += insert(key)
        return new

    new = benchmark.pedantic(received, setup=fresh_batch, rounds=ROUNDS, warmup_rounds=5)
    assert new == BATCH and len(replay) == RING


def test_ring_duplicate_chat(benchmark, request, ring):
    _label(benchmark, request, "ring: duplicate chat: `key in ring` (present)", BATCH)
    replay = _full_ring(ring)
    present = range(1 << 40, (1 << 40) + RING, 10)

    def resent():  # the same chats again: the node computes their keys afresh
        return ([_digests(1, i)[0] for i in present],), {}

    def duplicates(keys):
        dupes = 0
        for key in keys:
            if key in replay:
                dupes += 1
        return dupes

    assert benchmark.pedantic(duplicates, setup=resent, rounds=ROUNDS, warmup_rounds=5) == BATCH


# --- CountedGcm ------------------------------------------------------------------------

SEAL_ROWS = 1024  # a busy writer batch: the store seals each batch's bodies in one call


def test_gcm_seal_rows(benchmark, request, gcm):
    # What enclave/store/messages.py does per committed batch of received chats: the
    # bodies of flat rows (rowid, peer id, message id, body, ...) sealed in place.
    _label(benchmark, request, "gcm: seal a batch of 100 B message bodies (per body)", SEAL_ROWS)
    sealer = gcm.CountedGcm(os.urandom(32), 0)
    body = "x" * 100

    def fresh_rows():
        flat = []
        for i in range(SEAL_ROWS):
            flat += [i + 1, 7, b"m" * 16, body, 0, 1, 0]
        return (flat,), {}

    def seal(flat):
        sealer.seal_rows(flat, 7, b"i")
        return flat

    flat = benchmark.pedantic(seal, setup=fresh_rows, rounds=ROUNDS, warmup_rounds=5)
    assert len(flat[3]) == 12 + 100 + 16 and type(flat[-4]) is bytes


def test_gcm_loop_beside_a_sealing_writer(benchmark, request, gcm):
    # What the node's event loop keeps while its writer thread seals: the timed call is
    # plain Python on this thread (a stand-in for the loop) while another thread seals
    # batches as the store's writer does. The compiled twin seals a batch without the
    # GIL; the pure one holds it (as cryptography's AESGCM does) for every body.
    # A timed call spans many of the interpreter's 5 ms GIL switch intervals.
    _label(benchmark, request, "gcm: loop's Python beside a sealing writer (per 1k steps)", 2000)
    sealer = gcm.CountedGcm(os.urandom(32), 0)
    template = []
    for i in range(SEAL_ROWS):
        template += [i + 1, 7, b"m" * 16, "x" * 100, 0, 1, 0]
    stop, batches = threading.Event(), count()

    def writer():
        while not stop.is_set():  # bounded: the benchmark sets stop when it is done
            sealer.seal_rows(list(template), 7, b"o")
            next(batches)

    def loop_work():
        n = 0
        for _ in range(2_000_000):
            n += 1
        return n

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert benchmark.pedantic(loop_work, rounds=15, warmup_rounds=1) == 2_000_000
    finally:
        stop.set()
        thread.join()
    assert next(batches) > 0  # the writer did seal meanwhile
