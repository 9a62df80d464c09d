"""The v2 handshake on in-memory pairs: PROTOCOL.md section e, rows F1-F4, F6, F11, F13, F14.

Every rejection asserts: the connection closed with a reason, the responder's policy
state did not change, and no RSA private operation was spent on unauthenticated input.
"""

import gc

import pytest
from support.protocol_pair import T0, Pair, closed_reason, run

from enclave.protocol import handshake as hs
from enclave.protocol import schedule
from enclave.protocol.connection import Connection, Limits, State
from enclave.protocol.crypto import AESGCM, Identity, InvalidTag, X25519Keypair, random_bytes
from enclave.protocol.events import CryptoNeeded, Established
from enclave.protocol.policy import MemoryPolicy

LOW_ORDER_POINTS = [
    bytes(32),
    bytes([1]) + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
]


def hs1_of(pair: Pair) -> bytes:
    """Alice's framed HS1 bytes (the pair has been started)."""
    return pair.i.data_to_send(pair.now)


def responder(
    pair: Pair, policy: MemoryPolicy | None = None, now: float | None = None, **kw
) -> Connection:
    return Connection(pair.idb, policy or pair.pol_b, now or pair.now, source="127.0.0.9", **kw)


def feed(conn: Connection, data: bytes, now: float = T0) -> list:
    return run(conn, conn.receive_data(data, now), now)


def framed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def snapshot(policy: MemoryPolicy) -> tuple:
    return (dict(policy.seen), dict(policy.hwm))


def test_handshake_completes_with_equal_keys(rsa_keys):
    p = Pair(rsa_keys).handshake()
    assert p.i.session_id == p.r.session_id
    assert p.i.peer == p.idb.fingerprint and p.r.peer == p.ida.fingerprint
    # Both directions hold matching keys, and the two directions differ.
    assert p.i._tx._key == p.r._rx._key and p.r._tx._key == p.i._rx._key
    assert p.i._tx._key != p.i._rx._key and p.i._tx._iv != p.i._rx._iv
    # One PSS sign and one OAEP decrypt per side.
    assert (p.ida.private_ops, p.idb.private_ops) == (2, 2)


def test_frame_sizes_match_spec(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    hs1 = hs1_of(p)
    assert len(hs1) == 4 + 1152
    events = feed(p.r, hs1)
    assert events == []
    hs2 = p.r.data_to_send(T0)
    assert len(hs2) == 4 + 1160
    feed(p.i, hs2)
    assert len(p.i.data_to_send(T0)) == 4 + 40


# --- F1: misbinding and field mutation ---------------------------------------------------


def resign_as(hs1_frame: bytes, signer: Identity) -> bytes:
    """Mallory's copy of an HS1: fp_I replaced by hers, re-signed with her key."""
    body = hs1_frame[4:]
    n_r = 512
    prefix = body[:32] + signer.fingerprint + body[64 : hs.HS1_FIXED + n_r]
    return framed(prefix + signer.sign_v2(hs.hs1_signed_data(prefix)))


def test_f1_resigned_hs1_never_establishes_and_genuine_still_works(rsa_keys):
    p = Pair(rsa_keys)
    mallory = Identity(rsa_keys["mallory"])
    p.pol_b.peers[mallory.fingerprint] = mallory.peer_key
    p.start()
    genuine = hs1_of(p)
    forged = resign_as(genuine, mallory)
    victim = responder(p)
    events = feed(victim, forged)
    assert victim.state is State.AWAIT_HS3  # R answered Mallory ...
    assert victim.peer == mallory.fingerprint
    # ... but Mallory cannot produce fin_I without e_I's private key.
    events += feed(victim, framed(hs.hs3(random_bytes(32))))
    assert closed_reason(events) == "bad_finished"
    assert not any(isinstance(e, Established) for e in events)
    # Alice's genuine HS1 still completes.
    p.ev_r += feed(p.r, genuine)
    p.pump()
    assert p.i.established and p.r.established and p.r.peer == p.ida.fingerprint


HS1_FIELDS = {  # name: (offset, length) in the HS1 payload, for 4096/4096 keys
    "flags": (5, 1),
    "ver_min": (6, 1),
    "ts": (8, 8),
    "hs_id": (16, 16),
    "fp_i": (32, 32),
    "fp_r": (64, 32),
    "e_i": (96, 32),
    "wrap_i": (128, 512),
    "sig_i": (640, 512),
}


@pytest.mark.parametrize("field", sorted(HS1_FIELDS))
def test_f1_mutated_hs1_field_is_rejected_without_private_work(rsa_keys, field):
    p = Pair(rsa_keys)
    p.start()
    frame = bytearray(hs1_of(p))
    offset, length = HS1_FIELDS[field]
    frame[4 + offset + length - 1] ^= 0x01  # flip the last bit of the field
    before, ops = snapshot(p.pol_b), p.idb.private_ops
    events = feed(p.r, bytes(frame))
    assert p.r.closed and closed_reason(events) in {
        "bad_hs1",
        "bad_version",
        "bad_signature",
        "misdirected",
        "unknown_peer",
        "stale_handshake",
    }
    assert p.idb.private_ops == ops == 0
    assert snapshot(p.pol_b) == before
    assert p.r.data_to_send(T0) == framed(hs.alert(hs.ALERT_GENERIC))


HS2_FIELDS = {
    "version": (6, 1),
    "zero": (7, 1),
    "fp_r": (8, 32),
    "fp_i": (40, 32),
    "e_r": (72, 32),
    "wrap_r": (104, 512),
    "sig_r": (616, 512),
}


@pytest.mark.parametrize("field", sorted(HS2_FIELDS))
def test_f1_mutated_hs2_field_is_rejected_before_private_work(rsa_keys, field):
    p = Pair(rsa_keys)
    p.start()
    feed(p.r, hs1_of(p))
    frame = bytearray(p.r.data_to_send(T0))
    offset, length = HS2_FIELDS[field]
    frame[4 + offset + length - 1] ^= 0x01
    ops = p.ida.private_ops  # the HS1 signature only
    events = feed(p.i, bytes(frame))
    assert p.i.closed and closed_reason(events) in {"bad_hs2", "bad_signature", "misdirected"}
    assert p.ida.private_ops == ops == 1


def test_f1_spliced_old_hs2_dies_at_the_public_verify(rsa_keys):
    old = Pair(rsa_keys)
    old.start()
    feed(old.r, hs1_of(old))
    old_hs2 = old.r.data_to_send(T0)
    p = Pair(rsa_keys)
    p.start()
    hs1_of(p)
    events = feed(p.i, old_hs2)
    assert closed_reason(events) == "bad_signature"
    assert p.ida.private_ops == 1  # only its own HS1 signature


# --- F2: key confirmation ----------------------------------------------------------------


def test_f2_replayed_hs1_after_state_loss_never_establishes(rsa_keys):
    p = Pair(rsa_keys).handshake()  # an existing session that must stay up
    q = Pair(rsa_keys)
    q.start()
    recorded_hs1 = hs1_of(q)
    feed(q.r, recorded_hs1)  # the genuine one, processed once
    fresh_policy = MemoryPolicy([q.ida.peer_key])  # crash: seen-set and hwm lost
    victim = responder(q, fresh_policy)
    events = feed(victim, recorded_hs1)
    assert victim.state is State.AWAIT_HS3  # it answers ...
    events += victim.handle_timer(T0 + 10)
    assert closed_reason(events) == "handshake_timeout"  # ... but never establishes
    assert not any(isinstance(e, Established) for e in events)
    # The existing session is untouched and keeps delivering.
    from enclave.protocol.messages import Chat

    p.i.send_chats([Chat(bytes(16), p.ida.fingerprint, p.idb.fingerprint, 1, "still here")])
    p.pump()
    assert [m.body for e in p.ev_r if hasattr(e, "messages") for m in e.messages] == ["still here"]


def test_f2_flipped_fin_r_aborts_initiator(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    feed(p.r, hs1_of(p))
    hs2 = bytearray(p.r.data_to_send(T0))
    hs2[-1] ^= 0x80
    events = feed(p.i, bytes(hs2))
    assert closed_reason(events) == "bad_finished"
    assert p.i.data_to_send(T0) == b""  # no HS3 went out


def test_f2_flipped_fin_i_aborts_responder(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    feed(p.r, hs1_of(p))
    feed(p.i, p.r.data_to_send(T0))
    hs3 = bytearray(p.i.data_to_send(T0))
    hs3[-1] ^= 0x01
    events = feed(p.r, bytes(hs3))
    assert closed_reason(events) == "bad_finished"
    assert not any(isinstance(e, Established) for e in events)


# --- F3: domain separation ---------------------------------------------------------------


def test_f3_hs2_fed_as_hs1_is_rejected(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    feed(p.r, hs1_of(p))
    hs2 = p.r.data_to_send(T0)
    listener = Connection(p.ida, p.pol_a, T0)
    events = feed(listener, hs2)
    assert closed_reason(events) == "bad_hs1" and p.ida.private_ops == 1


def test_f3_reflected_hs1_is_rejected(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    listener = Connection(p.ida, MemoryPolicy([p.idb.peer_key, p.ida.peer_key]), T0)
    events = feed(listener, hs1_of(p))
    assert closed_reason(events) == "misdirected" and p.ida.private_ops == 1


def test_f3_reflected_traffic_frame_fails_its_tag(rsa_keys):
    p = Pair(rsa_keys).handshake()
    p.i.send_typing(True)
    frame = p.i.data_to_send(T0)
    events = feed(p.i, frame)
    assert closed_reason(events) == "bad_record_mac"


def test_f3_v1_envelope_is_refused_by_a_v2_only_listener(rsa_keys):
    from support import seed_client

    p = Pair(rsa_keys)
    envelope = seed_client.seal(rsa_keys["alice"], rsa_keys["bob"].public_key(), "hi", timestamp=T0)
    events = feed(p.r, framed(envelope))
    assert closed_reason(events) in {"bad_first_frame", "frame_too_large"}
    assert p.idb.private_ops == 0


# --- F4: replay without breaking legitimate use --------------------------------------------


def test_f4_reordered_handshakes_all_succeed(rsa_keys):
    ida, idb = Identity(rsa_keys["alice"]), Identity(rsa_keys["bob"])
    pol_b = MemoryPolicy([ida.peer_key])
    initiators = {
        t: Connection(ida, MemoryPolicy([idb.peer_key]), T0 + t, peer=idb.peer_key)
        for t in (1, 2, 3)
    }
    hs1s = {}
    for t, conn in initiators.items():
        run(conn, conn.initiate(T0 + t), T0 + t)
        hs1s[t] = conn.data_to_send(T0 + t)
    for t in (2, 1, 3):
        r = Connection(idb, pol_b, T0 + 4)
        feed(r, hs1s[t], T0 + 4)
        i = initiators[t]
        feed(i, r.data_to_send(T0 + 4), T0 + 4)
        events = feed(r, i.data_to_send(T0 + 4), T0 + 4)
        assert any(isinstance(e, Established) for e in events), t


def test_f4_duplicate_hs_id_rejected_before_verify(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    hs1 = hs1_of(p)
    feed(p.r, hs1)
    verifies, ops = p.pol_b.verifies_taken, p.idb.private_ops
    events = feed(responder(p), hs1)
    assert closed_reason(events) == "replayed_handshake"
    assert (p.pol_b.verifies_taken, p.idb.private_ops) == (verifies, ops)


def test_f4_persisted_hwm_rejects_old_hs1_cheaply(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    hs1 = hs1_of(p)
    restarted = MemoryPolicy([p.ida.peer_key])
    restarted.floors[p.ida.fingerprint] = int(T0 * 1000)  # the hwm persisted before the restart
    events = feed(responder(p, restarted), hs1)
    assert closed_reason(events) == "stale_handshake"
    assert restarted.verifies_taken == 0 and p.idb.private_ops == 0


@pytest.mark.parametrize("skew, ok", [(301, False), (-301, False), (299, True), (-299, True)])
def test_f4_time_window(rsa_keys, skew, ok):
    p = Pair(rsa_keys)
    p.start()
    r = responder(p, now=T0 + skew)
    events = feed(r, hs1_of(p), T0 + skew)
    if ok:
        assert r.state is State.AWAIT_HS3
    else:
        assert closed_reason(events) == "clock_skew" and p.idb.private_ops == 0
        assert r.data_to_send(T0) == framed(hs.alert(hs.ALERT_SKEW))


def test_f4_oversized_timestamp_is_rejected(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    frame = bytearray(hs1_of(p))
    frame[4 + 8 : 4 + 16] = b"\xff" * 8
    events = feed(p.r, bytes(frame))
    assert closed_reason(events) == "clock_skew" and p.idb.private_ops == 0


def test_f4_one_capture_replayed_1000_times_costs_nothing_more(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    hs1 = hs1_of(p)
    feed(p.r, hs1)
    ops, verifies = p.idb.private_ops, p.pol_b.verifies_taken
    assert ops == 2
    for _ in range(1000):
        assert closed_reason(feed(responder(p), hs1)) == "replayed_handshake"
    assert (p.idb.private_ops, p.pol_b.verifies_taken) == (ops, verifies)


# --- F5 (core part): budgets are asked in order ----------------------------------------------


def test_busy_private_slots_answer_alert_busy(rsa_keys):
    p = Pair(rsa_keys)
    p.pol_b.private_admits = 0
    p.start()
    events = feed(p.r, hs1_of(p))
    assert closed_reason(events) == "busy" and p.idb.private_ops == 0
    assert p.r.data_to_send(T0) == framed(hs.alert(hs.ALERT_BUSY))
    events = feed(p.i, framed(hs.alert(hs.ALERT_BUSY)))
    assert closed_reason(events) == "peer_alert"


def test_verify_budget_exhausted_closes_before_verify(rsa_keys):
    p = Pair(rsa_keys)
    p.pol_b.verify_tokens = 0
    p.start()
    events = feed(p.r, hs1_of(p))
    assert closed_reason(events) == "verify_budget" and p.pol_b.verifies_taken == 0


def test_unknown_peer_and_bad_signature_close_identically(rsa_keys):
    """F13: the wire shows the same refusal for an unknown fp and a bad signature."""
    p = Pair(rsa_keys)
    p.start()
    hs1 = bytearray(hs1_of(p))
    bad_sig = bytes(hs1[:-1]) + bytes([hs1[-1] ^ 1])
    unknown = responder(p, MemoryPolicy([]))
    known = responder(p)
    e1, e2 = feed(unknown, bytes(hs1)), feed(known, bad_sig)
    assert (closed_reason(e1), closed_reason(e2)) == ("unknown_peer", "bad_signature")
    assert unknown.data_to_send(T0) == known.data_to_send(T0) == framed(hs.alert(hs.ALERT_GENERIC))
    assert [type(e) for e in e1] == [type(e) for e in e2]


# --- deadlines and framing ------------------------------------------------------------------


def test_first_frame_deadline_and_dribble(rsa_keys):
    p = Pair(rsa_keys)
    r = responder(p)
    assert r.next_deadline() == T0 + 5
    assert closed_reason(r.handle_timer(T0 + 5)) == "first_frame_timeout"
    p.start()
    hs1 = hs1_of(p)
    dribbler = responder(p)
    for k in range(9):  # one byte a second
        assert feed(dribbler, hs1[k : k + 1], T0 + k) == []
    assert closed_reason(dribbler.handle_timer(T0 + 10)) in {
        "first_frame_timeout",
        "handshake_timeout",
    }


def test_oversized_prefix_closes_before_buffering(rsa_keys):
    p = Pair(rsa_keys)
    r = responder(p)
    events = feed(r, b"\xff\xff\xff\xff" + b"x" * 60_000)
    assert closed_reason(events) == "frame_too_large" and r.buffered < 64
    r2 = responder(p)
    assert closed_reason(feed(r2, (4097).to_bytes(4, "big"))) == "frame_too_large"


def test_traffic_before_established_is_refused(rsa_keys):
    p = Pair(rsa_keys).handshake()
    p.i.send_typing(True)
    frame = p.i.data_to_send(T0)
    q = Pair(rsa_keys)
    q.start()
    feed(q.r, hs1_of(q))
    events = feed(q.r, frame)
    assert q.r.closed and closed_reason(events) in {"bad_hs3", "unexpected_data"}


def test_data_during_crypto_job_is_refused(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    events = p.r.receive_data(hs1_of(p), T0)
    assert isinstance(events[0], CryptoNeeded)
    events = p.r.receive_data(b"\x00\x00\x00\x01x", T0)
    assert closed_reason(events) == "unexpected_data"
    job = p.r._job
    assert job is None  # a late job result is ignored
    assert p.idb.private_ops == 0


# --- F6: forward secrecy and erasure ------------------------------------------------------------


def reachable(root, limit=20000):
    seen, stack, out = set(), [root], []
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        out.append(obj)
        stack.extend(gc.get_referents(obj))
    return out


def test_f6_no_handshake_secret_survives_establishment(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    feed(p.r, hs1_of(p))
    k_i, e_i = p.i._hs.k_i, p.i._hs.e
    k_r, e_r = p.r._hs.k_r, p.r._hs.e
    dh, prk = p.r._hs.dh, p.r._hs.prk
    feed(p.i, p.r.data_to_send(T0))
    feed(p.r, p.i.data_to_send(T0))
    assert p.i.established and p.r.established
    for conn in (p.i, p.r):
        objs = reachable(conn)
        assert not any(o is e_i or o is e_r or isinstance(o, X25519Keypair) for o in objs)
        blobs = {bytes(o) for o in objs if isinstance(o, bytes | bytearray)}
        assert k_i not in blobs and k_r not in blobs and dh not in blobs and prk not in blobs
        assert not any(type(o).__name__ == "X25519PrivateKey" for o in objs)


def test_f6_recorded_session_cannot_be_decrypted_with_both_rsa_keys(rsa_keys):
    p = Pair(rsa_keys)
    p.start()
    hs1 = hs1_of(p)
    feed(p.r, hs1)
    hs2 = p.r.data_to_send(T0)
    real_dh = p.r._hs.dh
    feed(p.i, hs2)
    hs3 = p.i.data_to_send(T0)
    feed(p.r, hs3)
    p.i.send_typing(True)
    frame0 = p.i.data_to_send(T0)
    # The attacker holds both RSA private keys and recovers both wrapped secrets ...
    alice, bob = Identity(rsa_keys["alice"]), Identity(rsa_keys["bob"])
    k_i = bob.unwrap_v2(hs1[4 + 128 : 4 + 128 + 512], hs.LABEL_I)
    k_r = alice.unwrap_v2(hs2[4 + 104 : 4 + 104 + 512], hs.LABEL_R)
    assert len(k_i) == len(k_r) == 32
    th3 = hs.transcript(hs1[4:], hs2[4:])
    payload = frame0[4:]
    # Positive control: with the real X25519 secret the recorded frame opens ...
    i2r, _ = schedule.traffic_secrets(schedule.handshake_prk(real_dh, k_i, k_r), th3)
    assert AESGCM(schedule.traffic_key(i2r)).decrypt(schedule.traffic_iv(i2r), payload, frame0[:4])
    # ... but without it no guess at dh does.
    for dh_guess in (bytes(32), hs1[4 + 96 : 4 + 128], hs2[4 + 72 : 4 + 104]):
        prk = schedule.handshake_prk(dh_guess, k_i, k_r)
        i2r, _ = schedule.traffic_secrets(prk, th3)
        with pytest.raises(InvalidTag):
            AESGCM(schedule.traffic_key(i2r)).decrypt(schedule.traffic_iv(i2r), payload, frame0[:4])


# --- F11: ephemeral hygiene ------------------------------------------------------------------------


def forge_hs2_with(p: Pair, e_r: bytes) -> bytes:
    """A validly signed HS2 from Bob carrying a chosen e_R (Bob's key is in the test's hands)."""
    hs1 = p.i._hs.hs1
    wrap_r = p.ida.peer_key.wrap_v2(random_bytes(32), hs.LABEL_R)
    prefix = hs.hs2_body(p.idb.fingerprint, p.ida.fingerprint, e_r, wrap_r)
    sig = Identity(p.idb._key).sign_v2(hs.hs2_signed_data(hs1, prefix))
    return framed(prefix + sig + random_bytes(32))


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda b: b[:2].hex())
def test_f11_low_order_e_r_aborts_before_private_work(rsa_keys, point):
    p = Pair(rsa_keys)
    p.start()
    hs1_of(p)
    events = feed(p.i, forge_hs2_with(p, point))
    assert closed_reason(events) == "bad_ephemeral" and p.ida.private_ops == 1


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda b: b[:2].hex())
def test_f11_low_order_e_i_aborts_before_private_work(rsa_keys, point):
    alice = Identity(rsa_keys["alice"])
    p = Pair(rsa_keys)
    ts = int(T0 * 1000)
    wrap_i = p.idb.peer_key.wrap_v2(random_bytes(32), hs.LABEL_I)
    prefix = hs.hs1_body(ts, random_bytes(16), alice.fingerprint, p.idb.fingerprint, point, wrap_i)
    frame = framed(prefix + alice.sign_v2(hs.hs1_signed_data(prefix)))
    events = feed(p.r, frame)
    assert closed_reason(events) == "bad_ephemeral" and p.idb.private_ops == 0


def test_f11_handshakes_never_share_ephemerals_or_ids(rsa_keys):
    ida, idb = Identity(rsa_keys["alice"]), Identity(rsa_keys["bob"])
    seen_e, seen_id = set(), set()
    for _ in range(40):
        c = Connection(ida, MemoryPolicy([idb.peer_key]), T0, peer=idb.peer_key)
        run(c, c.initiate(T0), T0)
        head = hs.parse_hs1_head(c.data_to_send(T0)[4:])
        seen_e.add(head.e_i)
        seen_id.add(head.hs_id)
    assert len(seen_e) == len(seen_id) == 40


# --- F14: key-compromise impersonation -------------------------------------------------------------


def test_f14_alice_key_cannot_impersonate_bob_to_alice(rsa_keys):
    alice = Identity(rsa_keys["alice"])  # the attacker holds this key
    bob_pub = Identity(rsa_keys["bob"]).peer_key
    # As initiator claiming Bob: the HS1 signature must be Bob's.
    ts = int(T0 * 1000)
    wrap = alice.peer_key.wrap_v2(random_bytes(32), hs.LABEL_I)
    prefix = hs.hs1_body(
        ts, random_bytes(16), bob_pub.fingerprint, alice.fingerprint, X25519Keypair().public, wrap
    )
    forged = framed(prefix + alice.sign_v2(hs.hs1_signed_data(prefix)))
    victim = Connection(Identity(rsa_keys["alice"]), MemoryPolicy([bob_pub]), T0)
    assert closed_reason(feed(victim, forged)) == "bad_signature"
    # As responder claiming Bob to Alice's dial: the HS2 signature must be Bob's.
    p = Pair(rsa_keys)
    p.start()
    hs1 = hs1_of(p)[4:]
    wrap_r = p.ida.peer_key.wrap_v2(random_bytes(32), hs.LABEL_R)
    prefix2 = hs.hs2_body(bob_pub.fingerprint, p.ida.fingerprint, X25519Keypair().public, wrap_r)
    forged2 = framed(prefix2 + alice.sign_v2(hs.hs2_signed_data(hs1, prefix2)) + random_bytes(32))
    assert closed_reason(feed(p.i, forged2)) == "bad_signature"


def test_initiator_deadline(rsa_keys):
    p = Pair(rsa_keys, limits=Limits(handshake_timeout=3))
    p.start()
    assert p.i.next_deadline() == T0 + 3
    assert closed_reason(p.i.handle_timer(T0 + 3)) == "handshake_timeout"


def test_f14_replayed_hs1_with_the_victims_key_still_cannot_finish(rsa_keys):
    """KCI, the real route: the attacker holds Alice's RSA key, records Bob's HS1 to
    Alice and replays it after Alice lost her seen-set. Alice answers, the attacker can
    unwrap k_I (it was wrapped to Alice) but lacks Bob's ephemeral key, so no fin_I."""
    bob_to_alice = Pair(rsa_keys, a="bob", b="alice")
    bob_to_alice.start()
    recorded = hs1_of(bob_to_alice)
    alice = Identity(rsa_keys["alice"])
    victim = Connection(alice, MemoryPolicy([bob_to_alice.ida.peer_key]), T0)
    feed(victim, recorded)
    assert victim.state is State.AWAIT_HS3
    hs2 = victim.data_to_send(T0)[4:]
    stolen = Identity(rsa_keys["alice"])  # the attacker's copy of Alice's key
    k_i = stolen.unwrap_v2(recorded[4 + 128 : 4 + 128 + 512], hs.LABEL_I)
    assert k_i is not None and len(k_i) == 32
    th3 = hs.transcript(recorded[4:], hs2)
    for dh_guess in (bytes(32), recorded[4 + 96 : 4 + 128]):
        # k_R was wrapped to Bob: the attacker cannot have it either; try zeros.
        prk = schedule.handshake_prk(dh_guess, k_i, bytes(32))
        forged = hs.hs3(hs.finished(schedule.finished_key_i(prk, th3), th3))
        probe = Connection(alice, MemoryPolicy([bob_to_alice.ida.peer_key]), T0)
        feed(probe, recorded)  # a fresh victim each time (the seen-set is per policy)
        events = feed(probe, framed(forged))
        assert closed_reason(events) == "bad_finished"
        assert not any(isinstance(e, Established) for e in events)
