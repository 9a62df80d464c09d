"""The connection fuzz against the frame length prefix, in every state: a prefix above
the limit in force closes the connection before anything is buffered, and a closed
connection holds at most the chunk that closed it (check 3 of ``support.fuzz_checks``).
Each runs over the compiled and the pure frame splitter (``twin``).
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz_checks import feed
from support.fuzz_corpus import note
from support.fuzz_inputs import RANDOM_TARGETS, chunkings, prefixed_streams, wraps
from support.fuzz_rig import framed
from support.fuzzing import fuzz
from support.protocol_pair import T0, run

from enclave.protocol.events import ConnectionClosed
from enclave.protocol.records import MAX_RECORD

FIRST_LIMIT = {  # the frame limit each starts with
    "listen": 4096,
    "listen_v1": 48 * 1024,
    "await_hs2": 4096,
    "await_hs3": 4096,
    "established_r": MAX_RECORD,
    "established_i": MAX_RECORD,
}


@fuzz(1000)
@given(
    name=st.sampled_from(RANDOM_TARGETS),
    stream=prefixed_streams,
    chunking=chunkings,
    wrap=wraps,
)
def test_length_prefixes(rig, baselines, twin, name, stream, chunking, wrap):
    target = rig.targets()[name]
    outcome = feed(target, stream, chunking, [], wrap)
    outcome.check(target, baselines[name])
    assert outcome.ops == 0
    if int.from_bytes(stream[:4], "big") > FIRST_LIMIT[name]:
        assert outcome.conn.close_reason == "frame_too_large"
        assert outcome.conn.buffered == 0
    note(target, {"hex": stream.hex()}, chunking, outcome)


@pytest.mark.parametrize(
    ("name", "declared"),
    [
        (name, declared)
        for name in RANDOM_TARGETS
        for declared in (4097, 49153, MAX_RECORD + 1, 0xFFFFFFFF)
        if declared > FIRST_LIMIT[name]
    ],
)
def test_oversized_prefix_closes_before_buffering(rig, twin, name, declared):
    """Above the limit in force: closed on the 4th byte, nothing buffered (F5)."""
    target = rig.targets()[name]
    conn = target.make()[0]
    assert conn.frame_limit == FIRST_LIMIT[name]
    events = []
    for n, byte in enumerate(declared.to_bytes(4, "big") + b"x" * 64):
        events += run(conn, conn.receive_data(bytes([byte]), T0), T0)
        assert conn.buffered == (n + 1 if n < 3 else 0)
        if n == 3:
            assert conn.close_reason == "frame_too_large"
    assert [e.reason for e in events if isinstance(e, ConnectionClosed)] == ["frame_too_large"]


def test_closed_connection_holds_at_most_the_chunk_that_closed_it(rig, twin):
    """Check 3's bound for a closed connection, at its worst: a refused handshake frame
    followed by a large rest in the same read. Frames before authentication are taken
    one at a time, so the rest is buffered unparsed (no header of it is checked) and
    the splitter is not cleared on close: it may exceed the frame limit, never the chunk."""
    conn = rig.targets()["listen"].make()[0]
    chunk = framed(b"junk") + b"\0" * 200_000
    run(conn, conn.receive_data(chunk, T0), T0)
    assert conn.closed
    assert conn.buffered <= len(chunk) - len(framed(b"junk"))
    assert run(conn, conn.receive_data(b"\0" * 100, T0), T0) == []  # nothing more is taken
    assert conn.buffered <= len(chunk) - len(framed(b"junk"))
