"""Pairing by code on the web page in Debian's Chromium, between two real ``enclave
--web`` processes that know nothing of each other: Alice's page makes a code (shown
with its QR), Bob's page joins with it, and both pages list the other as a verified
contact and chat at once. A wrong code shows on both pages."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from test_web_browser import WAIT, open_page
from webnodes import WebNode

from enclave.protocol import pairing as P


@pytest.fixture(scope="module")
def nodes(rsa_keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("pairing")
    alice = WebNode("alice", base / "alice", key=rsa_keys["alice"])
    bob = WebNode("bob", base / "bob", key=rsa_keys["bob"])
    started = []
    try:
        for node in (alice, bob):
            node.start(web_args=("--set", f"display_name={node.name}"))
            started.append(node)
        yield {"alice": alice, "bob": bob}
    finally:
        for node in started:
            node.stop()


@pytest.fixture(scope="module")
def pages(browser, nodes):
    out = {name: open_page(browser, node.url) for name, node in nodes.items()}
    yield out
    for page in out.values():
        assert page.watch.script_errors() == []
        page.context.close()


def invite(page) -> str:
    page.locator("#btn-add").click()
    page.locator("#btn-invite").click()
    code = page.locator("#invite-code")
    expect(code).to_have_text(re.compile(r"^\d+-[a-z]+-[a-z]+$"), timeout=WAIT)
    return code.inner_text()


def join(page, code: str, inviter: WebNode) -> None:
    page.locator("#btn-add").click()
    page.locator("#btn-join-open").click()
    page.locator("#join-code").fill(code)
    page.locator("#join-address").fill(f"127.0.0.1:{inviter.port}")
    page.locator("#btn-join").click()


def test_a_wrong_code_is_told_on_both_pages(pages, nodes):
    alice, bob = pages["alice"], pages["bob"]
    code = invite(alice)
    n, w1, w2 = code.split("-")
    join(bob, f"{n}-{next(w for w in P.WORDS if w not in (w1, w2))}-{w2}", nodes["alice"])
    expect(bob.locator("#join-error")).to_contain_text("wrong code", timeout=WAIT)
    expect(alice.locator("#invite-status")).to_contain_text("used up", timeout=WAIT)
    alice.locator("#btn-pair-close").click()
    bob.locator("#btn-pair-close").click()


def test_invite_on_one_page_join_on_the_other_and_chat(pages, nodes):
    alice, bob = pages["alice"], pages["bob"]
    code = invite(alice)
    rows = alice.locator("#invite-qr")
    expect(rows).to_be_visible()
    join(bob, code, nodes["alice"])
    expect(bob.locator("#dlg-pair")).to_be_hidden(timeout=WAIT)
    expect(alice.locator("#invite-status")).to_contain_text("Paired with bob", timeout=WAIT)
    alice.locator("#btn-pair-close").click()
    for page, other in ((alice, "bob"), (bob, "alice")):
        row = page.locator(".peer", has=page.locator(".peer-name", has_text=other))
        expect(row).to_be_visible(timeout=WAIT)
    expect(bob.locator("#chat-name")).to_contain_text("alice", timeout=WAIT)
    bob.locator("#input").fill("paired on the page")
    bob.locator("#input").press("Enter")
    alice.locator(".peer", has=alice.locator(".peer-name", has_text="bob")).click()
    expect(alice.locator(".msg.in .body", has_text="paired on the page")).to_be_visible(
        timeout=WAIT
    )
