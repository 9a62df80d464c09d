"""FrameSplitter: every test body runs against the compiled and the pure twin."""

import sys

import pytest
from support.fast_twins import frame, header, twin_fixture

from enclave.errors import FrameTooLarge, PeerError

twin = twin_fixture("frames")

PAYLOADS = [b"hello", b"", b"x" * 300, b"\x00\x01\x02", b"", b"last"]
STREAM = b"".join(frame(p) for p in PAYLOADS)
MiB = 1 << 20


def feed_all(splitter, chunks):
    out = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    return out


def test_one_chunk_many_frames(twin):
    splitter = twin.FrameSplitter(1024)
    frames = [bytes([i]) * 100 for i in range(64)]
    assert splitter.feed(b"".join(frame(f) for f in frames)) == frames
    assert splitter.buffered == 0


def test_byte_at_a_time(twin):
    splitter = twin.FrameSplitter(1024)
    out = feed_all(splitter, (STREAM[i : i + 1] for i in range(len(STREAM))))
    assert out == PAYLOADS
    assert all(type(f) is bytes for f in out)
    assert splitter.buffered == 0


def test_split_at_every_offset(twin):
    for cut in range(len(STREAM) + 1):
        splitter = twin.FrameSplitter(1024)
        assert feed_all(splitter, [STREAM[:cut], STREAM[cut:]]) == PAYLOADS, cut
        assert splitter.buffered == 0


def test_split_in_three_at_every_pair_of_offsets(twin):
    stream = b"".join(frame(p) for p in [b"ab", b"", b"cde"])
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            splitter = twin.FrameSplitter(16)
            chunks = [stream[:first], stream[first:second], stream[second:]]
            assert feed_all(splitter, chunks) == [b"ab", b"", b"cde"]


def test_partial_frame_is_buffered_until_complete(twin):
    splitter = twin.FrameSplitter(1024)
    assert splitter.feed(frame(b"abcdef")[:7]) == []
    assert splitter.buffered == 7
    assert splitter.feed(b"def" + frame(b"g")) == [b"abcdef", b"g"]
    assert splitter.buffered == 0


def test_zero_length_frames(twin):
    splitter = twin.FrameSplitter(0)
    assert splitter.feed(b"\x00\x00\x00\x00" * 3) == [b"", b"", b""]
    assert splitter.feed(b"\x00\x00") == []
    assert splitter.feed(b"\x00\x00") == [b""]


def test_empty_feed_returns_nothing(twin):
    splitter = twin.FrameSplitter(16)
    assert splitter.feed() == []
    assert splitter.feed(b"") == []


def test_exact_limit_is_accepted(twin):
    splitter = twin.FrameSplitter(4096)
    payload = b"p" * 4096
    assert splitter.feed(frame(payload)) == [payload]


def test_limit_plus_one_raises_before_payload_is_buffered(twin):
    splitter = twin.FrameSplitter(4096)
    with pytest.raises(FrameTooLarge) as info:
        splitter.feed(header(4097) + b"p" * 4097)
    assert (info.value.declared, info.value.limit) == (4097, 4096)
    assert isinstance(info.value, PeerError)
    assert splitter.buffered == 0


def test_oversized_header_split_across_feeds_raises_on_its_last_byte(twin):
    splitter = twin.FrameSplitter(4096)
    prefix = header(4097)
    assert splitter.feed(prefix[:2]) == []
    assert splitter.feed(prefix[2:3]) == []
    assert splitter.buffered == 3
    with pytest.raises(FrameTooLarge):
        splitter.feed(prefix[3:] + b"p" * 2000)
    assert splitter.buffered == 0


def test_oversized_header_after_a_buffered_frame(twin):
    splitter = twin.FrameSplitter(100)
    assert splitter.feed(frame(b"abc")[:5]) == []
    with pytest.raises(FrameTooLarge):
        splitter.feed(b"bc" + header(101) + b"q" * 50)
    assert splitter.buffered == 0


def test_all_ones_prefix(twin):
    splitter = twin.FrameSplitter(MiB)
    with pytest.raises(FrameTooLarge) as info:
        splitter.feed(b"\xff\xff\xff\xff")
    assert (info.value.declared, info.value.limit) == (0xFFFFFFFF, MiB)


def test_all_ones_prefix_within_the_largest_limit_waits(twin):
    splitter = twin.FrameSplitter(0xFFFFFFFF)
    assert splitter.feed(b"\xff\xff\xff\xff" + b"abc") == []
    assert splitter.buffered == 7


def test_poisoned_after_too_large(twin):
    splitter = twin.FrameSplitter(10)
    with pytest.raises(FrameTooLarge):
        splitter.feed(header(11))
    for data in (b"", frame(b"ok"), b"\x00"):
        with pytest.raises(FrameTooLarge) as info:
            splitter.feed(data)
        assert (info.value.declared, info.value.limit) == (11, 10)
    splitter.max_frame = 1000  # raising the limit does not revive a dead stream
    with pytest.raises(FrameTooLarge):
        splitter.feed(frame(b"ok"))


def test_frames_before_the_violation_in_the_same_call_are_discarded(twin):
    splitter = twin.FrameSplitter(10)
    with pytest.raises(FrameTooLarge):
        splitter.feed(frame(b"good") + header(11))
    assert splitter.buffered == 0


def test_max_frames_keeps_the_rest_unparsed(twin):
    splitter = twin.FrameSplitter(1024)
    assert splitter.feed(STREAM, max_frames=1) == [b"hello"]
    assert splitter.buffered == len(STREAM) - len(frame(b"hello"))
    assert splitter.feed(b"", 2) == [b"", b"x" * 300]
    assert splitter.feed(b"") == PAYLOADS[3:]
    assert splitter.buffered == 0


def test_max_frames_with_new_data_while_buffered(twin):
    splitter = twin.FrameSplitter(1024)
    assert splitter.feed(frame(b"a") + frame(b"b"), 1) == [b"a"]
    assert splitter.feed(frame(b"c"), 1) == [b"b"]
    assert splitter.feed(b"", 5) == [b"c"]


def test_max_frames_zero_means_no_cap(twin):
    splitter = twin.FrameSplitter(1024)
    assert splitter.feed(STREAM, max_frames=0) == PAYLOADS


def test_limit_raised_between_frames(twin):
    # The handshake pattern: one frame under the pre-auth limit, then a larger one.
    splitter = twin.FrameSplitter(4096)
    big = b"B" * 10_000
    assert splitter.feed(frame(b"hs1") + frame(big), 1) == [b"hs1"]
    splitter.max_frame = MiB
    assert splitter.feed(b"", 1) == [big]


def test_limit_not_raised_between_frames(twin):
    splitter = twin.FrameSplitter(4096)
    assert splitter.feed(frame(b"hs1") + frame(b"B" * 10_000), 1) == [b"hs1"]
    with pytest.raises(FrameTooLarge) as info:
        splitter.feed(b"")
    assert (info.value.declared, info.value.limit) == (10_000, 4096)


def test_lowered_limit_applies_only_to_later_headers(twin):
    splitter = twin.FrameSplitter(1024)
    data = frame(b"a" * 500) + frame(b"b" * 500)
    assert splitter.feed(data[:10]) == []  # the first header is accepted under 1024
    splitter.max_frame = 100
    with pytest.raises(FrameTooLarge) as info:
        splitter.feed(data[10:])
    assert (info.value.declared, info.value.limit) == (500, 100)


def test_accepted_header_survives_a_lowered_limit(twin):
    splitter = twin.FrameSplitter(1024)
    assert splitter.feed(frame(b"a" * 500)[:10]) == []
    splitter.max_frame = 100
    assert splitter.feed(b"a" * 494 + frame(b"small")) == [b"a" * 500, b"small"]


@pytest.mark.parametrize("wrap", [bytearray, memoryview, lambda b: memoryview(b"??" + b)[2:]])
def test_bytearray_and_memoryview_input(twin, wrap):
    splitter = twin.FrameSplitter(1024)
    out = [*splitter.feed(wrap(STREAM[:9])), *splitter.feed(wrap(STREAM[9:]))]
    assert out == PAYLOADS
    assert all(type(f) is bytes for f in out)


def test_non_contiguous_input_is_refused(twin):
    splitter = twin.FrameSplitter(1024)
    with pytest.raises(BufferError):
        splitter.feed(memoryview(STREAM)[::2])
    with pytest.raises(TypeError):
        splitter.feed("text")  # type: ignore[arg-type]
    assert splitter.feed(STREAM) == PAYLOADS


def test_input_buffer_may_be_reused_after_feed(twin):
    splitter = twin.FrameSplitter(1024)
    data = bytearray(frame(b"abcdef"))
    assert splitter.feed(memoryview(data)[:7]) == []
    data[4:7] = b"XYZ"  # the caller recycles its read buffer
    assert splitter.feed(b"def") == [b"abcdef"]


def test_max_frame_attribute(twin):
    splitter = twin.FrameSplitter(4096)
    assert splitter.max_frame == 4096
    splitter.max_frame = 0xFFFFFFFF
    assert splitter.max_frame == 0xFFFFFFFF
    splitter.max_frame = 0
    assert splitter.max_frame == 0


@pytest.mark.parametrize("bad", [-1, 1 << 32])
def test_max_frame_out_of_range(twin, bad):
    with pytest.raises(ValueError):
        twin.FrameSplitter(bad)
    splitter = twin.FrameSplitter(10)
    with pytest.raises(ValueError):
        splitter.max_frame = bad
    assert splitter.max_frame == 10


@pytest.mark.parametrize("bad", ["10", 1.5, None])
def test_max_frame_must_be_an_int(twin, bad):
    with pytest.raises(TypeError):
        twin.FrameSplitter(bad)


def test_buffered_is_read_only(twin):
    splitter = twin.FrameSplitter(10)
    with pytest.raises(AttributeError):
        splitter.buffered = 5


def test_idle_splitter_is_small(twin):
    assert sys.getsizeof(twin.FrameSplitter(MiB)) < 256


def test_large_frame_capacity_is_released(twin):
    splitter = twin.FrameSplitter(MiB)
    payload = b"L" * MiB
    data = frame(payload)
    out = feed_all(splitter, (data[i : i + 65536] for i in range(0, len(data), 65536)))
    assert out == [payload]
    assert sys.getsizeof(splitter) < 256


def test_large_frame_followed_by_a_small_tail_releases_capacity(twin):
    splitter = twin.FrameSplitter(MiB)
    data = frame(b"L" * MiB) + frame(b"tail")[:6]
    assert splitter.feed(data[:1000]) == []
    assert len(splitter.feed(data[1000:])) == 1
    assert splitter.buffered == 6
    assert sys.getsizeof(splitter) < 1024


def test_memory_follows_the_bytes_that_arrived(twin):
    # A peer that declares 1 MiB and sends 10 bytes must not cost 1 MiB.
    splitter = twin.FrameSplitter(MiB)
    assert splitter.feed(header(MiB) + b"0123456789") == []
    assert splitter.feed(b"abc") == []
    assert sys.getsizeof(splitter) < 1024


def test_many_frames_held_by_max_frames_are_released_when_consumed(twin):
    splitter = twin.FrameSplitter(MiB)
    data = b"".join(frame(b"m" * 10_000) for _ in range(20))
    assert len(splitter.feed(data, 1)) == 1
    assert len(splitter.feed(b"")) == 19
    assert sys.getsizeof(splitter) < 256
