"""One Enclave connection, sans-IO: bytes in, bytes and events out.

Rules of this module:
- Every input method (``initiate``, ``receive_data``, ``resume``, ``handle_timer``)
  returns the events it produced; ``data_to_send(now)`` drains the bytes to write.
  Time comes in as ``now`` (seconds since the Unix epoch); ``next_deadline()`` says
  when ``handle_timer`` must be called.
- All state transitions are listed in ``_TRANSITIONS`` below; a frame that arrives
  in a state with no frame handler closes the connection.
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

import enum
import hmac
from dataclasses import dataclass

from .._fast import FrameSplitter
from ..errors import LocalFailure, PeerError, UsageError
from . import handshake as hs
from . import legacy, schedule
from .crypto import Identity, PeerKey, X25519Keypair, random_bytes
from .events import (
    Acked,
    ConnectionClosed,
    CryptoNeeded,
    Established,
    LegacyReceived,
    LegacyVerified,
    MessagesReceived,
    SlotWanted,
    Throttled,
    TypingChanged,
)
from .messages import (
    _FIELDS,
    MAX_BATCH,
    Ack,
    Chat,
    Ping,
    Pong,
    Throttle,
    Typing,
    _chat_fields,
    decode_batch,
    encode_fields,
    outgoing_chat_fields,
)
from .policy import Policy
from .records import APP, CLOSE, KEY_UPDATE, MAX_RECORD, RecordReceiver, RecordSender

# Reasons that earn a specific advisory ALERT code; every other refusal sends "generic".
_ALERT_FOR = {"clock_skew": hs.ALERT_SKEW, "busy": hs.ALERT_BUSY}
_V1_FIRST_BYTES = (0x88, 0x89)  # a msgpack map of 8 or 9 entries
_BATCH_BYTES = 900 * 1024  # stay well under MAX_RECORD with msgpack overhead
_CHECKING = object()  # _legacy_env while a v1 frame is being checked (before it parsed)


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


DEFAULT_LIMITS = Limits()


class State(enum.Enum):
    START = "start"  # initiator, before initiate()
    SIGNING_HS1 = "signing_hs1"  # initiator, job: sign HS1
    AWAIT_HS2 = "await_hs2"
    FINISHING = "finishing"  # initiator, job: unwrap k_R
    LISTEN = "listen"  # responder, before the first frame
    RESPONDING = "responding"  # responder, job: unwrap k_I and sign HS2
    AWAIT_HS3 = "await_hs3"
    LEGACY_WAIT = "legacy_wait"  # responder: a checked v1 envelope waits for a private-op slot
    LEGACY_OPENING = "legacy_opening"  # responder, job: record and open a v1 envelope
    LEGACY_READY = "legacy_ready"  # handed over; the next envelope may follow
    ESTABLISHED = "established"
    CLOSED = "closed"


S = State
# state -> the states it may move to. Frame handlers exist only for the states that
# expect a frame; job results are accepted only in the three job states.
_TRANSITIONS = {
    S.START: {S.SIGNING_HS1, S.CLOSED},
    S.SIGNING_HS1: {S.AWAIT_HS2, S.CLOSED},
    S.AWAIT_HS2: {S.FINISHING, S.CLOSED},
    S.FINISHING: {S.ESTABLISHED, S.CLOSED},
    S.LISTEN: {S.RESPONDING, S.LEGACY_WAIT, S.LEGACY_OPENING, S.CLOSED},
    S.RESPONDING: {S.AWAIT_HS3, S.CLOSED},
    S.AWAIT_HS3: {S.ESTABLISHED, S.CLOSED},
    S.LEGACY_WAIT: {S.LEGACY_OPENING, S.CLOSED},
    S.LEGACY_OPENING: {S.LEGACY_READY, S.CLOSED},
    S.LEGACY_READY: {S.LEGACY_WAIT, S.LEGACY_OPENING, S.CLOSED},
    S.ESTABLISHED: {S.CLOSED},
    S.CLOSED: set(),
}
_PRE_AUTH = {S.START, S.SIGNING_HS1, S.AWAIT_HS2, S.FINISHING, S.LISTEN, S.RESPONDING, S.AWAIT_HS3}
_LEGACY = {S.LEGACY_WAIT, S.LEGACY_OPENING, S.LEGACY_READY}
_FRAMED = _PRE_AUTH | {S.LEGACY_READY}  # states that take one frame at a time
_LEGACY_BUSY = {S.LEGACY_WAIT, S.LEGACY_OPENING}  # an envelope is being worked on


class Job:
    """RSA private work, runnable on any thread; it touches no connection state.

    ``admitted`` is True when the work holds one of the owner's private-op slots
    (responder work admitted by ``Policy.admit_private_op``): the owner releases the
    slot when ``run`` returns, whatever happened to the connection meanwhile. A job
    whose connection closed first is ``cancelled`` and does nothing when run.
    """

    __slots__ = ("_fn", "result", "error", "admitted", "cancelled", "finished")

    def __init__(self, fn) -> None:
        self._fn = fn
        self.result = None
        self.error: PeerError | None = None
        self.admitted = False
        self.cancelled = False
        self.finished = False

    def run(self) -> None:
        try:
            if not self.cancelled:
                self.result = self._fn()
        except PeerError as err:
            self.error = err
        except Exception as err:  # noqa: BLE001 - our own failure: the connection closes
            self.error = LocalFailure("job_failed", f"{type(err).__name__}: {err}")
        finally:
            self._fn = None  # drop the captured inputs (wrapped secrets among them)
            self.finished = True

    def take(self):
        """The result, handed over once (so the job object keeps no secret)."""
        result, self.result = self.result, None
        return result


class _Handshake:
    """Secrets that live only until the session is established (then dropped)."""

    __slots__ = ("e", "k_i", "k_r", "dh", "hs1", "hs1_prefix", "hs2", "prk", "th3", "wrap", "peer")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, None)


class Connection:
    # Slots: a node holds one per session; a __dict__ of these would be ~1 KiB more each.
    __slots__ = (
        "_ack_out",
        "_ack_sent",
        "_acked_upto",
        "_eof",
        "_held",
        "_after_update",
        "_chats_flushed",
        "_chats_received",
        "_chats_sent",
        "_established_at",
        "_events",
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
        self._started = now
        self._got_first_frame = False
        # traffic state, set when established
        self._tx: RecordSender | None = None
        self._rx: RecordReceiver | None = None
        self._pending: list = []  # messages waiting for the next data_to_send
        self._chats_sent = 0
        self._chats_flushed = 0
        self._after_update = False  # the last record was a KEY_UPDATE
        self._established_at = now
        self._chats_received = 0
        self._acked_upto = -1  # highest upto the peer acked
        self._ack_out = -1  # highest upto we have been told to ack
        self._ack_sent = -1
        self._last_rx = now
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

    @property
    def wants_data(self) -> bool:
        """False while a legacy envelope is being worked on and the next one is already
        held whole: the owner stops reading until this turns True again."""
        if self.state not in _LEGACY_BUSY:
            return True
        return len(self._held) + self._splitter.buffered <= self.limits.v1_frame + 4

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

    def retry_admission(self, now: float) -> list:
        """A private-op slot may have come free: a waiting v1 envelope asks again."""
        if self.state is S.LEGACY_WAIT:
            try:
                self._admit_v1(now)
            except PeerError as err:
                self._fail(err)
        return self._drain_events()

    def legacy_committed(self, now: float) -> list:
        """The owner committed one handed-over v1 envelope (PROTOCOL.md d.12)."""
        if self._v1_uncommitted <= 0:
            raise UsageError("legacy_committed() without an uncommitted envelope")
        self._v1_uncommitted -= 1
        if self.state is not S.CLOSED:
            self._end_if_done(now)
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

    def send_chats(self, chats) -> int:
        """Queue Chats for the next ``data_to_send``; returns the session index of the
        first one (indices are consecutive; acks refer to them)."""
        self._require_established()
        own, peer = self.identity.fingerprint, self.peer
        fields = []
        for chat in chats:  # refuse here what the peer would refuse (and close) there
            fields.append(_chat_fields(chat))
            if chat.sender != own or chat.recipient != peer:
                raise UsageError("a Chat on this session must be from us and to its peer")
        return self._queue_chats(fields)

    def send_outgoing(self, items) -> int:
        """``send_chats`` for our own messages given as objects with ``id``,
        ``created_ms`` and ``body`` (the outbox's rows): no Chat is built for them."""
        self._require_established()
        own, peer = self.identity.fingerprint, self.peer
        return self._queue_chats(
            [outgoing_chat_fields(o.id, own, peer, o.created_ms, o.body) for o in items]
        )

    def _queue_chats(self, fields: list) -> int:
        # Pending chats are kept as checked field lists, so a flush encodes them as is.
        first = self._chats_sent
        self._pending.extend(fields)
        self._chats_sent += len(fields)
        return first

    def ack(self, upto: int) -> None:
        """Tell the peer that its Chats 0..upto of this session are durable."""
        self._require_established()
        if upto >= self._chats_received:
            raise UsageError(f"cannot ack {upto}: only {self._chats_received} chats received")
        self._ack_out = max(self._ack_out, upto)

    def send_typing(self, active: bool) -> None:
        self._require_established()
        self._pending.append(Typing(bool(active)))

    def send_throttle(self, reason: int, retry_after_ms: int) -> None:
        """Tell the peer why its chats are not taken for now (PROTOCOL.md, "Receive
        quotas"); a THROTTLE uses no chat index and acks nothing."""
        self._require_established()
        throttle = Throttle(reason, retry_after_ms)
        _FIELDS[Throttle](throttle)  # refuse here what the peer would refuse there
        self._pending.append(throttle)

    def close(self, now: float, reason: str = "local_close") -> list:
        """Close from our side; an established session says CLOSE to the peer first,
        right after whatever it still had to say (acks, a THROTTLE)."""
        if self.state is S.ESTABLISHED:
            self._flush_messages(now)  # sealed into _out before CLOSE, never dropped
            self._out.append(self._tx.seal(CLOSE, b"\x00", now))
        if self.state is not S.CLOSED:
            dropped = self._v1_dropping()
            self._shut(reason)
            self._events.append(ConnectionClosed(reason, v1_dropped=dropped))
        return self._drain_events()

    def data_to_send(self, now: float) -> bytes:
        if self.state is S.ESTABLISHED:
            self._flush_messages(now)
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
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

    def _hold(self, data: bytes) -> None:
        # The next pooled envelope waits for its turn (PROTOCOL.md d). The owner stops
        # reading once ``wants_data`` is False; a peer that keeps the bytes coming past
        # several envelopes' worth is not the original client.
        if len(self._held) + self._splitter.buffered + len(data) > 8 * (self.limits.v1_frame + 4):
            raise PeerError("unexpected_data", "far beyond the envelope being worked on")
        self._held += data

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

    def _v1_dropping(self) -> bool:
        """Closing now drops a legacy envelope: one being checked or worked on, or bytes
        of one that came (or may have: a first frame cut short where v1 is on)."""
        if self._legacy_env is not None:
            return True
        pending = self._held or self._splitter.buffered
        if self.state is S.LEGACY_READY:
            return bool(pending)
        return self.state is S.LISTEN and self._v1_enabled and bool(pending)

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
        self._held, self._legacy_env = b"", None
        self._set_state(S.CLOSED)
        self.close_reason = reason

    # --- responder: HS1 or a v1 envelope ---------------------------------------------

    def _on_first_frame(self, frame: bytes, now: float) -> None:
        if frame[:4] == hs.MAGIC:
            if len(frame) > self.limits.pre_auth_frame:
                raise PeerError("frame_too_large", f"{len(frame)} bytes before authentication")
            self._splitter.max_frame = self.limits.pre_auth_frame
            self._on_hs1(frame, now)
        elif self._v1_enabled and frame[:1] and frame[0] in _V1_FIRST_BYTES:
            self._legacy_env = _CHECKING
            self._on_v1(frame, now)
        else:
            raise PeerError("bad_first_frame")

    def _on_hs1(self, frame: bytes, now: float) -> None:
        head = hs.parse_hs1_head(frame)  # check 3
        own = self.identity.fingerprint
        if head.fp_r != own:  # check 4
            raise PeerError("misdirected", "HS1 is for another fingerprint")
        if head.fp_i == own:
            raise PeerError("reflected", "HS1 claims our own fingerprint")
        now_ms = int(now * 1000)  # check 5
        if abs(head.ts_ms - now_ms) > self.limits.time_window_ms:
            raise PeerError("clock_skew", f"{(head.ts_ms - now_ms) / 1000:+.0f} s")
        if head.ts_ms <= self.policy.boot_floor(head.fp_i):
            raise PeerError("stale_handshake")
        peer = self.policy.peer_key(head.fp_i)  # check 6
        if peer is None:
            self._decoy_verify(frame, head.fp_i)
            raise PeerError("unknown_peer")
        prefix, wrap_i, sig_i = hs.split_hs1(frame, self.identity.modulus_bytes, peer.modulus_bytes)
        if self.policy.handshake_seen(head.fp_i, head.hs_id):  # check 7
            raise PeerError("replayed_handshake")
        if not self.policy.take_verify_token(self.source, head.fp_i):  # check 8
            raise PeerError("verify_budget")
        if not peer.verify_v2(sig_i, hs.hs1_signed_data(prefix)):  # check 9
            raise PeerError("bad_signature", "HS1")
        self.policy.record_handshake(head.fp_i, head.hs_id, head.ts_ms)  # check 10
        # A low-order e_I is refused here, before any private work (the spec puts it
        # in step 13; doing it first costs one X25519 and saves two RSA operations).
        h = self._hs
        h.e = X25519Keypair()
        h.dh = h.e.exchange(head.e_i)
        if h.dh is None:
            raise PeerError("bad_ephemeral", "HS1")
        if not self.policy.admit_private_op(head.fp_i):  # check 11
            raise PeerError("busy")
        self.peer, self.peer_key, h.hs1 = head.fp_i, peer, frame
        h.k_r = random_bytes(32)
        prefix2 = hs.hs2_body(own, head.fp_i, h.e.public, peer.wrap_v2(h.k_r, hs.LABEL_R))
        h.hs2 = prefix2
        signed = hs.hs2_signed_data(frame, prefix2)
        identity = self.identity

        def respond():  # checks 12-13: private op #1 only if it can succeed, then #2
            k_i = identity.unwrap_v2(wrap_i, hs.LABEL_I)
            if k_i is None or len(k_i) != 32:
                raise PeerError("bad_wrap", "HS1")
            return k_i, identity.sign_v2(signed)

        self._start_job(S.RESPONDING, respond, admitted=True)

    def _decoy_verify(self, frame: bytes, claimed: bytes) -> None:
        """Spend on an unknown fingerprint what a known one with a bad signature costs
        (a verify token and one public-key verify), so that neither the bytes nor the
        timing tell a prober whether a fingerprint is in the address book (F13)."""
        if not self.policy.take_verify_token(self.source, claimed):
            raise PeerError("verify_budget")
        n = self.identity.modulus_bytes
        if len(frame) >= hs.HS1_FIXED + 2 * n:
            prefix = frame[: hs.HS1_FIXED + n]
            self.identity.peer_key.verify_v2(frame[-n:], hs.hs1_signed_data(prefix))

    def _responded(self, result, now: float) -> None:
        h = self._hs
        h.k_i, sig_r = result
        hs2_unfinished = h.hs2 + sig_r
        h.prk = schedule.handshake_prk(h.dh, h.k_i, h.k_r)
        th2 = hs.transcript(h.hs1, hs2_unfinished)
        fin_r = hs.finished(schedule.finished_key_r(h.prk, th2), th2)
        h.hs2 = hs2_unfinished + fin_r
        h.th3 = hs.transcript(h.hs1, h.hs2)
        self._out.append(_framed(h.hs2))
        self._set_state(S.AWAIT_HS3)

    def _on_hs3(self, frame: bytes, now: float) -> None:
        fin_i = hs.parse_hs3(frame)
        h = self._hs
        expected = hs.finished(schedule.finished_key_i(h.prk, h.th3), h.th3)
        if not hmac.compare_digest(fin_i, expected):
            raise PeerError("bad_finished", "HS3")
        self._establish(now)

    # --- initiator: HS2 ------------------------------------------------------------------

    def _signed_hs1(self, signature: bytes, now: float) -> None:
        h = self._hs
        h.hs1 = h.hs1_prefix + signature
        h.hs1_prefix = None
        self._out.append(_framed(h.hs1))
        self._set_state(S.AWAIT_HS2)

    def _on_hs2(self, frame: bytes, now: float) -> None:
        if hs.frame_type(frame) == hs.T_ALERT:
            code = hs.alert_code(frame)
            raise PeerError(
                "peer_alert", {1: "generic", 2: "clock skew", 3: "busy"}.get(code, str(code))
            )
        n_i, n_r = self.identity.modulus_bytes, self.peer_key.modulus_bytes
        head, signed_prefix, sig_r, fin_r = hs.parse_hs2(frame, n_i, n_r)
        if head.fp_r != self.peer or head.fp_i != self.identity.fingerprint:
            raise PeerError("misdirected", "HS2 fingerprints")
        h = self._hs
        if not self.peer_key.verify_v2(sig_r, hs.hs2_signed_data(h.hs1, signed_prefix)):
            raise PeerError("bad_signature", "HS2")
        h.dh = h.e.exchange(head.e_r)
        if h.dh is None:
            raise PeerError("bad_ephemeral", "HS2")
        h.hs2, h.wrap = frame, fin_r
        wrap_r = hs.wrap_r_of(frame, n_i)
        identity = self.identity

        def finish():
            k_r = identity.unwrap_v2(wrap_r, hs.LABEL_R)
            if k_r is None or len(k_r) != 32:
                raise PeerError("bad_wrap", "HS2")
            return k_r

        self._start_job(S.FINISHING, finish)

    def _finished(self, k_r: bytes, now: float) -> None:
        h = self._hs
        h.prk = schedule.handshake_prk(h.dh, h.k_i, k_r)
        th2 = hs.transcript(h.hs1, h.hs2[:-32])
        expected = hs.finished(schedule.finished_key_r(h.prk, th2), th2)
        if not hmac.compare_digest(h.wrap, expected):
            raise PeerError("bad_finished", "HS2")
        h.th3 = hs.transcript(h.hs1, h.hs2)
        self._out.append(_framed(hs.hs3(hs.finished(schedule.finished_key_i(h.prk, h.th3), h.th3))))
        self._establish(now)

    # --- both: the session begins --------------------------------------------------------

    def _establish(self, now: float) -> None:
        h = self._hs
        i2r, r2i = schedule.traffic_secrets(h.prk, h.th3)
        self.session_id = schedule.session_id(h.prk, h.th3)
        send, recv = (i2r, r2i) if self.initiator else (r2i, i2r)
        lim = self.limits
        self._tx = RecordSender(
            send,
            now,
            max_frames=lim.key_update_frames,
            max_bytes=lim.key_update_bytes,
            max_age=lim.key_update_age,
        )
        self._rx = RecordReceiver(recv, now)
        self._hs = None  # forward secrecy: no handshake secret outlives this line
        self._splitter.max_frame = MAX_RECORD
        self._last_rx = self._established_at = now
        self._set_state(S.ESTABLISHED)
        self._events.append(Established(self.peer, self.session_id, self.initiator))

    # --- legacy v1 (PROTOCOL.md d: one envelope, or several back to back) ------------------

    def _on_next_v1(self, frame: bytes, now: float) -> None:
        self._legacy_env = _CHECKING
        if not frame[:1] or frame[0] not in _V1_FIRST_BYTES:
            raise PeerError("bad_v1_frame", "after an envelope")
        self._on_v1(frame, now)

    def _on_v1(self, frame: bytes, now: float) -> None:
        env = legacy.parse(frame, self.identity.modulus_bytes)  # steps 1-3
        sender_fp = bytes.fromhex(env.sender)
        if self.peer is not None and sender_fp != self.peer:
            raise PeerError("v1_sender_changed", "one connection carries one sender")
        sender = self.policy.v1_sender(sender_fp)  # step 4
        if sender is None or sender_fp == self.identity.fingerprint:
            raise PeerError("v1_unknown_sender")
        legacy.check_time(env, now)  # step 5
        if self.policy.v1_seen(sender_fp, env.message_id):  # step 6, the in-memory front
            raise PeerError("v1_replay")
        # Step 7. A connection whose first envelope verified as this sender already
        # proved it holds the sender's key; a bad signature after that closes it, so
        # its next envelopes cannot be used to spend our verifies.
        if self.peer is None and not self.policy.take_verify_token(self.source, sender_fp):
            raise PeerError("verify_budget")
        legacy.verify(env, sender)  # step 8
        if self.peer is None:  # the first envelope of this connection: its sender is known
            self._events.append(LegacyVerified(sender_fp))
        self.peer, self._legacy_env, self._v1_since = sender_fp, env, now
        self._admit_v1(now)

    def _admit_v1(self, now: float) -> None:
        # Step 10 before step 9: waiting for a slot must not record the ID as seen. A
        # verified envelope from a contact waits for a slot (the reading stops meanwhile)
        # instead of being refused: the original client never reads a refusal.
        if not self.policy.admit_v1(self.peer):
            if self.state is not S.LEGACY_WAIT:
                self._set_state(S.LEGACY_WAIT)
            self._events.append(SlotWanted())  # the owner calls retry_admission later
            return
        env, policy, identity, sender = self._legacy_env, self.policy, self.identity, self.peer

        def record_and_open():
            # Step 9 (the persistent seen table, authoritative; a store write, so it runs
            # here, off the owner's loop), then step 11.
            policy.v1_record(sender, env.message_id, env.timestamp, env.key_hash)
            return legacy.open_text(identity, env)

        self._start_job(S.LEGACY_OPENING, record_and_open, admitted=True)

    def _legacy_opened(self, text: str, now: float) -> None:
        env = self._legacy_env
        self._legacy_env = None
        self._set_state(S.LEGACY_READY)  # step 12: the owner commits (legacy_committed)
        self._last_rx = now
        self._v1_uncommitted += 1
        self._events.append(LegacyReceived(self.peer, env.message_id, env.timestamp, text))

    def _legacy_deadline(self) -> float:
        if self.state is S.LEGACY_READY:
            return self._last_rx + self.limits.v1_idle
        return self._v1_since + self.limits.v1_envelope_timeout

    def _legacy_timer(self, now: float) -> list:
        try:
            if self.state is S.LEGACY_READY:
                if self._splitter.buffered:
                    raise PeerError("legacy_timeout", "idle in the middle of an envelope")
                # Nothing is dropped: what was handed over is the owner's to commit.
                self._shut("legacy_idle")
                self._events.append(ConnectionClosed("legacy_idle"))
            else:
                raise PeerError("busy" if self.state is S.LEGACY_WAIT else "legacy_timeout")
        except PeerError as err:
            self._fail(err)
        return self._drain_events()

    # --- traffic ---------------------------------------------------------------------------

    def _on_record(self, frame: bytes, now: float) -> None:
        rtype, body = self._rx.open(frame)
        self._last_rx = now
        self._ping_out = None
        if rtype == KEY_UPDATE:
            # A sender updates only right before a frame it then seals under the new key,
            # so two in a row is a peer burning our CPU on key derivations.
            if self._after_update:
                raise PeerError("bad_key_update", "two key updates in a row")
            self._after_update = True
            return
        self._after_update = False
        if rtype == APP:
            self._on_batch(decode_batch(body))
        elif rtype == CLOSE:
            self._shut("peer_closed")  # the session keys go with the session
            self._events.append(ConnectionClosed("peer_closed", f"code {body[0]}", by_peer=True))
        else:
            raise PeerError("bad_record_type")

    def _on_batch(self, messages: list) -> None:
        # Validate the whole batch before acting on any of it (all or nothing).
        own, peer = self.identity.fingerprint, self.peer
        chats = []
        ack = None
        for msg in messages:
            if type(msg) is Chat:
                if msg.sender != peer or msg.recipient != own:
                    raise PeerError("misaddressed_chat")
                chats.append(msg)
            elif type(msg) is Ack:
                floor = self._acked_upto if ack is None else ack
                if not floor < msg.upto < self._chats_flushed:
                    raise PeerError("bad_ack", f"upto {msg.upto} of {self._chats_flushed} sent")
                ack = msg.upto
        for msg in messages:
            kind = type(msg)
            if kind is Ping:
                self._pending.append(Pong(msg.data))
            elif kind is Typing:
                self._events.append(TypingChanged(msg.active))
            elif kind is Throttle:
                self._events.append(Throttled(msg.reason, msg.retry_after_ms))
        if ack is not None:
            self._acked_upto = ack
            self._events.append(Acked(ack))
        if chats:
            first = self._chats_received
            self._chats_received += len(chats)
            self._events.append(MessagesReceived(tuple(chats), first, len(chats)))

    # --- output ----------------------------------------------------------------------------

    def _flush_messages(self, now: float) -> None:
        if self._ack_out > self._ack_sent:
            self._pending.insert(0, Ack(self._ack_out))
            self._ack_sent = self._ack_out
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self._chats_flushed = self._chats_sent  # every queued Chat goes out in this call
        bodies = []
        start, size = 0, 0
        for i, msg in enumerate(pending):
            if type(msg) is list:  # a Chat's checked fields (see _queue_chats)
                size += 120 + 4 * len(msg[5])
            else:
                pending[i] = _FIELDS[type(msg)](msg)
                size += 120
            if i - start + 1 == MAX_BATCH or size >= _BATCH_BYTES:
                bodies.append(encode_fields(pending[start : i + 1]))
                start, size = i + 1, 0
        if start < len(pending):
            bodies.append(encode_fields(pending[start:]))
        self._out.append(self._tx.seal_many(APP, bodies, now))

    def _require_established(self) -> None:
        if self.state is not S.ESTABLISHED:
            raise UsageError(f"the connection is {self.state.value}, not established")


def _framed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


_FRAME_HANDLERS = {
    S.LISTEN: Connection._on_first_frame,
    S.LEGACY_READY: Connection._on_next_v1,
    S.AWAIT_HS2: Connection._on_hs2,
    S.AWAIT_HS3: Connection._on_hs3,
}
_JOB_HANDLERS = {
    S.SIGNING_HS1: Connection._signed_hs1,
    S.RESPONDING: Connection._responded,
    S.FINISHING: Connection._finished,
    S.LEGACY_OPENING: Connection._legacy_opened,
}
