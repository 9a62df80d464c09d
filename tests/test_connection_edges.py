"""Edges found in review: jobs vs. closes, trailing bytes, session age, key-update abuse."""

from support import seed_client
from support.protocol_pair import T0, Pair, run

from enclave.protocol.connection import Connection, Limits, State
from enclave.protocol.events import (
    ConnectionClosed,
    CryptoNeeded,
    LegacyReceived,
    LegacyVerified,
    MessagesReceived,
    SlotWanted,
)
from enclave.protocol.messages import Chat
from enclave.protocol.policy import MemoryPolicy
from enclave.protocol.records import KEY_UPDATE


def reason(events) -> str | None:
    return next((e.reason for e in events if isinstance(e, ConnectionClosed)), None)


def test_hs1_with_trailing_bytes_spends_no_budget(rsa_keys):
    p = Pair(rsa_keys)
    p.pol_b.private_admits = 8
    p.start()
    hs1 = p.i.data_to_send(T0)
    events = p.r.receive_data(hs1 + b"\x00", T0)
    assert reason(events) == "unexpected_data"
    assert not any(isinstance(e, CryptoNeeded) for e in events)
    assert p.pol_b.private_admits == 8 and p.idb.private_ops == 0 and p.pol_b.seen == {}


def test_v1_envelope_with_trailing_junk_is_handed_over_then_the_junk_refused(rsa_keys):
    """Bytes after an envelope are the next envelope's (pooling): they wait for their
    turn, and a frame that is no envelope closes the connection then."""
    p = Pair(rsa_keys, v1_enabled=True)
    p.pol_b.v1_peers[p.ida.fingerprint] = p.ida.peer_key
    env = seed_client.seal(rsa_keys["alice"], rsa_keys["bob"].public_key(), "x", timestamp=T0)
    events = run(p.r, p.r.receive_data(seed_client.frame(env) + b"\x00\x00\x00\x01\x01", T0), T0)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["LegacyVerified", "LegacyReceived", "ConnectionClosed"]
    assert reason(events) == "bad_v1_frame"


def test_close_during_a_job_cancels_it_and_drops_secrets(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    events = p.r.receive_data(p.i.data_to_send(T0), T0)
    [job_event] = [e for e in events if isinstance(e, CryptoNeeded)]
    assert job_event.job.admitted
    assert reason(p.r.close(T0, "connection_lost")) == "connection_lost"
    assert p.r._hs is None and p.r._job is None
    job_event.job.run()  # the owner still runs it (and then frees its slot) ...
    assert p.idb.private_ops == 0  # ... but a cancelled job does no RSA work
    assert p.r.resume(job_event.job, T0) == []


def test_initiator_job_finishing_after_close_is_ignored(rsa_keys):
    p = Pair(rsa_keys)
    [job_event] = p.i.initiate(T0)
    p.i.close(T0)
    job_event.job.run()
    assert p.i.resume(job_event.job, T0) == [] and p.i.closed


def test_job_result_does_not_outlive_resume(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    events = p.r.receive_data(p.i.data_to_send(T0), T0)
    job = next(e.job for e in events if isinstance(e, CryptoNeeded))
    job.run()
    p.r.resume(job, T0)
    assert job.result is None and job._fn is None


def test_session_expires_after_max_age(rsa_keys):
    p = Pair(
        rsa_keys, limits=Limits(max_session_age=100, keepalive_interval=1000, dead_after=2000)
    ).handshake()
    assert p.i.next_deadline() == T0 + 100
    events = p.i.handle_timer(T0 + 100)
    assert reason(events) == "session_expired"
    p.pump()
    assert p.r.close_reason == "peer_closed"


def test_two_key_updates_in_a_row_close_the_session(rsa_keys):
    p = Pair(rsa_keys).handshake()
    frames = p.i._tx.update_key(T0) + p.i._tx.update_key(T0)
    events = run(p.r, p.r.receive_data(frames, T0), T0)
    assert reason(events) == "bad_key_update"


def test_key_update_then_data_is_fine(rsa_keys):
    p = Pair(rsa_keys).handshake()
    wire = p.i._tx.update_key(T0)
    chat = Chat(bytes(16), p.ida.fingerprint, p.idb.fingerprint, 1, "after update")
    p.i.send_chats([chat])
    wire += p.i.data_to_send(T0)
    events = run(p.r, p.r.receive_data(wire, T0), T0)
    assert [m.body for e in events if isinstance(e, MessagesReceived) for m in e.messages] == [
        "after update"
    ]
    assert p.r._rx.key_epoch == 1 and KEY_UPDATE == 2


def test_unknown_fingerprint_costs_a_verify_like_a_known_one(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    hs1 = p.i.data_to_send(T0)
    unknown_policy = MemoryPolicy([])
    r = Connection(p.idb, unknown_policy, T0)
    assert reason(r.receive_data(hs1, T0)) == "unknown_peer"
    assert unknown_policy.verifies_taken == 1
    unknown_policy.verify_tokens = 0
    r2 = Connection(p.idb, unknown_policy, T0)
    assert reason(r2.receive_data(hs1, T0)) == "verify_budget"


def test_v1_busy_refusal_does_not_burn_the_id(rsa_keys):
    p = Pair(rsa_keys, v1_enabled=True)
    pol = MemoryPolicy(v1_peers=[p.ida.peer_key])
    pol.private_admits = 0
    env = seed_client.frame(
        seed_client.seal(rsa_keys["alice"], rsa_keys["bob"].public_key(), "later", timestamp=T0)
    )
    first = Connection(p.idb, pol, T0, v1_enabled=True)
    assert first.receive_data(env, T0) == [LegacyVerified(p.ida.fingerprint), SlotWanted()]
    assert first.state is State.LEGACY_WAIT
    assert reason(first.handle_timer(T0 + 10.0)) == "busy"
    pol.private_admits = 1
    retry = Connection(p.idb, pol, T0, v1_enabled=True)
    events = run(retry, retry.receive_data(env, T0), T0)
    assert [e.text for e in events if isinstance(e, LegacyReceived)] == ["later"]
    assert retry.state is State.LEGACY_READY


def test_a_responder_job_past_the_deadline_is_cancelled_before_its_rsa_work(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    [job_event] = [
        e for e in p.r.receive_data(p.i.data_to_send(T0), T0) if isinstance(e, CryptoNeeded)
    ]
    deadline = p.r.next_deadline()
    assert reason(p.r.handle_timer(deadline)) == "handshake_timeout"
    assert job_event.job.cancelled
    job_event.job.run()  # the pool gets to it late: it must do nothing
    assert p.idb.private_ops == 0 and p.r.resume(job_event.job, deadline) == []


def test_a_peer_close_wipes_the_session_keys(rsa_keys):
    p = Pair(rsa_keys).handshake()
    assert p.r._tx is not None and p.r._rx is not None
    p.i.close(T0)
    events = p.r.receive_data(p.i.data_to_send(T0), T0)
    assert reason(events) == "peer_closed" and p.r.closed
    assert p.r._tx is None and p.r._rx is None and p.r._pending == []
