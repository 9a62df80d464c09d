"""The recorded session the connection fuzz starts from, and its targets.

Targets (``Rig.targets``): a responder in LISTEN with legacy v1 off (``listen``) and on
(``listen_v1``, and ``listen_v1_envelope`` whose genuine input is a v1 envelope), an
initiator in AWAIT_HS2 after ``initiate`` (``await_hs2``), a responder in AWAIT_HS3
(``await_hs3``), and both sides ESTABLISHED (``established_r``, ``established_i``).
Each target holds its genuine input (the frames the recorded peer sent from that
state), the randomness it draws while handling them, and how many private operations
a given first frame may cost.

Affordable fresh connections. One real handshake is recorded per test module (alice to
bob, then traffic both ways: chats, acks, typing, a ping and its pong, key updates in
both directions, CLOSE). Every later connection replays it exactly: the connection
module's ``random_bytes`` and ``X25519Keypair`` are patched (``replayable_randomness``)
to hand out the recorded values while a plan is armed (real randomness otherwise), and
the identities and peer keys remember the results of their RSA operations
(``MemoIdentity`` still counts every private operation, so check 4 of
``support.fuzz_checks`` means the same thing). A connection in any target state costs
at most ~0.3 ms instead of the ~7 ms of a real handshake, so every example gets fresh
connections in the exact recorded state, and recorded traffic frames open under the
replayed keys (``test_recording_replays_exactly``).
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

import enclave.protocol.connection as connection_module
import enclave.protocol.handshake_steps as handshake_steps_module
from enclave.protocol import legacy, schedule
from enclave.protocol.connection import Connection, Limits
from enclave.protocol.crypto import AESGCM, Identity, PeerKey, X25519Keypair
from enclave.protocol.messages import Chat
from enclave.protocol.policy import MemoryPolicy
from enclave.protocol.records import TAG_LEN
from support.protocol_pair import T0, run

# --- replayable randomness ---------------------------------------------------------------

_PLAN: deque = deque()  # ("bytes", value) / ("x25519", raw private key), in draw order


def _planned_bytes(n: int) -> bytes:
    if _PLAN and _PLAN[0][0] == "bytes" and len(_PLAN[0][1]) == n:
        return _PLAN.popleft()[1]
    return os.urandom(n)


class _PlannedEphemeral(X25519Keypair):
    """An X25519Keypair whose private key comes from the plan when one is armed."""

    __slots__ = ()

    def __init__(self) -> None:
        if _PLAN and _PLAN[0][0] == "x25519":
            self._private = X25519PrivateKey.from_private_bytes(_PLAN.popleft()[1])
            self.public = self._private.public_key().public_bytes_raw()
        else:
            super().__init__()


@contextmanager
def planned(plan: tuple):
    """Within the block the connection module draws the planned values, in order."""
    _PLAN.clear()
    _PLAN.extend(plan)
    try:
        yield
    finally:
        _PLAN.clear()


class MemoIdentity(Identity):
    """An Identity that remembers the results of its private operations.

    Every call is still counted in ``private_ops``. A remembered PSS signature is as
    valid as a fresh one (only the salt would differ); an unwrap is deterministic.
    """

    def __init__(self, key, memo: dict) -> None:
        super().__init__(key)
        self._memo = memo

    def _remember(self, key: tuple, compute: Callable):
        if key in self._memo:
            self._count()
            return self._memo[key]
        result = self._memo[key] = compute()  # counted by the real operation
        return result

    def sign_v2(self, data: bytes) -> bytes:
        return self._remember(("sign_v2", data), lambda: Identity.sign_v2(self, data))

    def unwrap_v2(self, ciphertext: bytes, label: bytes) -> bytes | None:
        return self._remember(
            ("unwrap_v2", ciphertext, label), lambda: Identity.unwrap_v2(self, ciphertext, label)
        )

    def unwrap_v1(self, ciphertext: bytes) -> bytes | None:
        return self._remember(
            ("unwrap_v1", ciphertext), lambda: Identity.unwrap_v1(self, ciphertext)
        )


class MemoPeerKey(PeerKey):
    """A PeerKey whose OAEP wraps are remembered (OAEP encryption is randomized)."""

    def __init__(self, public_key, memo: dict) -> None:
        super().__init__(public_key)
        self._memo = memo

    def wrap_v2(self, secret: bytes, label: bytes) -> bytes:
        key = (secret, label)
        if key not in self._memo:
            self._memo[key] = PeerKey.wrap_v2(self, secret, label)
        return self._memo[key]


@contextmanager
def replayable_randomness():
    """While open, the connection's modules draw from the armed plan (``planned``)."""
    with pytest.MonkeyPatch.context() as mp:
        for module in (connection_module, handshake_steps_module):
            mp.setattr(module, "random_bytes", _planned_bytes)
            mp.setattr(module, "X25519Keypair", _PlannedEphemeral)
        yield


# --- wire helpers --------------------------------------------------------------------------

HEADER = 4
HS2_WIRE = HEADER + 1160  # HS2 between RSA-4096 keys, framed (test_frame_sizes_match_spec)
LIMITS = Limits(key_update_frames=2)  # key updates inside the short recorded traffic
SOURCE = "192.0.2.7"


def framed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def frames_of(stream: bytes) -> list[bytes]:
    """Payloads of a well-framed stream (our own recordings only)."""
    out, pos = [], 0
    while pos < len(stream):
        size = int.from_bytes(stream[pos : pos + HEADER], "big")
        out.append(stream[pos + HEADER : pos + HEADER + size])
        pos += HEADER + size
    assert pos == len(stream)
    return out


def first_frame(stream: bytes) -> bytes | None:
    if len(stream) < HEADER:
        return None
    size = int.from_bytes(stream[:HEADER], "big")
    return stream[HEADER : HEADER + size] if len(stream) >= HEADER + size else None


def seal_raw(secret: bytes, seq: int, plaintext: bytes) -> bytes:
    """One record sealed by hand (PROTOCOL.md c.1), whatever the plaintext says."""
    prefix = (len(plaintext) + TAG_LEN).to_bytes(4, "big")
    nonce = (int.from_bytes(schedule.traffic_iv(secret), "big") ^ seq).to_bytes(12, "big")
    return prefix + AESGCM(schedule.traffic_key(secret)).encrypt(nonce, plaintext, prefix)


# --- the recorded session and the targets ---------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    make: Callable[[], tuple]  # -> (connection, identity, policy or None)
    frames: tuple[bytes, ...]  # the genuine input from this state, as payloads
    plan: tuple  # randomness the connection draws while handling that input
    sends: tuple  # Chats its owner queues when the session is established
    listening: bool  # a responder that starts in LISTEN (policy checks apply)
    allowed_ops: Callable[[bytes | None], int]  # private ops a given first frame may cost


class Rig:
    """A session recorded once; every connection afterwards replays it exactly.

    The initiator is called alice and the responder bob whichever keys they hold
    (``test_corpus_replays`` also runs on a rig of carol and mallory).
    """

    def __init__(self, rsa_keys, a: str = "alice", b: str = "bob") -> None:
        self.keys = {"alice": rsa_keys[a], "bob": rsa_keys[b]}
        self.memo = {"alice": {}, "bob": {}, "wrap_a": {}, "wrap_b": {}}
        self.fp_a = self.alice().fingerprint
        self.fp_b = self.bob().fingerprint
        self.pk_a = MemoPeerKey(self.keys["alice"].public_key(), self.memo["wrap_a"])  # bob's view
        self.pk_b = MemoPeerKey(self.keys["bob"].public_key(), self.memo["wrap_b"])  # alice's view
        rand = os.urandom
        self.i_plan = (("x25519", rand(32)), ("bytes", rand(32)), ("bytes", rand(16)))
        self.r_plan = (("x25519", rand(32)), ("bytes", rand(32)))
        self.a_chats = tuple(
            Chat(bytes([0xA0 + n]) * 16, self.fp_a, self.fp_b, 1_800_000_000_000 + n, f"a{n} é")
            for n in range(3)
        )
        self.b_chats = tuple(
            Chat(bytes([0xB0 + n]) * 16, self.fp_b, self.fp_a, 1_800_000_000_100 + n, "b" * n)
            for n in range(2)
        )
        self._record()
        self.envelope = legacy.seal(self.alice(), self.pk_b, "legacy hello", T0)

    # identities: fresh objects (their own private_ops counters) over shared memos
    def alice(self) -> MemoIdentity:
        return MemoIdentity(self.keys["alice"], self.memo["alice"])

    def bob(self) -> MemoIdentity:
        return MemoIdentity(self.keys["bob"], self.memo["bob"])

    def bob_policy(self) -> MemoryPolicy:
        return MemoryPolicy([self.pk_a], v1_peers=[self.pk_a])

    def _record(self) -> None:
        i = Connection(self.alice(), MemoryPolicy([self.pk_b]), T0, peer=self.pk_b, limits=LIMITS)
        r = Connection(self.bob(), self.bob_policy(), T0, source=SOURCE, limits=LIMITS)
        with planned(self.i_plan):
            run(i, i.initiate(T0), T0)
        hs1 = i.data_to_send(T0)
        with planned(self.r_plan):
            run(r, r.receive_data(hs1, T0), T0)
        hs2 = r.data_to_send(T0)
        run(i, i.receive_data(hs2, T0), T0)
        assert i.established
        self.i2r_secret, self.r2i_secret = i._tx._secret, i._rx._secret
        i.send_chats(self.a_chats)
        i2r = [i.data_to_send(T0)]  # HS3 and alice's chats in one write
        run(r, r.receive_data(i2r[0], T0), T0)
        assert r.established
        r.send_chats(self.b_chats)
        r.ack(len(self.a_chats) - 1)
        r.send_typing(True)
        r2i = [r.data_to_send(T0)]
        run(i, i.receive_data(r2i[0], T0), T0)
        i.ack(len(self.b_chats) - 1)
        i.handle_timer(T0 + LIMITS.keepalive_interval)  # queues a PING
        i.send_typing(False)
        i2r.append(i.data_to_send(T0))
        run(r, r.receive_data(i2r[1], T0), T0)
        r2i.append(r.data_to_send(T0))  # the PONG
        r.send_typing(False)
        r2i.append(r.data_to_send(T0))  # KEY_UPDATE, then the typing frame
        run(i, i.receive_data(r2i[1] + r2i[2], T0), T0)
        i.send_typing(True)
        i2r.append(i.data_to_send(T0))  # KEY_UPDATE, then the typing frame
        i.close(T0)
        i2r.append(i.data_to_send(T0))  # CLOSE
        run(r, r.receive_data(i2r[2] + i2r[3], T0), T0)
        assert r.close_reason == "peer_closed", r.close_reason
        self.hs1, self.hs2 = frames_of(hs1)[0], frames_of(hs2)[0]
        i2r_frames, r2i_frames = frames_of(b"".join(i2r)), frames_of(b"".join(r2i))
        self.hs3, self.i2r = i2r_frames[0], tuple(i2r_frames[1:])
        self.r2i = tuple(r2i_frames)

    # --- connections in each state ---

    def listen(self, v1: bool):
        ident, policy = self.bob(), self.bob_policy()
        conn = Connection(ident, policy, T0, source=SOURCE, v1_enabled=v1, limits=LIMITS)
        return conn, ident, policy

    def await_hs2(self):
        ident = self.alice()
        conn = Connection(ident, MemoryPolicy([self.pk_b]), T0, peer=self.pk_b, limits=LIMITS)
        with planned(self.i_plan):
            run(conn, conn.initiate(T0), T0)
        assert conn.data_to_send(T0) == framed(self.hs1)
        return conn, ident, None

    def await_hs3(self):
        conn, ident, policy = self.listen(False)
        with planned(self.r_plan):
            run(conn, conn.receive_data(framed(self.hs1), T0), T0)
        assert conn.data_to_send(T0) == framed(self.hs2)
        return conn, ident, policy

    def established_r(self):
        conn, ident, policy = self.await_hs3()
        run(conn, conn.receive_data(framed(self.hs3), T0), T0)
        assert conn.established
        conn.send_chats(self.b_chats)
        conn.data_to_send(T0)
        return conn, ident, policy

    def established_i(self):
        conn, ident, _ = self.await_hs2()
        run(conn, conn.receive_data(framed(self.hs2), T0), T0)
        assert conn.established
        conn.send_chats(self.a_chats)
        conn.data_to_send(T0)
        return conn, ident, None

    # --- what each first frame may cost ---

    def _responder_ops(self, first: bytes | None) -> int:
        if first == self.hs1:
            return 2
        return 1 if first == self.envelope else 0

    def _initiator_ops(self, first: bytes | None) -> int:
        genuine = first is not None and len(first) == len(self.hs2)
        return 1 if genuine and first[:-32] == self.hs2[:-32] else 0

    @functools.cached_property
    def _targets(self) -> dict[str, Target]:
        i2r_all = (self.hs1, self.hs3, *self.i2r)
        r2i_all = (self.hs2, *self.r2i)
        responder, initiator, free = self._responder_ops, self._initiator_ops, lambda first: 0
        table = [
            # name, make, genuine input, plan, owner's sends, listening, allowed ops
            ("listen", lambda: self.listen(False), i2r_all, self.r_plan, self.b_chats, True,
             responder),
            ("listen_v1", lambda: self.listen(True), i2r_all, self.r_plan, self.b_chats, True,
             responder),
            ("listen_v1_envelope", lambda: self.listen(True), (self.envelope,), (), (), True,
             responder),
            ("await_hs2", self.await_hs2, r2i_all, (), self.a_chats, False, initiator),
            ("await_hs3", self.await_hs3, (self.hs3, *self.i2r), (), self.b_chats, False, free),
            ("established_r", self.established_r, self.i2r, (), (), False, free),
            ("established_i", self.established_i, self.r2i, (), (), False, free),
        ]  # fmt: skip
        return {row[0]: Target(*row) for row in table}

    def targets(self) -> dict[str, Target]:
        return self._targets
