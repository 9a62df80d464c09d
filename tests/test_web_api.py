"""The web face's API and WebSocket through Quart's test client, over real nodes:
who may talk to it (token, Host, Origin), what every route refuses, and live events."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

import pytest
from quart.testing.connections import WebsocketResponseError
from support.attackers import RawPeer
from support.keyfactory import FAST_KDF, PASSWORD, make_identity
from support.nodes import FAST, Recorder, introduce, public_pem, start
from support.web_helpers import GOOD, TOKEN, headers, make_app, next_event, socket

import enclave.faces.web
from enclave.faces.web import security
from enclave.faces.web.app import create_app
from enclave.faces.web.backend import Backend
from enclave.protocol.messages import Chat

XSS = "<img src=x onerror=alert(1)>"
STATIC = Path(enclave.faces.web.__file__).parent / "static"
PAGE_MODULES = [f"/static/js/{p.name}" for p in sorted((STATIC / "js").glob("*.js"))]

API_ROUTES = [
    ("GET", "/api/state"),
    ("GET", "/api/me"),
    ("GET", "/api/peers"),
    ("POST", "/api/peers"),
    ("GET", "/api/peers/" + "0" * 64 + "/messages"),
    ("POST", "/api/peers/" + "0" * 64 + "/read"),
    ("POST", "/api/peers/" + "0" * 64 + "/verified"),
    ("GET", "/api/peers/" + "0" * 64 + "/safety"),
    ("POST", "/api/peers/" + "0" * 64 + "/retry"),
    ("POST", "/api/peers/" + "0" * 64 + "/name"),
    ("POST", "/api/peers/" + "0" * 64 + "/blocked"),
    ("GET", "/api/peers/" + "0" * 64 + "/owed"),
    ("POST", "/api/peers/" + "0" * 64 + "/remove"),
    ("POST", "/api/peers/" + "0" * 64 + "/clear"),
    ("POST", "/api/peers/" + "0" * 64 + "/history"),
    ("POST", "/api/send"),
    ("POST", "/api/broadcast"),
    ("GET", "/api/search?q=x"),
    ("POST", "/api/identity/create"),
    ("POST", "/api/identity/unlock"),
    ("POST", "/api/device"),
    ("POST", "/api/device/forget"),
]


async def _no_starter(identity):
    raise AssertionError("this test never starts a node from the page")


@contextlib.asynccontextmanager
async def two_pages(rsa_keys, tmp_path, bob_settings=FAST):
    """Alice's and Bob's nodes (introduced), each with its web app; yields both clients."""
    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a, b = await start(tmp_path / "a", ka), await start(tmp_path / "b", kb, bob_settings)
    try:
        introduce(a, b, ka, kb)
        apps = [make_app(Backend(n.home, _no_starter, node=n)) for n in (a, b)]
        yield apps[0].test_client(), apps[1].test_client(), a, b
    finally:
        await a.stop()
        await b.stop()


async def call(client, method: str, path: str, body=None, **changes):
    kw = {"headers": headers(**changes)}
    if body is not None:
        kw["json"] = body
    response = await client.open(path, method=method, **kw)
    return response.status_code, await response.get_json()


# --- who may talk to the page ------------------------------------------------------------


@pytest.mark.asyncio
async def test_every_api_route_needs_the_token(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, _, _):
        for method, path in API_ROUTES:
            for auth in (None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer ", TOKEN):
                status, body = await call(alice, method, path, {}, Authorization=auth)
                assert status == 401, (method, path, auth)
                assert "token" in body["error"]
        assert (await call(alice, "GET", "/api/state"))[0] == 200


@pytest.mark.asyncio
async def test_the_shell_and_static_files_need_no_token_and_carry_a_strict_policy(
    rsa_keys, tmp_path
):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, _, _):
        for path in ("/", *PAGE_MODULES, "/static/app.css"):
            response = await alice.get(path, headers=headers(Authorization=None, Origin=None))
            assert response.status_code == 200, path
            if path.endswith(".js"):  # modules run only when served as JavaScript
                assert response.headers["Content-Type"].startswith("text/javascript"), path
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "connect-src 'self'" in policy
            assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
            assert "frame-ancestors 'none'" in policy
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert "Access-Control-Allow-Origin" not in response.headers
        shell = await (await alice.get("/", headers=GOOD)).get_data(as_text=True)
        assert TOKEN not in shell and "<script>" not in shell and " style=" not in shell


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "host",
    [
        "evil.example:5000",  # DNS rebinding: a name the attacker controls, pointed at us
        "localhost.evil.example:5000",
        "127.0.0.1:5001",  # another port
        "127.0.0.1",  # no port: 80
        "",
        "127.0.0.1:http",
    ],
)
async def test_a_foreign_host_is_refused_on_http_and_websocket(rsa_keys, tmp_path, host):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, _, _):
        for path in ("/", "/static/js/main.js", "/api/state", "/api/peers"):
            response = await alice.get(path, headers=headers(Host=host))
            assert response.status_code == 403, (path, host)
        with pytest.raises(WebsocketResponseError) as refused:
            async with socket(alice, Host=host, Origin=f"http://{host}") as ws:
                await ws.receive()
        assert refused.value.response.status_code == 403


@pytest.mark.asyncio
async def test_other_names_for_this_machine_are_accepted(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, _, _):
        for host in ("localhost:5000", "[::1]:5000", "127.0.0.1:5000"):
            status, body = await call(alice, "GET", "/api/state", Host=host, Origin=None)
            assert (status, body["state"]) == (200, "ready")
            async with socket(alice, Host=host, Origin=f"http://{host}") as ws:
                assert json.loads(await ws.receive()) == {"type": "hello", "state": "ready"}


@pytest.mark.asyncio
async def test_over_https_the_page_answers_its_https_origin_only(rsa_keys, tmp_path):
    """Issue 14, item 7: served over TLS with --web-host chat.example, the page accepts
    that name and its https:// Origin; an http:// Origin (a page on the same host served
    in clear) is refused, and a Host without a port means 443."""
    async with two_pages(rsa_keys, tmp_path) as (_, _, a, b):
        guard = security.Guard(TOKEN, 443, "chat.example", scheme="https")
        alice = create_app(Backend(a.home, _no_starter, node=a), guard).test_client()
        for host in ("chat.example", "chat.example:443", "127.0.0.1", "localhost:443"):
            origin = f"https://{host}"
            status, body = await call(alice, "GET", "/api/state", Host=host, Origin=origin)
            assert (status, body["state"]) == (200, "ready"), host
            async with socket(alice, Host=host, Origin=origin) as ws:
                assert json.loads(await ws.receive()) == {"type": "hello", "state": "ready"}
        for host, origin in (
            ("chat.example", "http://chat.example"),
            ("chat.example", "https://chat.example:5000"),
            ("evil.example", "https://evil.example"),
            ("chat.example:80", "https://chat.example:80"),
        ):
            sent = {"peer": b.fingerprint, "text": "hi"}
            status, _ = await call(alice, "POST", "/api/send", sent, Host=host, Origin=origin)
            assert status == 403, (host, origin)
            with pytest.raises(WebsocketResponseError) as refused:
                async with socket(alice, Host=host, Origin=origin) as ws:
                    await ws.receive()
            assert refused.value.response.status_code == 403
        assert a.history("bob") == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://127.0.0.1:5001", "https://127.0.0.1:5000", "null"]
)
async def test_a_foreign_origin_is_refused(rsa_keys, tmp_path, origin):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        status, body = await call(
            alice, "POST", "/api/send", {"peer": b.fingerprint, "text": "hi"}, Origin=origin
        )
        assert status == 403 and "Origin" in body["error"]
        assert a.history("bob") == []  # nothing was sent
        with pytest.raises(WebsocketResponseError) as refused:
            async with socket(alice, Origin=origin) as ws:
                await ws.receive()
        assert refused.value.response.status_code == 403


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("protocols", "status"),
    [
        ([], 401),
        (["enclave.v1"], 401),
        (["enclave.v1", "enclave.token.wrong"], 401),
        ([f"enclave.token.{TOKEN}"], 401),  # the app protocol must be offered too
    ],
)
async def test_the_websocket_needs_the_token(rsa_keys, tmp_path, protocols, status):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, _, _):
        with pytest.raises(WebsocketResponseError) as refused:
            async with socket(alice, protocols=protocols) as ws:
                await ws.receive()
        assert refused.value.response.status_code == status


@pytest.mark.asyncio
async def test_the_websocket_without_an_origin_is_refused(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, _, _):
        with pytest.raises(WebsocketResponseError) as refused:
            async with socket(alice, Origin=None) as ws:
                await ws.receive()
        assert refused.value.response.status_code == 403


# --- every route checks its input --------------------------------------------------------


@pytest.mark.asyncio
async def test_every_route_validates_its_input(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        bob, nobody = b.fingerprint, "ab" * 32
        cases = [
            ("POST", "/api/send", {"text": "hi"}, 400, "fingerprint"),
            ("POST", "/api/send", {"peer": "bob", "text": "hi"}, 400, "fingerprint"),
            ("POST", "/api/send", {"peer": bob.upper(), "text": "hi"}, 400, "fingerprint"),
            ("POST", "/api/send", {"peer": bob}, 400, "'text' is required"),
            ("POST", "/api/send", {"peer": bob, "text": 5}, 400, "'text' is required"),
            ("POST", "/api/send", {"peer": bob, "text": "  \n"}, 400, "empty"),
            ("POST", "/api/send", {"peer": bob, "text": "x" * 10_001}, 400, "limit is 10,000"),
            ("POST", "/api/send", {"peer": nobody, "text": "hi"}, 400, "no peer"),
            ("POST", "/api/send", [bob, "hi"], 400, "JSON object"),
            ("POST", "/api/broadcast", {}, 400, "'text' is required"),
            ("POST", "/api/broadcast", {"text": ""}, 400, "empty"),
            ("POST", "/api/peers", {"address": "127.0.0.1:9"}, 400, "'public_key' is required"),
            ("POST", "/api/peers", {"public_key": "junk", "address": "127.0.0.1:9"}, 400, "PEM"),
            (
                "POST",
                "/api/peers",
                {"public_key": public_pem(rsa_keys["carol"])},
                400,
                "'address' is required",
            ),
            (
                "POST",
                "/api/peers",
                {"public_key": public_pem(rsa_keys["carol"]), "address": "nowhere"},
                400,
                "port",
            ),
            (
                "POST",
                "/api/peers",
                {
                    "public_key": public_pem(rsa_keys["carol"]),
                    "address": "127.0.0.1:9",
                    "name": "bob\u202e\u2066",  # markup is text, a bidi override is not
                },
                400,
                "invalid peer name",
            ),
            (
                "POST",
                "/api/peers",
                {"public_key": public_pem(rsa_keys["alice"]), "address": "127.0.0.1:9"},
                400,
                "your own public key",
            ),
            ("GET", "/api/peers/xyz/messages", None, 400, "fingerprint"),
            ("GET", f"/api/peers/{nobody}/messages", None, 400, "no peer"),
            ("GET", f"/api/peers/{bob}/messages?limit=0", None, 400, "'limit'"),
            ("GET", f"/api/peers/{bob}/messages?limit=201", None, 400, "'limit'"),
            ("GET", f"/api/peers/{bob}/messages?before=-1", None, 400, "'before'"),
            ("GET", f"/api/peers/{bob}/messages?before=1e3", None, 400, "'before'"),
            ("POST", f"/api/peers/{bob}/verified", {"verified": "yes"}, 400, "true or false"),
            ("POST", f"/api/peers/{nobody}/read", {}, 400, "no peer"),
            ("POST", f"/api/peers/{nobody}/retry", {}, 400, "no peer"),
            ("GET", "/api/search", None, 400, "'q' is required"),
            ("GET", "/api/search?q=" + "x" * 201, None, 400, "too long"),
            ("POST", "/api/identity/create", {"password": "a", "repeat": "a"}, 400, "exists"),
            ("POST", "/api/identity/unlock", {"password": "a"}, 400, "already unlocked"),
            ("POST", "/api/identity/unlock", {}, 400, "'password' is required"),
            ("GET", "/api/nothing-here", None, 404, ""),
        ]
        for method, path, body, status, words in cases:
            got, answer = await call(alice, method, path, body)
            assert got == status, (method, path, body, answer)
            assert words in answer["error"], (method, path, answer)
            assert "\n" not in answer["error"]
        assert a.history("bob") == []  # no mistake sent anything

        response = await alice.post("/api/send", data="peer=bob&text=hi", headers=GOOD)
        assert response.status_code == 415
        response = await alice.post(
            "/api/send", data="{", headers=GOOD | {"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        response = await alice.post("/api/broadcast", json={"text": "x" * 300_000}, headers=GOOD)
        assert response.status_code == 413


@pytest.mark.asyncio
async def test_routes_that_need_the_node_say_so_before_unlocking(rsa_keys, tmp_path):
    make_identity(tmp_path / "h", rsa_keys["carol"])
    client = make_app(Backend(tmp_path / "h", _no_starter, min_kdf=FAST_KDF)).test_client()
    for method, path in API_ROUTES[1:11]:
        status, body = await call(client, method, path, {"text": "hi"})
        assert (status, body["error"]) == (409, "unlock first"), path
    assert (await call(client, "GET", "/api/state"))[1]["state"] == "locked"


# --- live: messages, ticks, typing, broadcast ---------------------------------------------


@pytest.mark.asyncio
async def test_a_message_goes_live_to_the_other_page_and_comes_back_delivered(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, bob, a, b):
        async with socket(alice) as wa, socket(bob) as wb:
            await next_event(wa, "hello")
            await next_event(wb, "hello")
            status, body = await call(
                alice, "POST", "/api/send", {"peer": b.fingerprint, "text": XSS}
            )
            assert status == 200
            sent = body["message"]
            assert (sent["body"], sent["state"], sent["direction"]) == (XSS, "queued", "out")
            # Bob's page receives the text as data, byte for byte.
            got = (await next_event(wb, "message"))["message"]
            assert (got["body"], got["peer"], got["direction"]) == (XSS, a.fingerprint, "in")
            while (event := await next_event(wa, "delivery"))["state"] != "delivered":
                assert event["rowid"] == sent["rowid"]
            assert event["id"] == sent["id"]

            peers = (await call(bob, "GET", "/api/peers"))[1]["peers"]
            assert [(p["name"], p["unread"], p["online"]) for p in peers] == [("alice", 1, True)]
            assert peers[0]["last"]["body"] == XSS
            assert (await call(bob, "POST", f"/api/peers/{a.fingerprint}/read", {}))[0] == 200
            assert (await next_event(wb, "read"))["peer"] == a.fingerprint
            assert (await call(bob, "GET", "/api/peers"))[1]["peers"][0]["unread"] == 0

            history = (await call(alice, "GET", f"/api/peers/{b.fingerprint}/messages"))[1]
            assert [(m["body"], m["state"]) for m in history["messages"]] == [(XSS, "delivered")]
            response = await bob.get(f"/api/peers/{a.fingerprint}/messages", headers=GOOD)
            assert response.mimetype == "application/json"
            raw = await response.get_data(as_text=True)
            assert "onerror" in raw and "<img" not in raw  # JSON escapes <, so never HTML

            # Typing travels over the session to the other page.
            await wa.send(json.dumps({"type": "typing", "peer": b.fingerprint, "active": True}))
            typing = await next_event(wb, "typing")
            assert (typing["peer"], typing["active"]) == (a.fingerprint, True)
            for bad in (
                "not json",
                json.dumps({"type": "shout"}),
                json.dumps({"type": "typing", "peer": b.fingerprint, "active": 1}),
            ):
                await wa.send(bad)
                assert (await next_event(wa, "error"))["text"]


@pytest.mark.asyncio
async def test_a_peer_that_throttles_us_reaches_the_page(rsa_keys, tmp_path):
    """Bob's node keeps 1 MiB of Alice's messages; she queues more. Her page hears that
    bob's node throttles her, why, and in how many seconds her node tries again."""
    from enclave.node.settings import Settings

    ka, kb = rsa_keys["alice"], rsa_keys["bob"]
    a = await start(tmp_path / "a", ka)
    b = await start(tmp_path / "b", kb, Settings(stored_bytes_per_peer=1 << 20))
    try:
        introduce(a, b, ka, kb)
        alice = make_app(Backend(a.home, _no_starter, node=a)).test_client()
        async with socket(alice) as wa:
            await next_event(wa, "hello")
            bodies = [f"{k} " + "q" * 9_990 for k in range(120)]
            await a.submit_many(bytes.fromhex(b.fingerprint), bodies)
            event = await next_event(wa, "throttled", limit=2000)
            assert event == {
                "type": "throttled",
                "peer": b.fingerprint,
                "reason": "storage",
                "retry_after": 300.0,
            }
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.asyncio
async def test_history_pages_and_search(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        for k in range(7):
            await a.send("bob", f"note {k}")
        path = f"/api/peers/{b.fingerprint}/messages"
        first = (await call(alice, "GET", path + "?limit=3"))[1]
        assert [m["body"] for m in first["messages"]] == ["note 4", "note 5", "note 6"]
        assert first["more"] is True
        before = first["messages"][0]["rowid"]
        older = (await call(alice, "GET", path + f"?limit=3&before={before}"))[1]
        assert [m["body"] for m in older["messages"]] == ["note 1", "note 2", "note 3"]
        found = (await call(alice, "GET", "/api/search?q=NOTE%205"))[1]["messages"]
        assert [(m["body"], m["peer"]) for m in found] == [("note 5", b.fingerprint)]
        assert (await call(alice, "GET", "/api/search?q=%25"))[1]["messages"] == []


@pytest.mark.asyncio
async def test_a_hostile_contacts_creation_times_reach_the_page_as_unknown(rsa_keys, tmp_path):
    """Mallory, a contact, sends creation times of 2**64 - 1 and 0 beside an honest one:
    the live event, the history, the peer list and search all give the page
    ``created_ms`` null (unknown) with the receive time, the honest time as sent, and
    every body byte for byte (the page makes its characters visible, not the server)."""
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, _):
        a.add_peer(public_pem(rsa_keys["mallory"]), "127.0.0.1:9", "mallory")
        mallory = RawPeer(rsa_keys["mallory"], a, source="127.0.0.2")
        me, to = mallory.fingerprint, a.identity.fingerprint
        now = int(time.time() * 1000)
        sent = [(2**64 - 1, "far \u202efuture"), (0, "far past"), (now, "honest time")]
        async with socket(alice) as wa:
            await next_event(wa, "hello")
            try:
                await mallory.handshake()
                mallory.send_chats([Chat(os.urandom(16), me, to, t, body) for t, body in sent])
                live = [(await next_event(wa, "message"))["message"] for _ in sent]
            finally:
                await mallory.close()
        after = int(time.time() * 1000)
        fp = me.hex()
        history = (await call(alice, "GET", f"/api/peers/{fp}/messages"))[1]["messages"]
        found = (await call(alice, "GET", "/api/search?q=far"))[1]["messages"]
        peers = (await call(alice, "GET", "/api/peers"))[1]["peers"]
        [last] = [p["last"] for p in peers if p["fingerprint"] == fp]
        for shown in (live, history):
            assert [(m["body"], m["created_ms"]) for m in shown] == [
                ("far \u202efuture", None),
                ("far past", None),
                ("honest time", now),
            ]
            assert all(now - 1000 <= m["received_ms"] <= after for m in shown)
        assert [(m["body"], m["created_ms"]) for m in found] == [  # newest first
            ("far past", None),
            ("far \u202efuture", None),
        ]
        assert (last["body"], last["created_ms"]) == ("honest time", now)


@pytest.mark.asyncio
async def test_broadcast_verify_and_add_peer(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, bob, a, b):
        async with socket(bob) as wb:
            await next_event(wb, "hello")
            status, body = await call(alice, "POST", "/api/broadcast", {"text": "all hands"})
            assert status == 200 and [m["peer"] for m in body["messages"]] == [b.fingerprint]
            assert (await next_event(wb, "message"))["message"]["body"] == "all hands"
        fp = b.fingerprint
        assert (await call(alice, "POST", f"/api/peers/{fp}/verified", {"verified": True}))[
            0
        ] == 200
        peers = (await call(alice, "GET", "/api/peers"))[1]["peers"]
        assert peers[0]["verified"] is True and peers[0]["grouped"].startswith(fp[:4] + " ")
        status, mine = await call(alice, "GET", f"/api/peers/{fp}/safety")
        theirs = (await call(bob, "GET", f"/api/peers/{a.fingerprint}/safety"))[1]
        assert status == 200 and mine["lines"] == theirs["lines"] and len(mine["lines"]) == 3
        assert mine["qr"] and set("".join(mine["qr"])) == {"0", "1"}
        carol = {
            "public_key": public_pem(rsa_keys["carol"]),
            "address": "127.0.0.1:9",
            "name": "carol",
        }
        status, body = await call(alice, "POST", "/api/peers", carol)
        assert status == 200 and body["added"] is True and body["warning"] is None
        again = await call(alice, "POST", "/api/peers", carol)
        assert again[0] == 200 and again[1]["added"] is False
        names = [p["name"] for p in (await call(alice, "GET", "/api/peers"))[1]["peers"]]
        assert names == ["bob", "carol"]
        me = (await call(alice, "GET", "/api/me"))[1]
        assert me["fingerprint"] == a.fingerprint and "BEGIN PUBLIC KEY" in me["public_key"]
        assert len(me["qr"]) == len(me["qr"][0]) >= 21 and set("".join(me["qr"])) == {"0", "1"}


@pytest.mark.asyncio
async def test_the_page_cannot_mark_v1_a_peer_that_spoke_v2(rsa_keys, tmp_path):
    """Issue 14, item 6: the Node refuses the downgrade and the page says why and how
    to force it from the command line; a peer that never spoke v2 may be marked v1."""
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        recorder = Recorder(a)
        await a.send("bob", "over v2")
        await recorder.until(lambda r: r.states("delivered"))
        before = a.resolve("bob")
        bob = {"public_key": public_pem(rsa_keys["bob"]), "address": "10.0.0.9:8000"}
        for extra in ({"protocol": "v1"}, {"protocol": "v1", "force": True}):
            status, body = await call(alice, "POST", "/api/peers", {**bob, **extra})
            assert status == 409, body
            assert body["error"].startswith("bob has spoken Enclave's own protocol (v2)")
            force = f"enclave --home {a.home} --add-peer FILE --peer-address HOST:PORT"
            assert body["error"].endswith(f"stop Enclave and run {force} --protocol v1 --force")
        assert a.resolve("bob") == before
        status, body = await call(alice, "POST", "/api/peers", {**bob, "protocol": "v2"})
        assert status == 400 and "'protocol' must be" in body["error"]
        carol = {"public_key": public_pem(rsa_keys["carol"]), "address": "127.0.0.1:9"}
        status, body = await call(alice, "POST", "/api/peers", {**carol, "protocol": "v1"})
        assert status == 200 and body["added"] is True
        listed = {
            p["name"] or "carol": p for p in (await call(alice, "GET", "/api/peers"))[1]["peers"]
        }
        assert (listed["carol"]["protocol"], listed["carol"]["legacy"]) == ("v1", True)
        assert (listed["bob"]["protocol"], listed["bob"]["legacy"]) == ("v2", False)


# --- first run: create or unlock from the page --------------------------------------------


@contextlib.asynccontextmanager
async def first_run(tmp_path, **kw):
    started = []

    async def starter(identity):
        node = await start(tmp_path / "h", identity.private_key)
        started.append(node)
        return node

    backend = Backend(tmp_path / "h", starter, kdf=FAST_KDF, min_kdf=FAST_KDF, **kw)
    try:
        yield make_app(backend).test_client(), started
    finally:
        for node in started:
            await node.stop()


@pytest.mark.asyncio
async def test_first_run_creates_an_identity_from_the_page(rsa_keys, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "a page-made password 42"
    async with first_run(tmp_path, keygen=lambda: rsa_keys["carol"]) as (client, started):
        assert (await call(client, "GET", "/api/state"))[1]["state"] == "setup"
        assert (await call(client, "POST", "/api/identity/unlock", {"password": secret}))[0] == 400
        status, body = await call(
            client, "POST", "/api/identity/create", {"password": secret, "repeat": secret + "!"}
        )
        assert (status, body["error"]) == (400, "the two passwords do not match")
        status, body = await call(
            client, "POST", "/api/identity/create", {"password": "", "repeat": ""}
        )
        assert status == 400
        assert not (tmp_path / "h" / "identity.key").exists()
        async with socket(client) as ws:
            assert json.loads(await ws.receive())["state"] == "setup"
            status, body = await call(
                client, "POST", "/api/identity/create", {"password": secret, "repeat": secret}
            )
            assert (status, body) == (200, {"state": "ready", "warning": None})
            assert (await next_event(ws, "state"))["state"] == "ready"
        assert (tmp_path / "h" / "identity.key").exists() and len(started) == 1
        me = (await call(client, "GET", "/api/me"))[1]
        assert me["fingerprint"] == started[0].fingerprint
        status, body = await call(
            client, "POST", "/api/identity/create", {"password": "x", "repeat": "x"}
        )
        assert status == 400 and "already exists" in body["error"]
    assert secret not in caplog.text


@pytest.mark.asyncio
async def test_a_locked_identity_unlocks_from_the_page(rsa_keys, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    make_identity(tmp_path / "h", rsa_keys["carol"])
    async with first_run(tmp_path) as (client, started):
        assert (await call(client, "GET", "/api/state"))[1]["state"] == "locked"
        status, body = await call(client, "POST", "/api/identity/unlock", {"password": "guess"})
        assert status == 400 and body["error"].startswith("wrong password for ")
        assert started == []
        status, body = await call(client, "POST", "/api/identity/unlock", {"password": PASSWORD})
        assert (status, body) == (200, {"state": "ready"})
        assert (await call(client, "GET", "/api/peers"))[1] == {"peers": []}
    assert PASSWORD not in caplog.text and "guess" not in caplog.text


@pytest.mark.asyncio
async def test_a_page_that_falls_behind_is_told_to_resync(tmp_path):
    backend = Backend(tmp_path / "h", _no_starter)
    client = make_app(backend).test_client()
    async with socket(client) as ws:
        assert json.loads(await ws.receive())["type"] == "hello"
        for k in range(1500):  # more than a page's queue holds, with no chance to send
            backend.announce({"type": "peers", "n": k})
        assert json.loads(await ws.receive()) == {"type": "resync"}
        backend.announce({"type": "peers", "n": "after"})
        assert json.loads(await ws.receive()) == {"type": "peers", "n": "after"}


@pytest.mark.asyncio
async def test_the_page_sees_presence_last_seen_and_when_waiting_messages_are_tried(
    rsa_keys, tmp_path
):
    """Bob stops: Alice's page hears he is offline and when he was last seen; a message
    to him waits, the page hears when it is tried next, and "retry" tries at once."""
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        async with socket(alice) as wa:
            await next_event(wa, "hello")
            peers = (await call(alice, "GET", "/api/peers"))[1]["peers"]
            if not peers[0]["online"]:
                assert (await next_event(wa, "presence"))["online"] is True
            await b.stop()
            assert (await next_event(wa, "presence")) == {
                "type": "presence",
                "peer": b.fingerprint,
                "online": False,
            }
            await a.send("bob", "are you there?")
            event = await next_event(wa, "retrying")
            assert event["peer"] == b.fingerprint and event["retry_after"] > 0
            [bob] = (await call(alice, "GET", "/api/peers"))[1]["peers"]
            assert bob["online"] is False and bob["queued"] == 1
            assert bob["last_seen_ms"] <= time.time() * 1000
            assert bob["retry_in"] is None or bob["retry_in"] >= 0
            status, done = await call(alice, "POST", f"/api/peers/{b.fingerprint}/retry", {})
            assert status == 200 and done == {"retried": [], "waiting": 1, "tried": True}


@pytest.mark.asyncio
async def test_deleting_a_message_names_it_by_id_and_refuses_the_rest(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, bob, a, b):
        rb = Recorder(b)
        await a.send("bob", "delete me from the page")
        await rb.until(lambda r: r.received())
        mid = rb.received()[0].id.hex()
        base = f"/api/peers/{a.fingerprint}/messages"
        for bad in ("xyz", "0" * 31, mid.upper()):
            status, body = await call(bob, "POST", f"{base}/{bad}/delete", {"direction": "in"})
            assert status in (400, 404) and "error" in body, bad
        for direction in (None, "sideways", 1):
            status, body = await call(bob, "POST", f"{base}/{mid}/delete", {"direction": direction})
            assert status == 400 and "direction" in body["error"], direction
        # The right id in the wrong direction names no message of this conversation.
        status, body = await call(bob, "POST", f"{base}/{mid}/delete", {"direction": "out"})
        assert (status, body["error"]) == (400, "no such message in that conversation")
        status, body = await call(bob, "POST", f"{base}/{'0' * 32}/delete", {"direction": "in"})
        assert (status, body["error"]) == (400, "no such message in that conversation")
        async with socket(bob) as ws:
            done = await call(bob, "POST", f"{base}/{mid}/delete", {"direction": "in"})
            assert done[0] == 200
            told = await next_event(ws, "message_deleted")
            assert told == {"type": "message_deleted", "peer": a.fingerprint, "key": f"in:{mid}"}
        assert b.history("alice") == []
        status, _ = await call(
            bob, "POST", f"{base}/{mid}/delete", {"direction": "in"}, Authorization=None
        )
        assert status == 401


@pytest.mark.asyncio
async def test_a_reply_from_the_page_names_the_quoted_message_by_id(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, bob, a, b):
        ra, rb = Recorder(a), Recorder(b)
        await a.send("bob", "which day?")
        await rb.until(lambda r: r.received())
        mid = rb.received()[0].id.hex()
        send = {"peer": a.fingerprint, "text": "friday"}
        for bad in ({"reply_to": "xyz"}, {"reply_to": mid.upper()}, {"reply_to": 7},
                    {"reply_to": mid}, {"reply_to": mid, "reply_direction": "up"}):  # fmt: skip
            status, body = await call(bob, "POST", "/api/send", {**send, **bad})
            assert status == 400 and "reply" in body["error"], bad
        status, body = await call(bob, "POST", "/api/send", {**send, "reply_to": "0" * 32,
                                                             "reply_direction": "in"})  # fmt: skip
        assert (status, body["error"]) == (400, "no such message in that conversation")
        status, body = await call(
            bob, "POST", "/api/send", {**send, "reply_to": mid, "reply_direction": "in"}
        )
        assert status == 200 and body["message"]["reply_to"] == mid
        await ra.until(lambda r: r.received())
        assert ra.received()[0].reply_to.hex() == mid
        status, page = await call(alice, "GET", f"/api/peers/{b.fingerprint}/messages")
        assert [m.get("reply_to") for m in page["messages"]] == [None, mid]
