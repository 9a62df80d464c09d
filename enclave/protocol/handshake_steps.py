"""The v2 handshake steps of a connection (PROTOCOL.md b), both roles.

``HandshakeSteps`` is mixed into ``Connection``: its methods are the frame and job
handlers of the handshake states (see ``_FRAME_HANDLERS`` and ``_JOB_HANDLERS`` in
connection.py) and work on the connection's own state. The responder checks HS1,
answers with HS2 and verifies HS3; the initiator checks HS2 and answers with HS3.
Both end in ``_establish``. The wire formats are in handshake.py.
"""

import hmac

from ..errors import PeerError
from . import handshake as hs
from . import schedule
from .crypto import X25519Keypair, random_bytes
from .events import Established
from .records import MAX_RECORD, RecordReceiver, RecordSender
from .states import S


class _Handshake:
    """Secrets that live only until the session is established (then dropped)."""

    __slots__ = ("e", "k_i", "k_r", "dh", "hs1", "hs1_prefix", "hs2", "prk", "th3", "wrap", "peer")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, None)


def _framed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


class HandshakeSteps:
    """The handshake steps of ``Connection``; all the state they use is the connection's."""

    __slots__ = ()

    # --- responder: HS1 ------------------------------------------------------------------

    def _on_hs1(self, frame: bytes, now: float) -> None:
        head = hs.parse_hs1_head(frame)  # check 3
        own = self.identity.fingerprint
        if head.fp_r != own:  # check 4
            # A key we handed over answers for contacts that have not switched yet
            # (docs/PROTOCOL.md, "Key succession"): this session is then under it.
            retired = self.policy.retired_identity(head.fp_r)
            if retired is None:
                raise PeerError("misdirected", "HS1 is for another fingerprint")
            self.identity, own = retired, head.fp_r
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
