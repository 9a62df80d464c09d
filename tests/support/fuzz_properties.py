"""The properties that every target of the connection fuzz runs, made per target file.

A file of ``tests/fuzz`` holds the targets of one family (listen, handshake,
established) and binds these to its own targets, so that each property keeps one body
and its example count while its cases live with the target they attack::

    test_random_bytes_never_escape, test_random_bytes_never_escape_pure_splitter = (
        random_bytes_tests(("listen", "listen_v1"))
    )
    test_mutated_transcripts = mutation_test(("listen", "listen_v1", "listen_v1_envelope"))
"""

from __future__ import annotations

import pytest
from hypothesis import given

from enclave.protocol.events import (
    Acked,
    LegacyReceived,
    MessagesReceived,
    Throttled,
    TypingChanged,
)
from support.fuzz_checks import feed
from support.fuzz_corpus import note
from support.fuzz_inputs import chunkings, mutate, mutations, random_streams, wraps
from support.fuzzing import fuzz


def random_case(rig, baselines, name, stream, chunking, wrap) -> None:
    target = rig.targets()[name]
    outcome = feed(target, stream, chunking, [], wrap)
    outcome.check(target, baselines[name])
    # Random input never authenticates, and never names both of the session's keys,
    # so it costs no private operation and not even a signature verify.
    assert outcome.ops == 0
    assert not any(
        isinstance(e, (MessagesReceived, Acked, TypingChanged, Throttled, LegacyReceived))
        for e in outcome.events
    )
    if target.listening:
        assert outcome.policy.verifies_taken == 0
    note(target, {"hex": stream.hex()}, chunking, outcome)


def random_bytes_tests(names: tuple[str, ...]) -> tuple:
    """Strategy 1 on ``names``, over the compiled splitter and over the pure one."""

    @pytest.mark.parametrize("name", names)
    @fuzz(1000)
    @given(stream=random_streams, chunking=chunkings, wrap=wraps)
    def test_random_bytes_never_escape(rig, baselines, name, stream, chunking, wrap):
        random_case(rig, baselines, name, stream, chunking, wrap)

    @pytest.mark.parametrize("name", names)
    @fuzz(250)
    @given(stream=random_streams, chunking=chunkings, wrap=wraps)
    def test_random_bytes_never_escape_pure_splitter(
        rig, baselines, pure_splitter, name, stream, chunking, wrap
    ):
        """The same over the pure twin (which test_fast_twins holds to the compiled one)."""
        random_case(rig, baselines, name, stream, chunking, wrap)

    return test_random_bytes_never_escape, test_random_bytes_never_escape_pure_splitter


def mutation_test(names: tuple[str, ...]):
    """Strategy 2 on ``names``."""

    @pytest.mark.parametrize("name", names)
    @fuzz(400)
    @given(ops=mutations, chunking=chunkings, wrap=wraps)
    def test_mutated_transcripts(rig, baselines, name, ops, chunking, wrap):
        """The genuine input from each state, damaged: every property holds, and whatever
        is delivered before the damage is found is what the genuine input delivers."""
        target = rig.targets()[name]
        trace: list = []
        stream, bounds = mutate(target.frames, ops, trace)
        outcome = feed(target, stream, chunking, bounds, wrap)
        outcome.check(target, baselines[name])
        if not trace:  # a "set" that wrote the byte already there depends on this recording
            note(target, {"mutate": ops}, chunking, outcome)

    return test_mutated_transcripts
