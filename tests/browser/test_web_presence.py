"""Presence in Debian's Chromium: Alice's page shows Bob's node stop and start again,
without a message sent, and what waits for an offline contact with a "Retry now".

Alice and Bob run ``enclave --web`` processes that know each other; Dave is a contact
of Alice's that never runs.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from webnodes import WebNode, free_port

WAIT = 30_000  # ms; an upper bound for things that happen in about a second
SEEN = 5_000  # ms; presence is right within ~2 s of a node starting or stopping
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def nodes(rsa_keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("presence")
    alice = WebNode("alice", base / "alice", key=rsa_keys["alice"])
    bob = WebNode("bob", base / "bob", key=rsa_keys["bob"])
    alice.add_peer(bob, "bob")
    bob.add_peer(alice, "alice")
    alice.add_peer(None, "dave", key=rsa_keys["mallory"], port=free_port())
    started = []
    try:
        for node in (alice, bob):
            node.start()
            started.append(node)
        yield {"alice": alice, "bob": bob}
    finally:
        for node in started:
            node.stop()


@pytest.fixture(scope="module")
def alice_page(browser, nodes):
    context = browser.new_context(viewport=DESKTOP, device_scale_factor=1)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(nodes["alice"].url)
    expect(page.locator("#app")).to_be_visible(timeout=WAIT)
    yield page
    assert errors == []
    context.close()


def dot(page, name: str):
    title = page.locator(".peer-name", has_text=re.compile(f"^{re.escape(name)}$"))
    return page.locator("#peer-list .peer").filter(has=title).locator(".avatar")


def open_chat(page, name: str) -> None:
    title = page.locator(".peer-name", has_text=re.compile(f"^{re.escape(name)}$"))
    page.locator("#peer-list .peer").filter(has=title).click()
    expect(page.locator("#chat-name")).to_have_text(name)


def test_a_contact_that_stops_and_starts_shows_offline_then_online(alice_page, nodes):
    page, bob = alice_page, nodes["bob"]
    # No message was sent: both nodes dialled each other at start.
    expect(dot(page, "bob")).to_have_class(re.compile("dot-on"), timeout=WAIT)
    open_chat(page, "bob")
    expect(page.locator("#chat-status")).to_contain_text("online")
    bob.stop()
    expect(dot(page, "bob")).to_have_class(re.compile("dot-off"), timeout=SEEN)
    expect(page.locator("#chat-status")).to_contain_text("last seen just now")
    bob.start()
    expect(dot(page, "bob")).to_have_class(re.compile("dot-on"), timeout=SEEN)
    expect(page.locator("#chat-status")).to_contain_text("online")


def test_a_message_to_an_offline_contact_says_when_it_is_tried_and_retries_now(alice_page):
    page = alice_page
    open_chat(page, "dave")
    expect(page.locator("#chat-status")).to_contain_text("offline")
    page.locator("#input").fill("Dave, are you there?")
    page.locator("#input").press("Enter")
    waiting = page.locator("#waiting")
    expect(waiting).to_be_visible(timeout=WAIT)
    expect(waiting).to_contain_text("1 message waiting for dave")
    expect(waiting).to_contain_text(re.compile(r"retrying in \d+ s"), timeout=WAIT)
    page.locator("#btn-retry-now").click()
    expect(page.locator(".toast").last).to_contain_text("Trying dave now", timeout=WAIT)
