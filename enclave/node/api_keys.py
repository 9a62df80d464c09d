"""The Node API for one's own identity key: rotation while the node runs.

Rules:
- ``rotate_key(password)`` makes a new RSA-4096 key, rotates the key files
  (``key_rotation.rotate``: the old key retired next to its statement, the new one under
  the same password, a new revocation certificate) and takes the new key over at once:
  new sessions use it, contacts that have not switched are still answered by the old
  key, and every session open now (all under the old key) carries the statement.
- A wrong password changes nothing (``UserError``). Key generation and scrypt run on a
  worker thread, never on the loop.
- Groups: the logs name members by key; after a rotation an admin adds the new key
  (README, "Rotating or revoking your key").
"""

from __future__ import annotations

import asyncio
import time
from typing import NamedTuple

from enclave.identity import home as homes
from enclave.identity import keys
from enclave.node import key_rotation
from enclave.protocol.crypto import Identity


class KeyRotated(NamedTuple):
    old_fp: str
    new_fp: str
    seq: int
    waiting: int  # contacts that will switch when they next talk to us


class KeysApi:
    """Mixed into ``Node``."""

    async def rotate_key(self, password: str, new_key=None) -> KeyRotated:
        """Rotate this home's identity to ``new_key`` (None: a new RSA-4096 key)."""
        loop = asyncio.get_running_loop()
        if new_key is None:
            new_key = await loop.run_in_executor(None, keys.generate)
        place, now_ms = homes.Home(self.home), time.time_ns() // 10**6
        rotation = await loop.run_in_executor(
            None, lambda: key_rotation.rotate(place, password, new_key, now_ms)
        )
        key_rotation.write_revocation_certificate(place, new_key, now_ms)
        await self._take_over(rotation.seq, new_key, rotation.statement)
        waiting = len(self.sessions.handover.pending)
        return KeyRotated(rotation.old_fp, rotation.new_fp, rotation.seq, waiting)

    async def _take_over(self, seq: int, new_key, statement: bytes) -> None:
        old, new = self.identity, Identity(new_key)
        self.identity, self.fingerprint = new, new.fingerprint.hex()
        s = self.sessions
        s.identity = new
        s.policy.own = new.fingerprint
        self.delivery.legacy.identity = new
        self.groups.identity, self.groups.own = new, new.fingerprint
        s.handover.rotated(seq, old, new, statement, time.time())
        for link in list(s.links.values()):
            conn = link.conn
            if conn is not None and conn.established and conn.peer in s.handover.pending:
                s.handover.session_up(link, conn.peer, s.policy.background)
        if self.discovery is not None:  # announce the new fingerprint
            await self._stop_discovery()
            await self._start_discovery(self.address[0])
