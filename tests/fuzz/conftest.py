"""Hostile bytes, in any chunking, against every state of a Connection (F5, receive boundary).

Acceptance: random and mutated bytes fed in any chunking never raise anything but the
peer-misbehaviour error, and never grow memory past the frame limit. One file per
family of targets, one for the frame length prefix in every state, one for the
recording and the corpus:

- ``test_fuzz_listen.py``: a responder in LISTEN, legacy v1 off and on;
- ``test_fuzz_handshake.py``: both sides halfway through a handshake;
- ``test_fuzz_established.py``: both sides of a session, and an authenticated peer
  that misbehaves;
- ``test_fuzz_frames.py``: length prefixes, and what a connection may buffer;
- ``test_fuzz_corpus.py``: the recorded session replays exactly; the corpus replays.

The pieces are in ``tests/support``: the recorded session and its targets
(``fuzz_rig``), the inputs (``fuzz_inputs``, ``fuzz_sealed``), the checks every input
must pass (``fuzz_checks``), the corpus (``fuzz_corpus``) and the properties every
family runs (``fuzz_properties``). ``ENCLAVE_FUZZ_EXAMPLES=N`` raises every example
count to at least N for a long run (``python -m pytest -p no:randomly tests/fuzz``);
``ENCLAVE_FUZZ_CORPUS=update`` adds what a run finds to ``tests/corpus/connection``.

The fixtures below are per module: each file records its own session.
"""

import pytest
from support import fuzz_rig
from support.fast_twins import TWINS, load_twin
from support.fuzz_checks import baselines_of
from support.fuzz_corpus import start_update
from support.fuzz_rig import Rig

import enclave.protocol.connection as connection_module


@pytest.fixture(scope="module")
def replayable_randomness():
    with fuzz_rig.replayable_randomness():
        yield


@pytest.fixture(scope="module")
def rig(rsa_keys, replayable_randomness) -> Rig:
    return Rig(rsa_keys)


@pytest.fixture(scope="module")
def other_rig(rsa_keys, replayable_randomness) -> Rig:
    """Other keys and other random values: what a corpus entry must not depend on."""
    return Rig(rsa_keys, "carol", "mallory")


@pytest.fixture(scope="module")
def baselines(rig) -> dict[str, tuple]:
    return baselines_of(rig)


@pytest.fixture(scope="module", autouse=True)
def _corpus_update(rsa_keys, replayable_randomness, request):
    start_update(rsa_keys, request.config)


@pytest.fixture(params=TWINS)
def twin(request, monkeypatch):
    """Run the connection over the compiled or the pure frame splitter."""
    module = load_twin("frames", request.param)
    monkeypatch.setattr(connection_module, "FrameSplitter", module.FrameSplitter)
    return request.param


@pytest.fixture
def pure_splitter(monkeypatch):
    monkeypatch.setattr(
        connection_module, "FrameSplitter", load_twin("frames", "pure").FrameSplitter
    )
