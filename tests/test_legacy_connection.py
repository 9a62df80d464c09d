"""Legacy v1 envelopes through a listening Connection (PROTOCOL.md d, rows F9/F10 core)."""

import pytest
from support import seed_client
from support.protocol_pair import T0, run

from enclave.protocol.connection import Connection, State
from enclave.protocol.crypto import Identity
from enclave.protocol.events import (
    ConnectionClosed,
    CryptoNeeded,
    LegacyReceived,
    LegacyVerified,
    SlotWanted,
)
from enclave.protocol.policy import MemoryPolicy


def framed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def listener(bob: Identity, policy: MemoryPolicy) -> Connection:
    return Connection(bob, policy, T0, source="127.0.0.3", v1_enabled=True)


def deliver(conn: Connection, payload: bytes) -> list:
    return run(conn, conn.receive_data(framed(payload), T0), T0)


def jobs(events) -> list:
    return [e.job for e in events if isinstance(e, CryptoNeeded)]


def reason(events) -> str | None:
    return next((e.reason for e in events if isinstance(e, ConnectionClosed)), None)


def setup(rsa_keys):
    alice, bob = Identity(rsa_keys["alice"]), Identity(rsa_keys["bob"])
    return alice, bob, MemoryPolicy(v1_peers=[alice.peer_key])


def seed_envelope(rsa_keys, text="hello from the seed", **kw) -> bytes:
    return seed_client.seal(
        rsa_keys["alice"], rsa_keys["bob"].public_key(), text, timestamp=T0, **kw
    )


def test_seed_envelope_is_received_as_legacy(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    conn = listener(bob, policy)
    events = deliver(conn, seed_envelope(rsa_keys))
    got = [e for e in events if isinstance(e, LegacyReceived)]
    assert (
        len(got) == 1
        and got[0].text == "hello from the seed"
        and got[0].sender == alice.fingerprint
    )
    # Handed over; the connection waits for the commit and for a next envelope.
    assert conn.state is State.LEGACY_READY and conn.next_deadline() == T0 + 30.0
    assert bob.private_ops == 1
    assert reason(conn.close(T0)) == "local_close"


def test_v1_replay_is_refused_without_private_work(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    env = seed_envelope(rsa_keys)
    deliver(listener(bob, policy), env)
    events = deliver(listener(bob, policy), env)
    assert reason(events) == "v1_replay" and bob.private_ops == 1


def test_v1_from_a_peer_not_eligible_for_v1_is_refused(rsa_keys):
    _, bob, _ = setup(rsa_keys)
    events = deliver(listener(bob, MemoryPolicy()), seed_envelope(rsa_keys))
    assert reason(events) == "v1_unknown_sender" and bob.private_ops == 0


def test_v1_disabled_refuses_envelopes(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    conn = Connection(bob, policy, T0)
    events = run(conn, conn.receive_data(framed(seed_envelope(rsa_keys)), T0), T0)
    assert reason(events) in {"frame_too_large", "bad_first_frame"} and bob.private_ops == 0


def test_resigned_envelope_is_detected(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    mallory = Identity(rsa_keys["mallory"])
    policy.v1_peers[mallory.fingerprint] = mallory.peer_key
    fields = seed_client.seed_fields(
        rsa_keys["alice"], rsa_keys["bob"].public_key(), "pay 10", timestamp=T0
    )
    genuine = seed_client.sign_fields(rsa_keys["alice"], fields)
    stolen = dict(fields, sender_fingerprint=mallory.fingerprint.hex())
    resigned = seed_client.sign_fields(rsa_keys["mallory"], stolen)
    assert any(isinstance(e, LegacyReceived) for e in deliver(listener(bob, policy), genuine))
    events = deliver(listener(bob, policy), resigned)
    assert reason(events) == "v1_resigned" and bob.private_ops == 1


def test_bad_signature_does_not_burn_a_genuine_future_id(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    fields = seed_client.seed_fields(
        rsa_keys["alice"], rsa_keys["bob"].public_key(), "genuine", timestamp=T0
    )
    genuine = seed_client.sign_fields(rsa_keys["alice"], fields)
    forged = seed_client.assemble(fields, bytes(512))
    assert reason(deliver(listener(bob, policy), forged)) == "v1_bad_signature"
    events = deliver(listener(bob, policy), genuine)
    assert [e.text for e in events if isinstance(e, LegacyReceived)] == ["genuine"]


def test_salt_32_signature_is_refused(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    fields = seed_client.seed_fields(
        rsa_keys["alice"], rsa_keys["bob"].public_key(), "x", timestamp=T0
    )
    env = seed_client.sign_fields(rsa_keys["alice"], fields, salt_length=32)
    assert reason(deliver(listener(bob, policy), env)) == "v1_bad_signature"
    assert bob.private_ops == 0


def test_a_frame_after_the_envelope_that_is_no_envelope_is_refused(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    conn = listener(bob, policy)
    deliver(conn, seed_envelope(rsa_keys))
    events = conn.receive_data(framed(b"ENC2junk"), T0)
    assert reason(events) == "bad_v1_frame" and bob.private_ops == 1


def test_a_partial_frame_after_the_envelope_waits_then_times_out(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    conn = listener(bob, policy)
    deliver(conn, seed_envelope(rsa_keys))
    assert conn.receive_data(b"\x00\x00", T0) == []
    events = conn.handle_timer(conn.next_deadline())
    [closed] = [e for e in events if isinstance(e, ConnectionClosed)]
    assert (closed.reason, closed.v1_dropped) == ("legacy_timeout", True)


# --- the original client as it really sends (PROTOCOL.md d) ---------------------------------


def test_end_of_stream_during_the_job_still_hands_the_envelope_over(rsa_keys):
    """Plain send: the envelope, then EOF at once, while its job is still pending."""
    alice, bob, policy = setup(rsa_keys)
    conn = listener(bob, policy)
    [job] = jobs(conn.receive_data(framed(seed_envelope(rsa_keys)), T0))
    assert conn.receive_eof(T0) == []  # not now: the envelope came whole
    job.run()
    [got] = conn.resume(job, T0)
    assert isinstance(got, LegacyReceived) and got.text == "hello from the seed"
    assert not conn.closed  # it closes only once the owner committed the message
    [closed] = conn.legacy_committed(T0)
    assert (closed.reason, closed.by_peer, closed.v1_dropped) == ("legacy_done", True, False)
    assert conn.closed and conn.data_to_send(T0) == b""


def test_end_of_stream_after_the_hand_over_closes_once_committed(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    conn = listener(bob, policy)
    deliver(conn, seed_envelope(rsa_keys))
    assert conn.legacy_committed(T0) == [] and not conn.closed
    assert reason(conn.receive_eof(T0)) == "legacy_done"


def envelopes(rsa_keys, n: int) -> list[bytes]:
    return [seed_envelope(rsa_keys, f"pooled {i}") for i in range(n)]


@pytest.mark.parametrize("chunk", [1, 7, 4096, None], ids=["byte", "7", "4k", "whole"])
def test_pooled_envelopes_back_to_back_are_each_received_in_order(rsa_keys, chunk):
    """Pooled send: envelopes written back to back on one socket, no reply ever read,
    in any chunking; each goes through every check, one at a time, in order."""
    alice, bob, policy = setup(rsa_keys)
    conn = listener(bob, policy)
    stream = b"".join(framed(e) for e in envelopes(rsa_keys, 5))
    chunks = (
        [stream] if chunk is None else [stream[i : i + chunk] for i in range(0, len(stream), chunk)]
    )
    events = []
    for piece in chunks:
        events += run(conn, conn.receive_data(piece, T0), T0)
        assert conn.wants_data  # run() finishes each job before the next read
    events += conn.receive_eof(T0)
    assert [e.text for e in events if isinstance(e, LegacyReceived)] == [
        f"pooled {i}" for i in range(5)
    ]
    assert bob.private_ops == 5 and len(policy.v1_seen_ids) == 5 and not conn.closed
    for i in range(5):
        events = conn.legacy_committed(T0)
        assert (reason(events) == "legacy_done") == (i == 4)


def test_bytes_during_a_job_are_held_and_reading_stops_at_one_envelope(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    conn = listener(bob, policy)
    first, *rest = (framed(e) for e in envelopes(rsa_keys, 45))  # ~1.3 KB each
    [job] = jobs(conn.receive_data(first + rest[0][:100], T0))
    assert conn.wants_data
    held = b"".join(rest)[100:]
    assert conn.receive_data(held[:30_000], T0) == []  # held: its turn comes
    assert conn.wants_data
    assert conn.receive_data(held[30_000:], T0) == []
    assert not conn.wants_data  # more than an envelope's worth waits: stop reading
    assert conn.receive_eof(T0) == []
    job.run()
    events = run(conn, conn.resume(job, T0), T0)
    assert [e.text for e in events if isinstance(e, LegacyReceived)] == [
        f"pooled {i}" for i in range(45)
    ]
    assert conn.wants_data and not conn.closed
    events = [e for _ in range(45) for e in conn.legacy_committed(T0)]
    assert reason(events) == "legacy_done"


def test_a_peer_that_floods_past_the_envelope_being_worked_on_is_closed(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    conn = listener(bob, policy)
    [job] = jobs(conn.receive_data(framed(seed_envelope(rsa_keys)), T0))
    events = conn.receive_data(b"\x00" * (9 * (49_152 + 4)), T0)
    assert reason(events) == "unexpected_data"
    job.run()
    assert conn.resume(job, T0) == [] and bob.private_ops == 0  # the job was cancelled


def test_a_truncated_envelope_at_the_end_of_stream_is_dropped_with_a_reason(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    conn = listener(bob, policy)
    env = framed(seed_envelope(rsa_keys))
    assert conn.receive_data(env[:-1], T0) == []
    [closed] = [e for e in conn.receive_eof(T0) if isinstance(e, ConnectionClosed)]
    assert (closed.reason, closed.v1_dropped) == ("truncated", True)
    assert bob.private_ops == 0 and not policy.v1_seen_ids


def test_the_second_sender_on_one_connection_is_refused(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    mallory = Identity(rsa_keys["mallory"])
    policy.v1_peers[mallory.fingerprint] = mallory.peer_key
    conn = listener(bob, policy)
    deliver(conn, seed_envelope(rsa_keys))
    other = seed_client.seal(rsa_keys["mallory"], rsa_keys["bob"].public_key(), "m", timestamp=T0)
    events = run(conn, conn.receive_data(framed(other), T0), T0)
    assert reason(events) == "v1_sender_changed" and bob.private_ops == 1


def test_an_envelope_waits_for_a_slot_instead_of_hearing_busy(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    policy.private_admits = 0
    conn = listener(bob, policy)
    events = conn.receive_data(framed(seed_envelope(rsa_keys)), T0)
    assert events == [LegacyVerified(alice.fingerprint), SlotWanted()]
    assert conn.state is State.LEGACY_WAIT and conn.next_deadline() == T0 + 10.0
    assert conn.retry_admission(T0 + 1) == [SlotWanted()]  # still none: it waits on
    policy.private_admits = 1
    events = run(conn, conn.retry_admission(T0 + 2), T0 + 2)
    assert [e.text for e in events if isinstance(e, LegacyReceived)] == ["hello from the seed"]


def test_an_envelope_that_never_gets_a_slot_is_dropped_busy_and_not_burned(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    policy.private_admits = 0
    env = seed_envelope(rsa_keys)
    conn = listener(bob, policy)
    conn.receive_data(framed(env), T0)
    events = []
    now = T0
    while not conn.closed:
        now = conn.next_deadline()
        events += conn.handle_timer(now)
    assert now == T0 + 10.0
    [closed] = [e for e in events if isinstance(e, ConnectionClosed)]
    assert (closed.reason, closed.v1_dropped) == ("busy", True)
    assert not policy.v1_seen_ids  # the original client's retry of these bytes is accepted
    policy.private_admits = 1
    events = deliver(listener(bob, policy), env)
    assert [e.text for e in events if isinstance(e, LegacyReceived)] == ["hello from the seed"]


def test_a_store_failure_in_the_job_closes_with_its_reason(rsa_keys):
    from enclave.errors import LocalFailure

    alice, bob, policy = setup(rsa_keys)

    def failing(*args):
        raise LocalFailure("store_error", "disk I/O error")

    policy.v1_record = failing
    conn = listener(bob, policy)
    [job] = jobs(conn.receive_data(framed(seed_envelope(rsa_keys)), T0))
    assert job.admitted
    job.run()
    [closed] = conn.resume(job, T0)
    assert (closed.reason, closed.v1_dropped) == ("store_error", True)
    assert bob.private_ops == 0  # nothing was opened


def test_enclave_seal_is_read_by_the_reference_reader(rsa_keys):
    from enclave.protocol import legacy

    alice, bob, _ = setup(rsa_keys)
    payload = legacy.seal(alice, bob.peer_key, "to the seed", T0)
    text = seed_client.read(rsa_keys["bob"], rsa_keys["alice"].public_key(), payload, T0)
    assert text == "to the seed"
