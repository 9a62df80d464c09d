"""Disappearing messages with two real nodes on loopback and a clock the test moves:
setting the timer reaches both sides as a system line; a message sent under it is erased
from both stores (bodies gone) once the clock passes its time, and from every face (the
events); the newest change holds on both; a hostile contact's TIMERs harm nothing."""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from support.attackers import RawPeer
from support.clocks import MovedClock
from support.nodes import FAST, Recorder, introduce, public_pem

from enclave.errors import UserError
from enclave.node import Node
from enclave.node.events import MessagesExpired, TimerChanged
from enclave.protocol.events import Acked
from enclave.protocol.messages import Chat

HOUR = 3600


@contextlib.asynccontextmanager
async def timed_pair(tmp_path, rsa_keys):
    """Alice and Bob, introduced, each with a clock the test moves."""
    ca, cb = MovedClock(), MovedClock()
    a = Node(tmp_path / "a", rsa_keys["alice"], FAST, clock=ca)
    b = Node(tmp_path / "b", rsa_keys["bob"], FAST, clock=cb)
    await a.start("127.0.0.1", 0)
    await b.start("127.0.0.1", 0)
    try:
        introduce(a, b, rsa_keys["alice"], rsa_keys["bob"])
        yield a, b, ca, cb
    finally:
        await a.stop()
        await b.stop()


def timers(recorder) -> list[TimerChanged]:
    return [e for e in recorder.events if isinstance(e, TimerChanged)]


def expired(recorder) -> list[str]:
    return [k for e in recorder.events if isinstance(e, MessagesExpired) for k in e.keys]


def bodies(node: Node, peer: str) -> list:
    """Every row of the conversation as the file holds it, deleted ones included."""
    with node.store._lock:
        return node.store._db.execute(
            "SELECT m.body, m.state FROM messages m JOIN peers p ON p.id = m.peer"
            " WHERE p.fingerprint = ? ORDER BY m.rowid",
            (peer,),
        ).fetchall()


@pytest.mark.asyncio
async def test_a_message_vanishes_from_both_stores_within_the_timer_and_a_minute(
    rsa_keys, tmp_path
):
    async with timed_pair(tmp_path, rsa_keys) as (a, b, ca, cb):
        ra, rb = Recorder(a), Recorder(b)
        await a.send("bob", "kept: sent before the timer")
        await rb.until(lambda r: r.received(), what="the first message")
        changed = await a.set_disappearing("bob", HOUR)
        assert (changed.seconds, changed.in_force, changed.by) == (HOUR, HOUR, "us")
        await rb.until(lambda r: timers(r), what="bob's system line")
        (theirs,) = timers(rb)
        assert (theirs.peer, theirs.seconds, theirs.in_force, theirs.by) == (
            a.fingerprint, HOUR, HOUR, "them",
        )  # fmt: skip
        assert [p.disappear_s for p in a.contacts()] == [HOUR]
        assert [p.disappear_s for p in b.contacts()] == [HOUR]
        await a.send("bob", "the door code is 4711")
        await rb.until(lambda r: len(r.received()) == 2, what="alice's secret")
        await b.send("alice", "got it, 4711")
        await ra.until(lambda r: r.received(), what="bob's answer")
        await ra.until(lambda r: r.states("delivered") and len(r.states("delivered")) == 2)
        assert [m.body for m in b.history("alice")] == [
            "kept: sent before the timer", "", "the door code is 4711", "got it, 4711",
        ]  # fmt: skip
        ca.advance(HOUR - 120)  # not yet
        cb.advance(HOUR - 120)
        assert [m.body for m in a.history("bob")][-2:] == ["the door code is 4711", "got it, 4711"]
        ca.advance(180)  # the timer and a minute have passed
        cb.advance(180)
        await ra.until(lambda r: len(expired(r)) == 2, what="alice's two expired")
        await rb.until(lambda r: len(expired(r)) == 2, what="bob's two expired")
        for node, peer in ((a, b.fingerprint), (b, a.fingerprint)):
            assert [m.body for m in node.history(peer)] == ["kept: sent before the timer", ""]
            rows = bodies(node, peer)
            assert [state for _, state in rows].count("deleted") == 2
            assert not any(body and "4711" in body for body, _ in rows)
        ids = {k.split(":")[1] for k in expired(ra)}
        assert {k.split(":")[1] for k in expired(rb)} == ids  # the same two messages


@pytest.mark.asyncio
async def test_a_queued_message_expires_unsent(rsa_keys, tmp_path):
    async with timed_pair(tmp_path, rsa_keys) as (a, b, ca, _):
        ra, rb = Recorder(a), Recorder(b)
        await a.set_disappearing("bob", 60)
        await rb.until(lambda r: timers(r), what="bob's system line")
        port = b.address[1]
        await b.stop()
        await a.send("bob", "never seen by bob")
        ca.advance(121)
        await ra.until(lambda r: expired(r), what="the queued message expired")
        assert a.store.outbox_for(b.fingerprint) == []
        again = Node(tmp_path / "b", rsa_keys["bob"], FAST)
        await again.start("127.0.0.1", port)
        try:
            r2 = Recorder(again)
            await a.send("bob", "a later one")  # the session comes back; only this goes
            await r2.until(lambda r: r.received(), what="the later message")
            assert [e.body for e in r2.received()] == ["a later one"]
        finally:
            await again.stop()
        del rb


@pytest.mark.asyncio
async def test_the_newest_change_holds_on_both_sides(rsa_keys, tmp_path):
    async with timed_pair(tmp_path, rsa_keys) as (a, b, _, _):
        ra, rb = Recorder(a), Recorder(b)
        await a.set_disappearing("bob", HOUR)
        await rb.until(lambda r: timers(r))
        await b.set_disappearing("alice", 7 * 86400)
        await ra.until(lambda r: len(timers(r)) == 2)
        await a.set_disappearing("bob", 0)
        await rb.until(lambda r: len(timers(r)) == 3)
        assert [e.in_force for e in timers(ra)] == [HOUR, 7 * 86400, 0]
        assert [e.in_force for e in timers(rb)] == [HOUR, 7 * 86400, 0]
        assert a.store.get_peer(b.fingerprint).disappear_s == 0
        assert b.store.get_peer(a.fingerprint).disappear_s == 0
        await a.send("bob", "no timer now")
        await rb.until(lambda r: r.received())
        assert b.history("alice")[-1].expires_ms is None


@pytest.mark.asyncio
async def test_bad_timers_are_refused_in_one_line(rsa_keys, tmp_path):
    async with timed_pair(tmp_path, rsa_keys) as (a, _, _, _):
        for seconds in (1, 29, 28 * 86400 + 1, -60):
            with pytest.raises(UserError, match="a timer is off or between 30 seconds and 4 weeks"):
                await a.set_disappearing("bob", seconds)
        with pytest.raises(UserError, match="no peer|unknown"):
            await a.set_disappearing("nobody", 60)
        assert a.history("bob") == []


@pytest.mark.asyncio
async def test_a_hostile_contacts_flood_of_timers_harms_nothing(rsa_keys, tmp_path):
    async with timed_pair(tmp_path, rsa_keys) as (a, b, _, _):
        ra = Recorder(a)
        a.add_peer(public_pem(rsa_keys["mallory"]), "127.0.0.1:9", "mallory")
        mallory = RawPeer(rsa_keys["mallory"], a, source="127.0.0.2")
        me, now = a.identity.fingerprint, int(time.time() * 1000)
        try:
            await mallory.handshake()
            flood = [
                Chat(os.urandom(16), mallory.fingerprint, me, now + k, "", None, 30 + k)
                for k in range(200)
            ]
            mallory.send_chats(flood)
            await mallory.until(lambda p: any(type(e) is Acked for e in p.events), 20)
        finally:
            await mallory.close()
        await ra.until(lambda r: len(timers(r)) == 200, what="every TIMER stored once")
        assert a.store.get_peer(mallory.fingerprint.hex()).disappear_s == 30 + 199  # the newest
        assert a.store.get_peer(b.fingerprint).disappear_s == 0  # nobody else's changed
        await b.send("alice", "still serving")
        await ra.until(lambda r: r.received(), what="bob's message")
        assert ra.received()[-1].body == "still serving"
