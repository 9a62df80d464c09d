"""Read receipts: telling a contact what we read, and learning what it read of ours.

Rules:
- Off unless the user allows them for a contact (``peers.receipts``, schema 9), and
  both sides must: we tell a contact what we read only where our user allows it, and
  take its READs only where our user allows it too (so a contact that does not allow
  them sees nothing of ours, and we show nothing of its).
- We tell (READ ``upto`` = the id of the newest of its direct messages we hold) when a
  face marks that chat read: at once over a live session, else at its next session.
  An untold receipt is kept in memory only: it is a courtesy, not a delivery, and a
  restart may forget it (the next reading tells it again).
- A contact's READ: its ``upto`` only ever grows, and what it says is applied at once,
  then at most once per FLUSH_S (the newest ``upto`` of the contacts heard meanwhile,
  one UPDATE each off the loop), so a contact that floods READs costs one small write
  a second. A READ naming a message we never sent
  marks at most the ones before it: nothing it could say harms more than a lie.
- What changed reaches every face as ``MessagesRead``.
"""

from __future__ import annotations

import asyncio
import time

from enclave.node.events import MessagesRead

FLUSH_S = 1.0


class Receipts:
    def __init__(self, sessions, store, publish, flush_s: float = FLUSH_S) -> None:
        self.sessions, self.store, self.publish = sessions, store, publish
        self.flush_s = flush_s
        self.allowed = {p.fingerprint for p in store.list_peers() if p.receipts}
        self._owed: dict[str, bytes] = {}  # fp -> upto we still have to tell
        self._told: dict[str, bytes] = {}  # fp -> the last upto we told
        self._heard: dict[str, bytes] = {}  # fp -> the newest upto heard, not yet applied
        self._seen: dict[str, bytes] = {}  # fp -> the newest upto applied
        self._timer: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")  # loop time of the last flush
        self.shown: dict[str, bytes] = {}  # fp -> newest id shown, maybe not committed yet

    # --- the user's choice ------------------------------------------------------------

    def set_allowed(self, fp: str, allowed: bool) -> None:
        self.store.set_receipts(fp, allowed)
        if allowed:
            self.allowed.add(fp)
        else:
            self.allowed.discard(fp)
            self._owed.pop(fp, None)
            self._heard.pop(fp, None)

    # --- ours: the user read a chat ----------------------------------------------------

    def read_by_us(self, fp: str) -> None:
        if fp not in self.allowed:
            return
        upto = self.store.newest_received_id(fp)
        shown = self.shown.get(fp)  # shown before its commit (delivery's rules)
        if shown is not None and (upto is None or shown > upto):
            upto = shown
        if upto is None or upto == self._told.get(fp):
            return
        self._owed[fp] = upto
        self._tell(fp)

    def session_up(self, peer: bytes) -> None:
        if peer.hex() in self._owed:
            self._tell(peer.hex())

    def _tell(self, fp: str) -> None:
        upto = self._owed[fp]
        if self.sessions.send_read(bytes.fromhex(fp), upto):
            self._told[fp] = upto
            del self._owed[fp]

    # --- theirs: a contact read ours ---------------------------------------------------

    def on_read(self, peer: bytes, upto: bytes) -> None:
        fp = peer.hex()
        if fp not in self.allowed:
            return
        newest = max(self._heard.get(fp, b""), self._seen.get(fp, b""))
        if upto <= newest:
            return  # nothing new: a repeat costs nothing
        self._heard[fp] = upto
        if self._timer is None:  # the first at once, then one flush per FLUSH_S at most
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._last_flush + self.flush_s - loop.time())
            self._timer = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        self._timer = None
        self._last_flush = asyncio.get_running_loop().time()
        batch, self._heard = self._heard, {}
        now = int(time.time() * 1000)

        def apply() -> list[str]:
            return [fp for fp, upto in batch.items() if self.store.mark_read(fp, upto, now)]

        def applied(changed: list[str]) -> None:
            self._seen.update(batch)
            for fp in changed:
                self.publish(MessagesRead(fp, batch[fp].hex(), now))

        writer = self.sessions.policy.writer  # the store's writer thread (None: not started)
        if writer is None:
            applied(apply())
            return

        def done(fut) -> None:
            if not fut.cancelled() and fut.exception() is None:
                applied(fut.result())  # else a failing disk: the next READ tries again

        asyncio.get_running_loop().run_in_executor(writer, apply).add_done_callback(done)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
