"""The connection fuzz's own ground: the recorded session replays exactly, and every
input kept in ``tests/corpus/connection`` (``support.fuzz_corpus``) still holds every
property and ends the same way.
"""

import pytest
from support.fuzz_checks import feed
from support.fuzz_corpus import corpus, replay
from support.fuzz_inputs import frame_bounds
from support.fuzz_rig import HEADER, framed

from enclave.protocol.connection import State
from enclave.protocol.records import TAG_LEN


def test_recording_replays_exactly(rig, baselines):
    """Each target's genuine input reaches the deep states the mutations start from."""
    events = {name: [type(e).__name__ for e in base[0]] for name, base in baselines.items()}
    assert baselines["listen"][1:] == (State.CLOSED, "peer_closed")
    assert baselines["listen_v1"] == baselines["listen"]
    assert events["listen"][:2] == ["Established", "MessagesReceived"]
    assert events["listen"].count("TypingChanged") == 2 and "Acked" in events["listen"]
    assert baselines["await_hs3"][0] == baselines["listen"][0]
    assert baselines["established_r"][0] == baselines["listen"][0][1:]
    assert baselines["await_hs2"][1:] == (State.ESTABLISHED, None)
    assert events["await_hs2"][0] == "Established" and "MessagesReceived" in events["await_hs2"]
    assert baselines["established_i"][0] == baselines["await_hs2"][0][1:]
    assert events["listen_v1_envelope"] == ["LegacyVerified", "LegacyReceived"]
    assert baselines["listen_v1_envelope"][1] is State.LEGACY_READY
    # Key updates happened in both directions, inside the recorded traffic.
    assert b"".join(rig.i2r) and len(rig.i2r) == 5 and len(rig.r2i) == 4
    assert [len(f) for f in rig.i2r].count(TAG_LEN + 1) == 1  # one KEY_UPDATE
    assert [len(f) for f in rig.r2i].count(TAG_LEN + 1) == 1
    # The genuine input delivered whole, byte by byte, or split anywhere gives the same
    # (an initiator gets nothing in the read that completes HS2: R waits for HS3).
    for name in ("await_hs2", "established_r", "established_i"):
        target = rig.targets()[name]
        stream = b"".join(map(framed, target.frames))
        first = HEADER + len(target.frames[0])
        for chunking in (
            ("whole", []),
            ("bytes", []),
            ("cuts", [7, 1000, 1200]),
            ("cuts", [first, first + 100]),
        ):
            if name == "await_hs2" and chunking[0] != "bytes" and first not in chunking[1]:
                continue
            outcome = feed(target, stream, chunking, frame_bounds(target.frames))
            assert tuple(outcome.semantic) == baselines[name][0], (name, chunking)


@pytest.mark.parametrize(("name", "entry"), corpus())
def test_corpus_replays(rig, baselines, other_rig, name, entry):
    """Each kept input still holds every property and still ends the same way, with
    the usual keys and with other keys and other random values."""
    want = entry["expect"]
    for which, base in ((rig, baselines[name]), (other_rig, None)):
        outcome = replay(which, name, entry["input"], entry["chunking"])
        sealed = "sealed" in entry["input"]
        outcome.check(which.targets()[name], None if sealed else base)
        got = (outcome.conn.state.value, outcome.conn.close_reason)
        assert got == (want["state"], want["reason"]), (which.fp_a.hex()[:8], got)
