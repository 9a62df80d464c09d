"""A contact that turned hostile, against the real page in Chromium (issue 14, item 2).

Alice runs ``enclave --web``. Mallory, one of her contacts, speaks the wire protocol
from this test process (``attackers.RawPeer``: Enclave's own Connection, so everything
she sends is wire-valid) and sends creation times no clock gave (2**64 - 1, 2**63, 0,
an hour ahead) and text full of bidi overrides and zero-width characters. Carol, an
honest contact, talks the same way with ordinary values. Dave's name was written into
Alice's store with a right-to-left override (names are checked when added; a store
written otherwise must still not reorder the page).

The page must render on every load, show every message, "unknown time" for the odd
times, and the override characters as ⟨U+XXXX⟩ without applying them.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect
from support.attackers import RawPeer
from support.nodes import public_pem, small_key
from test_web_browser import DESKTOP, WAIT, Watch, bubble, open_chat, peer
from webnodes import WebNode, free_port

from enclave.identity import keys
from enclave.protocol.crypto import PeerKey
from enclave.protocol.events import Acked
from enclave.protocol.messages import Chat

FAR = {  # body -> creation time Mallory claims (None: an hour ahead of now)
    "an hour ahead": None,
    "from 1970": 0,
    "just past what SQLite holds": 2**63,
    "from the end of time": 2**64 - 1,  # last: the message the peer list previews
}
BIDI = "invoice\u202egnp.exe \u2066x\u2069 zero\u200bwidth \ufeff\u2028end"
BIDI_SHOWN = "invoice⟨U+202E⟩gnp.exe ⟨U+2066⟩x⟨U+2069⟩ zero⟨U+200B⟩width ⟨U+FEFF⟩⟨U+2028⟩end"
DAVE = "dave\u202egnp.exe"
DAVE_SHOWN = "dave⟨U+202E⟩gnp.exe"
RAW = "\u202e\u2066\u2069\u200b\ufeff\u2028"  # none of these may reach the DOM


@pytest.fixture(scope="module")
def alice(rsa_keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    node = WebNode("alice", base / "alice", key=rsa_keys["alice"])
    node.add_peer(None, "mallory", key=rsa_keys["mallory"], port=free_port())
    node.add_peer(None, "carol", key=rsa_keys["carol"], port=free_port())
    dave = small_key()
    node.add_peer(None, "dave", key=dave, port=free_port())
    with sqlite3.connect(node.home / "enclave.db") as db:  # past the store's name check
        db.execute(
            "UPDATE peers SET name = ? WHERE fingerprint = ?",
            (DAVE, keys.fingerprint(dave.public_key())),
        )
    db.close()  # the with block commits; it does not close
    node.start()
    yield node
    node.stop()


def contact_sends(node: WebNode, key, texts: list[tuple[int, str]]) -> None:
    """A contact connects to ``node``, sends these (created_ms, body) CHATs in one
    batch and returns once the node acknowledged storing all of them."""
    target = SimpleNamespace(
        address=("127.0.0.1", node.port),
        identity=SimpleNamespace(peer_key=PeerKey.from_pem(public_pem(node.key))),
    )

    async def session() -> None:
        raw = RawPeer(key, target, source="127.0.0.2")
        try:
            await raw.handshake()
            me, to = raw.fingerprint, target.identity.peer_key.fingerprint
            raw.send_chats([Chat(os.urandom(16), me, to, t, body) for t, body in texts])
            last = len(texts) - 1
            await raw.until(lambda p: any(type(e) is Acked and e.upto >= last for e in p.events))
        finally:
            await raw.close()

    # Playwright's sync API owns this thread's event loop: the contact gets its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, session()).result(timeout=60)


def hostile_batch() -> list[tuple[int, str]]:
    now = int(time.time() * 1000)
    far = [(now + 3_600_000 if t is None else t, body) for body, t in FAR.items()]
    return [(now, "plain hello"), (now, BIDI), *far]


def time_of(page, text: str):
    return bubble(page, "in", text).locator(".time")


def assert_not_reordered(page, text: str, first: str, then: str) -> None:
    """In the bubble holding ``text``, ``first`` is laid out left of ``then``: an
    applied right-to-left override would have drawn them the other way round."""
    body = bubble(page, "in", text).locator(".body")
    left = body.evaluate(
        """(node, [a, b]) => {
            const t = node.firstChild, s = t.textContent;
            const at = (x) => { const r = document.createRange(); const i = s.indexOf(x);
                r.setStart(t, i); r.setEnd(t, i + 1); return r.getBoundingClientRect().left; };
            return [at(a), at(b)];
        }""",
        [first, then],
    )
    assert left[0] < left[1], left


def test_a_hostile_contact_cannot_blank_the_page_or_reorder_its_text(
    browser, alice, rsa_keys, shots
):
    mallory, carol = rsa_keys["mallory"], rsa_keys["carol"]
    contact_sends(alice, mallory, hostile_batch())
    page = browser.new_context(viewport=DESKTOP).new_page()
    watch = Watch(page)
    for load in range(2):  # "blank on every load from then on": load it twice
        if load:
            page.reload()
        else:
            page.goto(alice.url)
        expect(page.locator("#app")).to_be_visible(timeout=WAIT)
        expect(peer(page, "mallory")).to_contain_text("from the end of time", timeout=WAIT)
        expect(peer(page, DAVE_SHOWN)).to_be_visible()
        open_chat(page, "mallory")
        expect(bubble(page, "in", "from the end of time")).to_be_visible(timeout=WAIT)
        expect(time_of(page, "plain hello")).to_have_text(re.compile(r"^\d\d:\d\d"))
        for body in FAR:
            expect(time_of(page, body)).to_have_text("unknown time")
            expect(time_of(page, body)).to_have_attribute("title", re.compile("Received "))
        expect(bubble(page, "in", "invoice").locator(".body")).to_have_text(BIDI_SHOWN)
        assert_not_reordered(page, "invoice", "g", "x")
    assert not any(ch in page.evaluate("() => document.body.textContent") for ch in RAW)
    page.screenshot(path=shots / "hostile-contact.png")

    # Live: another impossible time, while the page is open; then an honest contact.
    contact_sends(alice, mallory, [(2**64 - 1, "live from the end")])
    expect(time_of(page, "live from the end")).to_have_text("unknown time", timeout=WAIT)
    contact_sends(alice, carol, [(int(time.time() * 1000), "carol here")])
    expect(peer(page, "carol")).to_contain_text("carol here", timeout=WAIT)
    expect(peer(page, "carol").locator(".unread")).to_have_text("1")

    page.locator("#search").fill("end of time")
    results = page.locator("#result-list .result")
    expect(results).to_have_count(1, timeout=WAIT)
    expect(results.first).to_contain_text("mallory")
    page.locator("#search").fill("invoice")
    expect(results).to_have_count(1, timeout=WAIT)
    expect(results.first.locator(".result-body")).to_contain_text("invoice⟨U+202E⟩gnp.exe")
    assert watch.script_errors() == [] and watch.dialogs == []
    page.context.close()


def test_one_malformed_message_from_the_server_leaves_the_rest_of_the_page(browser, alice):
    """Whatever the server sends (an older Enclave sent 2**63 - 1 as a time; a broken
    one might send anything), each message and contact is shown or skipped alone."""
    page = browser.new_context(viewport=DESKTOP).new_page()
    watch = Watch(page)

    def spoil_messages(route) -> None:
        data = route.fetch().json()
        odd = dict(data["messages"][0], id="00" * 16, body="odd one", created_ms=2**63 - 1)
        odd2 = dict(odd, id="11" * 16, body="odder one", created_ms="soon", received_ms=-1e300)
        data["messages"][1:1] = [None, odd, odd2, 42]
        route.fulfill(json=data)

    def spoil_peers(route) -> None:
        data = route.fetch().json()
        for p in data["peers"]:
            if p["last"]:
                p["last"]["created_ms"] = 2**63 - 1  # as the old server sent it
        data["peers"].append(None)
        route.fulfill(json=data)

    page.route(re.compile(r"/api/peers/[0-9a-f]{64}/messages"), spoil_messages)
    page.route(re.compile(r"/api/peers$"), spoil_peers)
    page.goto(alice.url)
    expect(page.locator("#app")).to_be_visible(timeout=WAIT)
    expect(peer(page, "mallory")).to_be_visible(timeout=WAIT)
    expect(peer(page, "carol")).to_contain_text("carol here")
    open_chat(page, "mallory")
    expect(bubble(page, "in", "from the end of time")).to_be_visible(timeout=WAIT)
    expect(bubble(page, "in", "plain hello")).to_be_visible()
    expect(time_of(page, "odd one")).to_have_text("unknown time")
    expect(time_of(page, "odder one")).to_have_text("unknown time")
    assert watch.script_errors() == [] and watch.dialogs == []
    page.context.close()
