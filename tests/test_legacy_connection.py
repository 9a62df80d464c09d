"""Legacy v1 envelopes through a listening Connection (PROTOCOL.md d, rows F9/F10 core)."""

import seed_client
from protocol_pair import T0, run

from enclave.protocol.connection import Connection, State
from enclave.protocol.crypto import Identity
from enclave.protocol.events import ConnectionClosed, LegacyReceived
from enclave.protocol.policy import MemoryPolicy


def framed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def listener(bob: Identity, policy: MemoryPolicy) -> Connection:
    return Connection(bob, policy, T0, source="127.0.0.3", v1_enabled=True)


def deliver(conn: Connection, payload: bytes) -> list:
    return run(conn, conn.receive_data(framed(payload), T0), T0)


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
    assert conn.state is State.LEGACY_DONE and conn.next_deadline() is None
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


def test_data_after_the_envelope_is_refused(rsa_keys):
    alice, bob, policy = setup(rsa_keys)
    conn = listener(bob, policy)
    deliver(conn, seed_envelope(rsa_keys))
    assert reason(conn.receive_data(b"more", T0)) == "unexpected_data"


def test_enclave_seal_is_read_by_the_reference_reader(rsa_keys):
    from enclave.protocol import legacy

    alice, bob, _ = setup(rsa_keys)
    payload = legacy.seal(alice, bob.peer_key, "to the seed", T0)
    text = seed_client.read(rsa_keys["bob"], rsa_keys["alice"].public_key(), payload, T0)
    assert text == "to the seed"
