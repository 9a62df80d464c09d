"""Hostile bytes, in any chunking, against every state of a Connection (F5, receive boundary).

Acceptance: random and mutated bytes fed in any chunking never raise anything but the
peer-misbehaviour error, and never grow memory past the frame limit. A Connection turns
every ``PeerError`` into a ``ConnectionClosed`` event, so at this level nothing may raise
at all. After every ``receive_data`` call (CryptoNeeded jobs run inline, as
``protocol_pair.run`` does) ``check_call`` and ``Outcome.check`` assert:

1. Nothing is raised, of any type.
2. The connection is open in a state that waits for bytes (LISTEN, AWAIT_HS2, AWAIT_HS3,
   ESTABLISHED, LEGACY_READY) with no job outstanding and no ConnectionClosed event, or
   it is CLOSED with a non-empty ``close_reason`` equal to the reason of the one
   ConnectionClosed event it emitted.
3. Buffering, with L = ``_splitter.max_frame`` after the call (4,096 or 49,152 before
   authentication, 1 MiB after):
   - open: ``_splitter.buffered <= L + 3``: at most one incomplete frame, whose header
     was checked against the limit now in force (a frame of L bytes is L + 4 on the wire);
   - closed by this call: ``buffered <= max(L + 3, len(chunk))``. Handshake frames are
     taken from the splitter one at a time, and a refusal does not clear the splitter, so
     the unparsed rest of the chunk that carried the refused frame stays buffered until
     the Connection is dropped. It is never more than that one chunk;
   - a length prefix above the limit closes with ``frame_too_large`` and leaves nothing
     buffered (``test_oversized_prefix_closes_before_buffering``);
   - the splitter's allocation (``sys.getsizeof`` minus an empty splitter's) stays
     within ``2 * bound + 64``.
4. Private-key operations (``Identity.private_ops``): none, unless the first frame is
   the genuine, validly signed HS1 (2: the unwrap of wrap_I and the HS2 signature), the
   genuine v1 envelope (1: the unwrap), or, for an initiator, an HS2 whose signed part
   and sig_R are genuine (1: the unwrap of wrap_R; fin_R is not covered by sig_R). A
   responder's policy (seen-set, high-water marks, v1 tables) is untouched otherwise.
5. Authenticity: the events other than CryptoNeeded and ConnectionClosed are a prefix of
   those the unmutated input produces, so nothing is delivered that was not sent, twice,
   or out of order.
6. F13: a connection refused before any session began wrote nothing but one ALERT
   (responder; code 2 for clock skew, 3 for busy, else 1, after HS2 if HS2 went out) or
   nothing at all (initiator): an unknown fingerprint and a bad signature look the same.

Targets (``Rig.targets``): a responder in LISTEN with legacy v1 off (``listen``) and on
(``listen_v1``, and ``listen_v1_envelope`` whose genuine input is a v1 envelope), an
initiator in AWAIT_HS2 after ``initiate`` (``await_hs2``), a responder in AWAIT_HS3
(``await_hs3``), and both sides ESTABLISHED (``established_r``, ``established_i``).

Affordable fresh connections. One real handshake is recorded per module (alice to bob,
then traffic both ways: chats, acks, typing, a ping and its pong, key updates in both
directions, CLOSE). Every later connection replays it exactly: the connection module's
``random_bytes`` and ``X25519Keypair`` are patched to hand out the recorded values while
a plan is armed (real randomness otherwise), and the identities and peer keys remember
the results of their RSA operations (``MemoIdentity`` still counts every private
operation, so check 4 means the same thing). A connection in any target state costs at
most ~0.3 ms instead of the ~7 ms of a real handshake, so every example gets fresh
connections in the exact recorded state, and recorded traffic frames open under the
replayed keys (``test_recording_replays_exactly``).

Strategies: (1) random bytes: raw, uniformly sized up to 4 KiB, well-framed, and framed
behind plausible headers (ENC2 types, ALERT, v1 fixmaps); (2) mutations of the recorded
transcripts: bit flips, byte writes, truncations, extensions, length-prefix edits,
dropped, duplicated, swapped and inserted frames, raw splices, deletions and cuts;
(3) length prefixes from ``PREFIXES`` (0, 16, 4095-4097, 49151-49153, 1 MiB + 1,
0xFFFFFFFF, ...) with random payloads; (4) for established sessions, the mutations of
(2) and records correctly sealed under the session keys that carry hostile plaintexts
(an authenticated peer that misbehaves), checked against ``Model``, which knows which
frames the receiver must accept and what it must deliver. Chunking: whole, one byte at
a time (the first ``BYTEWISE`` bytes), random cuts (empty chunks included), and cuts at
frame boundaries plus random ones; chunks arrive as bytes, bytearray or memoryview. The
random-bytes and prefix properties also run over the pure-Python frame splitter.

``ENCLAVE_FUZZ_EXAMPLES=N`` raises every example count to at least N for a long run.
``tests/corpus/connection/<target>.json`` keeps inputs worth replaying: the shortest input
the strategies found for each (target, outcome), plus hand-written edge cases. An input
is raw bytes (``hex``), a mutation of the genuine input (``mutate``, the ops of
``mutate``) or plaintexts to seal under the session keys (``sealed``, fingerprints as
the ``SENDER``/``RECEIVER`` placeholders). ``test_corpus_replays`` feeds each to a rig
of alice and bob and to one of carol and mallory with other random values, and checks
every property and the recorded end state. ``ENCLAVE_FUZZ_CORPUS=update`` makes a run
add an entry for every (target, outcome) it reaches that the corpus lacks, if the other
rig ends the same way.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from support.fast_twins import load_twin
from support.fuzzing import fuzz
from support.protocol_pair import T0, run

import enclave.protocol.connection as connection_module
from enclave.protocol import handshake as hs
from enclave.protocol import legacy, schedule
from enclave.protocol.connection import Connection, Limits, State
from enclave.protocol.crypto import AESGCM, Identity, PeerKey, X25519Keypair
from enclave.protocol.events import (
    Acked,
    ConnectionClosed,
    CryptoNeeded,
    Established,
    LegacyReceived,
    MessagesReceived,
    Throttled,
    TypingChanged,
)
from enclave.protocol.messages import MAX_RETRY_AFTER_MS, Chat
from enclave.protocol.policy import MemoryPolicy
from enclave.protocol.records import MAX_RECORD, TAG_LEN

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


@pytest.fixture(scope="module")
def replayable_randomness():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(connection_module, "random_bytes", _planned_bytes)
        mp.setattr(connection_module, "X25519Keypair", _PlannedEphemeral)
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


@pytest.fixture(scope="module")
def rig(rsa_keys, replayable_randomness) -> Rig:
    return Rig(rsa_keys)


@pytest.fixture(scope="module")
def other_rig(rsa_keys, replayable_randomness) -> Rig:
    """Other keys and other random values: what a corpus entry must not depend on."""
    return Rig(rsa_keys, "carol", "mallory")


def baselines_of(rig: Rig) -> dict[str, tuple]:
    """Per target: the events and end state of its genuine input, one frame per chunk."""
    out = {}
    for name, target in rig.targets().items():
        stream = b"".join(framed(f) for f in target.frames)
        bounds = frame_bounds(target.frames)
        outcome = feed(target, stream, ("frames", []), bounds)
        out[name] = (tuple(outcome.semantic), outcome.conn.state, outcome.conn.close_reason)
    return out


@pytest.fixture(scope="module")
def baselines(rig) -> dict[str, tuple]:
    return baselines_of(rig)


# --- chunking -------------------------------------------------------------------------------

WRAPS = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}
BYTEWISE = 2048  # covers the longest genuine input (1,639 bytes) one byte at a time

_frame_cuts = st.tuples(st.just("frames"), st.lists(st.integers(0, 1 << 13), max_size=4))
chunkings = st.one_of(
    st.just(("whole", [])),
    st.just(("bytes", [])),
    st.tuples(st.just("cuts"), st.lists(st.integers(0, 1 << 13), max_size=12)),
    _frame_cuts,
    _frame_cuts,  # twice as likely: frames must come alone before the session is up
)
wraps = st.sampled_from(sorted(WRAPS))


def frame_bounds(payloads) -> list[int]:
    bounds, pos = [], 0
    for payload in payloads:
        pos += HEADER + len(payload)
        bounds.append(pos)
    return bounds


def chunks_of(stream: bytes, chunking, bounds: list[int]) -> list[bytes]:
    kind, cuts = chunking[0], list(chunking[1])
    if kind == "bytes":  # one byte at a time (past BYTEWISE bytes, the rest at once)
        head = [stream[n : n + 1] for n in range(min(len(stream), BYTEWISE))]
        return head + [stream[BYTEWISE:]] if len(stream) > BYTEWISE else head or [b""]
    if kind == "frames":
        cuts += [b for b in bounds if b < len(stream)]
    elif kind == "whole":
        cuts = []
    points = sorted(c % (len(stream) + 1) for c in cuts)  # repeats give empty chunks
    edges = [0, *points, len(stream)]
    return [stream[a:b] for a, b in zip(edges, edges[1:], strict=False)]


# --- driving a connection and checking it ------------------------------------------------------

_OPEN_STATES = {
    State.LISTEN,
    State.AWAIT_HS2,
    State.AWAIT_HS3,
    State.ESTABLISHED,
    State.LEGACY_READY,
}
_SPLITTER_EMPTY = {}


def splitter_overhead(splitter) -> int:
    kind = type(splitter)
    if kind not in _SPLITTER_EMPTY:
        _SPLITTER_EMPTY[kind] = sys.getsizeof(kind(0))
    return sys.getsizeof(splitter) - _SPLITTER_EMPTY[kind]


def check_call(conn: Connection, closing_chunk: int | None) -> None:
    """The buffering bound after one receive_data call (see the module docstring)."""
    splitter = conn._splitter
    bound = splitter.max_frame + HEADER - 1
    if conn.closed:
        assert closing_chunk is not None
        bound = max(bound, closing_chunk)
    else:
        assert conn.state in _OPEN_STATES and conn._job is None, conn.state
    assert splitter.buffered <= bound, (splitter.buffered, bound, conn.state)
    assert splitter_overhead(splitter) <= 2 * bound + 64, (splitter_overhead(splitter), bound)


@dataclass
class Outcome:
    conn: Connection
    identity: Identity
    policy: MemoryPolicy | None
    ops: int  # private operations spent while fed
    events: list
    first: bytes | None
    wire: bytes  # everything the connection wrote while fed
    began: bool  # the connection was established before it was fed

    @property
    def semantic(self) -> list:
        return [e for e in self.events if not isinstance(e, (CryptoNeeded, ConnectionClosed))]

    @property
    def label(self) -> str:
        return self.conn.close_reason or self.conn.state.value

    def check(self, target: Target, baseline: tuple | None) -> None:
        conn = self.conn
        closes = [e for e in self.events if isinstance(e, ConnectionClosed)]
        if conn.closed:
            assert isinstance(conn.close_reason, str) and conn.close_reason
            assert [e.reason for e in closes] == [conn.close_reason]
            assert self.events[-1] is closes[0]  # nothing after the close
            held = conn._splitter.buffered
            assert conn.receive_data(b"\0" * 8, T0) == [] and conn.next_deadline() is None
            assert conn._splitter.buffered == held and conn.data_to_send(T0) == b""
        else:
            assert not closes and conn.state in _OPEN_STATES
            assert conn.next_deadline() is not None  # every open state has a timer
        allowed = target.allowed_ops(self.first)
        assert self.ops in (0, allowed), (self.ops, allowed)
        if target.listening and allowed == 0:
            pol = self.policy
            assert not pol.seen and not pol.hwm and not pol.v1_seen_ids and not pol.v1_keys
        if (
            conn.closed
            and not self.began
            and not any(isinstance(e, (Established, LegacyReceived)) for e in self.events)
        ):  # F13: every refusal before authentication looks the same on the wire
            if conn.initiator:
                assert self.wire == b""
            else:
                code = {"clock_skew": hs.ALERT_SKEW, "busy": hs.ALERT_BUSY}.get(
                    conn.close_reason, hs.ALERT_GENERIC
                )
                alert = framed(hs.alert(code))
                assert self.wire[-len(alert) :] == alert, (self.wire[-16:], conn.close_reason)
                assert len(self.wire) - len(alert) in (0, HS2_WIRE)  # HS2 may have gone out
        if baseline is not None:
            semantic = self.semantic
            assert semantic == list(baseline[0][: len(semantic)]), (semantic, baseline[0])
        if currently_in_test_context():  # outcome statistics: --hypothesis-show-statistics
            event(f"{target.name}: {self.label}")


def feed(target: Target, stream: bytes, chunking, bounds, wrap: str = "bytes") -> Outcome:
    conn, identity, policy = target.make()
    began = conn.established
    ops_before = identity.private_ops
    events: list = []
    wire = b""
    closing_chunk = None
    with planned(target.plan):
        for chunk in chunks_of(stream, chunking, bounds):
            was_open = not conn.closed
            got = run(conn, conn.receive_data(WRAPS[wrap](chunk), T0), T0)
            wire += conn.data_to_send(T0)
            if was_open and conn.closed:
                closing_chunk = len(chunk)
            check_call(conn, closing_chunk)
            if conn.established and any(isinstance(e, Established) for e in got):
                conn.send_chats(target.sends)  # the owner starts its outbox
                conn.data_to_send(T0)
            events += got
    ops = identity.private_ops - ops_before
    return Outcome(conn, identity, policy, ops, events, first_frame(stream), wire, began)


# --- corpus ------------------------------------------------------------------------------------

CORPUS = Path(__file__).parent / "corpus" / "connection"
_UPDATE_CORPUS = os.environ.get("ENCLAVE_FUZZ_CORPUS", "") == "update"
_FOUND: dict[tuple[str, str], tuple[int, dict]] = {}
_OTHER_RIG: list[Rig] = []  # in corpus-update runs: a rig of other keys


def replay(rig: Rig, name: str, source: dict, chunking) -> Outcome:
    """Feed a corpus input (raw bytes, a mutation of the genuine input, or plaintexts
    to seal under the session keys) to a fresh connection of ``rig`` in state ``name``."""
    target = rig.targets()[name]
    bounds: list[int] = []
    if "mutate" in source:
        stream, bounds = mutate(target.frames, source["mutate"])
    elif "sealed" in source:
        stream = sealed_stream(rig, name, [bytes.fromhex(p) for p in source["sealed"]])
    else:
        stream = bytes.fromhex(source["hex"])
    return feed(target, stream, tuple(chunking), bounds)


def note(target: Target, source: dict, chunking, outcome: Outcome) -> None:
    """In corpus-update runs, keep the shortest input per (target, outcome) whose
    outcome does not depend on the keys or the recorded random values."""
    if not _UPDATE_CORPUS:
        return
    entry = {
        "input": source,
        "chunking": [chunking[0], list(chunking[1])],
        "expect": {"state": outcome.conn.state.value, "reason": outcome.conn.close_reason},
    }
    key = (target.name, outcome.label)
    size = len(json.dumps(entry))
    if key in _FOUND and size >= _FOUND[key][0]:
        return
    if replay(_OTHER_RIG[0], target.name, source, chunking).label == outcome.label:
        _FOUND[key] = (size, entry)


@pytest.fixture(scope="module", autouse=True)
def _write_corpus(rsa_keys, replayable_randomness):
    if _UPDATE_CORPUS:
        _OTHER_RIG[:] = [Rig(rsa_keys, "carol", "mallory")]
    yield
    if not _UPDATE_CORPUS:
        return
    CORPUS.mkdir(parents=True, exist_ok=True)
    for name in sorted({name for name, _ in _FOUND}):
        path = CORPUS / f"{name}.json"
        entries = json.loads(path.read_text()) if path.exists() else []
        have = {label_of(e) for e in entries}
        for (target, label), (_, entry) in sorted(_FOUND.items()):
            if target == name and label not in have:
                entries.append({"why": f"shortest input seen that ends in {label}", **entry})
        entries.sort(key=label_of)
        lines = ",\n".join(" " + json.dumps(entry) for entry in entries)
        path.write_text(f"[\n{lines}\n]\n")


def label_of(entry: dict) -> str:
    return entry["expect"]["reason"] or entry["expect"]["state"]


def corpus() -> list:
    """(target, entry) for every kept input, with readable test ids."""
    cases = []
    for path in sorted(CORPUS.glob("*.json")):
        for n, entry in enumerate(json.loads(path.read_text())):
            cases.append(pytest.param(path.stem, entry, id=f"{path.stem}-{n}-{label_of(entry)}"))
    return cases


# --- strategy 1: random bytes -------------------------------------------------------------------

HEADS = (
    b"ENC2",
    b"ENC2\x01\x00\x02\x02",  # an HS1 header
    b"ENC2\x02\x00\x02\x00",  # an HS2 header
    b"ENC2\x03\x00\x00\x00",  # an HS3 header
    b"ENC2\x7f",  # an ALERT, code and padding random
    b"ENC2\x7f\x02\x00\x00",
    b"\x88",
    b"\x89",  # a v1 envelope's fixmap
    b"\x89\xa7version\x01\xaamessage_id\xd9\x24",
)

random_streams = st.one_of(
    st.binary(max_size=4096),
    st.integers(0, 4096).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    st.lists(st.binary(max_size=1500), max_size=6).map(lambda ps: b"".join(map(framed, ps))),
    st.lists(
        st.tuples(st.sampled_from(HEADS), st.binary(max_size=1500)), min_size=1, max_size=4
    ).map(lambda ps: b"".join(framed(h + p) for h, p in ps)),
)

RANDOM_TARGETS = ("listen", "listen_v1", "await_hs2", "await_hs3", "established_r", "established_i")
FIRST_LIMIT = {  # the frame limit each starts with
    "listen": 4096,
    "listen_v1": 48 * 1024,
    "await_hs2": 4096,
    "await_hs3": 4096,
    "established_r": MAX_RECORD,
    "established_i": MAX_RECORD,
}


@pytest.fixture(params=["native", "pure"])
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


@pytest.mark.parametrize("name", RANDOM_TARGETS)
@fuzz(1000)
@given(stream=random_streams, chunking=chunkings, wrap=wraps)
def test_random_bytes_never_escape(rig, baselines, name, stream, chunking, wrap):
    random_case(rig, baselines, name, stream, chunking, wrap)


@pytest.mark.parametrize("name", RANDOM_TARGETS)
@fuzz(250)
@given(stream=random_streams, chunking=chunkings, wrap=wraps)
def test_random_bytes_never_escape_pure_splitter(
    rig, baselines, pure_splitter, name, stream, chunking, wrap
):
    """The same over the pure twin (which test_fast_twins holds to the compiled one)."""
    random_case(rig, baselines, name, stream, chunking, wrap)


# --- strategy 3: length prefixes -----------------------------------------------------------------

PREFIXES = (0, 1, 16, 17, 18, 40, 4095, 4096, 4097, 49151, 49152, 49153, MAX_RECORD,
            MAX_RECORD + 1, 0x7FFFFFFF, 0xFFFFFFFF)  # fmt: skip
prefixed_streams = st.lists(
    st.tuples(st.sampled_from(PREFIXES) | st.integers(0, 0xFFFFFFFF), st.binary(max_size=2048)),
    min_size=1,
    max_size=3,
).map(lambda parts: b"".join(n.to_bytes(4, "big") + p for n, p in parts))


@fuzz(1000)
@given(
    name=st.sampled_from(RANDOM_TARGETS),
    stream=prefixed_streams,
    chunking=chunkings,
    wrap=wraps,
)
def test_length_prefixes(rig, baselines, twin, name, stream, chunking, wrap):
    target = rig.targets()[name]
    outcome = feed(target, stream, chunking, [], wrap)
    outcome.check(target, baselines[name])
    assert outcome.ops == 0
    if int.from_bytes(stream[:4], "big") > FIRST_LIMIT[name]:
        assert outcome.conn.close_reason == "frame_too_large"
        assert outcome.conn._splitter.buffered == 0
    note(target, {"hex": stream.hex()}, chunking, outcome)


@pytest.mark.parametrize(
    ("name", "declared"),
    [
        (name, declared)
        for name in RANDOM_TARGETS
        for declared in (4097, 49153, MAX_RECORD + 1, 0xFFFFFFFF)
        if declared > FIRST_LIMIT[name]
    ],
)
def test_oversized_prefix_closes_before_buffering(rig, twin, name, declared):
    """Above the limit in force: closed on the 4th byte, nothing buffered (F5)."""
    target = rig.targets()[name]
    conn = target.make()[0]
    assert conn._splitter.max_frame == FIRST_LIMIT[name]
    events = []
    for n, byte in enumerate(declared.to_bytes(4, "big") + b"x" * 64):
        events += run(conn, conn.receive_data(bytes([byte]), T0), T0)
        assert conn._splitter.buffered == (n + 1 if n < 3 else 0)
        if n == 3:
            assert conn.close_reason == "frame_too_large"
    assert [e.reason for e in events if isinstance(e, ConnectionClosed)] == ["frame_too_large"]


# --- strategy 2 and 4: mutations of the recorded transcripts ---------------------------------------

_STREAM_OPS = {"splice", "cut", "delete"}
_index = st.integers(0, 15)
_position = st.integers(0, 160) | st.integers(0, 1 << 12)
_hex = st.binary(max_size=64).map(bytes.hex)

mutation = st.one_of(
    st.tuples(st.just("flip"), _index, _position, st.integers(0, 7)),
    st.tuples(st.just("set"), _index, _position, st.integers(0, 255)),
    st.tuples(st.just("truncate"), _index, _position, st.booleans()),
    st.tuples(st.just("extend"), _index, _hex, st.booleans()),
    st.tuples(st.just("prefix"), _index, st.sampled_from(PREFIXES) | st.integers(0, 0xFFFFFFFF)),
    st.tuples(st.just("nudge"), _index, st.integers(-4, 4)),
    st.tuples(st.just("drop"), _index),
    st.tuples(st.just("dup"), _index, _index),
    st.tuples(st.just("swap"), _index, _index),
    st.tuples(st.just("insert"), _index, _hex),
    st.tuples(st.just("splice"), st.integers(0, 1 << 13), _hex),
    st.tuples(st.just("cut"), st.integers(0, 1 << 13)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 13), st.integers(1, 64)),
).map(list)
mutations = st.lists(mutation, min_size=1, max_size=4)


def mutate(frames, ops, trace: list | None = None) -> tuple[bytes, list[int]]:
    """Apply ``ops`` (JSON-friendly lists) to a transcript; returns the stream and the
    frame boundaries before any stream-level op. Indices and positions wrap around.
    A "set" that leaves its byte unchanged is appended to ``trace``."""
    items = [[len(f), bytearray(f)] for f in frames]
    late = []
    for op in ops:
        kind, args = op[0], op[1:]
        if kind in _STREAM_OPS:
            late.append(op)
            continue
        if kind == "insert":
            data = bytes.fromhex(args[1])
            items.insert(args[0] % (len(items) + 1), [len(data), bytearray(data)])
            continue
        if not items:
            continue
        i = args[0] % len(items)
        prefix, payload = items[i]
        if kind in ("flip", "set") and payload:
            pos = args[1] % len(payload)
            if kind == "set" and payload[pos] == args[2] and trace is not None:
                trace.append(op)
            payload[pos] = payload[pos] ^ (1 << args[2]) if kind == "flip" else args[2]
        elif kind == "truncate":
            del payload[args[1] % (len(payload) + 1) :]
            if args[2]:
                items[i][0] = len(payload)
        elif kind == "extend":
            payload += bytes.fromhex(args[1])
            if args[2]:
                items[i][0] = len(payload)
        elif kind == "prefix":
            items[i][0] = args[1] & 0xFFFFFFFF
        elif kind == "nudge":
            items[i][0] = (prefix + args[1]) & 0xFFFFFFFF
        elif kind == "drop":
            del items[i]
        elif kind == "dup":
            items.insert(args[1] % (len(items) + 1), [prefix, bytearray(payload)])
        elif kind == "swap":
            j = args[1] % len(items)
            items[i], items[j] = items[j], items[i]
    stream = bytearray()
    bounds = []
    for prefix, payload in items:
        stream += prefix.to_bytes(4, "big") + payload
        bounds.append(len(stream))
    for kind, *args in late:
        pos = args[0] % (len(stream) + 1)
        if kind == "splice":
            stream[pos:pos] = bytes.fromhex(args[1])
        elif kind == "cut":
            del stream[pos:]
        else:
            del stream[pos : pos + args[1]]
    return bytes(stream), bounds


MUTATION_TARGETS = (
    "listen",
    "listen_v1",
    "listen_v1_envelope",
    "await_hs2",
    "await_hs3",
    "established_r",
    "established_i",
)


@pytest.mark.parametrize("name", MUTATION_TARGETS)
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


# --- strategy 4b: authenticated peers sending hostile plaintexts -------------------------------------


@dataclass
class Model:
    """What the receiver of an established session must do with each sealed plaintext."""

    sent: int  # Chats the receiver sent (an ACK must stay below this)
    acked: int = -1
    chats: int = 0
    open: bool = True
    known: bool = True  # False once a plaintext of unknown verdict was fed
    after_update: bool = False  # the previous frame was a KEY_UPDATE
    expected: list | None = None

    def __post_init__(self) -> None:
        self.expected = []


# Placeholders for the session's fingerprints, replaced when a plaintext is sealed, so
# that strategies are built once and corpus entries hold for any pair of keys.
SENDER, RECEIVER = b"\xa5" * 32, b"\x5a" * 32


def _message_values():
    """Strategies of (value, verdict) pairs, valid and invalid: the msgpack value of one
    message and whether the receiver must accept it. An ACK's validity depends on the
    session, so ACKs carry ("ack", upto) and the model decides."""
    fp = st.sampled_from([SENDER, RECEIVER, bytes(32), b"\x01" * 31])
    chat = [1, b"i" * 16, SENDER, RECEIVER, 5]
    valid = st.one_of(
        st.builds(
            lambda i, ts, body: ([1, i, SENDER, RECEIVER, ts, body], True),
            st.binary(min_size=16, max_size=16),
            st.integers(0, (1 << 64) - 1),
            st.text(max_size=30),
        ),
        st.just(([*chat, "x" * 10_000], True)),
        st.builds(lambda n: ([2, n], ("ack", n)), st.integers(0, 3) | st.just((1 << 64) - 1)),
        st.builds(lambda d: ([3, d], True), st.binary(min_size=8, max_size=8)),
        st.builds(lambda d: ([4, d], True), st.binary(min_size=8, max_size=8)),
        st.builds(lambda a: ([5, a], True), st.booleans()),
        st.builds(
            lambda r, ms: ([6, r, ms], True),
            st.sampled_from([1, 2, 3]),
            st.integers(0, MAX_RETRY_AFTER_MS),
        ),
    )
    invalid = st.one_of(
        st.builds(lambda f, t: ([1, b"i" * 16, f, t, 5, "x"], f == SENDER and t == RECEIVER), fp, fp),
        st.builds(lambda i: ([1, i, SENDER, RECEIVER, 5, "x"], len(i) == 16), st.binary(max_size=20)),
        st.just(([1, b"i" * 16, SENDER, RECEIVER, -1, "x"], False)),
        st.just(([1, b"i" * 16, SENDER, RECEIVER, True, "x"], False)),
        st.just(([*chat, "x" * 10_001], False)),
        st.just((chat, False)),
        st.just(([*chat, b"x"], False)),
        st.just(([2, -1], False)),
        st.just(([2, True], False)),
        st.builds(lambda d: ([3, d], len(d) == 8), st.binary(max_size=9)),
        st.builds(lambda d: ([4, d], len(d) == 8), st.binary(max_size=9)),
        st.just(([5, 1], False)),
        st.builds(
            lambda r, ms: ([6, r, ms], r in (1, 2, 3) and 0 <= ms <= MAX_RETRY_AFTER_MS),
            st.integers(-1, 5),
            st.sampled_from([-1, 0, MAX_RETRY_AFTER_MS, MAX_RETRY_AFTER_MS + 1]),
        ),
        st.just(([6, True, 0], False)),
        st.just(([6, 1], False)),
        st.builds(lambda c: ([c, True], False), st.integers(6, 255) | st.just(0)),
        st.just(([], False)),
        st.just(({}, False)),
        st.just(([[5, True]], False)),
    )  # fmt: skip
    return valid, invalid


def _app(ms, tail=b"") -> bytes:
    return b"\x01" + msgpack.packb([m for m, _ in ms], use_bin_type=True) + tail


def _plaintexts():
    """(plaintext, kind, messages): kind "app" (judged by the model from its messages),
    "ku" (a genuine KEY_UPDATE), "bad" (must close), "raw" (not judged)."""
    valid, invalid = _message_values()
    clean = st.lists(valid, min_size=1, max_size=6)
    mixed = st.builds(
        lambda ms, bad, at: [*ms[:at], bad, *ms[at:]],
        st.lists(valid, max_size=5),
        invalid,
        st.integers(0, 5),
    )
    batch = clean | mixed
    values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(1 << 63), (1 << 64) - 1)
        | st.floats()
        | st.binary(max_size=40)
        | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=12,
    )
    refused = st.one_of(
        st.just((b"\x01" + b"\x91" * 1100 + b"\xc0", "bad", None)),  # past the stack (1024)
        st.just((b"\x01" + b"\xdc\x04\x01" + b"\x92\x05\xc3" * 1025, "bad", None)),  # 1025
        st.builds(lambda ms: (_app(ms, b"\xc0"), "bad", None), batch),  # a trailing byte
    )
    unjudged = st.one_of(
        st.builds(lambda v: (b"\x01" + msgpack.packb(v, use_bin_type=True), "raw", None), values),
        st.builds(
            lambda t, b: (bytes([t]) + b, "raw", None),
            st.sampled_from([1, 2, 3, 0, 4, 255]),
            st.binary(max_size=64),
        ),
    )
    return st.one_of(
        st.builds(lambda ms: (_app(ms), "app", ms), clean),
        st.builds(lambda ms: (_app(ms), "app", ms), batch),
        st.just((b"\x02", "ku", None)),
        refused,
        unjudged,
    )


hostile_records = st.lists(_plaintexts(), min_size=1, max_size=4)


def expect(model: Model, kind: str, ms) -> None:
    """Advance the model by one frame (PROTOCOL.md c.1, c.3; connection._on_batch)."""
    if not model.open or not model.known:
        return
    if kind == "raw":
        model.known = False
        return
    if kind == "bad":
        model.open = False
        return
    if kind == "ku":
        # An update is followed by a frame under the new key: two in a row are refused.
        model.open = not model.after_update
        model.after_update = True
        return
    model.after_update = False
    acked, chats, effects = model.acked, [], []
    for value, verdict in ms:
        if isinstance(verdict, tuple):  # an ACK
            if not acked < verdict[1] < model.sent:
                model.open = False
                return
            acked = verdict[1]
        elif not verdict:
            model.open = False
            return
        elif value[0] == 1:
            chats.append(value)
        elif value[0] == 5:
            effects.append(("typing", value[1]))
        elif value[0] == 6:
            effects.append(("throttle", value[1], value[2]))
    if acked != model.acked:
        effects.append(("acked", acked))
        model.acked = acked
    if chats:
        effects.append(("chats", model.chats, tuple(tuple(c[1:]) for c in chats)))
        model.chats += len(chats)
    model.expected += effects


def observed(events, sender: bytes, receiver: bytes) -> list:
    """The receiver's effects, in the model's terms (fingerprints as placeholders)."""
    names = {sender: SENDER, receiver: RECEIVER}
    out = []
    for e in events:
        if isinstance(e, TypingChanged):
            out.append(("typing", e.active))
        elif isinstance(e, Throttled):
            out.append(("throttle", e.reason, e.retry_after_ms))
        elif isinstance(e, Acked):
            out.append(("acked", e.upto))
        elif isinstance(e, MessagesReceived):
            chats = tuple(
                (c.id, names.get(c.sender), names.get(c.recipient), c.created_ms, c.body)
                for c in e.messages
            )
            out.append(("chats", e.first_index, chats))
    return out


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


def session_of(rig: Rig, name: str) -> tuple[bytes, bytes, int]:
    """(sender fp, receiver fp, Chats the receiver sent) for an established target."""
    if name == "established_r":  # alice's records to bob
        return rig.fp_a, rig.fp_b, len(rig.b_chats)
    return rig.fp_b, rig.fp_a, len(rig.a_chats)


def sealed_stream(rig: Rig, name: str, plaintexts: list[bytes]) -> bytes:
    """The plaintexts, placeholders replaced, sealed in order under the target's keys."""
    sender, receiver, _ = session_of(rig, name)
    secret = rig.i2r_secret if name == "established_r" else rig.r2i_secret
    stream, seq = b"", 0
    for plaintext in plaintexts:
        stream += seal_raw(
            secret, seq, plaintext.replace(SENDER, sender).replace(RECEIVER, receiver)
        )
        seq += 1
        if plaintext == b"\x02":  # a genuine KEY_UPDATE: the sender moves on too
            secret, seq = schedule.next_secret(secret), 0
    return stream


# --- the recorded session itself, and the corpus ----------------------------------------------------


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


def test_bytes_after_a_v1_envelope_wait_for_their_turn(rig):
    """A pooling original client writes the next envelope right after the last one, so
    bytes after an envelope are not refused: the envelope is handed over and the rest
    waits, as the start of the next frame, under the v1 frame limit."""
    conn, identity, policy = rig.targets()["listen_v1"].make()
    events = run(conn, conn.receive_data(framed(rig.envelope) + b"\0", T0), T0)
    assert [type(e).__name__ for e in events] == ["LegacyVerified", "LegacyReceived"]
    assert conn.state is State.LEGACY_READY and conn._splitter.buffered == 1
    assert conn._splitter.max_frame == 48 * 1024


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


def test_closed_connection_holds_at_most_the_chunk_that_closed_it(rig, twin):
    """Check 3's bound for a closed connection, at its worst: a refused handshake frame
    followed by a large rest in the same read. Frames before authentication are taken
    one at a time, so the rest is buffered unparsed (no header of it is checked) and
    the splitter is not cleared on close: it may exceed the frame limit, never the chunk."""
    conn = rig.targets()["listen"].make()[0]
    chunk = framed(b"junk") + b"\0" * 200_000
    run(conn, conn.receive_data(chunk, T0), T0)
    assert conn.closed
    assert conn._splitter.buffered <= len(chunk) - len(framed(b"junk"))
    assert run(conn, conn.receive_data(b"\0" * 100, T0), T0) == []  # nothing more is taken
    assert conn._splitter.buffered <= len(chunk) - len(framed(b"junk"))


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
