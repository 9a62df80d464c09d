"""The Node's group calls, for both faces (issue 18; enclave.node.groups is the engine).

Rules:
- A group is named by its name (case ignored) or at least 8 hex characters of its id;
  a member by a contact's name or fingerprint prefix, as everywhere else.
- Only contacts are put into a group, and only ones this node can reach by v2 (not
  blocked, not marked v1): a group travels over v2 sessions only.
- A member who is not a contact is shown by the name the group's log gives it, with
  ``contact`` False: the faces say "in GROUP, not a contact", and a direct message
  to it is refused until the user adds it.
- A group's disappearing-messages timer is set by an admin (a TIMER record of its
  log, like its name): 0 (off) or 30 s..4 weeks, as a conversation's.
"""

from __future__ import annotations

from dataclasses import dataclass

from enclave.errors import UserError
from enclave.identity import keys
from enclave.node.book import check_text
from enclave.node.lookup import resolve_peer
from enclave.protocol import group_log as gl


@dataclass(frozen=True, slots=True)
class GroupMember:
    fingerprint: str
    name: str  # the contact's name, else the one the group's log gives
    admin: bool
    contact: bool  # False: known only through this group (no direct messages)
    you: bool = False


@dataclass(frozen=True, slots=True)
class GroupInfo:
    id: str  # hex
    name: str
    state: str  # member | left | removed
    epoch: int
    members: tuple  # GroupMember, admins first, then by name
    disappear_s: int = 0  # the disappearing-messages timer in force (0: off)

    @property
    def admins(self) -> list[str]:
        return [m.name for m in self.members if m.admin]


@dataclass(frozen=True, slots=True)
class GroupSent:
    """A post accepted into the outbox (durable): one row per other member."""

    group: str
    id: bytes
    rowids: tuple
    members: tuple  # their fingerprints (hex), in rowid order


class GroupsApi:
    """Mixed into ``Node``: ``self.groups`` is the engine, ``self.store`` the store."""

    def groups_list(self) -> list[GroupInfo]:
        """Every group this node keeps (member or not any more), by name."""
        infos = [self._group_info(gid) for gid in self.groups.groups]
        return sorted(infos, key=lambda i: (i.state != "member", i.name.casefold(), i.id))

    def group(self, query: str) -> GroupInfo:
        return self._group_info(self.groups.resolve(query))

    def _group_info(self, gid: bytes) -> GroupInfo:
        g = self.groups.groups[gid]
        return group_info(self.store, self.identity.fingerprint, gid, g.log, g.state)

    def _group_contact(self, query: str):
        peer = resolve_peer(self.store, query)
        label = peer.name or keys.group(peer.fingerprint, 4)
        if not peer.contact:
            raise UserError(f"{label} is not a contact; add them first (/add or enclave add)")
        if peer.fingerprint == self.fingerprint:
            raise UserError("you are in every group you make")
        if peer.blocked:
            raise UserError(f"{label} is blocked; unblock it first")
        if peer.proto == "v1":
            raise UserError(f"{label} speaks only v1 (the original client), which has no groups")
        return peer

    async def create_group(self, name: str, queries: list[str]) -> GroupInfo:
        """A new group of us (admin) and the contacts ``queries`` name."""
        name = (name or "").strip()
        peers = list({p.fingerprint: p for p in map(self._group_contact, queries)}.values())
        if not peers:
            raise UserError("name at least one contact to be in the group")
        return self._group_info(await self.groups.create(name, peers))

    async def group_add(self, group: str, query: str) -> GroupInfo:
        gid = self.groups.resolve(group)
        entry = self.groups._entry(self._group_contact(query))
        await self.groups.change(gid, lambda log: log.add(self.identity, [entry], _now_ms()))
        return self._group_info(gid)

    async def group_remove(self, group: str, query: str) -> GroupInfo:
        gid = self.groups.resolve(group)
        fp = self._member_fp(gid, query)
        await self.groups.change(gid, lambda log: log.remove(self.identity, [fp], _now_ms()))
        return self._group_info(gid)

    async def group_promote(self, group: str, query: str) -> GroupInfo:
        gid = self.groups.resolve(group)
        fp = self._member_fp(gid, query)
        await self.groups.change(gid, lambda log: log.promote(self.identity, [fp], _now_ms()))
        return self._group_info(gid)

    async def group_rename(self, group: str, new_name: str) -> GroupInfo:
        """Give a group another name (admins); every member sees it."""
        gid = self.groups.resolve(group)
        new_name = (new_name or "").strip()
        why = gl.name_problem(new_name)
        if why is not None:
            raise UserError(f"a group name must be 1-64 bytes of visible text ({why})")
        await self.groups.change(gid, lambda log: log.rename(self.identity, new_name, _now_ms()))
        return self._group_info(gid)

    async def group_disappearing(self, group: str, seconds: int) -> GroupInfo:
        """Set a group's disappearing-messages timer (admins; 0: off, else 30 s to 4
        weeks): a TIMER record every member applies, so all agree on it; a post sent
        from then on is erased everywhere at its time. Every face hears
        ``GroupChanged`` (kind "timer")."""
        gid = self.groups.resolve(group)
        g = self.groups.mine(gid)
        check_group_timer(g.log, self.identity.fingerprint, seconds)
        await self.groups.change(gid, lambda log: log.set_timer(self.identity, seconds, _now_ms()))
        return self._group_info(gid)

    async def group_leave(self, group: str) -> GroupInfo:
        gid = self.groups.resolve(group)
        await self.groups.change(gid, lambda log: log.leave(self.identity, _now_ms()))
        return self._group_info(gid)

    def _member_fp(self, gid: bytes, query: str) -> bytes:
        """The member ``query`` names: a contact, or a member's log name or prefix."""
        members = self.groups.groups[gid].log.members
        q = (query or "").strip()
        found = [fp for fp, m in members.items() if m.name.casefold() == q.casefold()]
        if not found and len(q) >= 8:
            found = [fp for fp in members if fp.hex().startswith(q.lower())]
        if not found:
            peer = resolve_peer(self.store, q)
            found = [bytes.fromhex(peer.fingerprint)]
        if len(found) > 1:
            raise UserError(f"{query!r} names {len(found)} members; use a fingerprint prefix")
        if found[0] not in members:
            raise UserError(f"{query} is not in {self.groups.groups[gid].log.name}")
        return found[0]

    async def group_send(self, group: str, text: str) -> GroupSent:
        """Queue ``text`` for every other member; returns once it is durable."""
        check_text(text)
        gid = self.groups.resolve(group)
        outs = await self.groups.post(gid, text)
        return GroupSent(
            gid.hex(), outs[0].id, tuple(o.rowid for o in outs), tuple(o.peer.hex() for o in outs)
        )

    def group_changes(self, group: str) -> list:
        """Every membership change of a group, oldest first (``GroupChanged``, as the
        events said them): the system lines a face shows between the posts."""
        from enclave.node.groups import describe

        gid = self.groups.resolve(group)
        glog = self.groups.groups[gid].log
        return [describe(gid, glog, r) for r in glog.records]

    async def group_send_file(self, group: str, path: str) -> list:
        """Offer one file to every other member of a group (``send_file_to_many``: read
        once per chunk); one transfer, with its own state, per member."""
        gid = self.groups.resolve(group)
        await self.groups.settled(gid)
        g = self.groups.mine(gid)
        own = self.identity.fingerprint
        targets = [fp.hex() for fp in g.log.members if fp != own]
        if not targets:
            raise UserError(f"nobody else is in {g.log.name} to send it to")
        return await self.send_file_to_many(targets, path)

    def group_history(self, group: str, limit: int = 50) -> list:
        """The group's newest posts in display order (Lamport time, sender), oldest
        first; our own post once, with each member's state of it."""
        gid = self.groups.resolve(group)
        return self.store.group_history(gid, self.fingerprint, limit)


def group_info(store, own: bytes, gid: bytes, glog: gl.GroupLog, state: str) -> GroupInfo:
    """What the faces show of a group: admins first, then us, then by name."""
    members = [_member(store, own, fp, m) for fp, m in glog.members.items()]
    members.sort(key=lambda m: (not m.admin, not m.you, m.name.casefold(), m.fingerprint))
    return GroupInfo(gid.hex(), glog.name, state, glog.epoch, tuple(members), glog.timer_s)


def check_group_timer(glog: gl.GroupLog, own: bytes, seconds: object) -> None:
    """UserError unless we may set ``seconds`` as the group's timer: the rules the log
    applies, said the way a person reads them."""
    from enclave.node.display import duration_text
    from enclave.protocol.messages import MAX_TIMER_S, MIN_TIMER_S, timer_allowed

    if not timer_allowed(seconds):
        raise UserError(
            f"a timer is off or between {duration_text(MIN_TIMER_S)}"
            f" and {duration_text(MAX_TIMER_S)}, not {_seconds_text(seconds)}"
        )
    if not glog.is_admin(own):
        raise UserError(f"only an admin of {glog.name} sets its disappearing messages")
    if seconds == glog.timer_s:
        raise UserError(
            f"disappearing messages in {glog.name} are {duration_text(seconds)} already"
        )


def _seconds_text(seconds: object) -> str:
    if type(seconds) is int and seconds > 0:
        return f"{seconds} seconds"
    return repr(seconds)[:40]


def _member(store, own: bytes, fp: bytes, m: gl.Member) -> GroupMember:
    if fp == own:
        return GroupMember(fp.hex(), "you", m.admin, True, you=True)
    peer = store.get_peer(fp.hex())
    contact = peer is not None and peer.contact
    name = peer.name if contact and peer.name else m.name
    return GroupMember(fp.hex(), name, m.admin, contact)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
