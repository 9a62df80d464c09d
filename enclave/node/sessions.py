"""Sessions per peer: listening, dialing, the pool, budgets and the crypto pool.

Rules:
- ``Sessions`` is the hub every ``Link`` reports to. It owns the connection caps, the
  budgets of PROTOCOL.md b.4 (through ``NodePolicy``, in enclave.node.policy), the
  bounded thread pool for RSA private work, and the per-peer pool
  (``enclave._fast.Pool``: at most N sessions per peer, idle ones expire).
- A session counts only once its Connection is established (the peer's Finished
  verified): only then is it pooled, the peer reported online and the outbox
  started. A session that closes requeues what it carried (delivery's job).
- Dialing (``enclave.node.dialing``) retries with exponential backoff and jitter while
  anything is owed to the peer or, for presence, while it is a contact; the first
  established session resets the backoff. Each attempt tries the address learned from
  the peer's last authenticated session from elsewhere, then the address the user gave.
- Presence: a peer is online while it has a session; its "last seen" time is stored
  when its first session opens and when its last one ends. The last session to a peer
  is never closed for idleness (keepalive tells when the peer is gone); extra idle ones
  are closed by the node with the lower fingerprint only, so two nodes that dialled
  each other at once never both close the one the other keeps.
- "Offline" is published OFFLINE_GRACE after a peer's last session ended, and only if
  none came up meanwhile: when two nodes dial each other at once, one may close a
  session (a pool replacement) just before the other session is up on this side, and
  faces must not see the contact flap offline and online.
- File data keeps apart from chats when a peer has more than one session: the
  receiver asks for chunks on ``pick_bulk`` (dialling one extra session when it has
  only one), chats go out on ``pick_chat`` (a session without file data), so a chat
  never waits behind pieces in a socket buffer. While file data moves to or from a
  peer, none of its sessions is idle, whatever its last received message.
- Responder private work is admitted only while a slot is free ("busy" otherwise);
  our own handshakes (we dialled) queue on the same threads.
"""

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from enclave._fast import Pool
from enclave.node.budgets import ConnectionCaps
from enclave.node.dialing import Dialer
from enclave.node.events import PeerOffline, PeerOnline, TypingChanged
from enclave.node.policy import NodePolicy
from enclave.node.transport import Link
from enclave.protocol.connection import Connection, Limits
from enclave.protocol.crypto import PeerKey
from enclave.protocol.events import (
    Acked,
    Established,
    FileCancelled,
    FileChunkReceived,
    FileDelivered,
    FileOffered,
    FileRequested,
    GroupHeadReceived,
    GroupRecordsReceived,
    LegacyReceived,
    LegacyVerified,
    MessagesReceived,
    PairingFrame,
    ReadReceived,
    RevocationFrame,
    SlotWanted,
    SuccessionReceived,
    SwitchedReceived,
    Throttled,
)
from enclave.protocol.events import TypingChanged as WireTyping
from enclave.protocol.messages import Chat

_FILE_EVENTS = frozenset(
    {FileChunkReceived, FileRequested, FileOffered, FileDelivered, FileCancelled}
)
OFFLINE_GRACE = 0.25  # seconds a peer may be without a session before it is offline
log = logging.getLogger("enclave.node.sessions")
PARK_MAX = 4096  # connections from contacts waiting, unread, for their own earlier ones


class Sessions:
    def __init__(self, identity, store, settings, publish) -> None:
        self.identity = identity  # protocol.crypto.Identity
        self.store = store
        self.s = settings
        self.publish = publish
        self.delivery = None  # set by the node
        self.files = None  # the file-transfer engine, set by the node
        self.groups = None  # the group engine (enclave.node.groups), set by the node
        self.pairing = None  # the invitations (enclave.node.pairing), set by the node
        self.handover = None  # our rotations (enclave.node.key_handover), set by the node
        self.successions = None  # contacts' rotations (the same module), set by the node
        self.revocations = None  # contacts' revocation certificates, set by the node
        self.receipts = None  # read receipts (receipts.py), set by the node
        now = time.monotonic()
        self.policy = NodePolicy(store, identity.fingerprint, settings, now)
        self.caps = ConnectionCaps(settings.max_connections, settings.max_per_address)
        self.preauth = ConnectionCaps(settings.max_connections, settings.preauth_per_address)
        self._unauthenticated: dict[int, Link] = {}  # links holding a pre-auth slot, oldest first
        self._slot_waiters: deque[Link] = deque()  # v1 envelopes waiting for a slot, in order
        self._parked: dict[str, deque[Link]] = {}  # a contact's connections over its cap
        self._parked_count = 0
        self.pool = Pool(settings.connections_per_peer, settings.idle_timeout)
        self.links: dict[int, Link] = {}
        self.limits = Limits(
            first_frame_timeout=settings.first_frame_timeout,
            handshake_timeout=settings.handshake_timeout,
            keepalive_interval=settings.keepalive_interval,
            dead_after=settings.dead_after,
        )
        self.crypto = ThreadPoolExecutor(
            settings.crypto_workers, thread_name_prefix="enclave-crypto"
        )
        self.stats = {
            "handshakes": 0,
            "refused": 0,
            "parked": 0,
            "closed": {},
            "writes": 0,
            "bytes_in": 0,
            "bytes_out": 0,
            "crypto_jobs": 0,
        }
        self.dialer = Dialer(self)
        self._bulk: dict[bytes, int] = {}  # peer -> the link its file data last took
        self._going: dict[bytes, asyncio.TimerHandle] = {}  # peers about to be offline
        self._server: asyncio.AbstractServer | None = None
        self.closing = False
        self._housekeeping: asyncio.Task | None = None

    # --- life ------------------------------------------------------------------------

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        # A deep accept queue: with asyncio's default of 100, a burst of connects drops
        # final ACKs and a newcomer (an honest peer, too) waits seconds for retransmits.
        self._server = await loop.create_server(
            lambda: Link(self, self._responder), host, port, reuse_address=True, backlog=1024
        )
        self._housekeeping = loop.create_task(self._tick(), name="enclave-housekeeping")
        return self._server.sockets[0].getsockname()[:2]

    async def close(self) -> None:
        for peer in {self.pool.peer_of(c) for c in list(self.links) if c in self.pool}:
            self._seen(peer)  # the peers online until now were last seen now
        self.closing = True  # from here on nothing dials and nothing is dispatched
        for timer in self._going.values():
            timer.cancel()
        self._going.clear()
        if self._server is not None:
            self._server.close()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        for waiting in self._parked.values():
            for link in waiting:
                link.transport.abort()
        self._parked.clear()
        for link in list(self.links.values()):
            link.close("shutdown")
        await asyncio.sleep(0)  # let the CLOSE records flush
        for link in list(self.links.values()):
            if link.transport is not None:
                link.transport.close()
        await self.dialer.close()
        if self._server is not None:
            await self._server.wait_closed()
        self.crypto.shutdown(wait=True, cancel_futures=True)

    def _responder(self, link: Link, now: float) -> Connection:
        return Connection(
            self.identity,
            self.policy,
            now,
            source=link.address,
            v1_enabled=self.s.legacy_v1,
            limits=self.limits,
        )

    def _initiator(self, peer_key: PeerKey):
        def make(link: Link, now: float) -> Connection:
            identity = self.handover.identity_for_dial(peer_key.fingerprint)
            return Connection(identity, self.policy, now, peer=peer_key, limits=self.limits)

        return make

    # --- choosing and opening sessions -------------------------------------------------

    @property
    def dialing(self) -> frozenset[bytes]:
        """The peers a dial is under way to (read-only)."""
        return frozenset(self.dialer.tasks)

    def _live(self, peer: bytes) -> list[int]:
        """The peer's pooled sessions that can be written to, in pool order. A session
        whose CLOSE came in the same read as the event being handled (a contact's
        KEY_SWITCHED then CLOSE) is closed but stays pooled until its ConnectionClosed
        is handled; nothing is picked to write to it meanwhile."""
        links = self.links
        return [
            conn_id
            for conn_id in self.pool.connections(peer)
            if (link := links.get(conn_id)) is not None and link.conn.established
        ]

    def pick(self, peer: bytes) -> Link | None:
        conn_id = self.pool.pick(peer)
        if conn_id is None:
            return None
        link = self.links.get(conn_id)
        if link is not None and link.conn.established:
            return link
        live = self._live(peer)
        return self.links[live[0]] if live else None

    def pick_chat(self, peer: bytes) -> Link | None:
        """A session for chats: one that carries no file data when the peer has one, so
        a chat never waits behind pieces already in a transport or socket buffer."""
        ids = self._live(peer)
        if len(ids) > 1:
            for conn_id in ids:
                link = self.links[conn_id]
                if not self.files.bulky(link):
                    return link
        return self.pick(peer)

    def pick_bulk(self, peer: bytes, asked_on: int | None = None) -> Link | None:
        """A session for a transfer's requests (the sender answers on it): ``asked_on``,
        where its earlier requests wait, while that is up (a sender serves a transfer on
        the session of its latest request and forgets what was asked elsewhere); else
        the one file data took before, else the newest that our chats do not ride. With
        one session and room for more, another is opened for the data; until it is up
        the one session carries both (chats keep their strict priority there)."""
        ids = self.pool.connections(peer)
        if len(ids) == 1 and self.pool.max_per_peer >= 2:
            self.dialer.extra(peer)
        live = self._live(peer)
        if asked_on in live:
            return self.links[asked_on]
        if len(live) < 2:
            return self.pick(peer)
        carrier = self.delivery.carriers.get(peer)
        chat_id = carrier.id if carrier is not None else None
        chosen = self._bulk.get(peer)
        if chosen not in live or chosen == chat_id:
            # The newest: pick_chat takes the oldest of those without file data.
            chosen = next(c for c in reversed(live) if c != chat_id)
            self._bulk[peer] = chosen
        return self.links.get(chosen)

    def legacy_target(self, peer: bytes) -> tuple[PeerKey, str | None] | None:
        """(key, address) for a peer the user marked v1; None for everyone else."""
        info = self.policy.proto.get(peer)
        if info is None or info[0] != "v1":
            return None
        record = self.store.get_peer(peer.hex())
        return self.policy.keys.get(peer), record.address if record else None

    def online(self, peer: bytes) -> bool:
        return self.pool.count(peer) > 0

    def drop_peer(self, peer: bytes) -> None:
        """Close every session with ``peer`` (blocked or removed): from now on the
        policy refuses it as it refuses a stranger, and a dial under way stops."""
        self.dialer.forget(peer)
        for conn_id in self.pool.connections(peer):
            link = self.links.get(conn_id)
            if link is not None:
                link.close("dropped")

    def send_typing(self, peer: bytes, active: bool) -> bool:
        """Tell a peer we are (not) typing over a live session; False when there is none.
        Typing is a hint: it is never queued for a peer that is offline."""
        return self._hint(peer, lambda conn: conn.send_typing(active))

    def send_read(self, peer: bytes, upto: bytes) -> bool:
        """A read receipt over a live session; False when there is none."""
        return self._hint(peer, lambda conn: conn.send_read(upto))

    def _hint(self, peer: bytes, send) -> bool:
        """An uncounted control on the peer's live session, flushed soon; False: none."""
        link = self.pick(peer)
        if link is None or link.conn is None or not link.conn.established:
            return False
        send(link.conn)
        link.schedule_flush()
        return True

    def dial(self, peer: bytes) -> None:
        """Open a session to ``peer`` (``dialing.Dialer``: backoff, presence)."""
        self.dialer.dial(peer)

    def contacts_changed(self) -> None:
        """The address book changed: start or stop keeping sessions to contacts."""
        self.dialer.contacts_changed()

    # --- what links report ----------------------------------------------------------------

    def link_opened(self, link: Link) -> str:
        """ "open", "park" (a contact's burst: wait, unread, for a connection to finish)
        or "refuse"."""
        address = link.address
        if address not in self._parked and self._admit(link):
            return "open"
        if (
            link.dialled is None  # our own dials are never parked: they wait for nothing
            and self.policy.vouched_source(address)
            and self._parked_count < PARK_MAX
        ):
            # A contact (the original client's plain sends, most likely) opens faster
            # than we finish: slow it down instead of dropping what it sends. Only an
            # address that authenticated lately gets this; strangers are refused.
            self._parked.setdefault(address, deque()).append(link)
            self._parked_count += 1
            self.stats["parked"] += 1
            return "park"
        self.stats["refused"] += 1
        return "refuse"

    def _admit(self, link: Link) -> bool:
        if not self.caps.admit(link.address):
            # Full: make room by dropping the oldest connection that has not
            # authenticated (unless this address is itself over its share), so idle
            # or dribbling connections cannot lock honest newcomers out; holding the
            # node then takes a sustained connection rate, not a few open sockets.
            if (
                self.caps.open_from(link.address) >= self.caps.per_address
                or not self._evict_oldest()
            ):
                return False
            self.caps.admit(link.address)
        if not self.preauth.admit(link.address):
            self.caps.release(link.address)
            return False
        self._unauthenticated[link.id] = link
        self.links[link.id] = link
        return True

    def _evict_oldest(self) -> bool:
        for old in self._unauthenticated.values():
            self._forget_link(old)
            old.evict()
            return True
        return False

    def _authenticated(self, link: Link) -> None:
        if self._unauthenticated.pop(link.id, None) is not None:
            self.preauth.release(link.address)
            if self._parked:  # a pre-auth place came free: a parked link may start
                asyncio.get_running_loop().call_soon(self._unpark_some)

    def _forget_link(self, link: Link) -> None:
        """Give back a link's caps (exactly once, whether it closed or was evicted)."""
        if self.links.pop(link.id, None) is not None:
            self.caps.release(link.address)
            self._authenticated(link)  # (which also lets parked links start)
            if self._parked:  # later, not from inside an eviction: its caller holds the room
                asyncio.get_running_loop().call_soon(self._unpark_some)
        else:
            self._unlist_parked(link)

    def _unpark_some(self) -> None:
        """A connection ended: the oldest parked ones start, as far as caps allow."""
        for address in list(self._parked):
            waiting = self._parked[address]
            while waiting and not self.closing and self._admit(waiting[0]):
                self._parked_count -= 1
                waiting.popleft().unpark()
            if not waiting:
                del self._parked[address]

    def _unlist_parked(self, link: Link) -> None:
        waiting = self._parked.get(link.address)
        if waiting is not None and link in waiting:
            waiting.remove(link)
            self._parked_count -= 1
            if not waiting:
                del self._parked[link.address]

    def link_closed(self, link: Link) -> None:
        self._forget_link(link)
        if self.pairing is not None:
            self.pairing.link_closed(link)
        reason = link.close_reason or "closed"
        closed = self.stats["closed"]
        closed[reason] = closed.get(reason, 0) + 1
        self._leave_pool(link)
        if link.dialled is not None and self.handover is not None:
            self.handover.dial_ended(link)

    def _leave_pool(self, link: Link) -> None:
        peer = self.pool.remove(link.id)
        if peer is not None:
            self._session_gone(link, peer)

    def _session_gone(self, link: Link, peer: bytes) -> None:
        if self._bulk.get(peer) == link.id:
            del self._bulk[peer]
        self.delivery.session_down(link)
        self.files.session_down(link)
        self.groups.sync.session_down(link)
        if not self.online(peer):
            self._seen(peer)
            self.dialer.session_lost(peer)
            if peer not in self._going and not self.closing:
                loop = asyncio.get_running_loop()
                self._going[peer] = loop.call_later(OFFLINE_GRACE, self._offline, peer)

    def _offline(self, peer: bytes) -> None:
        self._going.pop(peer, None)
        if not self.online(peer):
            self.publish(PeerOffline(peer.hex()))

    def _seen(self, peer: bytes) -> None:
        """Store that ``peer`` was online just now (its "last seen")."""
        if not self.closing:  # (``close`` stored it for every peer still online)
            self.policy.mark(peer, seen=time.time())

    def read(self, nbytes: int) -> None:
        self.stats["bytes_in"] += nbytes

    def wrote(self, nbytes: int) -> None:
        stats = self.stats
        stats["writes"] += 1
        stats["bytes_out"] += nbytes

    def link_writable(self, link: Link) -> None:
        self.delivery.link_writable(link)
        self.files.writable(link)

    def bulk_flushed(self, link: Link) -> None:
        """The link released file pieces: the sender may queue more."""
        self.files.writable(link)

    def on_closed(self, link: Link, event) -> None:
        if event.v1_dropped:  # the original client never hears of it: say so here
            log.warning(
                "v1 envelope from %s dropped: %s %s", link.address, event.reason, event.detail
            )
        else:
            log.info(
                "link %d (%s) closed: %s %s", link.id, link.address, event.reason, event.detail
            )
        self._leave_pool(link)

    def run_crypto(self, link: Link, job) -> None:
        admitted = job.admitted
        self.stats["crypto_jobs"] += 1
        loop = asyncio.get_running_loop()

        def done(_fut) -> None:
            if admitted:
                self.policy.slots.release()
            link.resume(job)
            if admitted:
                self._wake_slot_waiters()

        try:
            loop.run_in_executor(self.crypto, job.run).add_done_callback(done)
        except RuntimeError:  # the pool is shut down: the node is stopping
            if admitted:
                self.policy.slots.release()

    def _wake_slot_waiters(self) -> None:
        """Slots came free: waiting v1 envelopes ask again, oldest first."""
        waiters = self._slot_waiters
        while waiters and self.policy.v1_slot_free() and not self.closing:
            link = waiters.popleft()
            link.retry_admission()

    def on_event(self, link: Link, ev) -> None:
        kind = type(ev)
        if kind is MessagesReceived:
            self.pool.touch(link.id, time.monotonic())
            upto = ev.first_index + ev.chat_count - 1
            messages = ev.messages
            if ev.group_posts:  # judged against the membership logs first
                messages = self.groups.sync.judge(link.conn.peer, messages)
            self.delivery.intake.chats(link, messages, upto)  # receive quotas first
        elif kind is Acked:
            self.pool.touch(link.id, time.monotonic())
            self.delivery.on_acked(link, ev.upto)
        elif kind is GroupHeadReceived:
            self.groups.sync.on_head(link, link.conn.peer, ev.group_id, ev.count)
        elif kind is GroupRecordsReceived:
            self.groups.sync.on_records(link, link.conn.peer, ev.group_id, ev.first, ev.records)
        elif kind in _FILE_EVENTS:
            self.pool.touch(link.id, time.monotonic())
            self.files.on_event(link, ev)
        elif kind is Established:
            self._session_up(link, ev.peer)
        elif kind is RevocationFrame:
            self.revocations.on_frame(link, ev.certificate)
        elif kind is SuccessionReceived:
            self.successions.on_statement(link, ev.statement)
        elif kind is SwitchedReceived:
            self._switched(link, ev.new_fp)
        elif kind is PairingFrame:
            if self.pairing is None:
                link.close("pairing_closed")
            else:
                self.pairing.on_frame(link, ev.message)
        elif kind is WireTyping:
            self.publish(TypingChanged(link.conn.peer.hex(), ev.active))
        elif kind is ReadReceived:
            if self.receipts is not None:
                self.receipts.on_read(link.conn.peer, ev.upto)
        elif kind is Throttled:
            self.delivery.throttled(link, ev.reason, ev.retry_after_ms)
        elif kind is LegacyVerified:
            # A contact's signature: the link leaves the pre-auth cap, so the original
            # client (pooled or not) is counted like a session, not a stranger.
            self._authenticated(link)
            self.policy.vouch(link.address, ev.sender)
        elif kind is SlotWanted:
            self._slot_waiters.append(link)
        elif kind is LegacyReceived:
            self.policy.v1_received(ev.sender, ev.message_id)
            chat = Chat(
                ev.message_id.encode(),
                ev.sender,
                self.identity.fingerprint,
                int(ev.timestamp * 1000),
                ev.text,
            )
            self.delivery.intake.chats(link, [chat], None, legacy=True)

    def stored(self, link: Link, upto: int | None) -> None:
        """Delivery committed a link's chats: ack them (v2), or tell a v1 connection that
        its envelope is stored (it closes once the peer has ended and all are)."""
        if upto is None:
            link.legacy_committed()
        elif link.conn is not None and link.conn.established:
            link.conn.ack(upto)
            link.schedule_flush()

    def _session_up(self, link: Link, peer: bytes) -> None:
        self.stats["handshakes"] += 1
        info = self.policy.proto.get(peer)
        if info is None or info[2]:
            # Blocked or removed while our dial was under way: never pooled.
            link.close("dropped")
            return
        self._authenticated(link)
        self.policy.vouch(link.address, peer)
        now = time.monotonic()
        was_online = self.online(peer)
        if self.pool.count(peer) >= self.pool.max_per_peer:
            # Pool replacement happens only now, after the new session authenticated.
            oldest = self.pool.connections(peer)[0]
            self.pool.remove(oldest)
            old = self.links.get(oldest)
            if old is not None:
                self.delivery.session_down(old)
                self.files.session_down(old)
                self.groups.sync.session_down(old)
                old.close("replaced")
        self.pool.add(peer, link.id, now)
        if not self.policy.proto.get(peer, ("auto", False, False))[1]:
            self.policy.background(self.store.mark_v2_seen, peer.hex())
            proto = self.policy.proto.get(peer, ("auto", False, False))
            self.policy.proto[peer] = (proto[0], True, proto[2])
        if not link.established.done():
            link.established.set_result(True)
        self.groups.sync.session_up(link, peer)  # before any post: the peer hears our HEADs
        self.handover.session_up(link, peer, self.policy.background)
        self.delivery.session_up(link, peer)
        if self.receipts is not None:
            self.receipts.session_up(peer)
        self.files.session_up(link, peer)
        if link.dialled is None:
            self._learn_address(link, peer)
        self.dialer.session_up(peer)
        if not was_online:
            self._seen(peer)
            going = self._going.pop(peer, None)
            if going is not None:
                going.cancel()  # back within the grace: the faces never saw it go
            else:
                self.publish(PeerOnline(peer.hex()))

    def _switched(self, link: Link, new_fp: bytes) -> None:
        """The peer knows our current key now: its sessions under a retired key end, and
        what they carried unacked goes out again on the next one (under the new key)."""
        peer = link.conn.peer
        if self.handover.on_switched(link, peer, new_fp, self.policy.background):
            for conn_id in self.pool.connections(peer):
                other = self.links.get(conn_id)
                if other is not None and self.handover.is_retired_session(other):
                    other.close("key_rotated")
            self.dial(peer)

    def _learn_address(self, link: Link, peer: bytes) -> None:
        """A known peer that reached us from a new host may have moved: dial that host
        first from now on, on the port we were given (a connection's source port says
        nothing about where the peer listens), and the given address if that fails.
        Only an authenticated session (the peer's Finished verified) teaches an address."""
        peername = link.transport.get_extra_info("peername") if link.transport else None
        if peername:
            # Read and written on the writer thread: the loop must not wait for the
            # store's lock while a commit holds it (a stall on every accepted session).
            self.policy.background(self._move_address, peer.hex(), peername[0])

    def _move_address(self, fingerprint: str, host: str) -> None:
        record = self.store.get_peer(fingerprint)
        if record is None or not record.address:
            return
        given_host, _, port = record.address.rpartition(":")
        if given_host.strip("[]") == host:
            address = None  # back at the given address
        else:
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if self.store.learn_address(fingerprint, address):
            log.info("peer %s seen at %s (given %s)", fingerprint[:16], address, record.address)

    def _keep_bulk_peers(self, now: float) -> None:
        """A session with file data moving on it is not idle, nor are the peer's others:
        its chat session closed mid-transfer would leave chats to share the bulk one
        (and the receiver dialling an extra session again)."""
        peers = {self.pool.peer_of(c) for c in self.files.bulk_links() if c in self.pool}
        for peer in peers:
            for conn_id in self.pool.connections(peer):
                self.pool.touch(conn_id, now)

    async def _tick(self) -> None:
        """Once a second: expire idle sessions and forget old handshake IDs."""
        while True:
            await asyncio.sleep(1.0)  # a periodic timer, not synchronisation
            now = time.monotonic()
            self._keep_bulk_peers(now)
            for peer, conn_id in self.pool.expire(now):
                link = self.links.get(conn_id)
                if link is None:
                    continue
                if self.pool.count(peer) == 0 or peer < self.identity.fingerprint:
                    # The peer's last session stays: keepalive tells us when the peer
                    # is gone, and "online" keeps meaning reachable. Extra ones go,
                    # closed by the lower fingerprint's node alone (see the rules).
                    self.pool.add(peer, conn_id, now)
                    continue
                self._session_gone(link, peer)
                link.close("idle")
            self.policy.prune(int(time.time() * 1000))
