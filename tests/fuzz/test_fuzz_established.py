"""The connection fuzz against both sides of a session (``established_r``,
``established_i``): random and damaged bytes, and an authenticated peer that
misbehaves (strategy 4, ``support.fuzz_sealed``), judged against ``Model``.
"""

import pytest
from hypothesis import given
from support.fuzz_checks import feed
from support.fuzz_corpus import note
from support.fuzz_inputs import chunkings
from support.fuzz_properties import mutation_test, random_bytes_tests
from support.fuzz_sealed import Model, expect, hostile_records, observed, sealed_stream, session_of
from support.fuzzing import fuzz

from enclave.protocol.events import Acked, MessagesReceived

test_random_bytes_never_escape, test_random_bytes_never_escape_pure_splitter = random_bytes_tests(
    ("established_r", "established_i")
)
test_mutated_transcripts = mutation_test(("established_r", "established_i"))


@pytest.mark.parametrize("name", ["established_r", "established_i"])
@fuzz(1000)
@given(frames=hostile_records, chunking=chunkings)
def test_authenticated_hostile_records(rig, name, frames, chunking):
    target = rig.targets()[name]
    sender, receiver, sent = session_of(rig, name)
    model = Model(sent)
    for _, kind, ms in frames:
        expect(model, kind, ms)
    stream = sealed_stream(rig, name, [plaintext for plaintext, _, _ in frames])
    outcome = feed(target, stream, chunking, [])
    outcome.check(target, None)
    got = observed(outcome.events, sender, receiver)
    # Ordering inside one batch (typing, then the ack, then the chats) is the
    # connection's; each kind of effect is compared in order.
    for kind in ("typing", "throttle", "acked", "chats"):
        want = [e for e in model.expected if e[0] == kind]
        have = [e for e in got if e[0] == kind]
        if model.known:
            assert have == want, (kind, have, want)
        else:  # past a plaintext the model does not judge, only a prefix is certain
            assert have[: len(want)] == want, (kind, have, want)
    if model.known:
        assert outcome.conn.established == model.open, (outcome.label, frames)
    for e in outcome.events:
        if isinstance(e, MessagesReceived):
            assert all(c.sender == sender and c.recipient == receiver for c in e.messages)
        if isinstance(e, Acked):
            assert e.upto < sent
    note(target, {"sealed": [p.hex() for p, _, _ in frames]}, chunking, outcome)
