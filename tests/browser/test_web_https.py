"""The web page over HTTPS (issue 14, item 7), in Debian's Chromium.

Alice serves her page to the network (``--web-host 0.0.0.0``) with a self-signed
certificate made here; Chromium runs with ``--ignore-certificate-errors`` since no test
may touch the machine's trust store. Her page unlocks over HTTPS and its WebSocket runs
over wss:. Bob keeps the default: plain HTTP on 127.0.0.1.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import CHROMIUM, FLAGS
from playwright.sync_api import expect
from support.tls_helpers import self_signed
from webnodes import PASSWORD, WebNode

WAIT = 30_000  # ms; an upper bound for things that happen in well under a second


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as p:
        args = [*FLAGS, "--ignore-certificate-errors"]
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def nodes(rsa_keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("https")
    cert, key = self_signed(base / "tls")
    alice = WebNode("alice", base / "alice", key=rsa_keys["alice"])
    bob = WebNode("bob", base / "bob", key=rsa_keys["bob"])
    alice.add_peer(bob, "bob")
    bob.add_peer(alice, "alice")
    remote = ("--web-host", "0.0.0.0", "--web-cert", str(cert), "--web-key", str(key))
    started = []
    try:
        alice.start(unlock=False, web_args=remote)
        started.append(alice)
        bob.start()
        started.append(bob)
        yield {"alice": alice, "bob": bob}
    finally:
        for node in started:
            node.stop()


class Page:
    """A page with what it saw: WebSocket addresses, console errors, dialogs."""

    def __init__(self, browser, url: str) -> None:
        self.page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        self.sockets: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("websocket", lambda ws: self.sockets.append(ws.url))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(url)

    def open_chat(self, name: str) -> None:
        title = self.page.locator(".peer-name", has_text=re.compile(f"^{re.escape(name)}$"))
        self.page.locator("#peer-list .peer").filter(has=title).click()
        expect(self.page.locator("#chat-name")).to_have_text(name)

    def send(self, text: str) -> None:
        self.page.locator("#input").fill(text)
        self.page.locator("#input").press("Enter")

    def bubble(self, direction: str, text: str):
        return self.page.locator(f"#message-list .msg.{direction}").filter(
            has=self.page.locator(".body", has_text=text)
        )


@pytest.fixture(scope="module")
def pages(browser, nodes):
    out = {name: Page(browser, node.url) for name, node in nodes.items()}
    yield out
    for page in out.values():
        assert page.dialogs == [], "a page opened a dialog"
        page.page.context.close()


def test_alice_unlocks_over_https_and_chats_over_wss(pages, nodes):
    alice, bob = pages["alice"], pages["bob"]
    assert nodes["alice"].url.startswith("https://127.0.0.1:")
    assert alice.page.evaluate("location.protocol") == "https:"
    expect(alice.page.locator("#unlock-form")).to_be_visible(timeout=WAIT)
    alice.page.locator("#unlock-password").fill(PASSWORD)
    alice.page.locator("#unlock-form button[type=submit]").click()
    expect(alice.page.locator("#app")).to_be_visible(timeout=WAIT)
    expect(bob.page.locator("#app")).to_be_visible(timeout=WAIT)
    bob.open_chat("alice")
    alice.open_chat("bob")
    alice.send("Hello Bob, over HTTPS")
    expect(bob.bubble("in", "over HTTPS")).to_be_visible(timeout=WAIT)
    expect(alice.bubble("out", "over HTTPS")).to_have_attribute(
        "data-state", "delivered", timeout=WAIT
    )
    bob.send("Got it, Alice")  # reaches Alice's page live, through her wss: socket
    expect(alice.bubble("in", "Got it, Alice")).to_be_visible(timeout=WAIT)
    assert alice.sockets and all(url.startswith("wss://127.0.0.1:") for url in alice.sockets)
    assert bob.sockets and all(url.startswith("ws://127.0.0.1:") for url in bob.sockets)
    for page in (alice, bob):
        assert [e for e in page.errors if not e.startswith("Failed to load resource")] == []
    assert PASSWORD not in "".join(nodes["alice"].output)


def test_the_page_refuses_to_mark_v1_a_peer_that_spoke_v2(pages, nodes, shots):
    """Issue 14, item 6, as a person meets it: the refusal shows in the dialog, which
    stays open, and Bob stays on v2."""
    alice = pages["alice"].page
    alice.locator("#btn-add").click()
    alice.locator("#add-key").fill(nodes["bob"].public_pem_file().read_text())
    alice.locator("#add-address").fill(f"127.0.0.1:{nodes['bob'].port}")
    alice.locator("#add-protocol").select_option("v1")
    alice.locator("#add-form button[type=submit]").click()
    error = alice.locator("#add-error")
    expect(error).to_contain_text("bob has spoken Enclave's own protocol (v2)", timeout=WAIT)
    expect(error).to_contain_text("--protocol v1 --force")
    expect(alice.locator("#dlg-add")).to_be_visible()
    alice.screenshot(path=shots / "add-peer-downgrade-refused.png")
    alice.locator("#dlg-add [data-close]").click()
    expect(alice.locator("#chat-status")).not_to_contain_text("legacy")
    assert alice.locator("#peer-list .tag-legacy").count() == 0
