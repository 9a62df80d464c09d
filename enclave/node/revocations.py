"""A contact's revocation certificate, arriving on our port without a session.

Rules:
- The certificate's owner may have lost the password (that is what it is for), so it
  comes on a connection of its own (first frame ``succession.REVOKE_MAGIC``), not in
  a session: no handshake, no private-key work on our side.
- Before any public-key work, a well-formed certificate takes a verify token for its
  source like an HS1 does (a flood of them costs what a flood of handshakes costs).
- It is judged on the store's writer thread (``key_succession.accept_revocation``:
  only a contact's current key, signed by that key). Whatever the outcome, the sender
  is told "received" and the connection closes: a prober learns nothing of the
  address book. A refusal is logged with its reason and changes nothing.
- An accepted one makes the contact a stranger at once (``revoked`` callback): its
  sessions close, its handshakes are refused, nothing is sent to it, and the faces
  say why and what to do.
"""

from __future__ import annotations

import asyncio
import logging

from enclave.errors import PeerError
from enclave.protocol import succession as sc

from . import key_succession

log = logging.getLogger("enclave.node.revocations")


class Revocations:
    def __init__(self, sessions, store, revoked) -> None:
        self.sessions = sessions
        self.store = store
        self.revoked = revoked  # (fingerprint hex) -> None, on the loop
        self.refused = 0

    def on_frame(self, link, data: bytes) -> None:
        try:
            cert = sc.decode_revocation(data)
        except PeerError as err:
            self._refuse(link, err)
            link.close(err.reason)
            return
        if not self.sessions.policy.take_verify_token(link.address, cert.fp):
            self._refuse(link, PeerError("verify_budget"))
            link.close("verify_budget")
            return
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self.sessions.policy.writer, self._judge, data)
        job.add_done_callback(lambda fut: self._judged(link, fut))

    def _judge(self, data: bytes):
        try:
            return key_succession.accept_revocation(self.store, data)
        except PeerError as err:
            return err

    def _judged(self, link, fut) -> None:
        if fut.cancelled():
            return
        result = fut.exception() or fut.result()
        conn = link.conn
        if conn is not None and not conn.closed:
            conn.send_revocation_received()
            link.close("revocation_received")
        if isinstance(result, PeerError):
            self._refuse(link, result)
        elif isinstance(result, BaseException):
            log.error("revocation from %s not applied: %r", link.address, result)
        else:
            log.info("contact %s revoked its key", result[:16])
            self.revoked(result)

    def _refuse(self, link, err: PeerError) -> None:
        self.refused += 1
        log.warning("revocation from %s refused: %s %s", link.address, err.reason, err.detail or "")
