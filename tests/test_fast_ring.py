"""ReplayRing: every test body runs against the compiled and the pure twin."""

import hashlib
import uuid
from collections import deque

import pytest
from support.fast_twins import twin_fixture

twin = twin_fixture("ring")


def test_new_key_is_inserted_once(twin):
    ring = twin.ReplayRing(10)
    assert ring.check_and_insert(b"id-1") is True
    assert ring.check_and_insert(b"id-1") is False
    assert len(ring) == 1
    assert b"id-1" in ring


def test_full_ring_evicts_oldest_first(twin):
    ring = twin.ReplayRing(3)
    for key in (b"a", b"b", b"c", b"d"):
        assert ring.check_and_insert(key)
    assert len(ring) == 3
    assert [k in ring for k in (b"a", b"b", b"c", b"d")] == [False, True, True, True]
    assert ring.check_and_insert(b"a")  # forgotten, so new again; evicts b
    assert [k in ring for k in (b"b", b"c", b"d", b"a")] == [False, True, True, True]


def test_seeing_a_key_again_does_not_refresh_it(twin):
    ring = twin.ReplayRing(2)
    ring.check_and_insert(b"a")
    ring.check_and_insert(b"b")
    assert ring.check_and_insert(b"a") is False
    ring.check_and_insert(b"c")  # evicts a: the oldest inserted, even though seen last
    assert b"a" not in ring and b"b" in ring and b"c" in ring


def test_capacity_one(twin):
    ring = twin.ReplayRing(1)
    assert ring.check_and_insert(b"a")
    assert not ring.check_and_insert(b"a")
    assert ring.check_and_insert(b"b")
    assert b"a" not in ring and b"b" in ring and len(ring) == 1


def test_str_is_its_utf8_bytes(twin):
    ring = twin.ReplayRing(10)
    text = str(uuid.UUID(int=7))
    assert len(text) == 36
    assert ring.check_and_insert(text)
    assert not ring.check_and_insert(text.encode())
    assert ring.check_and_insert(b"caf\xc3\xa9")
    assert not ring.check_and_insert("café")
    assert "café" in ring and text in ring


@pytest.mark.parametrize(
    "wrap", [bytes, bytearray, memoryview, lambda b: memoryview(b"..." + b)[3:]]
)
def test_buffer_types_are_the_same_key(twin, wrap):
    ring = twin.ReplayRing(10)
    assert ring.check_and_insert(b"0123456789abcdef")
    assert wrap(b"0123456789abcdef") in ring
    assert not ring.check_and_insert(wrap(b"0123456789abcdef"))
    assert ring.check_and_insert(wrap(b"fedcba9876543210"))
    assert b"fedcba9876543210" in ring


class OddBytes(bytes):
    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        return False


def test_a_bytes_subclass_is_its_bytes(twin):
    # The compiled twin reuses the hash a plain bytes key caches; a subclass's own
    # __hash__ and __eq__ must not change which key it is.
    ring = twin.ReplayRing(10)
    assert ring.check_and_insert(OddBytes(b"0123456789abcdef"))
    assert b"0123456789abcdef" in ring and OddBytes(b"0123456789abcdef") in ring
    assert not ring.check_and_insert(b"0123456789abcdef")
    key = bytes(bytearray(b"fedcba9876543210"))  # a fresh object: no hash cached yet
    assert key not in ring and ring.check_and_insert(key) and key in ring
    assert OddBytes(b"fedcba9876543210") in ring


def test_contains_does_not_insert(twin):
    ring = twin.ReplayRing(10)
    assert b"x" not in ring
    assert len(ring) == 0
    assert ring.check_and_insert(b"x")


def test_key_length_limits(twin):
    ring = twin.ReplayRing(10)
    assert ring.check_and_insert(b"k" * 64)
    assert ring.check_and_insert("é" * 32)  # 32 characters, 64 bytes
    for bad in (b"", "", bytearray(), b"k" * 65, "é" * 33):  # "é" * 33 is 66 bytes
        with pytest.raises(ValueError):
            ring.check_and_insert(bad)
        with pytest.raises(ValueError):
            bad in ring  # noqa: B015
    assert len(ring) == 2


@pytest.mark.parametrize("bad", [12, None, 1.5, [b"a"], (b"a",), object()])
def test_key_types(twin, bad):
    ring = twin.ReplayRing(10)
    with pytest.raises(TypeError):
        ring.check_and_insert(bad)
    with pytest.raises(TypeError):
        bad in ring  # noqa: B015


def test_non_contiguous_memoryview_is_refused(twin):
    ring = twin.ReplayRing(10)
    with pytest.raises(BufferError):
        ring.check_and_insert(memoryview(b"abcdef")[::2])
    assert len(ring) == 0


def test_key_is_copied(twin):
    ring = twin.ReplayRing(10)
    key = bytearray(b"mutable")
    ring.check_and_insert(key)
    key[0:1] = b"M"
    assert b"mutable" in ring and b"Mutable" not in ring


def test_str_that_is_not_utf8_encodable(twin):
    ring = twin.ReplayRing(10)
    with pytest.raises(UnicodeEncodeError):
        ring.check_and_insert("\ud800")


def test_capacity_range(twin):
    for bad in (0, -1, twin.MAX_CAPACITY + 1):
        with pytest.raises(ValueError):
            twin.ReplayRing(bad)
    with pytest.raises(TypeError):
        twin.ReplayRing(10.0)
    assert twin.ReplayRing(1).capacity == 1


def test_capacity_is_read_only(twin):
    ring = twin.ReplayRing()
    assert ring.capacity == 10000
    with pytest.raises(AttributeError):
        ring.capacity = 5


def test_clear(twin):
    ring = twin.ReplayRing(3)
    for key in (b"a", b"b", b"c", b"d"):
        ring.check_and_insert(key)
    ring.clear()
    assert len(ring) == 0 and b"c" not in ring
    assert ring.check_and_insert(b"c")
    for key in (b"e", b"f", b"g"):
        ring.check_and_insert(key)
    assert b"c" not in ring and len(ring) == 3


@pytest.mark.parametrize("capacity", [1, 2, 3, 5, 8, 100])
def test_long_churn_matches_a_model(twin, capacity):
    # Many evictions with a small table: probe runs wrap around the table end and
    # deletions shift entries back; the ring must still agree with a plain FIFO set.
    ring = twin.ReplayRing(capacity)
    keys = (str(i % (capacity * 3 + 1)).encode() for i in range(20_000))  # repeats
    model = agrees_with_a_model(ring, capacity, keys)
    assert all(k in ring for k in model)


def test_full_ring_of_uuid_ids(twin):
    ring = twin.ReplayRing(10000)
    ids = [uuid.UUID(int=i).bytes for i in range(25000)]
    assert all(ring.check_and_insert(i) for i in ids)
    assert len(ring) == 10000
    assert not any(i in ring for i in ids[:15000])
    assert all(i in ring for i in ids[15000:])


# --- digests=True: keys that are already secret hashes ----------------------------------
# The node's keys: SHA-256 over a per-process secret and the chat's (sender, created_ms,
# id), cut to 16 bytes. The compiled twin then takes a key's first 8 bytes as its table
# hash; these tests hold both twins to the same answers as with digests=False.

SECRET = b"\x5a" * 16  # stands in for the node's random per-process secret


def digest(n: int) -> bytes:
    return hashlib.sha256(SECRET + n.to_bytes(8, "big")).digest()[:16]


def test_digests_is_off_unless_asked(twin):
    assert twin.ReplayRing(10).digests is False
    ring = twin.ReplayRing(10, digests=True)
    assert ring.digests is True
    with pytest.raises(AttributeError):
        ring.digests = False
    with pytest.raises(TypeError):
        twin.ReplayRing(10, True)  # keyword only


def test_digests_new_key_is_inserted_once(twin):
    ring = twin.ReplayRing(10, digests=True)
    key = digest(1)
    assert key not in ring
    assert ring.check_and_insert(key) is True
    assert ring.check_and_insert(bytes(bytearray(key))) is False  # an equal, fresh object
    assert key in ring and digest(2) not in ring and len(ring) == 1


def test_digests_key_lengths(twin):
    ring = twin.ReplayRing(10, digests=True)
    assert ring.check_and_insert(b"k" * twin.MIN_DIGEST_LEN)
    assert ring.check_and_insert(b"k" * twin.MAX_KEY_LEN)
    assert twin.MIN_DIGEST_LEN == 8
    for bad in (b"", b"k", b"k" * 7, b"k" * 65):
        with pytest.raises(ValueError, match=r"8\.\.64 bytes \(digests=True\)"):
            ring.check_and_insert(bad)
        with pytest.raises(ValueError, match=r"8\.\.64 bytes \(digests=True\)"):
            bad in ring  # noqa: B015
    assert len(ring) == 2


@pytest.mark.parametrize(
    "bad",
    [
        "0123456789abcdef",  # a str: no UTF-8 key in this mode
        bytearray(b"0123456789abcdef"),
        memoryview(b"0123456789abcdef"),
        OddBytes(b"0123456789abcdef"),  # a subclass: it may hash or compare otherwise
        OddBytes(b"short"),  # the type is checked first
        12,
        None,
    ],
)
def test_digests_are_exact_bytes(twin, bad):
    ring = twin.ReplayRing(10, digests=True)
    ring.check_and_insert(b"0123456789abcdef")
    with pytest.raises(TypeError, match=r"must be bytes \(digests=True\)"):
        ring.check_and_insert(bad)
    with pytest.raises(TypeError, match=r"must be bytes \(digests=True\)"):
        bad in ring  # noqa: B015
    assert len(ring) == 1


def test_digests_full_ring_evicts_oldest_first(twin):
    ring = twin.ReplayRing(3, digests=True)
    a, b, c, d = (digest(i) for i in range(4))
    for key in (a, b, c, d):
        assert ring.check_and_insert(key)
    assert [k in ring for k in (a, b, c, d)] == [False, True, True, True]
    assert ring.check_and_insert(b) is False  # not refreshed: b stays the oldest
    assert ring.check_and_insert(a)  # forgotten, so new again; evicts b
    assert [k in ring for k in (b, c, d, a)] == [False, True, True, True]
    ring.clear()
    assert len(ring) == 0 and a not in ring and ring.check_and_insert(a)


@pytest.mark.parametrize("capacity", [1, 2, 3, 5, 8, 100, 10000])
def test_digests_long_churn_matches_a_model(twin, capacity):
    ring = twin.ReplayRing(capacity, digests=True)
    keys = (digest(i % (capacity * 3 + 1)) for i in range(20_000))  # repeats: duplicates
    model = agrees_with_a_model(ring, capacity, keys)
    assert all(k in ring for k in model)


def agrees_with_a_model(ring, capacity: int, keys) -> deque:
    """Feed ``keys`` to ``ring`` as the node does (``in``, then ``check_and_insert``),
    checking each answer against a plain FIFO of ``capacity``; the FIFO at the end."""
    model: deque[bytes] = deque()
    for key in keys:
        fresh = key not in model
        assert (key in ring) is not fresh
        assert ring.check_and_insert(key) is fresh
        if fresh:
            if len(model) == capacity:
                model.popleft()
            model.append(key)
        assert len(ring) == len(model)
    return model


# A colliding-prefix flood: every key below has the same first 8 bytes, so in the
# compiled twin every one has the same table hash and all of them share one probe run.
# Answers must stay exact (only the probe runs grow). A peer cannot make such keys: the
# node derives each key as SHA-256(secret || sender || created_ms || id)[:16], with a
# random 16-byte secret that never leaves the process, so the peer's choice of
# (created_ms, id) gives it no control over, nor any view of, a key's first 8 bytes; to
# collide two keys on them it would need SHA-256 outputs under a 128-bit key it does not
# know (and it cannot even test a guess offline). Only a caller holding the secret could
# build this flood, which is what the test does.
PREFIX = b"\xa5" * 8


@pytest.mark.parametrize("capacity", [1, 3, 64, 1000])
def test_digests_colliding_prefix_flood_matches_a_model(twin, capacity):
    ring = twin.ReplayRing(capacity, digests=True)
    span = capacity * 2 + 1  # repeats, so duplicates happen
    # keys differing in their last bytes only
    keys = (PREFIX + ((i * 7) % span).to_bytes(8, "little") for i in range(min(20_000, 20 * span)))
    model = agrees_with_a_model(ring, capacity, keys)
    assert all(k in ring for k in model)
    assert not any(PREFIX + n.to_bytes(8, "little") in ring for n in range(span, span + 100))


def test_digests_colliding_prefix_of_other_lengths(twin):
    # Same first 8 bytes, different lengths or last byte: all different keys.
    keys = [PREFIX, PREFIX + b"\x00", PREFIX + b"\x00" * 8, PREFIX + b"\x00" * 7 + b"\x01"]
    keys += [PREFIX + b"\x00" * 56, PREFIX + b"\x00" * 55 + b"\x01"]  # 64 bytes each
    ring = twin.ReplayRing(len(keys), digests=True)
    for i, key in enumerate(keys):
        assert all(k not in ring for k in keys[i:])
        assert ring.check_and_insert(key)
        assert all(k in ring for k in keys[: i + 1])
    other = digest(0)
    assert ring.check_and_insert(other)  # evicts PREFIX alone
    assert PREFIX not in ring and all(k in ring for k in keys[1:]) and other in ring
    assert not ring.check_and_insert(PREFIX + b"\x00")


def test_digests_colliding_and_ordinary_keys_mixed(twin):
    ring = twin.ReplayRing(500, digests=True)
    model: deque[bytes] = deque()
    for i in range(5000):
        n = (i * 13) % 1500
        key = PREFIX + n.to_bytes(8, "big") if n % 2 else digest(n)
        fresh = key not in model
        assert ring.check_and_insert(key) is fresh
        if fresh:
            if len(model) == 500:
                model.popleft()
            model.append(key)
    assert all(k in ring for k in model)
    assert sum(digest(n) in ring for n in range(0, 1500, 2)) == sum(
        not k.startswith(PREFIX) for k in model
    )
