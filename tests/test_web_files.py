"""The page's file routes over real nodes: upload (streamed, limited), accept and
decline, download and preview headers, and the token on every one."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from urllib.parse import quote

import pytest
from support.images import png
from support.waiting import eventually
from support.web_helpers import headers, next_event, socket
from test_web_api import call, two_pages

from enclave.node.settings import Settings

pytestmark = pytest.mark.asyncio
NOBODY = "0" * 64


async def upload(client, path: str, name: str, data: bytes, **changes):
    h = headers(**changes)
    h["X-File-Name"] = quote(name)
    h["Content-Type"] = "application/octet-stream"
    response = await client.post(path, headers=h, data=data)
    return response.status_code, await response.get_json()


async def settled(node, key: int, states=("delivered", "failed", "cancelled")):
    for _ in range(500):
        f = node.file(key)
        if f is not None and f.state in states:
            return f
        await asyncio.sleep(0.02)
    raise AssertionError(f"file {key} did not settle: {node.file(key)}")


async def incoming(node, peer: str):
    for _ in range(500):
        found = [f for f in node.files_of(peer, open_only=False) if f.direction == "in"]
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError("no incoming file")


async def test_an_upload_reaches_the_peer_whole_and_downloads_with_safe_headers(rsa_keys, tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)
    async with two_pages(rsa_keys, tmp_path) as (alice, bob, a, b):
        async with socket(bob) as wb:
            await next_event(wb, "hello")
            status, body = await upload(
                alice, f"/api/peers/{b.fingerprint}/files", "ré port.bin", data
            )
            assert status == 200, body
            sent = body["file"]
            assert (sent["name"], sent["size"], sent["direction"]) == (
                "ré port.bin",
                len(data),
                "out",
            )
            staged = Path(a.file(sent["key"]).path)  # the node may have removed it by now
            assert staged.name == "ré port.bin" and staged.parent.parent == a.home / "outgoing"
            assert oct((a.home / "outgoing").stat().st_mode & 0o777) == "0o700"
            shown = (await next_event(wb, "file"))["file"]
            assert shown["direction"] == "in" and shown["name"] == "ré port.bin"
            theirs = await settled(b, (await incoming(b, "alice")).key)
            assert theirs.state == "delivered"
            response = await bob.get(f"/api/files/{theirs.key}/content", headers=headers())
            assert response.status_code == 200
            got = await response.get_data()
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Content-Disposition"] == (
                "attachment; filename*=UTF-8''r%C3%A9%20port.bin"
            )
            assert (
                await bob.get(f"/api/files/{theirs.key}/preview", headers=headers())
            ).status_code == 415
            rows = (await call(bob, "GET", f"/api/peers/{a.fingerprint}/messages"))[1]["messages"]
            row = [r for r in rows if r["file"]][-1]
            note = row["file"]
            assert (row["id"], row["rowid"], row["direction"]) == (
                theirs.id.hex(),
                theirs.rowid,
                "in",
            )
            assert (note["key"], note["state"], note["percent"]) == (theirs.key, "delivered", 100)
            assert (await settled(a, sent["key"])).state == "delivered"
            outgoing = a.home / "outgoing"  # the copy goes just after that state is written
            await eventually(lambda: not any(outgoing.iterdir()), what="the staged copy gone")


async def test_only_real_images_have_a_preview(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, bob, a, b):
        image = png()
        keys = {}
        for name, data in (("dot.png", image), ("x.png", b"<html><script>alert(1)</script>")):
            status, body = await upload(alice, f"/api/peers/{b.fingerprint}/files", name, data)
            assert status == 200, body
            await settled(a, body["file"]["key"])
        for f in b.files_of("alice", open_only=False):
            keys[f.name] = (await settled(b, f.key)).key
        response = await bob.get(f"/api/files/{keys['dot.png']}/preview", headers=headers())
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "image/png"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert await response.get_data() == image
        response = await bob.get(f"/api/files/{keys['x.png']}/preview", headers=headers())
        assert response.status_code == 415
        assert "image" in (await response.get_json())["error"]


async def test_an_upload_over_the_limit_is_413_and_leaves_nothing(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        alice.app.config["MAX_UPLOAD_BYTES"] = 1000
        status, body = await upload(alice, f"/api/peers/{b.fingerprint}/files", "big", b"x" * 1001)
        assert status == 413 and "at most" in body["error"]
        assert list(a.home.glob("outgoing/*")) == []
        status, _ = await upload(alice, f"/api/peers/{b.fingerprint}/files", "fits", b"x" * 1000)
        assert status == 200
        assert a.files_of("bob", open_only=False)[-1].name == "fits"


async def test_a_body_without_length_is_cut_at_the_limit_as_it_streams(rsa_keys, tmp_path):
    """No Content-Length (a chunked body): the bytes are counted as they are written,
    and the partial file goes once the limit is passed."""
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        alice.app.config["MAX_UPLOAD_BYTES"] = 100_000
        h = headers()
        h["X-File-Name"] = "stream.bin"
        path = f"/api/peers/{b.fingerprint}/files"
        async with alice.request(path, method="POST", headers=h) as conn:
            for _ in range(10):
                await conn.send(b"y" * 30_000)
            await conn.send_complete()
        response = await conn.as_response()
        assert response.status_code == 413
        assert list(a.home.glob("outgoing/*")) == []
        assert a.files_of("bob", open_only=False) == []
        async with alice.request(path, method="POST", headers=h) as conn:
            for _ in range(3):
                await conn.send(b"y" * 30_000)
            await conn.send_complete()
        response = await conn.as_response()
        assert response.status_code == 200, await response.get_json()
        assert (await settled(a, a.files_of("bob", open_only=False)[-1].key)).size == 90_000


async def test_a_refused_upload_leaves_nothing_and_says_why(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        cases = [
            (f"/api/peers/{NOBODY}/files", "a.txt", 400, "no peer"),
            ("/api/peers/xyz/files", "a.txt", 400, "fingerprint"),
            (f"/api/peers/{b.fingerprint}/files", "", 400, "X-File-Name"),
            (f"/api/peers/{b.fingerprint}/files", "..", 400, "name"),
            ("/api/files", "a.txt", 400, "peer"),
            (f"/api/files?peer={b.fingerprint}&peer=nope", "a.txt", 400, "fingerprint"),
        ]
        for path, name, want, words in cases:
            h = headers()
            if name:
                h["X-File-Name"] = quote(name)
            response = await alice.post(path, headers=h, data=b"hello")
            assert response.status_code == want, (path, name)
            assert words in (await response.get_json())["error"]
        a.block_contact("bob")  # refused by the node after staging: the staged copy goes
        status, body = await upload(alice, f"/api/peers/{b.fingerprint}/files", "a.txt", b"hi")
        assert status == 400 and "blocked" in body["error"]
        assert list(a.home.glob("outgoing/*")) == []


async def test_broadcast_upload_goes_to_every_named_peer(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        path = f"/api/files?peer={b.fingerprint}"
        status, body = await upload(alice, path, "note.txt", b"to all")
        assert status == 200 and [f["peer"] for f in body["files"]] == [b.fingerprint]


async def test_every_file_route_needs_the_token(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        routes = [
            ("POST", f"/api/peers/{b.fingerprint}/files"),
            ("POST", f"/api/files?peer={b.fingerprint}"),
            ("GET", "/api/files/1"),
            ("POST", "/api/files/1/accept"),
            ("POST", "/api/files/1/decline"),
            ("POST", "/api/files/1/cancel"),
            ("GET", "/api/files/1/content"),
            ("GET", "/api/files/1/preview"),
        ]
        for method, path in routes:
            for auth in (None, "Bearer wrong-token"):
                h = headers(Authorization=auth)
                h["X-File-Name"] = "a.txt"
                response = await alice.open(path, method=method, headers=h, data=b"x")
                assert response.status_code == 401, (method, path, auth)
        assert not (a.home / "outgoing").exists()
        assert a.files_of("bob", open_only=False) == []


async def test_accept_and_decline_a_waiting_file(rsa_keys, tmp_path):
    asks = Settings(file_auto_accept_bytes=0, file_disk_margin_bytes=0)
    async with two_pages(rsa_keys, tmp_path, bob_settings=asks) as (alice, bob, a, b):
        for name in ("yes.txt", "no.txt"):
            status, body = await upload(
                alice, f"/api/peers/{b.fingerprint}/files", name, b"data " + name.encode()
            )
            assert status == 200
        waiting = {}
        for _ in range(500):
            waiting = {f.name: f for f in b.files_of("alice") if f.waiting}
            if len(waiting) == 2:
                break
            await asyncio.sleep(0.02)
        yes, no = waiting["yes.txt"], waiting["no.txt"]
        status, body = await call(bob, "GET", f"/api/files/{yes.key}/content")
        assert status == 409 and "not arrived" in body["error"]
        status, body = await call(bob, "POST", f"/api/files/{yes.key}/accept", {})
        assert status == 200 and body["file"]["key"] == yes.key
        assert (await settled(b, yes.key)).state == "delivered"
        status, body = await call(bob, "POST", f"/api/files/{no.key}/decline", {})
        assert status == 200 and body["file"]["waiting"] is False
        assert (await settled(b, no.key)).state in ("failed", "cancelled")
        status, body = await call(bob, "POST", f"/api/files/{no.key}/accept", {})
        assert status == 400 and "\n" not in body["error"]
        assert (await call(bob, "POST", "/api/files/999/accept", {}))[0] == 404
        assert (await call(bob, "POST", "/api/files/x1/accept", {}))[0] == 400
        response = await bob.get(f"/api/files/{yes.key}/content", headers=headers())
        assert await response.get_data() == b"data yes.txt"
