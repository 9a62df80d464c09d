"""The compiled and pure twins agree on random operation sequences.

Each property drives both twins with the same operations and compares every answer,
exception (type and message) and observable attribute after every step. The last
test fails when the compiled twin should have loaded but did not.
"""

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fast_twins import load_twin
from support.fuzzing import fuzz

import enclave._fast

AGREE = fuzz(1000)


def outcome(call, *args):
    """What a call returned, or which exception it raised, in a comparable form."""
    try:
        return ("ok", call(*args))
    except Exception as exc:  # noqa: BLE001 - the point is comparing any failure
        return ("raised", type(exc), str(exc), getattr(exc, "declared", None))


def both(stem):
    return load_twin(stem, "native"), load_twin(stem, "pure")


# --- FrameSplitter ---------------------------------------------------------------------

limits = st.integers(0, 64) | st.sampled_from([0xFFFFFFFF, 1 << 20])
payloads = st.lists(st.binary(max_size=48), max_size=12)
splitter_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("feed"),
            st.integers(0, 80),
            st.integers(0, 3),
            st.sampled_from(["bytes", "bytearray", "memoryview"]),
        ),
        st.tuples(st.just("limit"), limits),
    ),
    max_size=30,
)
WRAP = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}


@AGREE
@given(
    limit=limits,
    frames=payloads,
    garbage=st.binary(max_size=8),
    ops=splitter_ops,
)
def test_splitter_twins_agree(limit, frames, garbage, ops):
    stream = b"".join(struct.pack(">I", len(f)) + f for f in frames) + garbage
    native, pure = (mod.FrameSplitter(limit) for mod in both("frames"))
    pos = 0
    for op in ops:
        if op[0] == "limit":
            native.max_frame = pure.max_frame = op[1]
            continue
        _, size, max_frames, kind = op
        chunk = WRAP[kind](stream[pos : pos + size])
        pos += size
        assert outcome(native.feed, chunk, max_frames) == outcome(pure.feed, chunk, max_frames)
        assert (native.buffered, native.max_frame) == (pure.buffered, pure.max_frame)
    assert outcome(native.feed, b"") == outcome(pure.feed, b"")


@AGREE
@given(frames=payloads, cuts=st.lists(st.integers(0, 600), max_size=10))
def test_splitter_twins_return_the_frames_under_any_chunking(frames, cuts):
    stream = b"".join(struct.pack(">I", len(f)) + f for f in frames)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    for mod in both("frames"):
        splitter = mod.FrameSplitter(48)
        out = []
        for start, stop in zip(bounds, bounds[1:], strict=False):
            out += splitter.feed(stream[start:stop])
        assert out == frames and splitter.buffered == 0


# --- ReplayRing ------------------------------------------------------------------------

ring_keys = st.one_of(
    st.sampled_from([b"a", b"b", b"c", b"d", b"e", "a", "é", b"\xc3\xa9", b"k" * 64]),
    st.binary(min_size=1, max_size=3),
    st.sampled_from([b"", b"k" * 65, 7, None]),  # invalid: length or type
)
ring_ops = st.lists(
    st.tuples(
        st.sampled_from(["insert", "contains", "clear"]),
        ring_keys,
        st.sampled_from(["same", "bytearray", "memoryview"]),
    ),
    max_size=60,
)


def as_key(key, kind):
    if kind == "same" or not isinstance(key, bytes):
        return key
    return bytearray(key) if kind == "bytearray" else memoryview(key)


@AGREE
@given(capacity=st.integers(1, 6), ops=ring_ops)
def test_ring_twins_agree(capacity, ops):
    native, pure = (mod.ReplayRing(capacity) for mod in both("ring"))
    for name, key, kind in ops:
        key = as_key(key, kind)
        if name == "insert":
            assert outcome(native.check_and_insert, key) == outcome(pure.check_and_insert, key)
        elif name == "contains":
            assert outcome(native.__contains__, key) == outcome(pure.__contains__, key)
        else:
            native.clear()
            pure.clear()
        assert len(native) == len(pure)


class SubBytes(bytes):
    pass


# digests=True: valid keys are exact bytes of 8..64. All of DIGEST_KEYS share their first
# 8 bytes (the compiled twin's table hash), so they collide; pairs of the same length
# differ in their last byte only. Invalid keys by length or type, among them the right
# bytes in another type.
DIGEST_KEYS = [
    b"\xa5" * 8 + tail
    for tail in (b"", b"\x00", b"\x00" * 8, b"\x00" * 7 + b"\x01", b"\x00" * 56, b"\x01" * 56)
]
NOT_DIGESTS = [b"", b"k" * 7, b"k" * 65, "\xa5" * 8, SubBytes(DIGEST_KEYS[2]), 7, None]
NOT_DIGESTS += [bytearray(DIGEST_KEYS[2]), memoryview(DIGEST_KEYS[2])]
digest_keys = st.one_of(
    st.sampled_from(DIGEST_KEYS),
    st.binary(min_size=8, max_size=16),
    st.sampled_from(NOT_DIGESTS),
)
digest_ops = st.lists(
    st.tuples(
        st.sampled_from(["insert"] * 4 + ["contains"] * 4 + ["clear"]),
        digest_keys,
        st.booleans(),  # True: an equal copy, a new object with no hash cached
    ),
    min_size=10,  # long enough for colliding keys to meet (lists average 5 otherwise)
    max_size=60,
)


@AGREE
@given(capacity=st.integers(1, 6), ops=digest_ops)
def test_ring_twins_agree_on_digests(capacity, ops):
    # Both twins with digests=True, and beside them a digests=False ring given only the
    # keys both modes accept: the mode changes which keys are accepted, never an answer.
    native, pure = (mod.ReplayRing(capacity, digests=True) for mod in both("ring"))
    plain = load_twin("ring", "native").ReplayRing(capacity)
    for name, key, copy in ops:
        key = bytes(bytearray(key)) if copy and type(key) is bytes else key
        if name == "insert":
            got = outcome(native.check_and_insert, key)
            assert got == outcome(pure.check_and_insert, key)
            if got[0] == "ok":
                assert got == outcome(plain.check_and_insert, key)
        elif name == "contains":
            got = outcome(native.__contains__, key)
            assert got == outcome(pure.__contains__, key)
            if got[0] == "ok":
                assert got == outcome(plain.__contains__, key)
        else:
            native.clear()
            pure.clear()
            plain.clear()
        assert len(native) == len(pure) == len(plain)


# --- CountedGcm ------------------------------------------------------------------------

int64s = st.integers(-(1 << 63), (1 << 63) - 1)
gcm_rows = st.lists(st.tuples(int64s, int64s, st.text(max_size=20)), max_size=70)
# One value of one row made invalid, or none.
spoils = st.none() | st.tuples(
    st.integers(0, 69), st.integers(0, 2), st.sampled_from([1 << 63, "1", b"b", None, "\ud800"])
)
gcm_ops = st.lists(
    st.one_of(
        st.tuples(st.just("seal"), st.binary(max_size=40), st.binary(max_size=20)),
        st.tuples(
            st.just("rows"),
            gcm_rows,
            spoils,
            st.sampled_from([4, 5, 5, 3]),
            st.sampled_from([b"i", b"o", b"i", b"o", b"", "i"]),
        ),
        st.tuples(st.just("open"), st.integers(0, 40), st.integers(-1, 40)),
    ),
    max_size=20,
)


@AGREE
@given(start=st.integers(0, (1 << 96) - 1), ops=gcm_ops)
def test_gcm_twins_agree(start, ops):
    # Same key, same start: every sealed value, error and opened value is identical.
    native, pure = (mod.CountedGcm(bytes(range(32)), start) for mod in both("gcm"))
    sealed = []
    for op in ops:
        if op[0] == "seal":
            got = outcome(native.seal, op[1], op[2])
            assert got == outcome(pure.seal, op[1], op[2])
            sealed.append((got[1], op[2]))
        elif op[0] == "rows":
            _, rows, spoil, width, direction = op
            if spoil and rows:
                row = list(rows[spoil[0] % len(rows)])
                row[spoil[1]] = spoil[2]
                rows[spoil[0] % len(rows)] = tuple(row)
            flats = [[v for r in rows for v in (r[0], r[1], b"id", r[2], 0)[:width]] for _ in "ab"]
            got = outcome(native.seal_rows, flats[0], width, direction)
            assert got == outcome(pure.seal_rows, flats[1], width, direction)
            assert flats[0] == flats[1]
        elif sealed:
            value, ad = sealed[op[1] % len(sealed)]
            if 0 <= op[2] < len(value):  # flip one bit: it must not open in either
                value = value[: op[2]] + bytes([value[op[2]] ^ 1]) + value[op[2] + 1 :]
            assert outcome(native.open, value, ad) == outcome(pure.open, value, ad)


# --- one API ---------------------------------------------------------------------------

API = [("frames", "FrameSplitter"), ("ring", "ReplayRing"), ("gcm", "CountedGcm")]
SLOTS = ("__len__", "__contains__", "__sizeof__")


def public_api(cls) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")} | {n for n in SLOTS if hasattr(cls, n)}


@pytest.mark.parametrize("stem, name", API)
def test_twins_expose_the_same_api(stem, name):
    native, pure = both(stem)
    assert public_api(getattr(native, name)) == public_api(getattr(pure, name))


@pytest.mark.parametrize(
    "stem, constants",
    [
        ("frames", ["MAX_FRAME_LIMIT"]),
        ("ring", ["MAX_KEY_LEN", "MAX_CAPACITY", "MIN_DIGEST_LEN"]),
        ("gcm", ["KEY_BYTES", "NONCE", "TAG", "MAX_VALUE"]),
    ],
)
def test_twins_share_their_constants(stem, constants):
    native, pure = both(stem)
    for constant in constants:
        assert getattr(native, constant) == getattr(pure, constant)


# --- the selector ----------------------------------------------------------------------


def pure_forced() -> bool:
    return os.environ.get("ENCLAVE_PURE", "") not in ("", "0")


def test_native_loaded():
    """Fails when the compiled twins should have loaded but did not."""
    if pure_forced():
        assert enclave._fast.NATIVE is False
    else:
        assert enclave._fast.NATIVE is True, "compiled enclave._fast twins did not load"


@pytest.mark.parametrize(
    "name, stem", [("FrameSplitter", "frames"), ("ReplayRing", "ring"), ("CountedGcm", "gcm")]
)
def test_selector_exports_the_loaded_twin(name, stem):
    twin = "native" if enclave._fast.NATIVE else "pure"
    assert getattr(enclave._fast, name) is getattr(load_twin(stem, twin), name)


def test_pool_is_pure_in_every_build():
    # Its compiled twin was dropped (PERFORMANCE.md, "_fast twins").
    assert enclave._fast.Pool is enclave._fast._pool.Pool
