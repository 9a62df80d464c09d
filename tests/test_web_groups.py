"""The page's group routes over real nodes: what they refuse (one line each), and a
group made, posted to and left from the page, with its events on the WebSocket."""

from __future__ import annotations

import json

import pytest
from support.web_helpers import next_event, socket
from test_web_api import call, two_pages

pytestmark = pytest.mark.asyncio
NOBODY = "0" * 64


def one_line(status: int, body: dict, want: int = 400) -> str:
    assert status == want, body
    text = body["error"]
    assert text and "\n" not in text
    return text


async def test_bad_input_is_answered_with_one_line(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, _, b):
        bob = b.fingerprint
        cases = [
            ({"members": [bob]}, "'name' is required: the group's name"),
            ({"name": "   ", "members": [bob]}, "'name' is required: the group's name"),
            ({"name": 5, "members": [bob]}, "'name' is required: the group's name"),
            ({"name": "x" * 65, "members": [bob]}, "'name' is too long (64 characters at most)"),
            ({"name": "team"}, "'members' is required: the fingerprints of 1 to 100 contacts"),
            ({"name": "team", "members": []}, "'members' is required"),
            ({"name": "team", "members": bob}, "'members' is required"),
            ({"name": "team", "members": ["bob"]}, "a peer is named by its fingerprint"),
            ({"name": "team", "members": [bob.upper()]}, "a peer is named by its fingerprint"),
        ]
        for data, want in cases:
            text = one_line(*await call(alice, "POST", "/api/groups", data))
            assert text.startswith(want), (data, text)
        status, body = await call(alice, "POST", "/api/groups", None)
        one_line(status, body, 415)
        # Only contacts go into a group: an unknown key, or a peer no longer a contact.
        data = {"name": "t", "members": [NOBODY]}
        text = one_line(*await call(alice, "POST", "/api/groups", data))
        assert text.startswith(f"no peer matches '{NOBODY}'"), text
        assert (await call(alice, "POST", f"/api/peers/{bob}/remove", {}))[0] == 200
        data = {"name": "t", "members": [bob]}
        text = one_line(*await call(alice, "POST", "/api/groups", data))
        assert "not a contact" in text or "no peer matches" in text, text
        assert (await call(alice, "GET", "/api/groups"))[1] == {"groups": []}


async def test_an_unknown_or_badly_named_group_is_refused(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, _, b):
        for path in ("/api/groups/xyz/messages", "/api/groups/ABCDEF12/messages"):
            text = one_line(*await call(alice, "GET", path))
            assert text == "a group is named by its id: 8 to 64 lowercase hex digits"
        for method, path, data in (
            ("GET", "/api/groups/deadbeef/messages", None),
            ("POST", "/api/groups/deadbeef/send", {"text": "hi"}),
            ("POST", "/api/groups/deadbeef/add", {"peer": b.fingerprint}),
            ("POST", "/api/groups/deadbeef/leave", {}),
        ):
            text = one_line(*await call(alice, method, path, data))
            assert text.startswith("no group matches 'deadbeef'"), text


async def test_a_group_made_on_the_page_posts_and_shows_each_members_state(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, bob, a, b):
        async with socket(alice) as wa, socket(bob) as wb:
            await next_event(wa, "hello")
            await next_event(wb, "hello")
            status, body = await call(
                alice, "POST", "/api/groups", {"name": " team ", "members": [b.fingerprint]}
            )
            assert status == 200, body
            group = body["group"]
            gid = group["id"]
            assert (group["name"], group["state"]) == ("team", "member")
            roles = {(m["name"], m["admin"], m["you"], m["contact"]) for m in group["members"]}
            assert roles == {("you", True, True, True), ("bob", False, False, True)}
            made = (await next_event(wb, "group_changed"))["change"]
            assert (made["group"], made["kind"], made["author"]) == (gid, "create", a.fingerprint)

            status, body = await call(alice, "POST", f"/api/groups/{gid}/send", {"text": "hi all"})
            assert (status, body["members"]) == (200, [b.fingerprint])
            post_id = body["id"]
            seen = []
            while True:  # every event up to bob's copy delivered: none a direct message
                event = json.loads(await wa.receive())
                seen.append(event)
                if event["type"] == "group_delivery" and event["state"] == "delivered":
                    break
            assert not [e for e in seen if e["type"] in ("sent", "delivery", "message")], seen
            assert (event["group"], event["member"], event["id"]) == (gid, b.fingerprint, post_id)
            got = (await next_event(wb, "group_post"))["post"]
            assert (got["group"], got["id"], got["body"]) == (gid, post_id, "hi all")
            assert (got["sender"], got["direction"]) == (a.fingerprint, "in")

            status, body = await call(alice, "GET", f"/api/groups/{gid}/messages")
            (line,) = body["posts"]
            assert (line["direction"], line["states"]) == ("out", {b.fingerprint: "delivered"})
            _, body = await call(bob, "GET", f"/api/groups/{gid[:8]}/messages?limit=5")
            assert [p["body"] for p in body["posts"]] == ["hi all"]
            # The group's copy is not a direct message on either side.
            for client, other in ((alice, b), (bob, a)):
                _, body = await call(client, "GET", f"/api/peers/{other.fingerprint}/messages")
                assert body["messages"] == []

            # Bob posts back; then he leaves, and Alice's page hears it.
            assert (await call(bob, "POST", f"/api/groups/{gid}/send", {"text": "yo"}))[0] == 200
            got = (await next_event(wa, "group_post"))["post"]
            assert (got["body"], got["sender"]) == ("yo", b.fingerprint)
            text = one_line(*await call(bob, "POST", f"/api/groups/{gid}/add", {"peer": NOBODY}))
            assert "\n" not in text
            status, body = await call(bob, "POST", f"/api/groups/{gid}/leave", {})
            assert (status, body["group"]["state"]) == (200, "left"), body
            left = (await next_event(wa, "group_changed"))["change"]
            assert (left["kind"], left["author"]) == ("leave", b.fingerprint)
            one_line(*await call(bob, "POST", f"/api/groups/{gid}/send", {"text": "late"}))
            _, body = await call(alice, "GET", "/api/groups")
            assert [m["name"] for m in body["groups"][0]["members"]] == ["you"]


async def test_a_member_not_in_the_group_cannot_be_removed(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, _, b):
        _, body = await call(
            alice, "POST", "/api/groups", {"name": "t", "members": [b.fingerprint]}
        )
        gid = body["group"]["id"]
        for data in ({}, {"peer": "bob"}, {"peer": 3}):
            text = one_line(*await call(alice, "POST", f"/api/groups/{gid}/remove", data))
            assert text.startswith("a peer is named by its fingerprint"), text
        text = one_line(*await call(alice, "POST", f"/api/groups/{gid}/remove", {"peer": NOBODY}))
        assert text.startswith("no peer matches"), text
        text = one_line(*await call(alice, "POST", f"/api/groups/{gid}/send", {"text": ""}))
        assert text == "the message is empty"
        text = one_line(*await call(alice, "GET", f"/api/groups/{gid}/messages?limit=0"))
        assert text == "'limit' must be a whole number from 1 to 500"
