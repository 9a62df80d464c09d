"""The Node: the one API both faces use. It wires the parts and publishes events.

Rules:
- The faces call only this class: ``send``, ``broadcast``, ``peers``, ``history``,
  ``search``, ``typing``, ``add_peer``, ``rename_contact``, ``block_contact``,
  ``remove_contact``, ``resolve``, ``retry_now``, ``stats`` and the event stream
  (``subscribe`` or ``events()``). They never touch sockets, keys or SQL.
- Presence: at start and after every change to the address book (added, blocked,
  unblocked, removed, protocol) the node calls ``sessions.contacts_changed``, which
  keeps a session open to every contact it may dial (``enclave.node.dialing``);
  ``peers`` says who is online, when the others were last seen and when what waits
  for them is tried next.
- Sessions live in ``sessions.Sessions``; the fate of each message lives in
  ``delivery.Delivery``; the Node holds no rule of either.
- Several nodes may live in one process, each with its own home and store.
- A person's mistake (unknown peer, ambiguous prefix, empty or too long message)
  raises ``UserError`` with a one-line explanation.
- Upkeep of the store (pruning the v1 seen tables) runs on the store's writer thread,
  never on the event loop, in transactions of bounded size.
- No silent downgrade: a peer that has spoken v2 (or was marked v2) is marked legacy v1
  only with ``force`` (``check_protocol_change``, the one rule every face asks). A
  protocol switch loses no message: what is queued for the peer goes out by its new
  protocol (``_protocol_changed``).
"""

import asyncio
import logging
import sqlite3
import time
from dataclasses import dataclass, replace
from pathlib import Path

from enclave.errors import UserError
from enclave.identity import keys
from enclave.node import allocator
from enclave.node import settings as settings_mod
from enclave.node.api_discovery import DiscoveryApi, Nearby, browse_nearby, find_inviter  # noqa: F401
from enclave.node.api_files import FilesApi, check_source  # noqa: F401 - check_source: the faces' rule
from enclave.node.api_groups import GroupInfo, GroupMember, GroupsApi, GroupSent  # noqa: F401
from enclave.node.api_keys import KeyRotated, KeysApi  # noqa: F401
from enclave.node.api_messages import MessagesApi
from enclave.node.api_pairing import Invitation, Paired, PairingApi, PairingEnded  # noqa: F401
from enclave.node.book import (  # noqa: F401 - check_name, DowngradeRefused: the faces' rules
    Added,
    DowngradeRefused,
    add_contact,
    block_contact,
    check_name,
    check_protocol_change,
    check_text,
    record_protocol,
    remove_contact,
    rename_contact,
)
from enclave.node.clock import from_environment as clock_from_environment
from enclave.node.delivery import Delivery
from enclave.node.disappear import Disappearing
from enclave.node.events import ContactChanged, DeliveryChanged, NodeProblem
from enclave.node.filenames import UnsafeName, safe_name  # noqa: F401 - the faces' rule of names
from enclave.node.files import Files
from enclave.node.groups import Groups
from enclave.node.key_handover import Handover, Successions
from enclave.node.lookup import resolve_peer
from enclave.node.outgoing import Out
from enclave.node.pairing import Pairing, parse_code  # noqa: F401 - parse_code: the faces' rule
from enclave.node.quotas import ReceiveQuotas
from enclave.node.receipts import Receipts
from enclave.node.revocations import Revocations
from enclave.node.sessions import Sessions
from enclave.node.staging import Staging
from enclave.protocol.crypto import Identity
from enclave.protocol.legacy import MAX_SKEW
from enclave.store import Peer, Store

log = logging.getLogger("enclave.node")
# A v1 envelope is accepted up to MAX_SKEW seconds after its timestamp; its seen entry is
# kept 15 minutes longer (PROTOCOL.md d, step 9), which outlasts a backward clock step
# of that size. UPKEEP_EVERY: seconds between prunes; PRUNE_STEP: most entries of each
# table one transaction removes (a backlog goes in several, the writer free between).
V1_SEEN_KEEP = MAX_SKEW + 15 * 60
UPKEEP_EVERY = 60.0
PRUNE_STEP = 5000


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """A peer and its presence: ``online``; else ``peer.last_seen`` (epoch seconds or
    None), how many messages wait for it and in how many seconds they are tried again
    (None: no try is waiting, e.g. one is under way)."""

    peer: Peer
    online: bool
    queued: int = 0
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class Retried:
    """What ``Node.retry_now`` did: failed messages put back in the outbox (rowids), how
    many messages wait in all for the peers tried, and the peers tried at once (hex)."""

    requeued: list[int]
    waiting: int
    tried: list[str]


@dataclass(frozen=True, slots=True)
class Sent:
    """A message accepted into the outbox (durable)."""

    peer: str
    rowid: int
    id: bytes


class Node(FilesApi, GroupsApi, PairingApi, DiscoveryApi, KeysApi, MessagesApi):
    def __init__(
        self,
        home: str | Path,
        private_key,
        settings=None,
        retired=(),
        store_key=None,
        sealing=None,
        clock=None,
    ) -> None:
        """``retired``: (seq, private key, encoded statement) of each key this home
        rotated away from (``identity.keys.Identity.retired``): they answer contacts
        that have not switched yet. ``store_key`` (``Identity.store_key``) seals the
        history on disk (store/sealing.py; None: kept in clear, for tests and tools);
        ``sealing(done, total)`` hears the progress of sealing what an older Enclave
        left in clear, at start. ``clock``: the wall time disappearing messages
        expire by (``clock.Clock``; a test passes one it moves)."""
        self.home = Path(home)
        self._store_key, self._sealing = store_key, sealing
        self.identity = Identity(private_key)
        self._retired = [(seq, Identity(key), statement) for seq, key, statement in retired]
        self.fingerprint = self.identity.fingerprint.hex()
        self.settings = settings if settings is not None else settings_mod.load(self.home)
        self.address: tuple[str, int] | None = None
        self.store: Store | None = None
        self.sessions: Sessions | None = None
        self.delivery: Delivery | None = None
        self.files: Files | None = None
        self.groups: Groups | None = None
        self.pairing: Pairing | None = None
        self.discovery = None  # api_discovery: the LAN announcement and what it hears
        self.clock = clock if clock is not None else clock_from_environment()
        self.disappearing: Disappearing | None = None
        self._subscribers: list = []
        self._quiet: list = []  # subscribers that skip per-message "queued"/"sent"
        self._started = 0.0
        self._upkeep: asyncio.Task | None = None

    # --- life ---------------------------------------------------------------------------

    async def start(self, host: str = "0.0.0.0", port: int = 8000) -> tuple[str, int]:
        from enclave.identity.home import Home, prepare

        allocator.tune()  # file pieces: no page faults per buffer (allocator.py)
        self.store = Store.open(
            prepare(Home(self.home)).db_path,
            self.settings.store_sync,
            key=self._store_key,
            progress=self._sealing,
        )
        self.sessions = Sessions(self.identity, self.store, self.settings, self._publish)
        handover = Handover(self.store, self.identity, self._retired, self._publish)
        handover.start(time.time())
        self.sessions.handover = self.sessions.policy.handover = handover
        self.sessions.successions = Successions(
            self.sessions, self.store, self._publish, self._contact_key_changed
        )
        self.sessions.revocations = Revocations(self.sessions, self.store, self._contact_revoked)
        self.sessions.receipts = self.receipts = Receipts(self.sessions, self.store, self._publish)
        self.delivery = Delivery(
            self.store,
            self.identity.fingerprint,
            self.sessions,
            self._publish,
            commit_batch=self.settings.commit_batch,
            quotas=ReceiveQuotas.from_settings(self.settings),
        )
        self.receipts.shown = self.delivery.newest_shown
        self.sessions.delivery = self.delivery
        self.disappearing = Disappearing(self.store, self.delivery, self._publish, self.clock)
        downloads = settings_mod.downloads_folder(self.settings, self.home)
        staging = Staging(self.home, self.store)
        self.files = Files(
            self.store, self.sessions, self.settings, self._publish, downloads, staging
        )
        self.sessions.files = self.files
        self.files.load()
        self.groups = Groups(
            self.store, self.identity, self.sessions, self.delivery, self.settings, self._publish
        )
        self.sessions.groups = self.groups
        self.groups.load()
        self.delivery.progress = self._wants_progress
        try:
            self.address = await self.sessions.listen(host, port)
        except OSError as err:
            self.store.close()
            raise UserError(
                f"cannot listen on {host}:{port} ({err.strerror}); is another node using it? try --port"
            ) from None
        self.pairing = Pairing(self._own_card, self._add_paired, self._publish, self.set_invites)
        self.sessions.pairing = self.pairing
        self.delivery.start()
        self.disappearing.start()
        self.sessions.contacts_changed()  # presence: a session to every contact
        await self._start_discovery(host)
        self._started = time.monotonic()
        self._upkeep = asyncio.get_running_loop().create_task(
            self._store_upkeep(), name="enclave-store-upkeep"
        )
        return self.address

    async def stop(self) -> None:
        """Close sessions cleanly and commit everything; queued messages stay queued."""
        if self.sessions is None:
            return
        await self._stop_discovery()  # first: nothing heard may dial while sessions close
        if self._upkeep is not None:
            self._upkeep.cancel()  # before the writer thread goes away
            await asyncio.gather(self._upkeep, return_exceptions=True)
        self.pairing.close()
        self.receipts.close()
        await self.disappearing.close()
        await self.delivery.legacy.close()  # before the crypto pool goes away
        await self.sessions.close()
        await self.files.close()
        await self.delivery.stop()
        self.store.close()
        self.sessions = None

    async def _store_upkeep(self) -> None:
        """Now and every UPKEEP_EVERY seconds: forget v1 seen entries too old for any
        envelope to be replayed against them, on the store's writer thread."""
        loop = asyncio.get_running_loop()
        writer, prune = self.sessions.policy.writer, self.store.v1_prune
        while True:
            older_than = time.time() - V1_SEEN_KEEP
            try:
                removed = PRUNE_STEP
                while removed >= PRUNE_STEP:  # a full step may have left more
                    removed = await loop.run_in_executor(writer, prune, older_than, PRUNE_STEP)
            except sqlite3.Error as err:  # a busy or full disk: try again next time
                log.warning("pruning the v1 seen tables failed: %s", err)
            await asyncio.sleep(UPKEEP_EVERY)  # a periodic timer, not synchronisation

    # --- events -------------------------------------------------------------------------

    def subscribe(self, callback, progress: bool = True) -> callable:
        """Call ``callback(event)`` for every event; returns the unsubscribe function.

        ``progress=False``: no ``DeliveryChanged`` "queued" or "sent" events (two per
        message that a bulk sender may not need; when no subscriber wants them, the
        node does not make them at all). "delivered" and "failed" always come."""
        self._subscribers.append(callback)
        if not progress:
            self._quiet.append(callback)

        def unsubscribe() -> None:
            self._subscribers.remove(callback)
            if not progress:
                self._quiet.remove(callback)

        return unsubscribe

    def _wants_progress(self) -> bool:
        return len(self._subscribers) > len(self._quiet)

    async def events(self):
        """Every event from now on, as an async iterator."""
        queue: asyncio.Queue = asyncio.Queue()
        unsubscribe = self.subscribe(queue.put_nowait)
        try:
            while True:
                yield await queue.get()
        finally:
            unsubscribe()

    def _publish(self, event) -> None:
        quiet = self._quiet
        if quiet and type(event) is DeliveryChanged and event.state in ("queued", "sent"):
            callbacks = [c for c in self._subscribers if c not in quiet]
        else:
            callbacks = list(self._subscribers)
        for callback in callbacks:
            try:
                callback(event)
            except Exception:  # one broken face must not break the node or the others
                log.exception("an event subscriber failed on %s", type(event).__name__)

    # --- peers ----------------------------------------------------------------------------

    def resolve(self, query: str) -> Peer:
        """The one peer a name or fingerprint prefix (≥ 8 hex characters) names."""
        return resolve_peer(self.store, query)

    def contacts(self) -> list[Peer]:
        """Every peer in the address book (blocked ones too), as stored."""
        return self.store.list_peers()

    def contact(self, fingerprint: str) -> Peer | None:
        """One peer by its full fingerprint (hex), or None."""
        return self.store.get_peer(fingerprint)

    def key_history(self, query: str) -> list[tuple[int, str, str, float]]:
        """(seq, old fingerprint, new fingerprint, applied at) of every key a contact
        handed over to its next one, oldest first: the audit trail of its rotations."""
        return self.store.key_history(self.resolve(query).fingerprint)

    def queued(self) -> int:
        """Messages waiting in the outbox for their peers."""
        return self.delivery.queued()

    def public_key_pem(self) -> str:
        """This node's public key as the PEM a peer adds (SubjectPublicKeyInfo)."""
        return keys.spki_pem(self.identity.peer_key.key).decode("ascii")

    def peers(self) -> list[PeerStatus]:
        return [self._status(p) for p in self.store.list_peers()]

    def _status(self, p: Peer) -> PeerStatus:
        fp = bytes.fromhex(p.fingerprint)
        if self.sessions.online(fp):
            return PeerStatus(p, True, self.delivery.queued_for(fp))
        queued = self.delivery.queued_for(fp)
        return PeerStatus(p, False, queued, self.sessions.dialer.retry_in(fp) if queued else None)

    def add_peer(
        self,
        public_key_pem: str,
        address: str | None,
        name: str | None = None,
        protocol: str | None = None,
        *,
        force: bool = False,
    ) -> Peer:
        """Add or update a peer (``add_contact``); the peer as stored."""
        added = self.add_contact(public_key_pem, address, name=name, protocol=protocol, force=force)
        return added.peer

    def add_contact(self, pem: bytes | str, address: str | None, **options) -> Added:
        """Add or update a peer from its public key PEM, with ``book.add_contact``'s
        checks and options (name, protocol, force, source); ``protocol`` also sets what
        it is spoken. A refused downgrade (``DowngradeRefused``) changes nothing, not
        even the address."""
        added = add_contact(self.store, self.fingerprint, pem, address, **options)
        if added.downgraded:  # forced back: the node's own memory of its v2 goes too
            self.sessions.policy.forget_v2_seen(bytes.fromhex(added.peer.fingerprint))
        self.sessions.policy.reload()
        if options.get("protocol") is not None:
            self._protocol_changed(bytes.fromhex(added.peer.fingerprint))
        self.sessions.contacts_changed()
        change = "added" if added.added else "updated"
        self._publish(ContactChanged(added.peer.fingerprint, change, added.peer.name))
        return added

    def rename_contact(self, query: str, new_name: str | None) -> Peer:
        """Give a contact another name (None: none)."""
        peer = rename_contact(self.store, query, new_name)
        self._publish(ContactChanged(peer.fingerprint, "renamed", peer.name))
        return peer

    def block_contact(self, query: str, blocked: bool = True) -> Peer:
        """Block a contact (``blocked=False``: unblock it). A blocked contact's sessions
        close now; its handshakes and v1 envelopes are refused like a stranger's, before
        any private-key work, so nothing it sends is shown or stored. What is queued for
        it waits in the outbox and goes out once it is unblocked."""
        peer = block_contact(self.store, query, blocked)
        fp = bytes.fromhex(peer.fingerprint)
        self.sessions.policy.reload()
        self.sessions.contacts_changed()  # not dialled while blocked; again once unblocked
        if blocked:
            self.sessions.drop_peer(fp)
            self.delivery.set_aside(fp)
        else:
            self.delivery.take_back(fp)
        change = "blocked" if blocked else "unblocked"
        self._publish(ContactChanged(peer.fingerprint, change, peer.name))
        return peer

    def owed(self, query: str) -> int:
        """Messages still owed to a contact: what removing it drops."""
        return self.store.owed_count(self.resolve(query).fingerprint)

    def remove_contact(self, query: str) -> Peer:
        """Forget a contact: its sessions close, its history and everything still owed
        to it are deleted (faces ask first, saying how many messages ``owed`` drops)."""
        peer = self.resolve(query)
        fp = bytes.fromhex(peer.fingerprint)
        self.delivery.set_aside(fp)
        self.delivery.keep_history(fp, True)  # the row and its setting go
        remove_contact(self.store, peer.fingerprint)
        self.sessions.policy.reload()
        if any(fp in g.log.members for g in self.groups.groups.values()):
            # Still in a group with us: a member again, no longer a contact.
            self.groups.sync.spawn(self.groups.contact_removed())
        self.sessions.contacts_changed()  # no longer dialled
        self.sessions.drop_peer(fp)
        self._publish(ContactChanged(peer.fingerprint, "removed", peer.name))
        return peer

    def clear_history(self, query: str) -> int:
        """Erase the conversation with a contact here (bodies zeroed in the file, the
        WAL checkpointed; ids kept so a late resend is not shown again); what was still
        owed to it leaves the outbox. The contact keeps its copy. How many went."""
        peer = self.resolve(query)
        fp = bytes.fromhex(peer.fingerprint)
        self.delivery.set_aside(fp)  # nothing of it is sent after this
        erased = self.store.delete_history(peer.fingerprint)
        self._publish(ContactChanged(peer.fingerprint, "cleared", peer.name))
        return erased

    def set_protocol(self, query: str, proto: str, *, force: bool = False) -> Peer:
        """'v1' marks a peer legacy (the original client): it is sent v1 envelopes only.
        'auto' (the default) speaks v2 and accepts v1 until the peer first speaks v2.
        A peer that has spoken v2 becomes v1 only with ``force`` (``DowngradeRefused``)."""
        peer = self.resolve(query)
        check_protocol_change(peer, proto, force=force)
        record_protocol(self.store, peer, proto)
        if proto == "v1":  # forced back: the node's own memory of its v2 goes too
            self.sessions.policy.forget_v2_seen(bytes.fromhex(peer.fingerprint))
        self.sessions.policy.reload()
        self._protocol_changed(bytes.fromhex(peer.fingerprint))
        self.sessions.contacts_changed()
        return self.store.get_peer(peer.fingerprint)

    def _contact_key_changed(self, old: bytes, new: bytes) -> None:
        """A contact's row moved to its successor key (``key_handover.Successions``):
        whatever knew the old fingerprint forgets it, and the new one is sent to."""
        self.delivery.set_aside(old)
        if old in self.delivery.unkept:  # the setting is the row's: it moves with it
            self.delivery.keep_history(old, True)
            self.delivery.keep_history(new, False)
        self.sessions.policy.reload()
        self.sessions.drop_peer(old)
        self.delivery.take_back(new)
        self.sessions.contacts_changed()

    def _contact_revoked(self, fingerprint: str) -> None:
        """A contact's owner revoked its key: a stranger from now on (``revocations``)."""
        fp = bytes.fromhex(fingerprint)
        self.delivery.set_aside(fp)
        self.sessions.policy.reload()
        self.sessions.contacts_changed()
        self.sessions.drop_peer(fp)
        peer = self.store.get_peer(fingerprint)
        name = peer.name if peer is not None else None
        self._publish(ContactChanged(fingerprint, "revoked", name))
        who = name or fingerprint[:16]
        self._publish(
            NodeProblem(
                f"{who} revoked their key: messages to and from it are refused from now on."
                f" If {who} has a new key, pair again (enclave invite / join)"
            )
        )

    def _protocol_changed(self, peer: bytes) -> None:
        """Send what is queued for ``peer`` by its new protocol. The v1 sender lets go of
        the queue at once, or, while an envelope is on the wire, right after it (an
        unwritten one goes back to the queue and out again by the new protocol)."""

        def redispatch() -> None:
            if self.sessions is not None:  # unless the node stopped meanwhile
                self.delivery.dispatch(peer)

        self.delivery.legacy.release(peer, redispatch)
        self.delivery.dispatch(peer)

    def set_verified(self, query: str, verified: bool = True) -> Peer:
        """Record that the user compared fingerprints out of band (or withdraw it)."""
        peer = self.resolve(query)
        self.store.set_verified(peer.fingerprint, verified)
        return self.store.get_peer(peer.fingerprint)

    async def retry(self, query: str | None = None) -> list[int]:
        """Put failed messages (of one peer, or all) back in the outbox; their rowids.
        Their peers are tried at once (``retry_now``)."""
        return (await self.retry_now(query)).requeued

    async def retry_now(self, query: str | None = None) -> Retried:
        """The user's "retry": failed messages (of one peer, or all) go back in the
        outbox, and the peer (or every peer something waits for) is dialled at once,
        its backoff reset; a contact named by ``query`` is tried even if nothing waits."""
        fingerprint = self.resolve(query).fingerprint if query else None
        requeued = await self.delivery.retry_failed(fingerprint)
        if fingerprint is not None:
            peers = [bytes.fromhex(fingerprint)]
        else:
            peers = [p for p, q in self.delivery.queues.items() if q]
        tried = [p.hex() for p in peers if self.sessions.dialer.retry_now(p)]
        waiting = sum(self.delivery.queued_for(p) for p in peers)
        return Retried(requeued, waiting, tried)

    async def settled(self) -> None:
        """Wait until the chats already shown are stored: a face calls it before it reads
        a conversation or looks a message up by its reference (a chat is shown as soon
        as it is decrypted, and stored a commit later: see delivery's rules)."""
        if self.delivery is not None:
            await self.delivery.settled()

    def history(self, query: str, limit: int = 50, before_rowid: int | None = None):
        """Messages with a peer, oldest first. An outgoing row the file still calls
        queued is shown as sent once this node handed it to a session (see delivery)."""
        rows = self.store.history(self.resolve(query).fingerprint, limit, before_rowid)
        announced = self.delivery.announced if self.delivery is not None else ()
        return [
            replace(m, state="sent") if m.state == "queued" and m.rowid in announced else m
            for m in rows
        ]

    def search(self, text: str, limit: int = 50):
        """The newest ``limit`` messages (any peer) containing ``text``, oldest first."""
        if not isinstance(text, str) or not text.strip():
            raise UserError("nothing to search for")
        return self.store.search_messages(text.strip(), limit)

    # --- sending --------------------------------------------------------------------------

    async def send(
        self, query: str, text: str, reply: str | None = None, reply_direction: str | None = None
    ) -> Sent:
        """Queue ``text`` for one peer; returns once it is durable in the outbox.
        ``reply`` names a message of this conversation that it quotes (its #ref, or its
        full id with ``reply_direction``, as ``find_message`` takes them)."""
        check_text(text)
        peer = self.resolve(query)
        if not peer.contact:
            raise UserError(
                f"{peer.fingerprint[:8]} is in a group with you, not a contact; add them to write directly"
            )
        if peer.blocked:
            label = peer.name or keys.group(peer.fingerprint, 4)
            raise UserError(f"{label} is blocked; unblock it to send (/unblock or enclave unblock)")
        if peer.revoked:
            label = peer.name or keys.group(peer.fingerprint, 4)
            raise UserError(f"{label} revoked this key; pair again if they have a new one")
        quoted = None
        if reply is not None:
            if peer.protocol == "v1":
                raise UserError("replies need Enclave's own protocol; this peer speaks only v1")
            await self.settled()  # the quoted chat may have been shown a moment ago
            quoted = self.find_message(peer.fingerprint, reply, reply_direction).id
            if len(quoted) != 16:
                raise UserError("that message came from the original client: it cannot be quoted")
        lasts = self.disappearing.lasts_s(peer.fingerprint)
        out = await self.delivery.submit(
            bytes.fromhex(peer.fingerprint), text, reply=quoted, lasts_s=lasts
        )
        return _sent(out)

    def submit(self, peer_fp: bytes, text: str) -> asyncio.Future:
        """Fast path for benchmarks and bulk senders: no lookup; a future of ``Out``."""
        return self.delivery.submit(peer_fp, text)

    def typing(self, query: str, active: bool) -> bool:
        """Tell a peer whether the user is typing to it; False when it is not online
        (typing hints are never queued)."""
        peer = self.resolve(query)
        return self.sessions.send_typing(bytes.fromhex(peer.fingerprint), bool(active))

    def submit_many(self, peer_fp: bytes, texts: list[str]) -> asyncio.Future:
        """Many messages to one peer (no lookup); one future of their ``Out``s, in order."""
        return self.delivery.submit_many(peer_fp, texts)

    async def broadcast(self, text: str, queries: list[str] | None = None) -> list[Sent]:
        """One outbox row per recipient, all queued at once; missing sessions are
        dialled concurrently. Every known, unblocked peer unless ``queries`` names some."""
        check_text(text)
        if queries is None:
            targets = [p for p in self.store.list_peers() if not p.blocked]
        else:
            targets = list({p.fingerprint: p for p in map(self.resolve, queries)}.values())
        lasts = self.disappearing.lasts_s
        futures = [
            self.delivery.submit(bytes.fromhex(p.fingerprint), text, lasts_s=lasts(p.fingerprint))
            for p in targets
        ]
        sent = [_sent(out) for out in await asyncio.gather(*futures)]
        if sent:  # each chat shows it went to everyone (the store's broadcast mark)
            await asyncio.get_running_loop().run_in_executor(
                self.sessions.policy.writer, self.store.mark_broadcast, [s.rowid for s in sent]
            )
        return sent

    async def wait_sent(self, sent: list[Sent], timeout: float) -> int:
        """How many of ``sent`` were handed to a live session (or delivered) within
        ``timeout`` seconds; the rest wait in the outbox for their peers."""
        waiting = {s.rowid for s in sent}
        done = asyncio.Event()

        def on_event(event) -> None:
            if isinstance(event, DeliveryChanged) and event.state in ("sent", "delivered"):
                waiting.discard(event.rowid)
                if not waiting:
                    done.set()

        unsubscribe = self.subscribe(on_event)
        try:
            rows = self.store.outbox_rows_in_state([s.rowid for s in sent], ("sent", "delivered"))
            waiting.difference_update(rows)
            waiting.difference_update(self.delivery.announced)
            if waiting:
                try:
                    await asyncio.wait_for(done.wait(), timeout)
                except TimeoutError:
                    pass
        finally:
            unsubscribe()
        return len(sent) - len(waiting)

    # --- numbers --------------------------------------------------------------------------

    def stats(self) -> dict:
        s, d = self.sessions, self.delivery
        return {
            "sessions": len(s.pool),
            "links": len(s.links),
            "queued": d.queued(),
            "handshakes": s.stats["handshakes"],
            "refused": s.stats["refused"],
            "parked": s.stats["parked"],
            "writes": s.stats["writes"],
            "bytes_in": s.stats["bytes_in"],
            "bytes_out": s.stats["bytes_out"],
            "crypto_jobs": s.stats["crypto_jobs"],
            "closed": dict(s.stats["closed"]),
            "private_ops": self.identity.private_ops,
            **d.stats,
            **d.intake.stats,
            **self.files.stats,
            **self.groups.stats,
            "file_chunk_reads": self.files.reader.reads,
            "uptime": time.monotonic() - self._started,
        }


def _sent(out: Out) -> Sent:
    return Sent(out.peer.hex(), out.rowid, out.id)
