"""/group disappear in the REPL: the admin's timer shows as a system line in the group
(here and at the other member), /groups says it, a post sent under it is erased once a
moved clock passes its time and the REPL says so; mistakes are one line."""

import pytest
import pytest_asyncio
from support.clocks import MovedClock
from support.nodes import Recorder, introduce, start
from test_repl import repl

from enclave.node.events import GroupChanged, GroupMessageReceived, PeerOnline

DAY = 86400


@pytest_asyncio.fixture
async def duo(rsa_keys, tmp_path):
    """Alice (admin, her clock moved by the test) and Bob in the group "duo"."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    clock = MovedClock()
    a = await start(tmp_path / "a", ka, clock=clock)
    b = await start(tmp_path / "b", kb, clock=MovedClock())
    seen, rb = Recorder(a), Recorder(b)
    introduce(a, b, ka, kb)
    await seen.until(lambda r: any(isinstance(e, PeerOnline) for e in r.events))
    await a.create_group("duo", ["bob"])
    await rb.until(lambda r: b.groups_list(), what="bob holds duo")
    yield a, b, clock
    await a.stop()
    await b.stop()


@pytest.mark.asyncio
async def test_group_disappear_shows_on_both_sides_and_expiry_shows(duo, tmp_path):
    a, b, clock = duo
    rb = Recorder(b)
    async with repl(a, tmp_path) as r:
        await r.run("/group disappear duo 1d", "you set disappearing messages to 1 day in duo")
        await rb.until(
            lambda rec: any(isinstance(e, GroupChanged) and e.kind == "timer" for e in rec.events)
        )
        assert b.group("duo").disappear_s == DAY
        await r.run("/groups", "disappearing: 1 day")
        await b.group_send("duo", "this goes in a day")
        await r.screen.shows("in duo: this goes in a day")
        clock.advance(DAY + 60)
        await r.screen.shows("1 disappearing post in duo expired and was erased")
        await r.run("/ghistory duo", "No posts yet")
        await r.run("/group disappear duo off", "you turned disappearing messages off in duo")


@pytest.mark.asyncio
async def test_a_members_repl_hears_the_admins_timer_and_the_expiry(duo, tmp_path):
    a, b, _ = duo
    rb = Recorder(b)
    async with repl(b, tmp_path) as r:
        await r.run("/fingerprint", "Your fingerprint")
        await a.group_disappearing("duo", 60)
        await r.screen.shows("alice set disappearing messages to 1 minute in duo")
        await a.group_send("duo", "a minute only")
        await rb.until(lambda rec: any(isinstance(e, GroupMessageReceived) for e in rec.events))
        b.clock.advance(121)
        await r.screen.shows("1 disappearing post in duo expired and was erased")


@pytest.mark.asyncio
async def test_group_disappear_mistakes_are_one_line(duo, tmp_path):
    a, b, _ = duo
    async with repl(a, tmp_path) as r:
        await r.run("/group disappear duo", "error: usage: /group disappear GROUP TIME")
        await r.run("/group disappear duo soon", "error: 'soon' is no duration")
        await r.run("/group disappear duo 10s", "error: a timer is off or between 30 seconds")
        await r.run("/group disappear nosuch 1h", "error: no group matches 'nosuch'")
        await r.run("/group disappear duo off", "error: disappearing messages in duo are off")
        await r.run("/help", "/group disappear GROUP TIME")
    (tmp_path / "bob-screen").mkdir()
    async with repl(b, tmp_path / "bob-screen") as r:
        await r.run("/group disappear duo 1h", "error: only an admin of duo sets")
