"""The page's contact menu routes: rename, block, unblock, owed, remove. (Their token
check is in test_web_api's API_ROUTES.)"""

from __future__ import annotations

import pytest
from support.nodes import public_pem
from support.web_helpers import next_event, socket
from test_web_api import XSS, call, two_pages


@pytest.mark.asyncio
async def test_contact_routes_validate_their_input(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        bob, nobody = b.fingerprint, "ab" * 32
        a.add_peer(public_pem(rsa_keys["carol"]), "127.0.0.1:9", "carol")
        cases = [
            ("POST", f"/api/peers/{bob}/name", {"name": "bob\u2066x"}, 400, "invalid peer name"),
            ("POST", f"/api/peers/{bob}/name", {"name": "carol"}, 400, "already used"),
            ("POST", f"/api/peers/{bob}/name", {"name": 5}, 400, "'name'"),
            ("POST", f"/api/peers/{bob}/name", {"name": "x" * 65}, 400, "'name'"),
            ("POST", f"/api/peers/{nobody}/name", {"name": "x"}, 400, "no peer"),
            ("POST", f"/api/peers/{bob}/blocked", {"blocked": "yes"}, 400, "true or false"),
            ("POST", f"/api/peers/{bob}/blocked", {}, 400, "true or false"),
            ("POST", "/api/peers/xyz/blocked", {"blocked": True}, 400, "fingerprint"),
            ("GET", f"/api/peers/{nobody}/owed", None, 400, "no peer"),
            ("POST", f"/api/peers/{nobody}/remove", {}, 400, "no peer"),
            ("POST", f"/api/peers/{nobody}/clear", {}, 400, "no peer"),
        ]
        for method, path, body, status, words in cases:
            got, answer = await call(alice, method, path, body)
            assert got == status, (method, path, body, answer)
            assert words in answer["error"] and "\n" not in answer["error"]
        bob_row = a.resolve(bob)
        assert (bob_row.name, bob_row.blocked) == ("bob", False) and len(a.contacts()) == 2
        # Markup is just text in a name (the page puts names in as text): kept as typed.
        got, answer = await call(alice, "POST", f"/api/peers/{bob}/name", {"name": XSS})
        assert (got, answer) == (200, {"name": XSS})


@pytest.mark.asyncio
async def test_rename_block_remove_reach_every_page(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        fp = b.fingerprint
        async with socket(alice) as wa:
            await next_event(wa, "hello")
            assert (await call(alice, "POST", f"/api/peers/{fp}/name", {"name": "robert"}))[1] == {
                "name": "robert"
            }
            assert (await next_event(wa, "peers"))["change"] == "renamed"
            status, body = await call(alice, "POST", f"/api/peers/{fp}/blocked", {"blocked": True})
            assert (status, body) == (200, {"blocked": True})
            assert (await next_event(wa, "peers"))["change"] == "blocked"
            peers = (await call(alice, "GET", "/api/peers"))[1]["peers"]
            assert [(p["name"], p["blocked"]) for p in peers] == [("robert", True)]
            await b.stop()
            await call(alice, "POST", f"/api/peers/{fp}/blocked", {"blocked": False})
            await a.send("robert", "owed one")
            assert (await call(alice, "GET", f"/api/peers/{fp}/owed"))[1] == {"owed": 1}
            a.block_contact("robert")  # a change made elsewhere (the REPL) reaches the page
            assert (await next_event(wa, "peers"))["change"] == "unblocked"
            assert (await next_event(wa, "peers"))["change"] == "blocked"
            assert (await call(alice, "POST", f"/api/peers/{fp}/remove", {}))[1] == {"removed": fp}
            event = await next_event(wa, "peers")
            assert (event["change"], event["peer"]) == ("removed", fp)
            assert (await call(alice, "GET", "/api/peers"))[1]["peers"] == []


@pytest.mark.asyncio
async def test_clear_erases_the_history_and_every_page_hears_it(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        fp = b.fingerprint
        await b.stop()
        await a.send("bob", "owed, then erased")
        async with socket(alice) as wa:
            await next_event(wa, "hello")
            assert (await call(alice, "POST", f"/api/peers/{fp}/clear", {}))[1] == {"erased": 1}
            event = await next_event(wa, "peers")
            assert (event["change"], event["peer"]) == ("cleared", fp)
        got = (await call(alice, "GET", f"/api/peers/{fp}/messages"))[1]
        assert got["messages"] == [] and a.owed("bob") == 0 and a.resolve("bob")


@pytest.mark.asyncio
async def test_history_off_from_the_page_reaches_every_page_and_checks_its_input(
    rsa_keys, tmp_path
):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        fp, nobody = b.fingerprint, "ab" * 32
        for body, words in (({"keep": "no"}, "true or false"), ({}, "true or false")):
            got, answer = await call(alice, "POST", f"/api/peers/{fp}/history", body)
            assert got == 400 and words in answer["error"]
        got, answer = await call(alice, "POST", f"/api/peers/{nobody}/history", {"keep": False})
        assert got == 400 and "no peer" in answer["error"]
        async with socket(alice) as wa:
            await next_event(wa, "hello")
            got, answer = await call(alice, "POST", f"/api/peers/{fp}/history", {"keep": False})
            assert (got, answer) == (200, {"keep_history": False})
            assert (await next_event(wa, "peers"))["change"] == "history_off"
            peers = (await call(alice, "GET", "/api/peers"))[1]["peers"]
            assert [p["keep_history"] for p in peers] == [False]
            a.set_keep_history("bob", True)  # from the REPL: the page hears of it
            assert (await next_event(wa, "peers"))["change"] == "history_on"
