"""One Enclave connection, sans-IO: bytes in, bytes and events out.

This module holds ``Connection`` itself: its public inputs and outputs, the input
plumbing (framing, held bytes, the end of stream), timers, closing, and the tables
that route frames and job results by state. Its roles live beside it, mixed in:
the handshake steps (handshake_steps.py), legacy v1 inbound (inbound_v1.py), the
traffic of an established session (traffic.py) and its file messages (file_traffic.py); the states and the table of their
moves are in states.py, the RSA job handed to the owner in jobs.py.

Rules of the connection (this module and the ones mixed in):
- Every input method (``initiate``, ``receive_data``, ``resume``, ``handle_timer``)
  returns the events it produced; ``data_to_send(now)`` drains the bytes to write.
  Time comes in as ``now`` (seconds since the Unix epoch); ``next_deadline()`` says
  when ``handle_timer`` must be called.
- All state transitions are listed in ``_TRANSITIONS`` (states.py); a frame that
  arrives in a state with no frame handler closes the connection.
- Any ``PeerError`` raised while handling input becomes a ``ConnectionClosed`` event
  carrying its reason; nothing the peer sends can raise out of this class. Before
  authentication a refusal may send an advisory ALERT.
- RSA private work never runs inline: the connection emits ``CryptoNeeded(job)``
  and waits, accepting no frames, until the owner calls ``resume``. Cheap checks
  come before public-key verifies, and verifies before any private work
  (PROTOCOL.md b.4). ``Established`` is emitted only after the peer's Finished MAC
  verified. When it is, every handshake secret (ephemeral key, k_I, k_R, PRK) is
  dropped: only the traffic secrets inside the record layer remain.
- Frame limits: 4 KiB before authentication (48 KiB for the first frame when
  legacy v1 is enabled, and for every frame of a legacy v1 connection), 1 MiB after.
- The peer's end of stream is an input too (``receive_eof``): a legacy envelope that
  arrived whole is finished (checked, opened, handed over, committed) before the
  connection closes, and a pooled legacy connection carries envelope after envelope,
  each under the same checks and budgets, until the peer closes or goes idle
  (PROTOCOL.md d). Bytes that arrive while an envelope is being worked on are held,
  at most one envelope's worth; ``wants_data`` tells the owner to stop reading.
"""

from collections import deque
from dataclasses import dataclass

from .._fast import FrameSplitter
from ..errors import PeerError, UsageError
from . import handshake as hs
from . import legacy, pairing, succession
from .crypto import Identity, PeerKey, X25519Keypair, random_bytes
from .events import ConnectionClosed, CryptoNeeded, PairingFrame, RevocationFrame
from .file_traffic import FileTraffic
from .handshake_steps import HandshakeSteps, _framed, _Handshake
from .inbound_v1 import _CHECKING, _V1_FIRST_BYTES, InboundV1
from .jobs import Job
from .messages import Ping
from .policy import Policy
from .records import CLOSE, RecordReceiver, RecordSender
from .states import _FRAMED, _LEGACY, _LEGACY_BUSY, _PRE_AUTH, _TRANSITIONS, S, State
from .traffic import Traffic

__all__ = ["DEFAULT_LIMITS", "Connection", "Job", "Limits", "State"]

# Reasons that earn a specific advisory ALERT code; every other refusal sends "generic".
_ALERT_FOR = {"clock_skew": hs.ALERT_SKEW, "busy": hs.ALERT_BUSY}


@dataclass(frozen=True, slots=True)
class Limits:
    first_frame_timeout: float = 5.0
    handshake_timeout: float = 10.0
    keepalive_interval: float = 15.0
    dead_after: float = 45.0
    pre_auth_frame: int = 4096
    v1_frame: int = legacy.MAX_ENVELOPE
    v1_envelope_timeout: float = 10.0  # from an envelope's arrival to its hand-over
    v1_idle: float = 30.0  # a pooled legacy connection with nothing to say closes then
    time_window_ms: int = 300_000
    max_session_age: float = 86_400.0  # then a new handshake restores forward secrecy
    key_update_frames: int = 1 << 23  # PROTOCOL.md c.2: update well before the hard limits
    key_update_bytes: int = 1 << 35
    key_update_age: float = 3600.0
    bulk_queue: int = 4 * 1024 * 1024  # FILE_CHUNK bytes queued, not yet released


DEFAULT_LIMITS = Limits()


class Connection(HandshakeSteps, InboundV1, Traffic, FileTraffic):
    # Slots: a node holds one per session; a __dict__ of these would be ~1 KiB more each.
    __slots__ = (
        "_ack_out",
        "_ack_sent",
        "_acked_upto",
        "_eof",
        "_held",
        "_after_update",
        "_bulk",
        "_bulk_bytes",
        "_chats_flushed",
        "_chats_received",
        "_chats_sent",
        "_established_at",
        "_events",
        "_file_out",
        "_got_first_frame",
        "_hs",
        "_job",
        "_last_rx",
        "_legacy_env",
        "_out",
        "_pending",
        "_ping_out",
        "_rx",
        "_splitter",
        "_started",
        "_tx",
        "_v1_enabled",
        "_v1_since",
        "_v1_uncommitted",
        "close_reason",
        "identity",
        "initiator",
        "limits",
        "peer",
        "peer_key",
        "policy",
        "session_id",
        "source",
        "state",
    )

    def __init__(
        self,
        identity: Identity,
        policy: Policy,
        now: float,
        *,
        peer: PeerKey | None = None,
        source: object = None,
        v1_enabled: bool = False,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.identity = identity
        self.policy = policy
        self.limits = limits
        self.source = source
        self.initiator = peer is not None
        self.peer_key = peer
        self.peer: bytes | None = peer.fingerprint if peer is not None else None
        self.session_id: bytes | None = None
        self.state = S.START if self.initiator else S.LISTEN
        self.close_reason: str | None = None
        self._v1_enabled = v1_enabled and not self.initiator
        first_limit = limits.v1_frame if self._v1_enabled else limits.pre_auth_frame
        self._splitter = FrameSplitter(first_limit)
        self._hs: _Handshake | None = _Handshake()
        self._job: Job | None = None
        self._out: list[bytes] = []
        self._events: list = []
        self._started = self._established_at = self._last_rx = now
        self._got_first_frame = False
        # traffic state, set when established
        self._tx: RecordSender | None = None
        self._rx: RecordReceiver | None = None
        self._pending: list = []  # messages waiting for the next data_to_send
        self._file_out: list[bytes] = []  # FILE control records, after the batches
        # (transfer id, FILE_CHUNK body), released last; made by the first piece (an
        # empty deque is ~600 bytes and most sessions send no file)
        self._bulk: deque | None = None
        self._bulk_bytes = self._chats_sent = self._chats_flushed = 0
        self._after_update = False  # the last record was a KEY_UPDATE
        self._chats_received = 0
        self._acked_upto = -1  # highest upto the peer acked
        self._ack_out = -1  # highest upto we have been told to ack
        self._ack_sent = -1
        self._ping_out: bytes | None = None
        self._legacy_env = None  # the v1 envelope being worked on
        self._eof = False  # the peer ended its stream (FIN or reset)
        self._held = b""  # bytes that came while a v1 envelope was being worked on
        self._v1_since = 0.0  # when the current v1 envelope arrived
        self._v1_uncommitted = 0  # envelopes handed over, not yet committed by the owner

    # --- public API ----------------------------------------------------------------

    @property
    def established(self) -> bool:
        return self.state is S.ESTABLISHED

    @property
    def closed(self) -> bool:
        return self.state is S.CLOSED

    @property
    def chats_sent(self) -> int:
        return self._chats_sent

    @property
    def buffered(self) -> int:
        """Bytes received and not yet taken as a frame (at most one frame's worth)."""
        return self._splitter.buffered

    @property
    def frame_limit(self) -> int:
        """The largest frame taken now: the pre-authentication limit, then MAX_RECORD."""
        return self._splitter.max_frame

    def initiate(self, now: float) -> list:
        """Initiator: build HS1 (its signature is a job)."""
        if self.state is not S.START:
            raise UsageError("initiate() is for a new initiator connection")
        h = self._hs
        h.e = X25519Keypair()
        h.k_i = random_bytes(32)
        wrap_i = self.peer_key.wrap_v2(h.k_i, hs.LABEL_I)
        ts_ms = int(now * 1000)
        h.hs1_prefix = hs.hs1_body(
            ts_ms, random_bytes(16), self.identity.fingerprint, self.peer, h.e.public, wrap_i
        )
        signed = hs.hs1_signed_data(h.hs1_prefix)
        self._start_job(S.SIGNING_HS1, lambda: self.identity.sign_v2(signed))
        return self._drain_events()

    def receive_data(self, data: bytes, now: float) -> list:
        if self.state is S.CLOSED:
            return []
        try:
            if self._eof:
                if data:
                    raise PeerError("unexpected_data", "after the end of the stream")
            elif self.state in _LEGACY_BUSY:
                self._hold(data)
            elif self._job is not None:
                if data:
                    raise PeerError("unexpected_data", f"in state {self.state.value}")
            elif self.state is S.START:
                raise UsageError("call initiate() first")
            else:
                self._feed(data, now)
        except PeerError as err:
            self._fail(err)
        return self._drain_events()

    def receive_eof(self, now: float) -> list:
        """The peer ended its stream (FIN, or a reset after its last byte). What came
        whole is still finished; a half-received frame is dropped with a reason."""
        if self.state is S.CLOSED or self._eof:
            return []
        self._eof = True
        try:
            self._end_if_done(now)
        except PeerError as err:
            self._fail(err)
        return self._drain_events()

    def resume(self, job: Job, now: float) -> list:
        """Continue after the owner ran ``job``."""
        if job is not self._job or self.state is S.CLOSED:
            job.take()
            return []  # a job for a connection that has since closed: ignore its result
        if not job.finished:
            raise UsageError("resume() before the job ran")
        self._job = None
        try:
            if job.error is not None:
                raise job.error
            _JOB_HANDLERS[self.state](self, job.take(), now)
            self._continue(now)
        except PeerError as err:
            self._fail(err)
        return self._drain_events()

    def close(self, now: float, reason: str = "local_close") -> list:
        """Close from our side; an established session says CLOSE to the peer first,
        right after whatever it still had to say (acks, a THROTTLE)."""
        if self.state is S.ESTABLISHED:
            self._flush_messages(now)  # sealed into _out before CLOSE, never dropped
            self._flush_files(now, 0)  # a FILE_CANCEL too; queued pieces are dropped
            self._out.append(self._tx.seal(CLOSE, b"\x00", now))
        if self.state is not S.CLOSED:
            dropped = self._v1_dropping()
            self._shut(reason)
            self._events.append(ConnectionClosed(reason, v1_dropped=dropped))
        return self._drain_events()

    def send_revocation_received(self) -> None:
        """Tell the sender of a revocation certificate it was judged (a REVOKING
        connection only); the owner closes the connection after it."""
        if self.state is not S.REVOKING:
            raise UsageError(f"send_revocation_received() in state {self.state.value}")
        self._out.append(_framed(succession.REVOKE_MAGIC + succession.RECEIVED))

    def send_pairing(self, message: bytes) -> None:
        """Queue one pairing message to the joiner (a PAIRING connection only)."""
        if self.state is not S.PAIRING:
            raise UsageError(f"send_pairing() in state {self.state.value}")
        self._out.append(_framed(pairing.MAGIC + message))

    def data_to_send(self, now: float, bulk_budget: int | None = None) -> bytes:
        """The bytes to write: every queued batch and file control message, then queued
        file pieces up to ``bulk_budget`` bytes (all of them when None)."""
        parts = self.parts_to_send(now, bulk_budget)
        return parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)

    def parts_to_send(self, now: float, bulk_budget: int | None = None) -> list:
        """``data_to_send`` as a list of bytes-like parts, in order, for a transport's
        ``writelines``: a megabyte of sealed pieces is not copied into one bytes first."""
        if self.state is S.ESTABLISHED:
            self._flush_messages(now)
            self._flush_files(now, bulk_budget)
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        if self.state is S.CLOSED:
            return None
        if self.state in _LEGACY:
            return self._legacy_deadline()
        if self.state is S.ESTABLISHED:
            expiry = self._established_at + self.limits.max_session_age
            if self._ping_out is None:
                return min(expiry, self._last_rx + self.limits.keepalive_interval)
            return min(expiry, self._last_rx + self.limits.dead_after)
        deadline = self._started + self.limits.handshake_timeout
        if not self.initiator and not self._got_first_frame:
            deadline = min(deadline, self._started + self.limits.first_frame_timeout)
        return deadline

    def handle_timer(self, now: float) -> list:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        if (
            self.state is S.ESTABLISHED
            and now >= self._established_at + self.limits.max_session_age
        ):
            return self.close(now, "session_expired")
        if self.state is S.ESTABLISHED and self._ping_out is None:
            self._ping_out = random_bytes(8)
            self._pending.append(Ping(self._ping_out))
            return []
        if self.state in _LEGACY:
            return self._legacy_timer(now)
        reason = "keepalive_timeout" if self.state is S.ESTABLISHED else "handshake_timeout"
        if self.state is S.LISTEN and not self._got_first_frame:
            reason = "first_frame_timeout"
        # _fail cancels an outstanding job: no private-key work runs after the deadline.
        self._fail(PeerError(reason))
        return self._drain_events()

    # --- input plumbing --------------------------------------------------------------

    def _continue(self, now: float) -> None:
        """After a job or a slot: take the bytes that waited, then see if the end came."""
        if self._job is not None or self.state not in _FRAMED:
            return
        held, self._held = self._held, b""
        if held or self._splitter.buffered:
            self._feed(held, now)
        self._end_if_done(now)

    def _feed(self, data: bytes, now: float) -> None:
        splitter = self._splitter
        while self.state in _FRAMED and self._job is None:
            frames = splitter.feed(data, 1)
            data = b""
            if not frames:
                return
            self._got_first_frame = True
            handler = _FRAME_HANDLERS.get(self.state)
            if handler is None:
                raise PeerError("unexpected_frame", f"in state {self.state.value}")
            frame = frames[0]
            if splitter.buffered and self._must_come_alone(frame):
                # No honest peer sends anything after HS1 or HS2 before our answer:
                # refuse before any budget is spent on the frame.
                raise PeerError("unexpected_data", f"after the frame in state {self.state.value}")
            handler(self, frame, now)
        if self.state in _LEGACY_BUSY:
            return  # the rest of the read stays in the splitter until this envelope's done
        if self._job is not None:
            if data or splitter.buffered:
                raise PeerError("unexpected_data", "while a handshake step is running")
            return
        if self.state is S.ESTABLISHED:
            for frame in splitter.feed(data):
                self._on_record(frame, now)
                if self.state is not S.ESTABLISHED:
                    return
        elif data or splitter.buffered:
            raise PeerError("unexpected_data", f"in state {self.state.value}")

    def _must_come_alone(self, frame: bytes) -> bool:
        return self.state is S.AWAIT_HS2 or (self.state is S.LISTEN and frame[:4] == hs.MAGIC)

    def _end_if_done(self, now: float) -> None:
        """After the peer's end of stream: close once nothing it sent is left to finish."""
        if not self._eof or self.state is S.CLOSED:
            return
        if self.state in _LEGACY_BUSY:
            return  # finish the envelope that came whole first (_continue comes back)
        if self.state is S.ESTABLISHED:  # the stream ended without a CLOSE record
            self._shut("connection_lost")
            self._events.append(ConnectionClosed("connection_lost", "end of stream", by_peer=True))
            return
        left = len(self._held) + self._splitter.buffered
        if left:
            raise PeerError("truncated", f"the stream ended {left} bytes into a frame")
        if self.state is not S.LEGACY_READY:  # a handshake cannot finish now
            raise PeerError("peer_eof", f"in state {self.state.value}")
        if self._v1_uncommitted == 0:  # every envelope committed: a clean end
            self._shut("legacy_done")
            self._events.append(ConnectionClosed("legacy_done", by_peer=True))

    def _start_job(self, state: State, fn, admitted: bool = False) -> None:
        self._set_state(state)
        self._job = Job(fn)
        self._job.admitted = admitted
        self._events.append(CryptoNeeded(self._job))

    def _set_state(self, new: State) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise UsageError(f"transition {self.state.value} -> {new.value} is not allowed")
        self.state = new

    def _drain_events(self) -> list:
        events, self._events = self._events, []
        return events

    def _fail(self, err: PeerError) -> None:
        if self.state is S.CLOSED:
            return
        if self.state in _PRE_AUTH and not self.initiator:
            self._out.append(_framed(hs.alert(_ALERT_FOR.get(err.reason, hs.ALERT_GENERIC))))
        dropped = self._v1_dropping()
        self._shut(err.reason)
        self._events.append(ConnectionClosed(err.reason, err.detail, v1_dropped=dropped))

    def _shut(self, reason: str) -> None:
        """Enter CLOSED: cancel pending work and drop every secret still held. A
        cancelled job's CryptoNeeded still reaches the owner, so an admitted slot is
        released when the (now empty) job runs."""
        if self._job is not None:
            self._job.cancelled = True
        self._job = None
        self._hs = None
        self._tx = self._rx = None
        self._pending.clear()
        self._file_out.clear()
        self._bulk = None
        self._bulk_bytes = 0
        self._held, self._legacy_env = b"", None
        self._set_state(S.CLOSED)
        self.close_reason = reason

    # --- responder: the first frame is HS1 or a v1 envelope -------------------------------

    def _on_first_frame(self, frame: bytes, now: float) -> None:
        if frame[:4] == hs.MAGIC:
            if len(frame) > self.limits.pre_auth_frame:
                raise PeerError("frame_too_large", f"{len(frame)} bytes before authentication")
            self._splitter.max_frame = self.limits.pre_auth_frame
            self._on_hs1(frame, now)
        elif self._v1_enabled and frame[:1] and frame[0] in _V1_FIRST_BYTES:
            self._legacy_env = _CHECKING
            self._on_v1(frame, now)
        elif frame[:4] == succession.REVOKE_MAGIC:
            self._set_state(S.REVOKING)  # one frame, then only our answer: no handler
            self._events.append(RevocationFrame(frame[4:]))
        elif frame[:4] == pairing.MAGIC:
            self._set_state(S.PAIRING)
            self._splitter.max_frame = len(pairing.MAGIC) + pairing.MAX_MESSAGE_BYTES
            self._on_pairing(frame, now)
        else:
            raise PeerError("bad_first_frame")

    # --- responder: a pairing exchange ----------------------------------------------------

    def _on_pairing(self, frame: bytes, now: float) -> None:
        """Every frame of a pairing connection carries the magic; the message itself
        is judged by the owner's inviter (pairing.py), which holds the invitation."""
        if frame[:4] != pairing.MAGIC:
            raise PeerError("bad_pairing_message", "a frame without the pairing magic")
        self._events.append(PairingFrame(frame[4:]))


# Who takes a frame, and who a job's result, in each state (the states are in states.py).
_FRAME_HANDLERS = {
    S.LISTEN: Connection._on_first_frame,
    S.LEGACY_READY: Connection._on_next_v1,
    S.AWAIT_HS2: Connection._on_hs2,
    S.AWAIT_HS3: Connection._on_hs3,
    S.PAIRING: Connection._on_pairing,
}
_JOB_HANDLERS = {
    S.SIGNING_HS1: Connection._signed_hs1,
    S.RESPONDING: Connection._responded,
    S.FINISHING: Connection._finished,
    S.LEGACY_OPENING: Connection._legacy_opened,
}
