"""The connection fuzz halfway through a handshake: an initiator that sent HS1 and waits
for HS2 (``await_hs2``), a responder that sent HS2 and waits for HS3 (``await_hs3``).
"""

import pytest
from support.fuzz_properties import mutation_test, random_bytes_tests
from support.fuzz_rig import framed, planned
from support.protocol_pair import T0, run

test_random_bytes_never_escape, test_random_bytes_never_escape_pure_splitter = random_bytes_tests(
    ("await_hs2", "await_hs3")
)
test_mutated_transcripts = mutation_test(("await_hs2", "await_hs3"))


@pytest.mark.parametrize("first", ["hs1", "hs2"])
def test_trailing_bytes_after_the_first_frame_cost_no_admission(rig, first):
    """Nothing legitimate follows HS1 or HS2 before the other side
    answers, so such bytes are refused before any budget is spent on the frame: no
    CryptoNeeded is handed out next to the ConnectionClosed event, no private-op
    admission is taken, and no private operation runs."""
    target = rig.targets()["await_hs2" if first == "hs2" else "listen_v1"]
    conn, identity, policy = target.make()
    ops = identity.private_ops
    if policy is not None:
        policy.private_admits = 8
    payload = {"hs1": rig.hs1, "hs2": rig.hs2}[first]
    with planned(target.plan):
        events = conn.receive_data(framed(payload) + b"\0", T0)
    assert conn.close_reason == "unexpected_data"
    kinds = [type(e).__name__ for e in events]
    run(conn, events, T0)  # what an owner does with whatever it is handed
    assert (kinds, identity.private_ops - ops) == (["ConnectionClosed"], 0)
    assert policy is None or policy.private_admits == 8
