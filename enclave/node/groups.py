"""Group chat: the engine the Node's group calls and the sessions' group events come to
(issue 18; docs/PROTOCOL.md "Groups").

Rules:
- A group is its membership log (``enclave.protocol.group_log``), kept whole in the
  store and checked whole at start: a stored log that no longer checks is left out,
  with a warning, rather than trusted.
- Our own changes (create, add, remove, leave) are records we sign and apply to our
  log, whose checks are the one judge of ours as of anyone's; each is stored on the
  writer thread, in order, before a commit that could hold a post of its epoch.
  Members hear of them by catch-up (``group_sync``).
- Members who are not contacts get a peers row of their own (contact 0, the log's
  first address hint as their address): the handshake policy takes them only while
  we share a group with them, and direct messages to them are refused until the user
  adds them.
- A post is one outbox row per other current member (``Delivery.submit_post``) with
  the group id, the epoch, our next sequence number and the next Lamport time
  (max of every post seen, plus one). Both counters are restored from the store at
  start. Blocked contacts are left out of a post.
- Faces hear ``GroupChanged`` for every applied record and ``GroupMessageReceived``
  for every new post, once it is stored.
- Disappearing posts: a group's timer is its log's (a TIMER record, an admin's). A post
  is sent under the timer at the log's head (every copy expires at created + timer) and
  a member's post expires by the timer at the epoch it was written at
  (``lasts_at``, asked by the commit for each post it stores): every member gives a
  post the same timer, whatever order records and posts reached it in. The store
  mirrors the head's timer with the records (``groups.disappear_s``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass

from enclave.errors import PeerError, UsageError, UserError
from enclave.node.events import GroupChanged, GroupMessageReceived
from enclave.node.group_sync import GroupSync
from enclave.protocol import group_log as gl
from enclave.protocol.crypto import spki_pem
from enclave.store.checks import check_address

log = logging.getLogger("enclave.node.groups")
STATES = ("member", "left", "removed")


@dataclass(slots=True)
class Group:
    log: gl.GroupLog
    state: str  # one of STATES
    lamport: int = 0  # the highest Lamport time of any post seen in the group
    seq: int = 0  # our own last post's sequence number

    @property
    def count(self) -> int:
        """Records held (the epoch of the next one)."""
        return self.log.epoch + 1


def now_ms() -> int:
    return int(time.time() * 1000)


class Groups:
    def __init__(self, store, identity, sessions, delivery, settings, publish) -> None:
        self.store = store
        self.identity = identity
        self.own = identity.fingerprint
        self.sessions = sessions
        self.delivery = delivery
        self.publish = publish
        self.max_members = settings.group_max_members
        self.max_groups = settings.max_groups
        self.groups: dict[bytes, Group] = {}
        # Changes applied in memory whose store writes and effects (member peers rows,
        # the policy) are still under way, per group: a post waits for them, or its
        # rows could name a member the store does not know yet.
        self._unsettled: dict[bytes, int] = {}
        self._settled: dict[bytes, asyncio.Event] = {}
        self.sync = GroupSync(self)
        self.stats = {"group_posts_refused": 0, "group_records_refused": 0}
        delivery.before_send = self.sync.before_send
        delivery.on_post = self._post_stored
        delivery.post_lasts = self.lasts_at

    # --- life -----------------------------------------------------------------------

    def load(self) -> None:
        """Every stored group, its log checked whole, its clocks restored."""
        own = self.own.hex()
        for row in self.store.list_groups():
            try:
                records = [gl.decode_record(r) for r in row.records]
                glog = gl.GroupLog.load(records, self.max_members)
            except PeerError as err:
                log.warning("group %s left out: its stored log fails (%s)", row.id.hex(), err)
                continue
            lamport, seq = self.store.group_post_counters(row.id, own)
            self.groups[row.id] = Group(glog, row.state, lamport, seq)
        self.members_changed()

    def members_changed(self) -> None:
        """The handshake policy takes the non-contacts we share a current group with."""
        fps = set()
        for g in self.groups.values():
            if g.state == "member":
                fps.update(g.log.members)
        fps.discard(self.own)
        policy = self.sessions.policy
        gone = policy.group_members - fps
        policy.group_members = fps
        policy.reload()
        for fp in gone:  # no group shared any more: a stranger, its sessions end
            if fp not in policy.keys:
                self.sessions.drop_peer(fp)

    # --- finding ----------------------------------------------------------------------

    def resolve(self, query: str) -> bytes:
        return resolve_group({gid: g.log.name for gid, g in self.groups.items()}, query)

    def mine(self, gid: bytes) -> Group:
        """A group we are a member of, or UserError."""
        g = self.groups[gid]
        if g.state != "member":
            raise UserError(f"you are no longer in {g.log.name} ({g.state})")
        return g

    # --- our own changes --------------------------------------------------------------

    def _entry(self, peer) -> gl.Entry:
        """A contact as a group member: its canonical key, its name (or the start of its
        fingerprint) and the addresses we know it by, as hints."""
        from enclave.protocol.crypto import PeerKey

        pem = spki_pem(PeerKey.from_pem(peer.public_key.encode()).key)
        name = peer.name if peer.name and gl.name_problem(peer.name) is None else None
        hints = [a for a in peer.dial_addresses if not gl.hint_problem(a)][: gl.MAX_HINTS]
        return gl.entry(pem, name or peer.fingerprint[:8], hints)

    def own_entry(self) -> gl.Entry:
        pem = spki_pem(self.identity.peer_key.key)
        return gl.entry(pem, self.own.hex()[:8])

    async def create(self, name: str, peers) -> bytes:
        """A new group of us (its admin) and ``peers`` (contacts); its id."""
        if len(self.groups) >= self.max_groups:
            raise UserError(f"this node keeps at most {self.max_groups} groups (max_groups)")
        why = gl.name_problem(name)
        if why is not None:
            raise UserError(f"a group name must be 1-64 bytes of visible text ({why})")
        if any(g.log.name.casefold() == name.casefold() for g in self.groups.values()):
            raise UserError(f"you already have a group named {name}")
        entries = [self.own_entry()] + [self._entry(p) for p in peers]
        gid = secrets.token_bytes(gl.GROUP_ID_LEN)
        try:
            glog = gl.GroupLog.create(self.identity, gid, name, entries, now_ms(), self.max_members)
        except (PeerError, UsageError) as err:
            raise UserError(f"cannot create {name}: {_why(err)}") from None
        await self._store(self.store.create_group, gid, name, glog.encoded, now_ms(), glog.timer_s)
        self.groups[gid] = Group(glog, "member")
        self._begin(gid)
        await self._then(None, gid, glog.records)
        return gid

    async def change(self, gid: bytes, build) -> gl.Record:
        """Sign the record ``build(log)`` makes, apply it, store it, tell the members."""
        g = self.mine(gid)
        try:
            record = build(g.log)
            g.log.apply(record)
        except (PeerError, UsageError) as err:
            raise UserError(f"{g.log.name}: {_why(err)}") from None
        self._begin(gid)
        stored = self._store_records(gid, g.log, record.epoch, [g.log.encoded[record.epoch]])
        await self._then(stored, gid, [record])
        return record

    def _store_records(self, gid: bytes, glog: gl.GroupLog, first: int, encoded: list):
        """Records handed to the writer, with the timer in force at the last of them."""
        last = first + len(encoded) - 1
        return self._store(
            self.store.add_group_records, gid, first, encoded, None, None, glog.timer_at(last)
        )

    def lasts_at(self, gid: bytes, epoch: int) -> int:
        """A post's timer: its group's at the epoch it was written at (0: it stays). Read
        on the writer thread: a held epoch's timer never changes."""
        g = self.groups.get(gid)
        return g.log.timer_at(epoch) if g is not None else 0

    async def post(self, gid: bytes, text: str) -> list:
        """Queue ``text`` for every other member; the ``Out``s once durable."""
        await self.settled(gid)
        g = self.mine(gid)
        marks = self.sessions.policy.proto  # fp -> (proto, v2_seen, blocked), in memory
        targets = [
            fp
            for fp in g.log.members
            if fp != self.own and not marks.get(fp, ("auto", False, False))[2]
        ]
        if not targets:
            raise UserError(f"nobody else is in {g.log.name} to read it")
        g.lamport += 1
        g.seq += 1
        group = (gid, g.log.epoch, g.lamport, g.seq)
        return await self.delivery.submit_post(targets, text, group, lasts_s=g.log.timer_s)

    # --- what records change ------------------------------------------------------------

    def received(self, gid: bytes, records: list):
        """Records a member sent us, applied to our log already: stored (handed to the
        writer now, before any commit of the posts behind them), then acted on."""
        g = self.groups[gid]
        first = records[0].epoch
        encoded = g.log.encoded[first : first + len(records)]
        self._begin(gid)
        return self._then(self._store_records(gid, g.log, first, encoded), gid, records)

    def adopt(self, gid: bytes, glog: gl.GroupLog):
        """A whole log naming us a member, sent by a member: we are in a new group from
        now (posts behind it in the same batch are judged against it)."""
        self.groups[gid] = Group(glog, "member")
        self._begin(gid)
        stored = self._store(
            self.store.create_group, gid, glog.name, glog.encoded, now_ms(), glog.timer_s
        )
        return self._then(stored, gid, glog.records)

    async def _then(self, stored: asyncio.Future | None, gid: bytes, records) -> None:
        """Finish a change begun with ``_begin``: its records stored, then acted on."""
        try:
            if stored is not None:
                await stored
            await self.applied(gid, records)
        finally:
            left = self._unsettled[gid] - 1
            if left:
                self._unsettled[gid] = left
            else:
                del self._unsettled[gid]
                self._settled[gid].set()

    def _begin(self, gid: bytes) -> None:
        self._unsettled[gid] = self._unsettled.get(gid, 0) + 1
        self._settled.setdefault(gid, asyncio.Event()).clear()

    async def settled(self, gid: bytes) -> None:
        """Return once every change of ``gid`` applied so far is stored and acted on."""
        if gid in self._unsettled:
            await self._settled[gid].wait()

    async def applied(self, gid: bytes, records) -> None:
        g = self.groups[gid]
        state = self._state_after(g)
        if state != g.state:
            g.state = state
            await self._store(self.store.set_group_state, gid, state)
        await self._member_peers(g.log)
        self.members_changed()
        for r in records:
            self.publish(describe(gid, g.log, r))
        self.sync.announce(gid)

    def _state_after(self, g: Group) -> str:
        if g.log.is_member(self.own):
            return "member"
        last = g.log.records[g.log.left_at(self.own) or 0]
        return "left" if last.kind == gl.LEAVE else "removed"

    async def contact_removed(self) -> None:
        """A contact was removed from the address book: a member of a group we are in
        gets its member row back (its posts need one), as a non-contact."""
        for g in list(self.groups.values()):
            if g.state == "member":
                await self._member_peers(g.log)
        self.members_changed()

    async def _member_peers(self, glog: gl.GroupLog) -> None:
        """A peers row for every member we do not know yet (not a contact)."""
        now = time.time()
        for fp, m in glog.members.items():
            if fp == self.own or self.sessions.policy.keys.get(fp) is not None:
                continue
            hint = _dialable(m.hints)
            await self._store(
                self.store.add_member_peer, fp.hex(), m.key_pem.decode("ascii"), now, hint
            )

    def _store(self, fn, *args) -> asyncio.Future:
        """``fn(*args)`` handed to the store's writer thread now, so it runs after every
        write handed to it before (commits included) and before any handed after."""
        return asyncio.get_running_loop().run_in_executor(self.delivery.writer, fn, *args)

    # --- posts -------------------------------------------------------------------------

    def _post_stored(self, post, shown: int | None) -> None:
        g = self.groups.get(post.group_id)
        name = g.log.name if g is not None else ""
        self.publish(
            GroupMessageReceived(
                post.group_id.hex(), name, post.sender.hex(), post.id, post.body, shown,
                post.lamport, post.epoch,
            )
        )  # fmt: skip


def resolve_group(names: dict, query: str) -> bytes:
    """The id of the one group ``query`` names among ``names`` (id -> name): its name
    (case ignored) or at least 8 hex characters of its id."""
    q = (query or "").strip()
    found = [gid for gid, name in names.items() if name.casefold() == q.casefold()]
    if not found and len(q) >= 8:
        found = [gid for gid in names if gid.hex().startswith(q.lower())]
    if not found:
        raise UserError(f"no group matches {query!r} (see /groups or enclave group list)")
    if len(found) > 1:
        ids = ", ".join(gid.hex()[:8] for gid in found)
        raise UserError(f"{query!r} matches {len(found)} groups ({ids}); use the id")
    return found[0]


def _dialable(hints) -> str | None:
    """The first hint the address book takes as an address (a log's hints are only
    host:port; the store asks for brackets around an IPv6 host)."""
    for hint in hints:
        try:
            return check_address(hint)
        except UserError:
            continue
    return None


def _why(err: Exception) -> str:
    if isinstance(err, PeerError):
        return f"{err.reason.removeprefix('group_').replace('_', ' ')} ({err.detail})"
    return str(err)


def describe(gid: bytes, glog: gl.GroupLog, r: gl.Record) -> GroupChanged:
    """What a face says of a record: "alice added carol"."""
    if r.kind == gl.CREATE:
        subjects = tuple(e.fp.hex() for e in r.body[1] if e.fp != r.author)
    elif r.kind == gl.ADD:
        subjects = tuple(e.fp.hex() for e in r.body[0])
    elif r.kind in (gl.REMOVE, gl.PROMOTE):
        subjects = tuple(fp.hex() for fp in r.body[0])
    else:
        subjects = ()
    detail = r.body[0] if r.kind in (gl.RENAME, gl.CREATE) else None
    seconds = r.body[0] if r.kind == gl.TIMER else None
    return GroupChanged(
        gid.hex(), glog.name, gl.KIND_NAMES[r.kind], r.author.hex(), subjects, r.epoch, detail,
        seconds,
    )  # fmt: skip
