"""Legacy v1 inbound on a connection (PROTOCOL.md d): one envelope, or several back
to back on a pooled connection of the original client.

``InboundV1`` is mixed into ``Connection``: it checks, admits and opens each envelope
(states LEGACY_WAIT, LEGACY_OPENING, LEGACY_READY), holds the bytes that arrive while
an envelope is being worked on, and keeps the legacy deadlines. It also carries the
owner's side of that flow (``wants_data``, ``retry_admission``, ``legacy_committed``).
The envelope format and its checks are in legacy.py.
"""

from ..errors import PeerError, UsageError
from . import legacy
from .events import ConnectionClosed, LegacyReceived, LegacyVerified, SlotWanted
from .states import _LEGACY_BUSY, S

_V1_FIRST_BYTES = (0x88, 0x89)  # a msgpack map of 8 or 9 entries
_CHECKING = object()  # _legacy_env while a v1 frame is being checked (before it parsed)


class InboundV1:
    """The legacy v1 steps of ``Connection``; all the state they use is the connection's."""

    __slots__ = ()

    # --- the owner's side ------------------------------------------------------------------

    @property
    def wants_data(self) -> bool:
        """False while a legacy envelope is being worked on and the next one is already
        held whole: the owner stops reading until this turns True again."""
        if self.state not in _LEGACY_BUSY:
            return True
        return len(self._held) + self._splitter.buffered <= self.limits.v1_frame + 4

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

    # --- held bytes and closing ----------------------------------------------------------

    def _hold(self, data: bytes) -> None:
        # The next pooled envelope waits for its turn (PROTOCOL.md d). The owner stops
        # reading once ``wants_data`` is False; a peer that keeps the bytes coming past
        # several envelopes' worth is not the original client.
        if len(self._held) + self._splitter.buffered + len(data) > 8 * (self.limits.v1_frame + 4):
            raise PeerError("unexpected_data", "far beyond the envelope being worked on")
        self._held += data

    def _v1_dropping(self) -> bool:
        """Closing now drops a legacy envelope: one being checked or worked on, or bytes
        of one that came (or may have: a first frame cut short where v1 is on)."""
        if self._legacy_env is not None:
            return True
        pending = self._held or self._splitter.buffered
        if self.state is S.LEGACY_READY:
            return bool(pending)
        return self.state is S.LISTEN and self._v1_enabled and bool(pending)

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
