"""The connection fuzz against a responder in LISTEN: legacy v1 off (``listen``) and on
(``listen_v1``, and ``listen_v1_envelope``, whose genuine input is a v1 envelope).

Every file of ``tests/fuzz`` checks what ``support.fuzz_checks`` lists after every input,
on targets made by ``support.fuzz_rig``; ``tests/fuzz/conftest.py`` says which file
fuzzes what.
"""

from support.fuzz_properties import mutation_test, random_bytes_tests
from support.fuzz_rig import framed
from support.protocol_pair import T0, run

from enclave.protocol.connection import State

test_random_bytes_never_escape, test_random_bytes_never_escape_pure_splitter = random_bytes_tests(
    ("listen", "listen_v1")
)
test_mutated_transcripts = mutation_test(("listen", "listen_v1", "listen_v1_envelope"))


def test_bytes_after_a_v1_envelope_wait_for_their_turn(rig):
    """A pooling original client writes the next envelope right after the last one, so
    bytes after an envelope are not refused: the envelope is handed over and the rest
    waits, as the start of the next frame, under the v1 frame limit."""
    conn, identity, policy = rig.targets()["listen_v1"].make()
    events = run(conn, conn.receive_data(framed(rig.envelope) + b"\0", T0), T0)
    assert [type(e).__name__ for e in events] == ["LegacyVerified", "LegacyReceived"]
    assert conn.state is State.LEGACY_READY and conn.buffered == 1
    assert conn.frame_limit == 48 * 1024
