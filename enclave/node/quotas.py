"""Receive quotas: what one authenticated contact may make this node receive and keep.

The design (docs/PROTOCOL.md, "Receive quotas and THROTTLE"):

- Every batch of chats a contact sends passes ``ReceiveQuotas.admit`` before delivery
  stores it: a chat-rate and a byte-rate token bucket per contact (``receive_*_per_peer``)
  and a stored-bytes quota per contact (``stored_bytes_per_peer``). A batch is taken
  whole or not at all: its chats share one range of the session's cumulative acks.
- The size of a chat is the UTF-8 length of its body plus ``ROW_OVERHEAD`` (64 bytes, about
  what its row and index entries cost), so empty messages fill a quota too.
- A contact's stored bytes are ``base + stored + pending``: ``base`` is read from the
  store on the writer thread (never on the loop) the first time it sends after start,
  and its first batch waits for that read, its link unread; ``stored`` counts what
  commits stored since the read, ``pending`` what was admitted and is not committed
  yet. Commits and the read run in order on the writer, so each row is counted once.
  Deleting history does not lower the count before the next start.
- A refused batch is neither stored nor acked (``Intake``). The sender is told why
  (THROTTLE, with the time after which the batch would pass). For a short wait (at
  most ``HOLD_MAX``, and at most half of ``dead_after``: an unread link must not look
  dead to its own keepalive) the batch, and everything else already read from that
  session, waits in memory while the link is not read (TCP then holds the sender back:
  no unbounded buffer), and passes in order once the buckets allow. For a longer wait,
  or a full stored-bytes quota (retried after ``STORAGE_RETRY``), the session is closed
  after the THROTTLE (once what it had admitted is stored and acked, unread meanwhile)
  and what waited is dropped: the sender resends every unacked chat on its next
  session and the store's (peer, id) dedupe shows none twice. Acks are cumulative, so
  nothing after a refused batch may be acked before it: that is why a session's later
  batches wait behind it rather than pass it.
- A legacy v1 envelope over quota is not stored and its connection is closed (the
  original client reads no reply to be told anything).

The sender's side: a peer that says THROTTLE is handed no new messages and not dialled
until its retry time has passed (``PeerThrottles``, asked by delivery's dispatch); the
user hears of it (``Throttled``) at most every ``NOTICE_EVERY`` seconds per peer and
reason.

``ReceiveQuotas`` is accounting only (time passed in, no asyncio); ``Intake`` holds
batches, pauses links and arms timers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque

from enclave.node.budgets import KeyedBuckets
from enclave.node.events import NodeProblem, Throttled
from enclave.protocol.messages import (
    MAX_RETRY_AFTER_MS,
    THROTTLE_RATE,
    THROTTLE_REASONS,
    THROTTLE_STORAGE,
    THROTTLE_VOLUME,
)

log = logging.getLogger("enclave.node.quotas")

ROW_OVERHEAD = 64  # bytes a stored message costs besides its body
HOLD_MAX = 10.0  # seconds a refused batch may wait on an open session (see from_settings)
STORAGE_RETRY = 300.0  # seconds a sender whose stored-bytes quota is full is told to wait
MIN_NOTICE = 0.05  # a wait shorter than this is not told again (the sender knows already)
MAX_PEERS = 1 << 16  # contacts tracked by the buckets at once (authenticated keys only)
NOTICE_EVERY = 10.0  # seconds between two Throttled events for one peer and reason


def size_of(chats) -> int:
    """Bytes a batch adds to its sender's stored quota (bodies as UTF-8, plus rows)."""
    total = ROW_OVERHEAD * len(chats)
    for c in chats:
        body = c.body
        total += len(body) if body.isascii() else len(body.encode("utf-8", "surrogatepass"))
    return total


class ReceiveQuotas:
    """Per-contact budgets of what it may send: ``admit`` says yes (and counts) or why not."""

    def __init__(
        self,
        rate: float,
        burst: float,
        bytes_rate: float,
        bytes_burst: float,
        stored_max: int,
        hold_max: float = HOLD_MAX,
    ) -> None:
        self.chats = KeyedBuckets(rate, burst, max_keys=MAX_PEERS)
        self.volume = KeyedBuckets(bytes_rate, bytes_burst, max_keys=MAX_PEERS)
        self.stored_max = stored_max
        self.hold_max = hold_max  # a longer wait ends the session instead
        self._base: dict[bytes, int] = {}  # read from the store; absent until read
        self._stored: dict[bytes, int] = {}  # stored by commits since the base was read
        self._pending: dict[bytes, int] = {}  # admitted, not committed yet

    @classmethod
    def from_settings(cls, s) -> ReceiveQuotas:
        return cls(
            s.receive_rate_per_peer,
            s.receive_burst_per_peer,
            s.receive_bytes_rate_per_peer,
            s.receive_bytes_burst_per_peer,
            s.stored_bytes_per_peer,
            # A held link is not read, so its keepalive does not see the peer: the wait
            # must end well before the session would be declared dead.
            min(HOLD_MAX, s.dead_after / 2),
        )

    def known(self, peer: bytes) -> bool:
        return peer in self._base

    def usage(self, peer: bytes) -> int:
        """Bytes of this contact's messages held or about to be (see the module rules)."""
        return self._base.get(peer, 0) + self._stored.get(peer, 0) + self._pending.get(peer, 0)

    def admit(self, peer: bytes, count: int, size: int, now: float) -> tuple[int, float] | None:
        """None: the batch is taken (and counted as pending). Else (reason, seconds after
        which it would pass): THROTTLE_STORAGE, THROTTLE_RATE or THROTTLE_VOLUME."""
        if self.usage(peer) + size > self.stored_max:
            return THROTTLE_STORAGE, STORAGE_RETRY
        chats_wait = self.chats.time_until(peer, now, count)
        bytes_wait = self.volume.time_until(peer, now, size)
        if chats_wait or bytes_wait:
            if chats_wait >= bytes_wait:
                return THROTTLE_RATE, chats_wait
            return THROTTLE_VOLUME, bytes_wait
        if not (self.chats.take(peer, now, count) and self.volume.take(peer, now, size)):
            # A newcomer while MAX_PEERS contacts are all mid-refill (its chat tokens may
            # be spent if only the byte table was full): try again soon.
            return THROTTLE_RATE, 1.0
        self._pending[peer] = self._pending.get(peer, 0) + size
        return None

    def committed(self, peer: bytes, admitted: int, stored: int) -> None:
        """A commit stored ``stored`` of the ``admitted`` bytes (the rest were duplicates)."""
        left = self._pending.get(peer, 0) - admitted
        if left > 0:
            self._pending[peer] = left
        else:
            self._pending.pop(peer, None)
        if stored:
            self._stored[peer] = self._stored.get(peer, 0) + stored

    def loaded(self, peer: bytes, messages: int, body_bytes: int) -> None:
        """The store's count for this contact: it includes every commit applied so far."""
        self._base[peer] = body_bytes + ROW_OVERHEAD * messages
        self._stored.pop(peer, None)


class Intake:
    """Where authenticated chats enter delivery: each batch passes the quotas or waits."""

    def __init__(self, quotas: ReceiveQuotas, delivery) -> None:
        self.quotas = quotas
        self.delivery = delivery  # on_chats, store, writer, publish, is_paused
        self.stats = {"throttled": 0, "refused_legacy": 0}
        self._held: dict[object, deque] = {}  # link -> (chats, upto, legacy) waiting, in order
        self._timers: dict[object, asyncio.TimerHandle] = {}
        self._unstored: dict[object, int] = {}  # link -> last admitted upto, not acked yet
        self._closing: set = set()  # links to close once their admitted chats are acked
        self._loading: dict[bytes, set] = {}  # peer -> links waiting for its stored bytes
        self._told_full: set[bytes] = set()  # contacts whose full quota the user heard of

    def holding(self, link) -> bool:
        return link in self._held

    def chats(self, link, chats, upto: int | None, legacy: bool = False) -> None:
        """Chats from one authenticated frame (or one v1 envelope, ``upto`` None)."""
        if link in self._closing:
            return  # read behind a refusal that ends the session: never acked, so resent
        held = self._held.get(link)
        if held is None:
            held = self._held[link] = deque()
        held.append((chats, upto, legacy))
        if len(held) == 1:  # otherwise it waits behind a batch that waits already
            self._pass(link, retrying=False)

    def stored(self, link, upto: int) -> None:
        """Delivery committed (and acked) the link's chats up to ``upto``."""
        if self._unstored.get(link) == upto:
            del self._unstored[link]
            if link in self._closing:
                self._closing.discard(link)
                link.close("throttled")

    def forget(self, link) -> None:
        """The link's session ended: what waited is dropped (never acked, so resent)."""
        self._drop(link)
        self._unstored.pop(link, None)
        self._closing.discard(link)

    def _drop(self, link) -> None:
        self._held.pop(link, None)
        timer = self._timers.pop(link, None)
        if timer is not None:
            timer.cancel()

    def _pass(self, link, retrying: bool) -> None:
        """Hand the link's waiting batches to delivery, in order, while the quotas allow;
        read the link again once none waits."""
        held = self._held[link]
        while held:
            chats, upto, legacy = held[0]
            if not chats:  # a batch of refused group posts: no quota, only its ack, in order
                held.popleft()
                self._unstored[link] = upto
                self.delivery.on_chats(link, chats, upto, legacy, 0)
                continue
            peer = chats[0].sender
            if not self.quotas.known(peer):  # its stored bytes are being read
                self._load(peer, link)
                link.pause_reading()
                return
            size = size_of(chats)
            verdict = self.quotas.admit(peer, len(chats), size, time.monotonic())
            if verdict is not None:
                self._refuse(link, peer, legacy, *verdict, retrying)
                return
            held.popleft()
            if upto is not None:
                self._unstored[link] = upto
            self.delivery.on_chats(link, chats, upto, legacy, size)
        del self._held[link]
        if not link.reading and not self.delivery.is_paused(link):  # a full disk holds it too
            link.resume_reading()

    # --- refusing -------------------------------------------------------------------------

    def _refuse(
        self, link, peer: bytes, legacy: bool, reason: int, wait: float, retrying: bool
    ) -> None:
        if legacy:
            self.stats["refused_legacy"] += 1
            log.warning("v1 envelope from %s dropped: over its receive quota", peer.hex()[:16])
            self._close(link, peer, reason)
            return
        if link.conn is None or not link.conn.established:
            self._drop(link)  # the session is ending: nothing more of it is acked
            return
        self.stats["throttled"] += 1
        if not retrying or wait >= MIN_NOTICE:  # a sender already told needs no crumbs
            link.conn.send_throttle(reason, min(MAX_RETRY_AFTER_MS, math.ceil(wait * 1000)))
        if reason == THROTTLE_STORAGE or wait > self.quotas.hold_max:
            log.info("closing %s's session: over its receive quota (%d)", peer.hex()[:16], reason)
            self._close(link, peer, reason)  # the THROTTLE goes out first, then CLOSE
            return
        link.pause_reading()
        link.schedule_flush()
        loop = asyncio.get_running_loop()
        self._timers[link] = loop.call_later(max(wait, 0.001), self._retry, link)

    def _retry(self, link) -> None:
        self._timers.pop(link, None)
        if link not in self._held:
            return
        if link.conn is None or not link.conn.established:
            self.forget(link)
            return
        self._pass(link, retrying=True)

    def _close(self, link, peer: bytes, reason: int) -> None:
        """End the session, once what it had admitted is stored and acked (so the sender
        does not send that again): nothing more is read from it meanwhile."""
        self._drop(link)
        if reason == THROTTLE_STORAGE:
            self._tell_full(peer)
        if link in self._unstored:
            self._closing.add(link)
            link.pause_reading()
            link.schedule_flush()
        else:
            link.close("throttled")

    def _tell_full(self, peer: bytes) -> None:
        if peer in self._told_full:
            return
        self._told_full.add(peer)
        self.delivery.publish(
            NodeProblem(
                f"peer {peer.hex()[:16]} has filled its storage quota on this node"
                f" ({self.quotas.usage(peer):,} of {self.quotas.stored_max:,} bytes):"
                " its new messages wait on its side; raise stored_bytes_per_peer to take them"
            )
        )

    # --- the stored-bytes base ----------------------------------------------------------

    def _load(self, peer: bytes, link) -> None:
        waiting = self._loading.get(peer)
        if waiting is not None:
            waiting.add(link)
            return
        try:
            fut = asyncio.get_running_loop().run_in_executor(
                self.delivery.writer, self.delivery.store.incoming_size, peer.hex()
            )
        except RuntimeError:  # the writer is shut down: the node is stopping
            return
        self._loading[peer] = {link}
        fut.add_done_callback(lambda f: self._loaded(peer, f))

    def _loaded(self, peer: bytes, fut: asyncio.Future) -> None:
        waiting = self._loading.pop(peer, set())
        if fut.cancelled():
            return
        err = fut.exception()
        if err is not None:  # the store cannot be read: count from zero rather than stall
            log.warning("could not read %s's stored bytes: %s", peer.hex()[:16], err)
            self.quotas.loaded(peer, 0, 0)
        else:
            self.quotas.loaded(peer, *fut.result())
        for link in waiting:
            if link in self._held and link not in self._timers:
                self._pass(link, retrying=False)


class PeerThrottles:
    """Peers that told us THROTTLE, until when: nothing new goes to them meanwhile."""

    def __init__(self, publish, over) -> None:
        self.publish = publish
        self.over = over  # over(peer): the wait has passed (delivery dispatches again)
        self._until: dict[bytes, float] = {}  # peer -> loop time its wait ends
        self._told: dict[bytes, tuple[float, int]] = {}  # peer -> (when, reason) shown

    def __contains__(self, peer: bytes) -> bool:
        return peer in self._until

    def told(self, peer: bytes, reason: int, retry_after_ms: int) -> None:
        loop = asyncio.get_running_loop()
        wait = min(retry_after_ms, MAX_RETRY_AFTER_MS) / 1000
        until = self._until[peer] = loop.time() + wait  # the latest word counts
        loop.call_later(wait, self._over, peer, until)
        now = time.monotonic()
        last = self._told.get(peer)
        if last is None or last[1] != reason or now - last[0] >= NOTICE_EVERY:
            self._told[peer] = (now, reason)
            self.publish(Throttled(peer.hex(), THROTTLE_REASONS[reason], wait))

    def _over(self, peer: bytes, until: float) -> None:
        if self._until.get(peer) == until:  # not replaced by a later THROTTLE
            del self._until[peer]
            self.over(peer)
