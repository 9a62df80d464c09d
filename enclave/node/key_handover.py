"""Key rotation over sessions, both ways (docs/PROTOCOL.md, "Key succession").

Our side (``Handover``): after a rotation, every contact of its time still knows us by
the retired key. Until it says KEY_SWITCHED:
- the retired key still answers its handshakes (``retired_identity``: HS1's fp_R picks
  it), and our dials to it show the retired key; after a handshake under one key that
  the contact refused, the next dial shows the other (a contact that switched while
  its KEY_SWITCHED was lost knows only the current key). A dial that never reached the
  contact (a dead address) changes nothing;
- every session under a retired key carries the statements from that key to the
  current one, oldest first;
- its KEY_SWITCHED for the current key ends the hand-over: the retired-key sessions
  close ("key_rotated") and what is queued goes out under the current key. A session
  under the current key proves the same.

Their side (``Successions``): a contact's KEY_SUCCESSION is judged on the crypto
threads against the session's peer (``key_succession.accept_succession``: a contact
hands over only its own key) and, once stored, the contact's row has its new key in
place: we answer KEY_SWITCHED, end the sessions under the old key, and every table that
knew the old fingerprint is read again. Statements are judged one at a time in arrival
order (the store's writer thread); the first of a chain ends the session, and the
contact hands over the rest on its next one, under the key we then know. A refused statement is logged with its reason,
the user is told what to do (re-pair), and the session goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import NamedTuple

from enclave.errors import PeerError
from enclave.protocol import succession as sc

from . import key_succession
from .events import KeyChanged, NodeProblem

log = logging.getLogger("enclave.node.key_handover")


class Handover:
    """Our rotations: the retired identities and the statements that hand them over."""

    def __init__(self, store, current, retired, publish) -> None:
        """``retired``: (seq, protocol.crypto.Identity of the key rotation ``seq``
        retired, its encoded statement), any order."""
        self.store = store
        self.current = current
        self.publish = publish
        self.statements: dict[int, bytes] = {}
        self.by_seq: dict[int, object] = {}  # seq -> the identity that rotation retired
        self.by_fp: dict[bytes, int] = {}  # a retired fingerprint -> its seq
        self.seq_of_new: dict[bytes, int] = {}  # a successor's fingerprint -> its seq
        self.last = 0
        for seq, identity, statement in retired:
            self._retire(seq, identity, statement)
        self.pending: dict[bytes, int] = {}  # contact -> the oldest rotation it owes
        self._use_current: set[bytes] = set()  # it refused our retired key: try the current

    def _retire(self, seq: int, identity, statement: bytes) -> None:
        decoded = sc.decode_succession(statement)
        self.statements[seq] = statement
        self.by_seq[seq] = identity
        self.by_fp[identity.fingerprint] = seq
        self.seq_of_new[decoded.new_fp] = seq
        self.last = max(self.last, seq)

    def rotated(self, seq: int, old, new, statement: bytes, now: float) -> None:
        """A rotation while the node runs: ``old`` is retired, ``new`` is current, and
        every contact owes ``seq`` (plus what it owed before)."""
        self._retire(seq, old, statement)
        self.current = new
        self.store.begin_handover(seq, now)
        for fp_hex, oldest in self.store.handover_table().items():
            self.pending[bytes.fromhex(fp_hex)] = oldest

    def start(self, now: float) -> None:
        """Make the rows of rotations not begun yet; read what every contact owes."""
        for seq in sorted(self.statements):
            self.store.begin_handover(seq, now)
        for fp_hex, seq in self.store.handover_table().items():
            if seq in self.by_seq:
                self.pending[bytes.fromhex(fp_hex)] = seq
            else:  # the retired key is gone from the home: nothing can hand it over
                log.warning("rotation %d: retired key missing, contact %s", seq, fp_hex[:16])

    def retired_identity(self, fp: bytes):
        seq = self.by_fp.get(fp)
        return None if seq is None else self.by_seq[seq]

    def identity_for_dial(self, peer: bytes):
        """The identity a new dial to ``peer`` shows (see the module docstring)."""
        seq = self.pending.get(peer)
        if seq is None or peer in self._use_current:
            return self.current
        return self.by_seq[seq]

    def dial_ended(self, link) -> None:
        """One of our dials closed: if the contact refused the key it showed before any
        session came up, the next dial shows the other one."""
        peer, conn, up = link.dialled, link.conn, link.established
        # ``up`` is cancelled when the dial's task was (another session came first):
        # then nothing is known of the handshake.
        if peer not in self.pending or conn is None or not up.done() or up.cancelled():
            return
        if up.result():
            return
        if conn.identity.fingerprint in self.by_fp:
            self._use_current.add(peer)
        else:
            self._use_current.discard(peer)

    def session_up(self, link, peer: bytes, background) -> None:
        seq = self.pending.get(peer)
        if seq is None:
            return
        identity = link.conn.identity
        if identity.fingerprint == self.current.fingerprint:
            self._done(peer, None, background)
            return
        first = self.by_fp.get(identity.fingerprint, seq)
        for k in range(first, self.last + 1):
            link.conn.send_key_succession(self.statements[k])
        link.schedule_flush()

    def on_switched(self, link, peer: bytes, new_fp: bytes, background) -> bool:
        """The contact applied our statements up to the one naming ``new_fp``; True
        when it knows our current key (the caller ends the retired-key sessions)."""
        seq = self.seq_of_new.get(new_fp)
        if seq is None or peer not in self.pending:
            log.info("key_switched from %s ignored: not a hand-over under way", peer.hex()[:16])
            return False
        if seq < self.last:
            self.pending[peer] = seq + 1
            background(self.store.handover_done, peer.hex(), seq)
            return False
        self._done(peer, seq, background)
        return True

    def _done(self, peer: bytes, seq: int | None, background) -> None:
        self.pending.pop(peer, None)
        self._use_current.discard(peer)
        background(self.store.handover_done, peer.hex(), seq)
        log.info("contact %s knows our current key", peer.hex()[:16])

    def is_retired_session(self, link) -> bool:
        conn = link.conn
        return conn is not None and conn.identity.fingerprint in self.by_fp


class Already(NamedTuple):
    new_fp: bytes


class Successions:
    """A contact's KEY_SUCCESSION, judged off the loop and applied (module docstring)."""

    def __init__(self, sessions, store, publish, changed) -> None:
        self.sessions = sessions
        self.store = store
        self.publish = publish
        self.changed = changed  # (old fp, new fp): re-read every table that knew ``old``
        self.refused = 0

    def on_statement(self, link, statement: bytes) -> None:
        # On the store's writer thread: one at a time, in arrival order, so a chain of
        # statements is applied oldest first.
        peer = link.conn.peer
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self.sessions.policy.writer, self._judge, peer.hex(), statement)
        job.add_done_callback(lambda fut: self._judged(link, peer, fut))

    def _judge(self, sender: str, statement: bytes):
        try:
            return key_succession.accept_succession(self.store, sender, statement, time.time())
        except PeerError as err:
            if err.reason == "succession_unknown_key" and self._applied(sender, statement):
                return Already(sc.decode_succession(statement).new_fp)
            return err

    def _applied(self, sender: str, statement: bytes) -> bool:
        """The very hand-over of the session's own (old) key was applied already (it
        came on another session of the same contact): not a refusal, a late copy."""
        try:
            s = sc.decode_succession(statement)
        except PeerError:
            return False
        if s.old_fp.hex() != sender:
            return False
        applied = self.store.succession_statement(sender)
        return applied is not None and sc.decode_succession(applied).new_fp == s.new_fp

    def _judged(self, link, peer: bytes, fut) -> None:
        if fut.cancelled():
            return
        result = fut.exception() or fut.result()
        if isinstance(result, Already):
            if link.conn is not None and link.conn.established:
                link.conn.send_key_switched(result.new_fp)
                link.schedule_flush()
            return
        if isinstance(result, PeerError):
            self._refuse(peer, result)
            return
        if isinstance(result, BaseException):
            log.error("succession from %s not applied: %r", peer.hex()[:16], result)
            return
        new = bytes.fromhex(result.new_fp)
        conn = link.conn
        if conn is not None and conn.established:
            conn.send_key_switched(new)  # goes out before the CLOSE that ``changed`` sends
        self.changed(peer, new)
        record = self.store.get_peer(result.new_fp)
        name = record.name if record is not None else None
        applied_ms = time.time_ns() // 10**6
        self.publish(KeyChanged(result.new_fp, result.old_fp, name, result.seq, applied_ms))

    def _refuse(self, peer: bytes, err: PeerError) -> None:
        self.refused += 1
        log.warning(
            "succession from %s refused: %s %s", peer.hex()[:16], err.reason, err.detail or ""
        )
        if err.reason in ("succession_bad_signature", "succession_fork", "succession_revoked"):
            record = self.store.get_peer(peer.hex())
            who = record.name if record is not None and record.name else peer.hex()[:16]
            self.publish(
                NodeProblem(
                    f"{who} sent a key change that is not signed by their previous key "
                    f"({err.reason.removeprefix('succession_').replace('_', ' ')}); it was "
                    f"refused. If {who} really has a new key, pair again: enclave invite / join"
                )
            )
