"""What must hold after hostile bytes reach a Connection (F5, receive boundary).

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
3. Buffering, with L = ``conn.frame_limit`` after the call (4,096 or 49,152 before
   authentication, 1 MiB after):
   - open: ``conn.buffered <= L + 3``: at most one incomplete frame, whose header
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

``feed`` drives a fresh connection of a target (``support.fuzz_rig``) through one input
in one chunking and returns its ``Outcome``; ``baselines_of`` is what each target's
genuine input gives, the reference of check 5.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from hypothesis import event
from hypothesis.control import currently_in_test_context

from enclave.protocol import handshake as hs
from enclave.protocol import pairing, succession
from enclave.protocol.connection import Connection, State
from enclave.protocol.crypto import Identity
from enclave.protocol.events import ConnectionClosed, CryptoNeeded, Established, LegacyReceived
from enclave.protocol.policy import MemoryPolicy
from support.fuzz_inputs import WRAPS, chunks_of, frame_bounds
from support.fuzz_rig import HEADER, HS2_WIRE, Rig, Target, first_frame, framed, planned
from support.protocol_pair import T0, run

# --- driving a connection and checking it ------------------------------------------------------

_OPEN_STATES = {
    State.LISTEN,
    State.AWAIT_HS2,
    State.AWAIT_HS3,
    State.ESTABLISHED,
    State.LEGACY_READY,
    # A first frame with the pairing or revocation magic (a mutation can make one):
    # its owner judges what follows, and the state has its own deadline.
    State.PAIRING,
    State.REVOKING,
}
_SPLITTER_EMPTY = {}


def splitter_overhead(splitter) -> int:
    kind = type(splitter)
    if kind not in _SPLITTER_EMPTY:
        _SPLITTER_EMPTY[kind] = sys.getsizeof(kind(0))
    return sys.getsizeof(splitter) - _SPLITTER_EMPTY[kind]


def check_call(conn: Connection, closing_chunk: int | None) -> None:
    """The buffering bound after one receive_data call (see the module docstring)."""
    bound = conn.frame_limit + HEADER - 1
    if conn.closed:
        assert closing_chunk is not None
        bound = max(bound, closing_chunk)
    else:
        assert conn.state in _OPEN_STATES and conn._job is None, conn.state
    assert conn.buffered <= bound, (conn.buffered, bound, conn.state)
    # The allocation is white-box: only the splitter object itself can be measured.
    overhead = splitter_overhead(conn._splitter)
    assert overhead <= 2 * bound + 64, (overhead, bound)


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
            held = conn.buffered
            assert conn.receive_data(b"\0" * 8, T0) == [] and conn.next_deadline() is None
            assert conn.buffered == held and conn.data_to_send(T0) == b""
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
            and not _another_owner(self.first)  # pairing.py and succession.py answer those
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
        if baseline is not None and not _another_owner(self.first):
            semantic = self.semantic
            assert semantic == list(baseline[0][: len(semantic)]), (semantic, baseline[0])
        if currently_in_test_context():  # outcome statistics: --hypothesis-show-statistics
            event(f"{target.name}: {self.label}")


def _another_owner(first: bytes | None) -> bool:
    """A first frame that opens a pairing exchange or brings a revocation (a mutation
    can make one): its owner, not the session, takes what follows."""
    return first is not None and first[:4] in (pairing.MAGIC, succession.REVOKE_MAGIC)


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


def baselines_of(rig: Rig) -> dict[str, tuple]:
    """Per target: the events and end state of its genuine input, one frame per chunk."""
    out = {}
    for name, target in rig.targets().items():
        stream = b"".join(framed(f) for f in target.frames)
        bounds = frame_bounds(target.frames)
        outcome = feed(target, stream, ("frames", []), bounds)
        out[name] = (tuple(outcome.semantic), outcome.conn.state, outcome.conn.close_reason)
    return out
