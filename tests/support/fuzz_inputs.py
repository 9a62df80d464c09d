"""What the connection fuzz feeds a target, and in which pieces.

Strategies: (1) random bytes: raw, uniformly sized up to 4 KiB, well-framed, and framed
behind plausible headers (ENC2 types, ALERT, v1 fixmaps); (2) mutations of the recorded
transcripts: bit flips, byte writes, truncations, extensions, length-prefix edits,
dropped, duplicated, swapped and inserted frames, raw splices, deletions and cuts;
(3) length prefixes from ``PREFIXES`` (0, 16, 4095-4097, 49151-49153, 1 MiB + 1,
0xFFFFFFFF, ...) with random payloads. Strategy (4), records sealed under the session
keys, is in ``support.fuzz_sealed``.

Chunking: whole, one byte at a time (the first ``BYTEWISE`` bytes), random cuts (empty
chunks included), and cuts at frame boundaries plus random ones; chunks arrive as
bytes, bytearray or memoryview.

Mutations are JSON-friendly lists, so that a corpus entry can name them
(``support.fuzz_corpus``).
"""

from __future__ import annotations

from hypothesis import strategies as st

from enclave.protocol.records import MAX_RECORD
from support.fuzz_rig import HEADER, framed

# --- chunking -------------------------------------------------------------------------------

WRAPS = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}
BYTEWISE = 2048  # covers the longest genuine input (1,639 bytes) one byte at a time

_frame_cuts = st.tuples(st.just("frames"), st.lists(st.integers(0, 1 << 13), max_size=4))
chunkings = st.one_of(
    st.just(("whole", [])),
    st.just(("bytes", [])),
    st.tuples(st.just("cuts"), st.lists(st.integers(0, 1 << 13), max_size=12)),
    _frame_cuts,
    _frame_cuts,  # twice as likely: frames must come alone before the session is up
)
wraps = st.sampled_from(sorted(WRAPS))


def frame_bounds(payloads) -> list[int]:
    bounds, pos = [], 0
    for payload in payloads:
        pos += HEADER + len(payload)
        bounds.append(pos)
    return bounds


def chunks_of(stream: bytes, chunking, bounds: list[int]) -> list[bytes]:
    kind, cuts = chunking[0], list(chunking[1])
    if kind == "bytes":  # one byte at a time (past BYTEWISE bytes, the rest at once)
        head = [stream[n : n + 1] for n in range(min(len(stream), BYTEWISE))]
        return head + [stream[BYTEWISE:]] if len(stream) > BYTEWISE else head or [b""]
    if kind == "frames":
        cuts += [b for b in bounds if b < len(stream)]
    elif kind == "whole":
        cuts = []
    points = sorted(c % (len(stream) + 1) for c in cuts)  # repeats give empty chunks
    edges = [0, *points, len(stream)]
    return [stream[a:b] for a, b in zip(edges, edges[1:], strict=False)]


# --- strategy 1: random bytes -------------------------------------------------------------------

HEADS = (
    b"ENC2",
    b"ENC2\x01\x00\x02\x02",  # an HS1 header
    b"ENC2\x02\x00\x02\x00",  # an HS2 header
    b"ENC2\x03\x00\x00\x00",  # an HS3 header
    b"ENC2\x7f",  # an ALERT, code and padding random
    b"ENC2\x7f\x02\x00\x00",
    b"\x88",
    b"\x89",  # a v1 envelope's fixmap
    b"\x89\xa7version\x01\xaamessage_id\xd9\x24",
)

random_streams = st.one_of(
    st.binary(max_size=4096),
    st.integers(0, 4096).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    st.lists(st.binary(max_size=1500), max_size=6).map(lambda ps: b"".join(map(framed, ps))),
    st.lists(
        st.tuples(st.sampled_from(HEADS), st.binary(max_size=1500)), min_size=1, max_size=4
    ).map(lambda ps: b"".join(framed(h + p) for h, p in ps)),
)

# Every target but listen_v1_envelope, which is listen_v1 with another genuine input.
RANDOM_TARGETS = ("listen", "listen_v1", "await_hs2", "await_hs3", "established_r", "established_i")

# --- strategy 3: length prefixes -----------------------------------------------------------------

PREFIXES = (0, 1, 16, 17, 18, 40, 4095, 4096, 4097, 49151, 49152, 49153, MAX_RECORD,
            MAX_RECORD + 1, 0x7FFFFFFF, 0xFFFFFFFF)  # fmt: skip
prefixed_streams = st.lists(
    st.tuples(st.sampled_from(PREFIXES) | st.integers(0, 0xFFFFFFFF), st.binary(max_size=2048)),
    min_size=1,
    max_size=3,
).map(lambda parts: b"".join(n.to_bytes(4, "big") + p for n, p in parts))


# --- strategy 2: mutations of the recorded transcripts -------------------------------------------

_STREAM_OPS = {"splice", "cut", "delete"}
_index = st.integers(0, 15)
_position = st.integers(0, 160) | st.integers(0, 1 << 12)
_hex = st.binary(max_size=64).map(bytes.hex)

mutation = st.one_of(
    st.tuples(st.just("flip"), _index, _position, st.integers(0, 7)),
    st.tuples(st.just("set"), _index, _position, st.integers(0, 255)),
    st.tuples(st.just("truncate"), _index, _position, st.booleans()),
    st.tuples(st.just("extend"), _index, _hex, st.booleans()),
    st.tuples(st.just("prefix"), _index, st.sampled_from(PREFIXES) | st.integers(0, 0xFFFFFFFF)),
    st.tuples(st.just("nudge"), _index, st.integers(-4, 4)),
    st.tuples(st.just("drop"), _index),
    st.tuples(st.just("dup"), _index, _index),
    st.tuples(st.just("swap"), _index, _index),
    st.tuples(st.just("insert"), _index, _hex),
    st.tuples(st.just("splice"), st.integers(0, 1 << 13), _hex),
    st.tuples(st.just("cut"), st.integers(0, 1 << 13)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 13), st.integers(1, 64)),
).map(list)
mutations = st.lists(mutation, min_size=1, max_size=4)


def mutate(frames, ops, trace: list | None = None) -> tuple[bytes, list[int]]:
    """Apply ``ops`` (JSON-friendly lists) to a transcript; returns the stream and the
    frame boundaries before any stream-level op. Indices and positions wrap around.
    A "set" that leaves its byte unchanged is appended to ``trace``."""
    items = [[len(f), bytearray(f)] for f in frames]
    late = []
    for op in ops:
        kind, args = op[0], op[1:]
        if kind in _STREAM_OPS:
            late.append(op)
            continue
        if kind == "insert":
            data = bytes.fromhex(args[1])
            items.insert(args[0] % (len(items) + 1), [len(data), bytearray(data)])
            continue
        if not items:
            continue
        i = args[0] % len(items)
        prefix, payload = items[i]
        if kind in ("flip", "set") and payload:
            pos = args[1] % len(payload)
            if kind == "set" and payload[pos] == args[2] and trace is not None:
                trace.append(op)
            payload[pos] = payload[pos] ^ (1 << args[2]) if kind == "flip" else args[2]
        elif kind == "truncate":
            del payload[args[1] % (len(payload) + 1) :]
            if args[2]:
                items[i][0] = len(payload)
        elif kind == "extend":
            payload += bytes.fromhex(args[1])
            if args[2]:
                items[i][0] = len(payload)
        elif kind == "prefix":
            items[i][0] = args[1] & 0xFFFFFFFF
        elif kind == "nudge":
            items[i][0] = (prefix + args[1]) & 0xFFFFFFFF
        elif kind == "drop":
            del items[i]
        elif kind == "dup":
            items.insert(args[1] % (len(items) + 1), [prefix, bytearray(payload)])
        elif kind == "swap":
            j = args[1] % len(items)
            items[i], items[j] = items[j], items[i]
    stream = bytearray()
    bounds = []
    for prefix, payload in items:
        stream += prefix.to_bytes(4, "big") + payload
        bounds.append(len(stream))
    for kind, *args in late:
        pos = args[0] % (len(stream) + 1)
        if kind == "splice":
            stream[pos:pos] = bytes.fromhex(args[1])
        elif kind == "cut":
            del stream[pos:]
        else:
            del stream[pos : pos + args[1]]
    return bytes(stream), bounds
