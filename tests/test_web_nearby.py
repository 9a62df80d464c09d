"""The page's Nearby route: unknown fingerprints listed (for "pair"), contacts by name,
and the discovery state (off on a node that listens on loopback only)."""

from __future__ import annotations

import pytest
from test_repl_discovery import STRANGER, hear
from test_web_api import call, two_pages

pytestmark = pytest.mark.asyncio


async def test_the_page_lists_who_is_nearby(rsa_keys, tmp_path):
    async with two_pages(rsa_keys, tmp_path) as (alice, _, a, b):
        status, body = await call(alice, "GET", "/api/nearby")
        assert status == 200
        assert body == {"state": "off: listening on loopback only", "nearby": []}
        hear(a, {STRANGER: "10.0.0.3", b.fingerprint: "10.0.0.2"})
        try:
            status, body = await call(alice, "GET", "/api/nearby")
        finally:
            a.discovery = None
        assert status == 200 and body["state"] == "on"
        rows = {n["fp"]: n for n in body["nearby"]}
        assert rows[STRANGER]["known"] is False and rows[STRANGER]["contact"] is None
        assert rows[STRANGER]["addresses"] == ["10.0.0.3:7000"] and rows[STRANGER]["invites"] == [7]
        assert rows[b.fingerprint]["contact"] == "bob" and rows[b.fingerprint]["known"] is True
        assert a.contact(STRANGER) is None
