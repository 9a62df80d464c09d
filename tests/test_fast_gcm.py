"""CountedGcm: every test body runs against the compiled and the pure twin."""

import os
import struct
import threading

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from support.fast_twins import twin_fixture

twin = twin_fixture("gcm")

KEY = bytes(range(32))
TOP = (1 << 96) - 1
WIDTH = 5  # rowid, peer id, message id, body, one more value the store keeps


def row_ad(rowid: int, peer: int, direction: bytes) -> bytes:
    # The store's message_ad, spelt out here so a change on either side shows.
    return b"m" + struct.pack(">qq", rowid, peer) + direction


def rows(*bodies, first=1, peer=7):
    flat = []
    for i, body in enumerate(bodies):
        flat += [first + i, peer, f"id-{i}".encode(), body, i]
    return flat


def nonce_of(value: bytes) -> int:
    return int.from_bytes(value[:12], "big")


def test_a_sealed_value_opens_with_its_associated_data(twin):
    gcm = twin.CountedGcm(KEY, 5)
    sealed = gcm.seal(b"hello", b"ad")
    assert len(sealed) == 12 + 5 + 16
    assert nonce_of(sealed) == 5
    assert gcm.open(sealed, b"ad") == b"hello"


def test_each_value_takes_the_next_nonce(twin):
    gcm = twin.CountedGcm(KEY, 41)
    assert [nonce_of(gcm.seal(b"x", b"")) for _ in range(3)] == [41, 42, 43]


def test_values_open_with_the_standard_aead_both_ways(twin):
    gcm, aead = twin.CountedGcm(KEY, 1 << 70), AESGCM(KEY)
    sealed = gcm.seal(b"payload" * 9, b"header")
    assert aead.decrypt(sealed[:12], sealed[12:], b"header") == b"payload" * 9
    nonce = os.urandom(12)
    assert gcm.open(nonce + aead.encrypt(nonce, b"other", b"h2"), b"h2") == b"other"


def test_empty_values_and_empty_associated_data(twin):
    gcm = twin.CountedGcm(KEY, 0)
    sealed = gcm.seal(b"", b"")
    assert len(sealed) == 28 and gcm.open(sealed, b"") == b""


def test_a_large_value_round_trips(twin):
    gcm = twin.CountedGcm(KEY, 0)
    data = os.urandom(3 << 20)
    assert gcm.open(gcm.seal(data, b"big"), b"big") == data


def test_the_counter_wraps_at_2_to_the_96(twin):
    gcm = twin.CountedGcm(KEY, TOP)
    assert nonce_of(gcm.seal(b"a", b"")) == TOP
    assert nonce_of(gcm.seal(b"b", b"")) == 0


def test_a_batch_wraps_at_2_to_the_96_too(twin):
    gcm = twin.CountedGcm(KEY, TOP - 1)
    flat = rows("a", "b", "c")
    gcm.seal_rows(flat, WIDTH, b"i")
    assert [nonce_of(v) for v in flat[3::WIDTH]] == [TOP - 1, TOP, 0]
    assert nonce_of(gcm.seal(b"next", b"")) == 1


def test_a_wrap_inside_the_low_64_bits_carries(twin):
    gcm = twin.CountedGcm(KEY, (1 << 64) - 2)
    flat = rows(*["x"] * 100)  # over the compiled twin's no-GIL threshold
    gcm.seal_rows(flat, WIDTH, b"o")
    assert [nonce_of(v) for v in flat[3::WIDTH]] == list(range((1 << 64) - 2, (1 << 64) + 98))


@pytest.mark.parametrize("count", [1, 3, 64, 200])
def test_seal_rows_seals_each_body_as_the_store_opens_it(twin, count):
    gcm = twin.CountedGcm(KEY, 1000)
    bodies = [f"message {i} — é ✓ 🙂" * (i % 4) for i in range(count)]
    flat = rows(*bodies, first=-3, peer=(1 << 63) - 1)
    gcm.seal_rows(flat, WIDTH, b"o")
    for i in range(count):
        at = i * WIDTH
        assert flat[at : at + 3] == [-3 + i, (1 << 63) - 1, f"id-{i}".encode()]
        assert flat[at + 4] == i
        ad = row_ad(-3 + i, (1 << 63) - 1, b"o")
        assert gcm.open(flat[at + 3], ad).decode() == bodies[i]
        assert nonce_of(flat[at + 3]) == 1000 + i
    assert nonce_of(gcm.seal(b"", b"")) == 1000 + count


def test_seal_rows_binds_each_body_to_its_row_and_direction(twin):
    gcm = twin.CountedGcm(KEY, 0)
    flat = rows("one", "two")
    gcm.seal_rows(flat, WIDTH, b"i")
    first, second = flat[3], flat[3 + WIDTH]
    with pytest.raises(ValueError, match="did not open"):
        gcm.open(first, row_ad(2, 7, b"i"))  # another row's place
    with pytest.raises(ValueError, match="did not open"):
        gcm.open(first, row_ad(1, 8, b"i"))  # another contact
    with pytest.raises(ValueError, match="did not open"):
        gcm.open(second, row_ad(2, 7, b"o"))  # the other direction


def test_seal_rows_matches_sealing_row_by_row(twin):
    batch, single = twin.CountedGcm(KEY, 9), twin.CountedGcm(KEY, 9)
    flat = rows(*[f"body {i}" for i in range(70)], first=100)
    gcm_rows = list(flat)
    batch.seal_rows(gcm_rows, WIDTH, b"i")
    one_by_one = [
        single.seal(flat[at + 3].encode(), row_ad(flat[at], flat[at + 1], b"i"))
        for at in range(0, len(flat), WIDTH)
    ]
    assert gcm_rows[3::WIDTH] == one_by_one


def test_an_empty_batch_changes_nothing(twin):
    gcm = twin.CountedGcm(KEY, 3)
    flat = []
    assert gcm.seal_rows(flat, WIDTH, b"i") is None
    assert gcm.seal_rows(flat, 1 << 70, b"i") is None  # any width holds no row
    assert flat == [] and nonce_of(gcm.seal(b"", b"")) == 3


@pytest.mark.parametrize(
    "spoil, error, message",
    [
        (lambda f: f.__setitem__(WIDTH * 2, "1"), ValueError, "64-bit ints"),
        (lambda f: f.__setitem__(WIDTH * 2 + 1, 1 << 63), ValueError, "64-bit ints"),
        (lambda f: f.__setitem__(WIDTH * 2, True), ValueError, "64-bit ints"),
        (lambda f: f.__setitem__(WIDTH * 2 + 3, b"bytes"), TypeError, "is a str"),
        (lambda f: f.__setitem__(WIDTH * 2 + 3, None), TypeError, "is a str"),
        (lambda f: f.__setitem__(WIDTH * 2 + 3, "bad \ud800"), UnicodeEncodeError, "surrogates"),
    ],
)
def test_one_bad_row_seals_nothing(twin, spoil, error, message):
    gcm = twin.CountedGcm(KEY, 50)
    flat = rows(*[f"b{i}" for i in range(80)])
    spoil(flat)
    before = list(flat)
    with pytest.raises(error, match=message):
        gcm.seal_rows(flat, WIDTH, b"i")
    assert flat == before
    assert nonce_of(gcm.seal(b"", b"")) == 50  # no nonce was used up


@pytest.mark.parametrize(
    "flat, width, direction, error, message",
    [
        ((), WIDTH, b"i", TypeError, "flat list"),
        (rows("a"), 3, b"i", ValueError, "at least 4"),
        (rows("a"), "5", b"i", ValueError, "at least 4"),
        (rows("a")[:-1], WIDTH, b"i", ValueError, "whole rows"),
        (rows("a"), WIDTH, b"", ValueError, "one byte"),
        (rows("a"), WIDTH, b"io", ValueError, "one byte"),
        (rows("a"), WIDTH, "i", ValueError, "one byte"),
    ],
)
def test_a_bad_layout_is_refused(twin, flat, width, direction, error, message):
    gcm = twin.CountedGcm(KEY, 0)
    with pytest.raises(error, match=message):
        gcm.seal_rows(flat, width, direction)


def spoilt(value: bytes, at: int) -> bytes:
    return value[:at] + bytes([value[at] ^ 1]) + value[at + 1 :]


@pytest.mark.parametrize("at", [0, 11, 12, 16, -16, -1])
def test_a_tampered_value_does_not_open(twin, at):
    gcm = twin.CountedGcm(KEY, 0)
    sealed = gcm.seal(b"secret body", b"ad")
    with pytest.raises(ValueError, match="did not open"):
        gcm.open(spoilt(sealed, at % len(sealed)), b"ad")


@pytest.mark.parametrize("size", [0, 1, 27])
def test_a_value_too_short_for_a_tag_does_not_open(twin, size):
    gcm = twin.CountedGcm(KEY, 0)
    with pytest.raises(ValueError, match="did not open"):
        gcm.open(bytes(size), b"")


def test_a_truncated_or_extended_value_does_not_open(twin):
    gcm = twin.CountedGcm(KEY, 0)
    sealed = gcm.seal(b"secret body", b"ad")
    for value in (sealed[:-1], sealed[1:], sealed + b"\x00", sealed[:28]):
        with pytest.raises(ValueError, match="did not open"):
            gcm.open(value, b"ad")


def test_other_associated_data_or_key_does_not_open(twin):
    gcm = twin.CountedGcm(KEY, 0)
    sealed = gcm.seal(b"secret", b"ad")
    with pytest.raises(ValueError, match="did not open"):
        gcm.open(sealed, b"ae")
    with pytest.raises(ValueError, match="did not open"):
        twin.CountedGcm(bytes(32), 0).open(sealed, b"ad")


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33), bytearray(32), "k" * 32, None])
def test_a_key_is_32_bytes(twin, key):
    with pytest.raises(ValueError, match="32 bytes"):
        twin.CountedGcm(key, 0)


@pytest.mark.parametrize("start", [-1, 1 << 96, 1.0, "0", None])
def test_a_start_is_a_96_bit_count(twin, start):
    with pytest.raises(ValueError, match="2\\*\\*96"):
        twin.CountedGcm(KEY, start)


@pytest.mark.parametrize("data, ad", [("text", b""), (b"x", "ad"), (bytearray(b"x"), b"")])
def test_values_and_associated_data_are_bytes(twin, data, ad):
    gcm = twin.CountedGcm(KEY, 0)
    with pytest.raises(TypeError, match="are bytes"):
        gcm.seal(data, ad)
    with pytest.raises(TypeError, match="are bytes"):
        gcm.open(data, ad)


def test_threads_sealing_together_never_share_a_nonce(twin):
    gcm = twin.CountedGcm(KEY, (1 << 64) - 500)  # the carry happens while they race
    results: list[list[int]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def batches(out):
        start.wait()
        for _ in range(40):
            flat = rows(*["batch body"] * 100)
            gcm.seal_rows(flat, WIDTH, b"o")
            out += [nonce_of(v) for v in flat[3::WIDTH]]

    def singles(out):
        start.wait()
        for _ in range(2000):
            out.append(nonce_of(gcm.seal(b"single", b"")))

    threads = [
        threading.Thread(target=batches, args=(results[0],)),
        threading.Thread(target=batches, args=(results[1],)),
        threading.Thread(target=singles, args=(results[2],)),
        threading.Thread(target=singles, args=(results[3],)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    used = [n for out in results for n in out]
    assert len(used) == 2 * 4000 + 2 * 2000
    assert sorted(used) == list(range((1 << 64) - 500, (1 << 64) - 500 + len(used)))


def test_a_batch_survives_another_thread_replacing_its_bodies(twin):
    # The compiled twin seals a large batch without the GIL, reading each body's UTF-8
    # in place: another thread dropping the list's bodies meanwhile must neither free
    # what is being sealed nor mix texts. Each body ends as one whole text, sealed or
    # (replaced after the batch was read) plain.
    gcm = twin.CountedGcm(KEY, 0)

    def text(i, letter):
        return letter * 1000 + str(i)

    flat = rows(*[text(i, "a") for i in range(300)])
    others = [text(i, "b") for i in range(300)]
    stop = threading.Event()

    def meddle():
        while not stop.is_set():
            for i in range(300):
                if type(flat[i * WIDTH + 3]) is str:
                    flat[i * WIDTH + 3] = others[i]

    other = threading.Thread(target=meddle)
    other.start()
    try:
        gcm.seal_rows(flat, WIDTH, b"i")
    finally:
        stop.set()
        other.join()
    for i in range(300):
        value = flat[i * WIDTH + 3]
        if type(value) is bytes:
            value = gcm.open(value, row_ad(1 + i, 7, b"i")).decode()
        assert value in (text(i, "a"), text(i, "b"))


@pytest.fixture(scope="module")
def huge_text():
    """A body of 2 GiB + 1 characters, made once for both twins (writing it takes
    seconds; no test changes it)."""
    text = "b" * (1 << 31)
    yield text
    del text


def test_a_value_over_2_gib_is_refused_before_anything_is_sealed(twin, huge_text):
    gcm = twin.CountedGcm(KEY, 0)
    huge = bytes(twin.MAX_VALUE + 1)  # calloc'd: no page is touched
    for data, ad in ((huge, b""), (b"x", huge)):
        with pytest.raises(OverflowError, match="over 2 GiB"):
            gcm.seal(data, ad)
        with pytest.raises(OverflowError, match="over 2 GiB"):
            gcm.open(data, ad)
    flat = rows("small", huge_text)
    with pytest.raises(OverflowError, match="over 2 GiB"):
        gcm.seal_rows(flat, WIDTH, b"i")
    assert flat[3] == "small" and nonce_of(gcm.seal(b"", b"")) == 0


def test_a_list_that_changes_size_meanwhile_raises_and_never_crashes(twin):
    # Another thread empties and refills each list while it is sealed (the compiled
    # twin seals without the GIL): each call seals the rows it copied and puts them
    # back, or raises ValueError; it never reads past the list's end.
    gcm = twin.CountedGcm(KEY, 0)
    template = rows(*["body"] * 200)
    current = [list(template)]
    stop = threading.Event()

    def meddle():
        while not stop.is_set():
            flat = current[0]
            flat.clear()
            flat.extend(template)

    other = threading.Thread(target=meddle)
    other.start()
    outcomes = set()
    try:
        for _ in range(300):
            current[0] = flat = list(template)
            try:
                gcm.seal_rows(flat, WIDTH, b"i")
                outcomes.add("sealed")
            except ValueError:
                outcomes.add("refused")
    finally:
        stop.set()
        other.join()
    assert outcomes <= {"sealed", "refused"} and outcomes
    flat = list(template)
    gcm.seal_rows(flat, WIDTH, b"i")  # left alone, a list seals as ever
    assert all(type(v) is bytes for v in flat[3::WIDTH])
