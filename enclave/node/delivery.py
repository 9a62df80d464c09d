"""Message fate: the outbox, dispatch onto sessions, acks, dedupe, group commits.

Rules:
- A message gets its 16-byte ID and its rowid once, in ``submit``. It goes to its
  link at once, while its outbox row is being committed (latency: the sender's commit
  is off the path); it is reported queued only once that row is committed, and
  delivered only once the recipient acked it AND a commit after its own marked it so.
  It leaves the outbox only when that recipient acks it (or the user gives up on it):
  delivered exactly once in effect, never silently lost once reported queued. A v1
  (legacy) recipient gets its envelope only after the commit. Sending first is safe
  through a kill: before a message goes out ahead of its commit, its row is in the
  store's sending log (store/sending.py, one write per dispatch, no fsync), and the next
  run puts back in the outbox what no commit stored, with its id, so the recipient's
  dedupe takes the resend as the same message. While that log cannot be written (a
  full disk), new messages wait for their commit before going out.
- For each peer at most one link carries unacked messages at a time (the "carrier"),
  so the receiver gets them in outbox order; a new carrier is a session without file
  data when the peer has one (``Sessions.pick_chat``). When a carrier dies, its unacked
  messages go back to the front of the queue and go out again on the next session.
- Received chats are stored in group commits by one writer thread; a session is acked
  only after the commit that stored its chats. A duplicate (same peer, creation time
  and ID: the store's dedupe key, which the ring in front of it shares) is acked and
  never published twice.
- Shown before stored: a direct chat is shown (``MessageReceived``) as soon as it is
  decrypted when it is certainly new and in order: its (created_ms, id) is above the
  highest its sender ever had stored here (the "mark", read from the store at the
  sender's first commit of this run, then kept up to date by each commit), no copy of
  it waits for a commit, and nothing of that sender waits unshown before it. The ack
  still waits for the commit. Anything else is shown by its commit, as before: a resend
  of a stored chat, a sender's first chats of the run, group posts, TIMERs and v1
  envelopes (their order with the chats around them holds), and whatever follows one of
  those until it is stored. So a chat is shown once per run, in its sender's order, and
  a contact cannot show a text the history would not keep (a replay of a stored id is
  never shown early). A chat shown and then lost in a crash was never acked: it comes
  back from the sender's outbox and the next run shows it again; its history holds it
  once. An honest sender's chats go up in (created_ms, id) (message_ids.py): only a
  clock set back makes its next chats wait for their commit.
- A failed commit (disk full) acks nothing, pauses reading on the links whose chats
  wait, tells the user, and is retried until it succeeds; nothing waiting is dropped.
- Received chats enter through ``intake`` (enclave.node.quotas): only a batch within its
  sender's receive quotas reaches ``on_chats``; the commit that stores it tells the
  quotas how many of its bytes were new.
- A peer that throttles us (THROTTLE, PROTOCOL.md "Receive quotas") is handed no new
  messages and not dialled until its retry time has passed; what it was sent stays
  unacked in flight (or back in the queue if the session ends); the user hears of it
  (``quotas.PeerThrottles``).
- Every store write runs on the writer thread; the event loop never waits on SQLite
  (a small commit without fsync once ran on the loop, which the next message's
  decrypt then waited for: 158 against 105 us p50 one-way with store_sync "normal",
  PERFORMANCE.md "Second round"). One commit cycle is one transaction: new outgoing rows, incoming rows and acked rows
  together (one fsync per cycle).
- A peer's ``created_ms`` (any uint64 on the wire) is stored clamped to SQLite's
  integer range only: it is part of the dedupe key, so every resend must store the
  same value. The event a face renders carries ``display.created_time`` of it against
  the commit's time: None when it is outside the window a face shows as a time.
- "sent" (handed to a session, not yet acked) is a state of this process, not of the
  file: it is announced once per message and kept in ``announced`` for history; after
  a restart the outbox is resent anyway, so the file says queued until delivered.
- History off (``unkept``, the peers whose ``keep_history`` is off, held in memory): a
  commit snapshots the set when it is taken. Their chats are published and acked as any
  others but stored as tombstones (no body: the store never sees the text); what we
  sent them is in the outbox with its body until their ack, then the commit that marks
  it delivered erases it. Once the commits go idle after an erasure (at most every
  ``SCRUB_EVERY`` while busy, and before stopping) the WAL is truncated
  (``Store.scrub``), so no copy of an erased body stays in the files.
"""

import asyncio
import itertools
import logging
import sqlite3
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from enclave._fast import ReplayRing
from enclave.errors import UserError
from enclave.node.commits import INT64_MAX, Batch, chat_keys, incoming_rows
from enclave.node.display import created_time
from enclave.node.events import (
    DeliveryChanged,
    NodeProblem,
    delivery_changed,
    message_received,
)
from enclave.node.legacy_send import LegacySender
from enclave.node.message_ids import new_id, new_ids
from enclave.node.outgoing import Carried, Many, Out
from enclave.node.outgoing import group_hex as _gid
from enclave.node.quotas import ROW_OVERHEAD, Intake, PeerThrottles, ReceiveQuotas, size_of
from enclave.node.settings import Settings
from enclave.protocol.messages import Chat

log = logging.getLogger("enclave.node.delivery")

MAX_UNACKED = 32768  # messages in flight on one link before waiting for acks
DISPATCH_CHUNK = 4096  # messages handed to a link per loop iteration
RETRY_DELAY = 1.0  # seconds between attempts at a commit that failed (disk full)
SCRUB_EVERY = 1.0  # seconds: the WAL is truncated at most this often after erasures


class Delivery:
    def __init__(
        self,
        store,
        own_fp: bytes,
        sessions,
        publish,
        *,
        commit_batch: int = 4096,
        ring_capacity: int = 10_000,
        quotas: ReceiveQuotas | None = None,
    ):
        self.store = store
        self.own = own_fp
        self.sessions = sessions  # pick_chat(peer) -> link | None, dial(peer)
        self.publish = publish
        # Whether anyone listens to "queued" and "sent" (one event per message each);
        # "delivered" and "failed" are always published.
        self.progress = lambda: True
        self.announced: set[int] = set()  # rowids announced "sent", not yet delivered
        self._dispatching: set[bytes] = set()  # peers with a dispatch scheduled
        self.queues: dict[bytes, deque[Out]] = {}
        self.carriers: dict[bytes, object] = {}
        self.ring = ReplayRing(ring_capacity, digests=True)  # salted keys (commits.py)
        self.commit_batch = commit_batch
        self.stats = {"commits": 0, "rows_in": 0, "rows_out": 0, "acks": 0, "dupes": 0}
        self._next = Batch()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="enclave-store")
        sessions.policy.writer = self._writer
        self.unkept: set[bytes] = set()  # peers with history off (see the rules)
        self._scrub_due = False  # a commit erased bodies: the WAL still has them
        self._last_scrub = float("-inf")
        self.legacy = LegacySender(
            sessions.identity, store, sessions.crypto, self._writer, publish, self.unkept
        )
        self._paused: set = set()
        self._store_error: Exception | None = None  # the last commit failed with this
        self._task: asyncio.Task | None = None
        self._stopping = False
        if quotas is None:
            quotas = ReceiveQuotas.from_settings(Settings())
        self.intake = Intake(quotas, self)
        self.throttles = PeerThrottles(publish, self._throttle_over)  # peers that throttle us
        # Group chat's hooks (enclave.node.groups): records before posts on a link, and
        # a stored post's event.
        self.before_send = self.on_post = None
        # Disappearing posts (groups.py): (group_id, epoch) -> the group's timer then, or
        # None while no group has one. Called on the writer thread.
        self.post_lasts = None
        # Disappearing messages (disappear.py): a stored TIMER's hook, and the rowids of
        # our messages erased while a link carried them (not resent, not shown delivered).
        self.on_timer = None
        self.expired: set[int] = set()
        # Shown before their commit (see the rules): the dedupe keys of chats waiting for
        # a commit (copies each) and of those already shown; per sender its mark (the
        # highest (created_ms, id) stored) and how many of its chats wait unshown; and
        # the id of the newest chat shown early (a read receipt may name it).
        self._pending: dict[bytes, int] = {}
        self._early: set[bytes] = set()
        self._marks: dict[bytes, tuple[int, bytes]] = {}
        self._held: dict[bytes, int] = {}
        self.newest_shown: dict[str, bytes] = {}
        # Sending first (see the rules) is off while the store's sending log cannot be
        # written, until a commit succeeds; and for good if this process does not hold it.
        self._send_first = store.sending.usable
        if not self._send_first:
            log.warning(
                "this node does not hold %s: new messages wait for their commit before going out",
                store.sending.path,
            )

    @property
    def writer(self) -> ThreadPoolExecutor:
        """The store's one writer thread (reads that must stay off the loop go there too)."""
        return self._writer

    def is_paused(self, link) -> bool:
        """Reading on ``link`` is paused because the store refuses writes."""
        return link in self._paused

    # --- life ---------------------------------------------------------------------------

    def start(self) -> None:
        peers = self.store.list_peers(members=True)
        blocked = {p.fingerprint for p in peers if p.blocked}
        self.unkept.update(bytes.fromhex(p.fingerprint) for p in peers if not p.keep_history)
        for peer_hex in set(self.store.outbox_peers()) - blocked:
            self.queues[bytes.fromhex(peer_hex)] = self._owed(bytes.fromhex(peer_hex))
        self._task = asyncio.get_running_loop().create_task(
            self._committer(), name="enclave-commits"
        )
        for peer in list(self.queues):
            self.dispatch(peer)

    async def stop(self) -> None:
        """Commit what is pending, then stop the writer."""
        await self.legacy.close()
        await self.flush()
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._writer.shutdown(wait=True)

    async def flush(self) -> None:
        """Return when everything handed to delivery so far is committed, or when the
        store refuses writes (nothing unacknowledged is lost: senders still hold it)."""
        while (self._next or not self._idle.is_set()) and not self._store_error:
            if self._task is None or self._task.done():
                return
            self._wake.set()
            await self._idle.wait()
            await asyncio.sleep(0)

    async def settled(self) -> None:
        """Return once every chat shown before its commit so far is stored (a face that
        reads the history right after showing one finds it there)."""
        if self._early:
            await self.flush()

    def keep_history(self, peer: bytes, keep: bool) -> None:
        """The user turned history with ``peer`` on or off (the next commit follows)."""
        if keep:
            self.unkept.discard(peer)
        else:
            self.unkept.add(peer)

    # --- sending ---------------------------------------------------------------------------

    def submit(
        self,
        peer: bytes,
        body: str,
        created_ms: int | None = None,
        reply: bytes | None = None,
        timer: int | None = None,
        lasts_s: int = 0,
    ) -> asyncio.Future:
        """Queue one message (``reply``: the id it quotes; ``timer``: a TIMER's seconds;
        ``lasts_s``: the disappearing-messages timer it is sent under, 0: none); the
        future gives its ``Out`` once it is durable."""
        created = int(time.time() * 1000) if created_ms is None else created_ms
        fut = asyncio.get_running_loop().create_future()
        expires = created + 1000 * lasts_s if lasts_s else None
        out = Out(
            self.store.reserve_rowid(), peer, new_id(), body, created, False,
            reply=reply, timer=timer, expires=expires,
        )  # fmt: skip
        self._next.enqueue.append((out, fut))
        self._list_early(peer, (out,))  # first: its dispatch runs before the commit starts
        self._wake.set()
        return fut

    def submit_many(self, peer: bytes, bodies, created_ms: int | None = None) -> asyncio.Future:
        """Queue many messages to one peer; one future gives their ``Out``s, in order,
        once all are durable (cheaper than a future per message for bulk senders). If
        the store refuses writes meanwhile, it fails; rows committed before stay queued."""
        created = int(time.time() * 1000) if created_ms is None else created_ms
        fut = asyncio.get_running_loop().create_future()
        reserve = self.store.reserve_rowid
        outs = [
            Out(reserve(), peer, mid, body, created, False)
            for mid, body in zip(new_ids(len(bodies)), bodies, strict=True)
        ]
        entries = [(o, None) for o in outs]
        if entries:
            entries[-1] = (outs[-1], Many(fut, outs))  # settled with the last row
        else:
            fut.set_result([])
        self._next.enqueue.extend(entries)
        self._list_early(peer, outs)
        self._wake.set()
        return fut

    def submit_post(
        self, peers, body: str, group: tuple, created_ms: int | None = None, lasts_s: int = 0
    ):
        """Queue one group post for every peer of ``peers`` (one outbox row each, one id
        for all); ``group`` is (group_id, epoch, lamport, seq); ``lasts_s`` the group's
        disappearing-messages timer (every copy expires at created + timer; 0: none).
        One future gives the ``Out``s once all are durable."""
        created = int(time.time() * 1000) if created_ms is None else created_ms
        fut = asyncio.get_running_loop().create_future()
        mid, reserve = new_id(), self.store.reserve_rowid
        expires = created + 1000 * lasts_s if lasts_s else None
        outs = [Out(reserve(), p, mid, body, created, False, group, expires=expires) for p in peers]
        if not outs:
            fut.set_result([])
            return fut
        entries = [(o, None) for o in outs]
        entries[-1] = (outs[-1], Many(fut, outs))
        self._next.enqueue.extend(entries)
        for o in outs:
            self._list_early(o.peer, (o,))
        self._wake.set()
        return fut

    def _list_early(self, peer: bytes, outs) -> None:
        """Queue new messages for their link before their commit (see the rules); one
        dispatch per peer per loop iteration takes whole bursts at once."""
        if self.sessions.legacy_target(peer) is not None or not self._send_first:
            return  # after the commit (``_enqueued``): v1 envelopes; all, if unlogged
        queue = self.queues.get(peer)
        if queue is None:
            queue = self.queues[peer] = deque()
        for o in outs:
            o.listed = True
        queue.extend(outs)
        if peer not in self._dispatching:
            # The first submit of a loop iteration goes out at once; whatever else this
            # iteration submits rides the one dispatch scheduled here.
            self._dispatching.add(peer)
            self.dispatch(peer, flush_now=True)
            asyncio.get_running_loop().call_soon(self._dispatch_soon, peer)

    def _dispatch_soon(self, peer: bytes) -> None:
        self._dispatching.discard(peer)
        self.dispatch(peer, flush_now=True)

    def dispatch(self, peer: bytes, flush_now: bool = False) -> None:
        queue = self.queues.get(peer)
        if not queue or self.sessions.closing or peer in self.throttles:
            return
        legacy = self.sessions.legacy_target(peer)
        if legacy is not None:  # the user marked this peer v1: envelopes, never a v2 session
            self.legacy.kick(peer, queue, *legacy)
            return
        link = self.carriers.get(peer) or self.sessions.pick_chat(peer)
        if link is None:
            self.sessions.dial(peer)
            return
        if not link.conn.established:
            # Closed, its ConnectionClosed still queued behind the event being handled
            # (a contact's KEY_SWITCHED and CLOSE in one read, while another session is
            # closed): it is still pooled. Its session_down puts back what it carried
            # and dispatches again, in order.
            return
        carried: Carried = link.state
        room = min(DISPATCH_CHUNK, MAX_UNACKED - len(carried.items))
        if not link.writable or room <= 0:
            return
        take = [queue.popleft() for _ in range(min(room, len(queue)))]
        early = [o for o in take if not o.logged and not o.durable]
        if early and not self._log_sending(peer, early):
            take = hold_back(queue, take)
            if not take:
                if queue:  # committed ones behind those held back
                    asyncio.get_running_loop().call_soon(self.dispatch, peer)
                return
        if self.before_send is not None:
            self.before_send(link, take)
        first = link.conn.send_outgoing(take)
        if not carried.items:
            carried.base = first
        carried.items.extend(take)
        self.carriers[peer] = link
        if flush_now:  # a burst of submits is complete: write it before the commit starts
            link.flush_now()
        else:
            link.schedule_flush()
        self._announce_sent(peer, take)
        if queue:
            asyncio.get_running_loop().call_soon(self.dispatch, peer)

    def _log_sending(self, peer: bytes, outs: list[Out]) -> bool:
        """Put messages about to go out ahead of their commit in the store's sending log
        (see the rules); False if it cannot take them: sending first stops until a
        commit succeeds."""
        extras = [
            (k, o.group, o.reply, o.timer, o.expires)
            for k, o in enumerate(outs)
            if o.group is not None
            or o.reply is not None
            or o.timer is not None
            or o.expires is not None
        ]
        logged = self.store.sending.append(
            peer,
            [o.rowid for o in outs],
            [o.id for o in outs],
            [o.body for o in outs],
            [o.created_ms for o in outs],
            extras,
        )
        if logged:
            for o in outs:
                o.logged = True
            return True
        self._send_first = False
        return False

    async def retry_failed(self, fingerprint: str | None) -> list[int]:
        """failed -> queued (the user's retry): back in the outbox, then on their way."""
        loop = asyncio.get_running_loop()
        failed = await loop.run_in_executor(self._writer, self.store.failed_messages, fingerprint)
        if not failed:
            return []
        await loop.run_in_executor(self._writer, self.store.requeue, [m.rowid for m in failed])
        touched = set()
        for m in failed:
            peer = bytes.fromhex(m.peer)
            self.queues.setdefault(peer, deque()).append(
                # direct only (failed_messages)
                Out(m.rowid, peer, m.id, m.body, m.created_ms, reply=m.reply_to, timer=m.timer_s)
            )
            touched.add(peer)
            self.publish(DeliveryChanged(m.peer, m.rowid, m.id, "queued"))
        for peer in touched:
            self.dispatch(peer)
        return [m.rowid for m in failed]

    def _announce_sent(self, peer: bytes, outs) -> None:
        announced, progress, peer_hex = self.announced, self.progress(), None
        for o in outs:
            if not o.sent:
                o.sent = True
                if not o.durable:
                    continue  # announced after "queued", in _enqueued
                announced.add(o.rowid)
                if progress and o.timer is None:  # a TIMER's fate is no face's business
                    peer_hex = peer_hex or peer.hex()
                    self.publish(delivery_changed(peer_hex, o.rowid, o.id, "sent", group=_gid(o)))

    def queued_for(self, peer: bytes) -> int:
        """Messages to ``peer`` not yet acked (waiting or in flight)."""
        carrier = self.carriers.get(peer)
        return len(self.queues.get(peer, ())) + (len(carrier.state.items) if carrier else 0)

    def queued(self) -> int:
        return sum(len(q) for q in self.queues.values()) + sum(
            len(link.state.items) for link in self.carriers.values()
        )

    # --- session life ------------------------------------------------------------------------

    def _throttle_over(self, peer: bytes) -> None:
        self.dispatch(peer)
        self.sessions.dial(peer)  # (a contact is dialled for presence, too)

    def session_up(self, link, peer: bytes) -> None:
        link.state = Carried(peer)
        self.dispatch(peer)

    def session_down(self, link) -> None:
        self.intake.forget(link)
        carried: Carried | None = link.state
        if not isinstance(carried, Carried):
            return
        peer = carried.peer
        if self.carriers.get(peer) is link:
            del self.carriers[peer]
        if carried.items:
            # Unacked: back to the front of the queue, in order, for the next session
            # (but for what expired meanwhile: it goes no further).
            if self.expired:
                kept = [o for o in carried.items if o.rowid not in self.expired]
                self.expired.difference_update(o.rowid for o in carried.items)
                carried.items = deque(kept)
            self.queues.setdefault(peer, deque()).extendleft(reversed(carried.items))
            carried.items.clear()
        self._paused.discard(link)
        self.dispatch(peer)

    def set_aside(self, peer: bytes) -> None:
        """Stop sending to ``peer`` (blocked or removed): its queue leaves memory, and
        what a session carries unacked is not put back when the session closes. The
        rows stay in the store, owed, unless the contact is removed."""
        self.queues.pop(peer, None)
        link = self.carriers.pop(peer, None)
        if link is not None and isinstance(link.state, Carried):
            link.state.items.clear()

    def take_back(self, peer: bytes) -> None:
        """Send again what the store owes ``peer`` (unblocked)."""
        owed = self._owed(peer)
        if owed:
            self.queues[peer] = owed
            self.dispatch(peer)

    def drop_expired(self, peer: bytes, rowids: set[int]) -> None:
        """Our messages to ``peer`` erased by their timer: out of its queue; one a link
        carries already stays there (the session's count needs it) but is not resent."""
        queue = self.queues.get(peer)
        if queue:
            self.queues[peer] = deque(o for o in queue if o.rowid not in rowids)
        carrier = self.carriers.get(peer)
        if carrier is not None:
            self.expired.update(o.rowid for o in carrier.state.items if o.rowid in rowids)

    def _owed(self, peer: bytes) -> deque:
        items = self.store.outbox_for(peer.hex())
        return deque(
            Out(
                i.rowid,
                peer,
                i.id,
                i.body,
                i.created_ms,
                group=i.group,
                reply=i.reply,
                timer=i.timer,
            )
            for i in items
        )

    def link_writable(self, link) -> None:
        if isinstance(link.state, Carried):
            self.dispatch(link.state.peer)

    # --- acks and incoming ----------------------------------------------------------------------

    def on_acked(self, link, upto: int) -> None:
        carried: Carried = link.state
        n = upto - carried.base + 1
        if n <= 0:
            return
        done = [carried.items.popleft() for _ in range(min(n, len(carried.items)))]
        carried.base += n
        self._next.delivered.setdefault(carried.peer, []).extend(done)
        self.stats["acks"] += 1
        self._wake.set()
        if not carried.items and self.carriers.get(carried.peer) is link:
            del self.carriers[carried.peer]
        self.dispatch(carried.peer)

    def on_chats(
        self, link, chats, upto: int | None, legacy: bool = False, size: int | None = None
    ) -> None:
        """Chats the intake admitted from one authenticated frame (or one v1 envelope,
        ``upto`` None); ``size`` is what they count against their sender's quota."""
        if size is None:
            size = size_of(chats)
        keys = chat_keys(chats)
        pending = self._pending
        shown = self._show_early(chats, keys) if chats and upto is not None else 0
        if len(chats) > shown:  # these wait for their commit: so does what follows them
            sender = chats[0].sender
            self._held[sender] = self._held.get(sender, 0) + len(chats) - shown
        for key in keys:
            pending[key] = pending.get(key, 0) + 1
        self._next.incoming.append((link, chats, upto, legacy, size, keys))
        self._wake.set()

    def _show_early(self, chats, keys) -> int:
        """Show what of these chats (one frame of one sender, not yet counted) is new and
        in order (see the rules); how many of the first ones that is."""
        sender = chats[0].sender
        mark = self._marks.get(sender)
        if mark is None or self._held.get(sender):
            return 0  # its mark is not read yet, or something before them waits
        early, pending, ring = self._early, self._pending, self.ring
        now_ms, shown = int(time.time() * 1000), 0
        for c, key in zip(chats, keys, strict=True):
            if type(c) is not Chat or c.timer_s is not None:
                break  # group posts and TIMERs change state: shown by their commit
            if key in early or key in pending or key in ring:
                break  # another copy is shown or waits; or stored: the commit decides
            if (min(c.created_ms, INT64_MAX), c.id) <= mark:
                break  # not above what it had stored: maybe a resend, or a replay
            early.add(key)
            shown += 1
            self._publish_received(c, created_time(c.created_ms, now_ms))
        if shown:
            self.newest_shown[sender.hex()] = chats[shown - 1].id
        return shown

    def _publish_received(self, c: Chat, shown: int | None, legacy: bool = False) -> None:
        self.publish(message_received(c.sender.hex(), c.id, c.body, shown, legacy, c.reply_to))

    # --- being throttled ---------------------------------------------------------------------

    def throttled(self, link, reason: int, retry_after_ms: int) -> None:
        """The peer of ``link`` refuses our messages for ``retry_after_ms`` (THROTTLE)."""
        if isinstance(link.state, Carried):
            self.throttles.told(link.state.peer, reason, retry_after_ms)

    # --- the writer ------------------------------------------------------------------------------

    async def _committer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._next:
                batch = self._take(self.commit_batch)
                self._idle.clear()
                try:
                    done = await loop.run_in_executor(self._writer, self._write, batch)
                finally:
                    self._idle.set()
                try:
                    self._apply(batch, done)
                except Exception:  # a bug must not stop every later commit
                    log.exception("applying a commit failed")
                if done.get("error"):
                    if self._stopping:
                        return  # the store refuses writes: what waits is still the sender's
                    await asyncio.sleep(RETRY_DELAY)
            if self._scrub_due:
                await self._scrub(loop)
            if self._stopping:
                return

    async def _scrub(self, loop) -> None:
        """Truncate the WAL after erasures (see the rules): now if the last scrub is
        SCRUB_EVERY old (or the node stops), else when it will be."""
        wait = self._last_scrub + SCRUB_EVERY - loop.time()
        if wait > 0 and not self._stopping:
            loop.call_later(wait, self._wake.set)
            return
        self._scrub_due = False
        self._last_scrub = loop.time()
        self._idle.clear()
        try:
            await loop.run_in_executor(self._writer, self.store.scrub)
        except sqlite3.Error as err:  # busy or failing: the next erasure tries again
            log.warning("truncating the WAL after erasing messages failed: %s", err)
        finally:
            self._idle.set()

    def _take(self, cap: int) -> Batch:
        """The next commit: at most ``cap`` new messages each way (so the first ones
        go out and get acked while later ones wait), and every state update."""
        batch, rest = self._next, Batch()
        if self.unkept:
            batch.forget = frozenset(self.unkept)
        if len(batch.enqueue) > cap:
            batch.enqueue, rest.enqueue = batch.enqueue[:cap], batch.enqueue[cap:]
        for o, _ in batch.enqueue:
            o.taken = True
        # An ack may come back before its message's row is in a commit: such rows wait
        # for a later commit (acked rows are a prefix per peer, taken ones too).
        for peer, outs in list(batch.delivered.items()):
            k = len(outs)
            while k and not outs[k - 1].taken:
                k -= 1
            if k < len(outs):
                rest.delivered[peer] = outs[k:]
                if k:
                    batch.delivered[peer] = outs[:k]
                else:
                    del batch.delivered[peer]
        count, k = 0, 0
        while k < len(batch.incoming) and count < cap:
            count += len(batch.incoming[k][1])
            k += 1
        batch.incoming, rest.incoming = batch.incoming[:k], batch.incoming[k:]
        self._next = rest
        return batch

    def _write(self, batch: Batch) -> dict:
        """On the writer thread: the whole batch in one transaction."""
        done = {}
        try:
            now_ms = int(time.time() * 1000)
            enqueue = [
                (o.rowid, o.peer.hex(), o.id, o.body, o.created_ms)
                if o.group is None and o.reply is None and o.timer is None and o.expires is None
                else (
                    o.rowid,
                    o.peer.hex(),
                    o.id,
                    o.body,
                    o.created_ms,
                    o.group,
                    o.reply,
                    o.timer,
                    o.expires,
                )  # fmt: skip
                for o, _ in batch.enqueue
            ]
            forget = batch.forget
            rows, where = incoming_rows(batch.incoming, self.ring, now_ms, forget, self.post_lasts)
            delivered = [(p.hex(), [o.rowid for o in outs]) for p, outs in batch.delivered.items()]
            erase = {p.hex() for p in batch.delivered if p in forget} if forget else ()
            flags = self.store.write_cycle(enqueue, rows, delivered, now_ms, erase)
            done["marks"] = self._read_marks(batch)
            done["erased"] = bool(erase)
            done["incoming"] = [w >= 0 and flags[w] for w in where]
            done["now_ms"] = now_ms
        except Exception as err:  # noqa: BLE001 - any failure: nothing acked, retried later
            if not isinstance(err, sqlite3.Error):
                log.exception("store write failed")
            done["error"] = err
        return done

    def _read_marks(self, batch: Batch) -> dict[bytes, tuple[int, bytes]]:
        """On the writer, after a commit: the mark of each sender in it whose mark this
        run has not read yet (the store's highest key of it, this commit's rows in)."""
        marks, known = {}, self._marks
        for _, chats, _, _, _, _ in batch.incoming:
            if chats and chats[0].sender not in known and chats[0].sender not in marks:
                sender = chats[0].sender
                marks[sender] = self.store.highest_received(sender.hex()) or (-1, b"")
        return marks

    def _apply(self, batch: Batch, done: dict) -> None:
        self.stats["commits"] += 1
        if "error" in done:  # nothing of the batch is stored: all of it waits again
            nxt = self._next
            nxt.enqueue[:0] = batch.enqueue
            nxt.incoming[:0] = batch.incoming
            for peer, outs in batch.delivered.items():
                nxt.delivered.setdefault(peer, [])[:0] = outs
            self._stalled(batch, done["error"])
            return
        self._send_first = self.store.sending.usable
        self._enqueued(batch.enqueue)
        self._received(batch, done["incoming"], done["now_ms"], done["marks"])
        if done["erased"]:
            self._scrub_due = True
        announced = self.announced
        for peer, outs in batch.delivered.items():
            peer_hex = peer.hex()
            for o in outs:
                announced.discard(o.rowid)
                if o.timer is not None or (self.expired and o.rowid in self.expired):
                    self.expired.discard(o.rowid)  # a TIMER, or erased on its way: not shown
                    continue
                self.publish(delivery_changed(peer_hex, o.rowid, o.id, "delivered", group=_gid(o)))
        if self._store_error is not None:
            self._store_error = None
            for link in self._paused:
                if not self.intake.holding(link):  # the intake resumes it when done
                    link.resume_reading()
            self._paused.clear()
            self.publish(NodeProblem("the store accepts writes again; receiving resumed"))

    def _enqueued(self, entries) -> None:
        touched = set()
        queues, progress, announced = self.queues, self.progress(), self.announced
        for o, fut in entries:
            o.durable = True
            if not o.listed:
                o.listed = True
                queue = queues.get(o.peer)
                if queue is None:
                    queue = queues[o.peer] = deque()
                queue.append(o)
                touched.add(o.peer)
            if fut is not None and not fut.done():
                fut.set_result(o if type(fut) is not Many else fut.outs)
            if o.timer is not None:
                continue  # a TIMER: the faces hear of it as TimerChanged (disappear.py)
            if progress:
                peer_hex = o.peer.hex()
                self.publish(
                    delivery_changed(
                        peer_hex, o.rowid, o.id, "queued", None, o.body, o.created_ms, _gid(o)
                    )
                )
            if o.sent:  # it went out while its row was being committed
                announced.add(o.rowid)
                if progress:
                    self.publish(
                        delivery_changed(o.peer.hex(), o.rowid, o.id, "sent", group=_gid(o))
                    )
        self.stats["rows_out"] += len(entries)
        loop = asyncio.get_running_loop()
        for peer in touched:  # after the senders hear "queued"
            loop.call_soon(self.dispatch, peer)

    def _received(self, batch: Batch, flags: list[bool], now_ms: int, marks: dict) -> None:
        early = self._settle_keys(batch, flags, marks)
        k = 0
        insert = self.ring.check_and_insert
        committed = self.intake.quotas.committed
        for link, chats, upto, legacy, size, keys in batch.incoming:
            if not chats:  # only refused group posts: nothing stored, the ack still goes
                self.sessions.stored(link, upto)
                if upto is not None:
                    self.intake.stored(link, upto)
                continue
            first = k
            for c, key in zip(chats, keys, strict=True):
                if flags[k]:
                    insert(key)
                    if not early[k]:
                        self._show_stored(c, created_time(c.created_ms, now_ms), legacy)
                else:
                    self.stats["dupes"] += 1
                k += 1
            new = flags[first:k]
            if chats[0].sender in batch.forget:  # tombstones: a row each, no body
                size_new = ROW_OVERHEAD * sum(new)
            elif not all(new):  # duplicates take no new room
                size_new = size_of([c for c, f in zip(chats, new, strict=True) if f])
            else:
                size_new = size
            committed(chats[0].sender, size, size_new)
            self.stats["rows_in"] += len(chats)
            self.sessions.stored(link, upto)
            if upto is not None:
                self.intake.stored(link, upto)
        self._catch_up()

    def _settle_keys(self, batch: Batch, flags: list[bool], marks: dict) -> list[bool]:
        """The shown-early bookkeeping of a commit, before any hook runs (one that fails
        must not leave keys behind): which chats were shown already; the senders' marks."""
        pending, early, held, own = self._pending, self._early, self._held, self._marks
        for sender, mark in marks.items():  # read by this commit, its own rows included
            own.setdefault(sender, mark)
        shown, k = [], 0
        for _, chats, _, _, _, keys in batch.incoming:
            sender = chats[0].sender if chats else None
            mark = own.get(sender)
            for c, key in zip(chats, keys, strict=True):
                left = pending.pop(key) - 1
                if left:
                    pending[key] = left
                if key in early:  # shown when it arrived: this copy was the first
                    early.discard(key)
                    shown.append(True)
                else:
                    shown.append(False)
                    waiting = held[sender] - 1
                    if waiting:
                        held[sender] = waiting
                    else:
                        del held[sender]
                if flags[k] and mark is not None:
                    stamp = (min(c.created_ms, INT64_MAX), c.id)
                    if stamp > mark:
                        own[sender] = mark = stamp
                k += 1
        return shown

    def _catch_up(self) -> None:
        """After a commit: chats that waited behind ones now stored are shown, in order,
        where the rules allow (each sender's first one that may not stops its turn)."""
        if not self._held:
            return
        early, held, marks = self._early, self._held, self._marks
        stopped: set[bytes] = set()
        now_ms = int(time.time() * 1000)
        for _, chats, upto, _, _, keys in self._next.incoming:
            sender = chats[0].sender if chats else None
            if sender is None or sender in stopped or sender not in held:
                continue
            mark = marks.get(sender)
            if mark is None or upto is None:
                stopped.add(sender)
                continue
            for c, key in zip(chats, keys, strict=True):
                if key in early:
                    continue  # this copy, or one before it, is shown
                if (
                    type(c) is not Chat
                    or c.timer_s is not None
                    or (min(c.created_ms, INT64_MAX), c.id) <= mark
                ):
                    stopped.add(sender)
                    break
                early.add(key)
                self._publish_received(c, created_time(c.created_ms, now_ms))
                self.newest_shown[sender.hex()] = c.id
                left = held[sender] - 1
                if not left:
                    del held[sender]
                    stopped.add(sender)
                    break
                held[sender] = left

    def _show_stored(self, c, shown: int | None, legacy: bool) -> None:
        """A new chat shown by its commit."""
        if type(c) is not Chat:
            self.on_post(c, shown)
        elif c.timer_s is None:
            self._publish_received(c, shown, legacy)
        else:  # a TIMER (disappear.py): a system line, not a message
            self.on_timer(c, shown)

    def _unlist(self, o: Out) -> None:
        queue = self.queues.get(o.peer)
        try:
            queue.remove(o)
        except (AttributeError, ValueError):
            pass  # not there (anymore)

    def _stalled(self, batch: Batch, err: Exception) -> None:
        first = self._store_error is None
        self._store_error = err
        # New messages cannot be queued durably: say so to whoever is waiting on them
        # (nothing was promised yet) instead of keeping them waiting indefinitely.
        # Messages already handed to a link stay and are retried: the peer may have them.
        waiting = self._next.enqueue
        self._next.enqueue = [(o, fut) for o, fut in waiting if o.sent]
        refused = [(o, fut) for o, fut in waiting if not o.sent]
        for o, _ in refused:
            if o.listed:  # waiting in its queue, not yet sent: it goes no further
                o.listed = False
                self._unlist(o)
        for _, fut in refused:
            if fut is not None and not fut.done():
                fut.set_exception(
                    UserError(
                        f"the message store refuses writes ({err}); the message was not queued"
                    )
                )
        for link, *_ in batch.incoming:
            if link not in self._paused:
                self._paused.add(link)
                link.pause_reading()
        if first:
            self.publish(
                NodeProblem(
                    f"cannot write to the message store ({err}); receiving is paused and nothing is acknowledged until it can"
                )
            )


def hold_back(queue: deque, take: list[Out]) -> list[Out]:
    """The sending log refused: every message of this peer neither committed nor logged
    leaves its queue to wait for its commit (``_enqueued`` lists it again, in commit
    order); the others go on. Returns the part of ``take`` that may go."""
    for o in itertools.chain(take, queue):
        if not (o.durable or o.logged):
            o.listed = False
    kept = [o for o in queue if o.durable or o.logged]
    queue.clear()
    queue.extend(kept)
    return [o for o in take if o.durable or o.logged]
