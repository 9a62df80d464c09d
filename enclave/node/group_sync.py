"""Group catch-up over pairwise sessions, and the judging of received posts
(docs/PROTOCOL.md "Groups: messages and catch-up").

Rules:
- When a session comes up, each side sends GROUP_HEAD (records held, last hash) for
  every group the peer is in or has left; after a record is applied, the members
  online hear our new HEAD. A HEAD for a group we do not know is answered with
  HEAD(0): the way a new member asks for the log.
- A side that holds more records than the peer's HEAD says sends the rest, at most
  64 records (and ~700 KiB) per GROUP_RECORDS, and never the same record twice on one
  session (a peer that refuses a record is not sent it again until it reconnects).
  A member gets every record; one that left or was removed gets the records up to its
  leaving, so it learns it is out, and nothing after.
- Records are applied in order; a duplicate of one we hold is skipped, a different
  record at an epoch we hold (a fork), a gap or a refused record stops the message
  there, with the reason logged. The receiver answers with its new HEAD.
- A log for a group we do not know is taken only from its CREATE on, and only once
  it names us a member (at most ``MAX_PARTIAL_RECORDS`` records held for that per
  session, ``MAX_PARTIALS`` such logs per session, ``max_groups`` groups in all).
- Before a post goes out on a session, the session is sent the records up to the
  post's epoch: the receiver always judges a post against a log that has them.
- A post is taken only for a group we know, at an epoch we hold, from a member at that
  epoch (so never one written after its author's removal), sent while we were a
  member. Any other is refused with a logged reason and acked all the same: the
  session goes on serving, and the sender does not send it again.
"""

from __future__ import annotations

import asyncio
import logging

from enclave.errors import PeerError
from enclave.protocol import group_log as gl
from enclave.protocol.messages import MAX_GROUP_RECORDS, Chat

log = logging.getLogger("enclave.node.groups")
RECORDS_BYTES = 700 * 1024  # records per GROUP_RECORDS message, in bytes (a frame is 1 MiB)
MAX_PARTIALS = 4  # unknown groups' logs one session may be sending us at once
MAX_PARTIAL_RECORDS = 4096  # records such a log may reach before it names us
MAX_ASKS = 16  # unknown groups one session may make us ask for (HEAD(0) answers)


class LinkState:
    """What one session knows of one group: the peer's count (its last HEAD) and the
    records we sent it."""

    __slots__ = ("peer_has", "sent_upto")

    def __init__(self) -> None:
        self.peer_has = 0
        self.sent_upto = 0


class GroupSync:
    def __init__(self, groups) -> None:
        self.g = groups
        self._links: dict[object, dict[bytes, LinkState]] = {}
        self._partials: dict[object, dict[bytes, gl.GroupLog]] = {}
        self._asked: dict[object, set[bytes]] = {}  # unknown groups we asked a session for
        self._tasks: set[asyncio.Task] = set()

    def _state(self, link, gid: bytes) -> LinkState:
        states = self._links.get(link)
        if states is None:
            states = self._links[link] = {}
        st = states.get(gid)
        if st is None:
            st = states[gid] = LinkState()
        return st

    # --- sessions ------------------------------------------------------------------------

    def session_up(self, link, peer: bytes) -> None:
        for gid, g in self.g.groups.items():
            if _limit(g.log, peer):
                self._send_head(link, gid)

    def session_down(self, link) -> None:
        self._links.pop(link, None)
        self._partials.pop(link, None)
        self._asked.pop(link, None)

    def announce(self, gid: bytes) -> None:
        """Our log of ``gid`` grew: tell the members online (and those it took out)."""
        glog = self.g.groups[gid].log
        for fp in _interested(glog):
            if fp == self.g.own:
                continue
            link = self.g.sessions.pick_chat(fp)
            if link is not None and link.conn is not None and link.conn.established:
                self._send_head(link, gid)

    def _send_head(self, link, gid: bytes) -> None:
        g = self.g.groups.get(gid)
        count, head = (g.count, g.log.head) if g is not None else (0, gl.ZERO_HASH)
        link.conn.send_group_head(gid, count, head)
        link.schedule_flush()

    # --- HEAD and RECORDS -----------------------------------------------------------------

    def on_head(self, link, peer: bytes, gid: bytes, count: int) -> None:
        g = self.g.groups.get(gid)
        if g is None:  # someone holds a log for us: ask for it, once, a few per session
            asked = self._asked.setdefault(link, set())
            if count and gid not in asked and len(asked) < MAX_ASKS:
                asked.add(gid)
                self._send_head(link, gid)
            return
        st = self._state(link, gid)
        st.peer_has = count
        limit = _limit(g.log, peer)
        if count < limit:
            self._send_records(link, gid, count, limit)
        elif count > g.count and g.log.is_member(peer):
            self._send_head(link, gid)  # it holds more: it sends them when it hears ours

    def _send_records(self, link, gid: bytes, start: int, stop: int) -> None:
        st = self._state(link, gid)
        start = max(start, st.sent_upto)  # never the same record twice on one session
        encoded = self.g.groups[gid].log.encoded
        while start < stop:
            chunk, size = [], 0
            for data in encoded[start:stop]:
                if chunk and (len(chunk) == MAX_GROUP_RECORDS or size + len(data) > RECORDS_BYTES):
                    break
                chunk.append(data)
                size += len(data)
            link.conn.send_group_records(gid, start, tuple(chunk))
            start += len(chunk)
        st.sent_upto = max(st.sent_upto, stop)
        link.schedule_flush()

    def on_records(self, link, peer: bytes, gid: bytes, first: int, records: tuple) -> None:
        g = self.g.groups.get(gid)
        if g is None:
            self._invited(link, peer, gid, first, records)
            return
        applied = self._apply(g.log, peer, first, records)
        if applied:
            self.spawn(self.g.received(gid, applied))
        if applied or first > g.count:
            self._send_head(link, gid)

    def _apply(self, glog: gl.GroupLog, peer: bytes, first: int, records: tuple) -> list:
        """Apply ``records`` (numbered from ``first``) to ``glog`` in order, as far as
        they check; the records applied."""
        applied = []
        for epoch, data in enumerate(records, first):
            if epoch <= glog.epoch:
                if data != glog.encoded[epoch]:
                    return self._refused(applied, peer, glog, f"epoch {epoch} forks the log")
                continue
            if epoch > glog.epoch + 1:
                return self._refused(applied, peer, glog, f"gap before epoch {epoch}")
            try:
                record = gl.decode_record(data)
                glog.apply(record)
            except PeerError as err:
                return self._refused(applied, peer, glog, f"{err.reason} ({err.detail})")
            applied.append(record)
        return applied

    def _refused(self, applied: list, peer: bytes, glog: gl.GroupLog, why: str) -> list:
        self.g.stats["group_records_refused"] += 1
        gid = glog.group_id.hex()[:16] if glog.group_id else "?"
        log.warning("group %s: record from %s refused: %s", gid, peer.hex()[:16], why)
        return applied

    def _invited(self, link, peer: bytes, gid: bytes, first: int, records: tuple) -> None:
        """Records of a group we do not know: a log being sent to a new member."""
        partials = self._partials.setdefault(link, {})
        glog = partials.get(gid)
        if glog is None:
            if first != 0 or len(partials) >= MAX_PARTIALS:
                self._refused([], peer, gl.GroupLog(), f"unknown group {gid.hex()[:16]}")
                return
            glog = partials[gid] = gl.GroupLog(self.g.max_members)
        count = glog.epoch + 1
        if not self._apply(glog, peer, first, records) and glog.epoch + 1 == count:
            partials.pop(gid, None)
            return
        if glog.is_member(self.g.own):
            del partials[gid]
            if len(self.g.groups) >= self.g.max_groups:
                self._refused([], peer, glog, f"over max_groups ({self.g.max_groups})")
                return
            self.spawn(self.g.adopt(gid, glog))
        elif glog.epoch + 1 >= MAX_PARTIAL_RECORDS:
            del partials[gid]
            self._refused([], peer, glog, "a log that never names us")

    def spawn(self, coro) -> None:
        """Run ``coro`` as a task, kept until it ends; a failure is logged."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_report)

    # --- posts ------------------------------------------------------------------------------

    def before_send(self, link, outs) -> None:
        """Group posts are about to go out on ``link``: first the records they need."""
        if not self.g.groups:
            return
        for o in outs:
            grp = o.group
            if grp is None:
                continue
            gid, need = grp[0], grp[1] + 1
            st = self._state(link, gid)
            if max(st.peer_has, st.sent_upto) < need and gid in self.g.groups:
                self._send_records(link, gid, st.peer_has, need)

    def judge(self, peer: bytes, messages) -> list:
        """The chats and the acceptable posts of a batch from ``peer``, in order."""
        kept = []
        for m in messages:
            if type(m) is Chat:
                kept.append(m)
                continue
            why = self._why_not(peer, m)
            if why is None:
                g = self.g.groups[m.group_id]
                g.lamport = max(g.lamport, m.lamport)
                kept.append(m)
            else:
                self.g.stats["group_posts_refused"] += 1
                log.warning(
                    "group post from %s refused: %s (group %s, epoch %d)",
                    peer.hex()[:16], why, m.group_id.hex()[:16], m.epoch,
                )  # fmt: skip
        return kept

    def _why_not(self, peer: bytes, post) -> str | None:
        g = self.g.groups.get(post.group_id)
        if g is None:
            return "unknown group"
        if post.epoch > g.log.epoch:
            return "an epoch from the future"
        if not g.log.member_at(peer, post.epoch):
            return "not a member at its epoch"
        if not g.log.member_at(self.g.own, post.epoch):
            return "sent while we were not a member"
        return None


def _limit(glog: gl.GroupLog, peer: bytes) -> int:
    """How many records ``peer`` may have: all for a member, those up to its leaving
    for one that left or was removed, none for anyone else."""
    if glog.is_member(peer):
        return glog.epoch + 1
    left = glog.left_at(peer)
    return 0 if left is None else left + 1


def _interested(glog: gl.GroupLog) -> set[bytes]:
    """The members, and those the last record took out (they learn it from us)."""
    fps = set(glog.members)
    last = glog.records[-1] if glog.records else None
    if last is not None and last.kind == gl.REMOVE:
        fps.update(last.body[0])
    elif last is not None and last.kind == gl.LEAVE:
        fps.add(last.author)
    return fps


def _report(task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a group change failed", exc_info=task.exception())
