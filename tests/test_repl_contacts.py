"""The REPL's /rename, /block, /unblock, /remove, driven through prompt-toolkit."""

import pytest
import test_repl
from support.nodes import Recorder
from test_repl import repl

pair = test_repl.pair  # the fixture, used by name


@pytest.mark.asyncio
async def test_rename_block_unblock_in_the_repl(pair, tmp_path):
    a, b = pair
    rb = Recorder(b)
    async with repl(a, tmp_path) as r:
        out = await r.run("/rename bob robert", "is now called robert")
        assert a.resolve("robert").fingerprint == b.fingerprint and "error" not in out
        await r.run("/rename robert", "error: usage: /rename PEER NEW")
        await r.run("/rename nobody x", "error: no peer matches 'nobody'")
        await r.run("/block robert", "robert is blocked")
        assert a.resolve("robert").blocked
        await r.run("/send robert hi", "error: robert is blocked; unblock it to send")
        await r.run("/peers", "robert (blocked)")
        await r.run("/unblock robert", "robert is unblocked")
        await r.run("/send robert back again", "you -> robert: back again")
        await rb.until(lambda rec: [m.body for m in rec.received()] == ["back again"])


@pytest.mark.asyncio
async def test_remove_asks_and_says_what_goes(pair, tmp_path):
    a, b = pair
    await b.stop()
    await a.send("bob", "owed")
    async with repl(a, tmp_path) as r:
        r.pipe.send_text("/remove bob\r")
        r.pipe.send_text("n\r")
        await r.screen.shows("bob was not removed")
        assert a.contacts()
        r.pipe.send_text("/remove bob\r")
        r.pipe.send_text("y\r")
        await r.screen.shows("bob was removed with its history")
        assert a.contacts() == [] and a.stats()["queued"] == 0
        await r.run("/remove bob", "error: no peer matches 'bob'")


@pytest.mark.asyncio
async def test_a_change_made_elsewhere_shows_in_the_repl(pair, tmp_path):
    a, _ = pair
    async with repl(a, tmp_path) as r:
        await r.run("/fingerprint", "Your fingerprint")  # the REPL is listening
        a.block_contact("bob")  # as the page or ``enclave block`` would
        await r.screen.shows("bob is blocked")
