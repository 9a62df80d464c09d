"""/disappear in the REPL: the timer set on one side shows as a system line on both,
a message sent under it is marked and, once a moved clock passes its time, the REPL
says it was erased; mistakes are one line."""

import pytest
import pytest_asyncio
from support.clocks import MovedClock
from support.nodes import Recorder, introduce, start
from test_repl import repl

from enclave.node.events import PeerOnline, TimerChanged


@pytest_asyncio.fixture
async def timed(rsa_keys, tmp_path):
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    clock = MovedClock()
    a = await start(tmp_path / "a", ka, clock=clock)
    b = await start(tmp_path / "b", kb)
    seen = Recorder(a)
    introduce(a, b, ka, kb)
    await seen.until(lambda r: any(isinstance(e, PeerOnline) for e in r.events))
    yield a, b, clock
    await a.stop()
    await b.stop()


@pytest.mark.asyncio
async def test_disappear_sets_the_timer_on_both_sides_and_expiry_shows(timed, tmp_path):
    a, b, clock = timed
    rb = Recorder(b)
    async with repl(a, tmp_path) as r:
        await r.run("/disappear bob 1d", "you set disappearing messages to 1 day with bob")
        await rb.until(lambda rec: any(isinstance(e, TimerChanged) for e in rec.events))
        assert b.contacts()[0].disappear_s == 86400
        await r.run("/send bob this goes in a day", "you -> bob: this goes in a day")
        await rb.until(lambda rec: rec.received())
        await r.run("/history bob", "(disappears ")
        await r.run("/history bob", "you set disappearing messages to 1 day")
        clock.advance(86400 + 60)
        await r.screen.shows("1 disappearing message with bob expired and was erased")
        await r.run("/disappear bob off", "you turned disappearing messages off with bob")


@pytest.mark.asyncio
async def test_a_contacts_change_shows_as_a_line(timed, tmp_path):
    a, b, _ = timed
    async with repl(a, tmp_path) as r:
        await r.run("/fingerprint", "Your fingerprint")
        await b.set_disappearing("alice", 3600)
        await r.screen.shows("bob set disappearing messages to 1 hour")


@pytest.mark.asyncio
async def test_disappear_mistakes_are_one_line(timed, tmp_path):
    a, _, _ = timed
    async with repl(a, tmp_path) as r:
        await r.run("/disappear bob", "error: usage: /disappear PEER TIME")
        await r.run("/disappear bob soon", "error: 'soon' is no duration: write 30s, 5m")
        await r.run("/disappear bob 10s", "error: a timer is off or between 30 seconds and 4 weeks")
        await r.run("/disappear bob 5w", "error: a timer is off or between 30 seconds and 4 weeks")
        await r.run("/disappear nobody 1d", "error: no peer matches 'nobody'")
        await r.run("/help", "/disappear PEER TIME")
    assert a.contacts()[0].disappear_s == 0
