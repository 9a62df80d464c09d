"""Disappearing posts in a group, with three real nodes on loopback and clocks the test
moves: the admin's timer reaches every member as a system line (the log's TIMER
record); a post sent under it is erased from every member's store (bodies gone) once
the clock passes its time, and from every face (``GroupMessagesExpired``); a copy
still owed to an offline member is erased and never sent; a member who is not an
admin, one who is out of the group, or an absurd value changes nothing, and the node
serves on."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from support.clocks import MovedClock
from support.nodes import Recorder, public_pem, small_key, start
from support.waiting import eventually

from enclave.errors import UserError
from enclave.node import Node
from enclave.node.events import GroupChanged, GroupMessageReceived, GroupMessagesExpired
from enclave.protocol import group_log as gl

HOUR = 3600


@pytest.fixture(scope="module")
def trio_keys():
    return {n: small_key() for n in ("alice", "bob", "carol")}


@contextlib.asynccontextmanager
async def timed_trio(tmp_path, keys):
    """Alice (the admin, both contacts), Bob and Carol (hers only), in the group
    "trio", each with a clock the test moves."""
    clocks = {n: MovedClock() for n in keys}
    nodes = {n: await start(tmp_path / n, keys[n], clock=clocks[n]) for n in keys}
    a = nodes["alice"]
    try:
        for name in ("bob", "carol"):
            other = nodes[name]
            a.add_peer(public_pem(keys[name]), f"127.0.0.1:{other.address[1]}", name)
            other.add_peer(public_pem(keys["alice"]), f"127.0.0.1:{a.address[1]}", "alice")
        recs = {n: Recorder(node) for n, node in nodes.items()}
        await a.create_group("trio", ["bob", "carol"])
        for n in ("bob", "carol"):
            await recs[n].until(lambda r, n=n: nodes[n].groups_list(), what=f"{n} holds trio")
        yield nodes, clocks, recs
    finally:
        for node in nodes.values():
            await node.stop()


def posts(rec: Recorder) -> list[str]:
    return [e.body for e in rec.events if isinstance(e, GroupMessageReceived)]


def timer_lines(rec: Recorder) -> list[GroupChanged]:
    return [e for e in rec.events if isinstance(e, GroupChanged) and e.kind == "timer"]


def expired(rec: Recorder) -> set[str]:
    return {i for e in rec.events if isinstance(e, GroupMessagesExpired) for i in e.ids}


def group_rows(node: Node) -> list[tuple]:
    """Every group row the file holds, deleted ones included: (body, state)."""
    with node.store._lock:
        return node.store._db.execute(
            "SELECT body, state FROM messages WHERE grp IS NOT NULL ORDER BY rowid"
        ).fetchall()


def advance(clocks, seconds: float) -> None:
    for clock in clocks.values():
        clock.advance(seconds)


@pytest.mark.asyncio
async def test_a_post_vanishes_from_every_member_within_the_timer(tmp_path, trio_keys):
    async with timed_trio(tmp_path, trio_keys) as (n, clocks, r):
        a, b, c = n["alice"], n["bob"], n["carol"]
        await b.group_send("trio", "kept: before the timer")
        await r["carol"].until(lambda r: posts(r) == ["kept: before the timer"])
        info = await a.group_disappearing("trio", HOUR)
        assert info.disappear_s == HOUR
        for name in ("alice", "bob", "carol"):
            await r[name].until(lambda r: timer_lines(r), what=f"{name}'s system line")
            (line,) = timer_lines(r[name])
            assert (line.author, line.seconds) == (a.fingerprint, HOUR)
        assert [node.group("trio").disappear_s for node in (a, b, c)] == [HOUR] * 3
        gid = bytes.fromhex(info.id)
        assert [node.store.get_group(gid).disappear_s for node in (a, b, c)] == [HOUR] * 3
        await b.group_send("trio", "the door code is 4711")
        await a.group_send("trio", "and the alarm is 0815")
        await r["carol"].until(lambda r: len(posts(r)) == 3, what="carol has all three")
        await r["alice"].until(lambda r: len(posts(r)) == 2, what="alice has bob's two")
        await r["bob"].until(lambda r: len(posts(r)) == 1, what="bob has alice's")
        advance(clocks, HOUR - 120)  # not yet
        assert len(c.group_history("trio")) == 3
        advance(clocks, 180)  # the timer and a minute have passed
        for name in ("alice", "bob", "carol"):
            await r[name].until(lambda r: len(expired(r)) == 2, what=f"{name}'s two expired")
        ids = expired(r["alice"])
        assert expired(r["bob"]) == expired(r["carol"]) == ids
        for node in (a, b, c):
            assert [line.body for line in node.group_history("trio")] == ["kept: before the timer"]
            rows = group_rows(node)
            assert not any(body and ("4711" in body or "0815" in body) for body, _ in rows)
            assert {state for _, state in rows} >= {"deleted"}


@pytest.mark.asyncio
async def test_a_copy_owed_to_an_offline_member_expires_unsent(tmp_path, trio_keys):
    async with timed_trio(tmp_path, trio_keys) as (n, clocks, r):
        a, c = n["alice"], n["carol"]
        await a.group_disappearing("trio", 60)
        await r["carol"].until(lambda r: timer_lines(r), what="carol's system line")
        port = c.address[1]
        await c.stop()
        await a.group_send("trio", "never seen by carol")
        await r["bob"].until(lambda r: posts(r) == ["never seen by carol"])
        assert len(a.store.outbox_for(c.fingerprint)) == 1
        clocks["alice"].advance(121)
        await r["alice"].until(lambda r: expired(r), what="alice's post expired")
        assert a.store.outbox_for(c.fingerprint) == []
        again = Node(tmp_path / "carol", trio_keys["carol"], clock=MovedClock())
        n["carol"] = again  # stopped by the fixture
        await again.start("127.0.0.1", port)
        r2 = Recorder(again)
        await a.group_send("trio", "a later one")
        await r2.until(lambda r: posts(r), what="the later post")
        assert posts(r2) == ["a later one"]


def forged_timer(glog: gl.GroupLog, signer, seconds) -> bytes:
    """A TIMER record at the log's next epoch, signed by ``signer`` whatever its rights,
    with whatever ``seconds`` (encoded by hand: our own codec would refuse a bad one)."""
    fields = [gl.TIMER, glog.group_id, glog.epoch + 1, glog.head, signer.fingerprint, 1,
              [seconds]]  # fmt: skip
    signature = signer.sign_v2(gl.SIGN_LABEL + msgpack.packb(fields, use_bin_type=True))
    return msgpack.packb(fields + [signature], use_bin_type=True)


@pytest.mark.asyncio
async def test_timers_from_a_member_an_outsider_and_absurd_values_change_nothing(
    tmp_path, trio_keys
):
    async with timed_trio(tmp_path, trio_keys) as (n, _, r):
        a, b, c = n["alice"], n["bob"], n["carol"]
        with pytest.raises(UserError, match="only an admin"):
            await b.group_disappearing("trio", HOUR)
        with pytest.raises(UserError, match="between 30 seconds and 4 weeks"):
            await a.group_disappearing("trio", 5)
        with pytest.raises(UserError, match="off already"):
            await a.group_disappearing("trio", 0)
        gid = bytes.fromhex(a.group("trio").id)
        glog = b.groups.groups[gid].log
        link = b.sessions.pick(a.identity.fingerprint)
        floods = [forged_timer(glog, b.identity, s) for s in (60, 1, 10**12, True)]
        for data in floods * 25:  # a member's flood: each refused at its first record
            link.conn.send_group_records(gid, glog.epoch + 1, (data,))
        link.schedule_flush()
        await eventually(lambda: a.stats()["group_records_refused"] >= 100, what="refused")
        # Carol, out of the group, sets a timer for it all the same.
        await a.group_remove("trio", "carol")
        await r["carol"].until(lambda r: c.groups_list()[0].state == "removed")
        out = c.groups.groups[gid].log
        link = c.sessions.pick(a.identity.fingerprint)
        link.conn.send_group_records(gid, out.epoch + 1, (forged_timer(out, c.identity, 60),))
        link.schedule_flush()
        await eventually(lambda: a.stats()["group_records_refused"] >= 101, what="refused")
        assert a.group("trio").disappear_s == 0 == b.group("trio").disappear_s
        assert not timer_lines(r["alice"]) and not timer_lines(r["bob"])
        await b.group_send("trio", "bob is still heard")
        await r["alice"].until(lambda r: posts(r) == ["bob is still heard"])
