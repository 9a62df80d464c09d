"""Disappearing messages: setting a conversation's timer, and erasing what expired.

Rules:
- A timer is set by a TIMER (PROTOCOL.md), a counted control that goes through the
  outbox like a chat: exactly once, in order with the chats around it, and resent after
  a restart. Whoever sets it, the newest TIMER by (created_ms, id) holds on both sides
  (store/disappear.py applies it in the commit that stores it). Faces hear of each TIMER
  as ``TimerChanged`` (ours once its row is durable, theirs once stored), never as a
  message or a delivery.
- A message is sent under the timer in force on this side when the user sends it
  (``lasts_s``, read from ``timers``, a mirror of the store refreshed after each TIMER);
  a contact's message expires by the timer in force when it is stored.
- Expiry is checked now, at the next expiry, and at least every ``NAP_S`` (so a message
  goes within its timer + NAP_S), and at once when the clock jumps (``Clock.jumped``:
  tests move time, nothing sleeps). Each check erases what is due on the writer thread
  (store.expire_due), tells delivery (what waits in a queue is never sent; what a link
  carries is not resent), and publishes ``MessagesExpired`` per conversation and
  ``GroupMessagesExpired`` per group (a post of ours once, whatever its copies).
- A message still queued when its time comes is erased and never sent: its timer runs
  from when it was written, wherever it is. One already on the wire is erased by the
  contact by the same clock (from its created_ms).
"""

from __future__ import annotations

import asyncio
import logging

from enclave.node.display import message_ref
from enclave.node.events import GroupMessagesExpired, MessagesExpired, TimerChanged

log = logging.getLogger("enclave.node.disappear")

NAP_S = 30.0  # the longest wait between two checks
BATCH = 1000  # messages one check erases in one transaction (a backlog takes several)


class Disappearing:
    def __init__(self, store, delivery, publish, clock, nap_s: float = NAP_S) -> None:
        self.store, self.delivery, self.publish, self.clock = store, delivery, publish, clock
        self.nap_s = nap_s
        self.timers: dict[str, int] = store.disappear_timers()  # fp -> seconds (on only)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        delivery.on_timer = self.on_timer

    # --- the timer ------------------------------------------------------------------------

    def lasts_s(self, fp: str) -> int:
        """The timer a message sent to ``fp`` now is sent under (0: none)."""
        return self.timers.get(fp, 0)

    async def set(self, fp: str, seconds: int) -> TimerChanged:
        """Send a TIMER to ``fp``; returns once it is durable (and applied here)."""
        out = await self.delivery.submit(bytes.fromhex(fp), "", timer=seconds)
        event = self._applied(fp, seconds, "us", out.created_ms, out.id)
        self._wake.set()
        return event

    def on_timer(self, chat, shown: int | None) -> None:
        """A contact's TIMER was stored (and applied by the store if it is the newest)."""
        self._applied(chat.sender.hex(), chat.timer_s, "them", shown, chat.id)

    def _applied(self, fp: str, seconds: int, by: str, created_ms, mid: bytes) -> TimerChanged:
        peer = self.store.get_peer(fp)
        in_force = peer.disappear_s if peer is not None else 0
        if in_force:
            self.timers[fp] = in_force
        else:
            self.timers.pop(fp, None)
        event = TimerChanged(fp, seconds, in_force, by, created_ms, mid.hex())
        self.publish(event)
        return event

    # --- expiry -----------------------------------------------------------------------------

    def start(self) -> None:
        self.clock.watch(self._wake.set)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="enclave-expiry")

    async def close(self) -> None:
        self.clock.unwatch(self._wake.set)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        writer = self.delivery.writer
        while True:
            self._wake.clear()
            now = self.clock.now_ms()
            try:
                due = await loop.run_in_executor(writer, self.store.expire_due, now, BATCH)
                if len(due) == BATCH:
                    self._expired(due)
                    continue  # more are due: the next transaction at once
                nxt = await loop.run_in_executor(writer, self.store.next_expiry)
            except Exception:  # noqa: BLE001 - a failing disk: try again at the next nap
                log.exception("erasing expired messages failed")
                due, nxt = [], None
            self._expired(due)
            wait = self.nap_s if nxt is None else min(self.nap_s, max(0.0, (nxt - now) / 1000))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    def _expired(self, due: list) -> None:
        by_peer: dict[str, list] = {}
        by_group: dict[bytes, dict[bytes, None]] = {}  # a post of ours: one row per member
        for fp, rowid, mid, direction, group in due:
            by_peer.setdefault(fp, []).append((rowid, mid, direction, group))
            if group is not None:
                by_group.setdefault(group, {})[mid] = None
        for fp, rows in by_peer.items():
            ours = {rowid for rowid, _, direction, _ in rows if direction == "out"}
            if ours:
                self.delivery.drop_expired(bytes.fromhex(fp), ours)
            direct = [(mid, d) for _, mid, d, group in rows if group is None]
            if direct:
                keys = tuple(f"{d}:{mid.hex()}" for mid, d in direct)
                refs = tuple(message_ref(mid) for mid, _ in direct)
                self.publish(MessagesExpired(fp, keys, refs))
        for gid, mids in by_group.items():
            ids = tuple(mid.hex() for mid in mids)
            refs = tuple(message_ref(mid) for mid in mids)
            self.publish(GroupMessagesExpired(gid.hex(), ids, refs))
