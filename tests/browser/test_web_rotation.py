"""A contact's key rotation on the web page in Debian's Chromium, between two real
``enclave --web`` processes: Bob runs ``enclave rotate-key`` while both run; Alice's
open conversation shows the audit line at once and keeps it after a reload, the chat
goes on under the new key both ways, and nothing warns."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from playwright.sync_api import expect
from test_web_browser import WAIT, bubble, open_chat, open_page, send
from webnodes import PASSWORD, WebNode, closed, running

from enclave.identity import home, keys

AUDIT = "bob rotated their key, signed by their previous key"


@pytest.fixture(scope="module")
def nodes(rsa_keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("rotation")
    alice = WebNode("alice", base / "alice", key=rsa_keys["alice"])
    bob = WebNode("bob", base / "bob", key=rsa_keys["bob"])
    alice.add_peer(bob, "bob")
    bob.add_peer(alice, "alice")
    with running({"alice": alice, "bob": bob}) as made:
        yield made


@pytest.fixture(scope="module")
def pages(browser, nodes):
    out = {name: open_page(browser, node.url) for name, node in nodes.items()}
    yield out
    closed(out)


def test_the_audit_line_shows_live_and_after_a_reload_and_the_chat_goes_on(pages, nodes):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(alice, "bob")
    open_chat(bob, "alice")
    send(bob, "before my new key")
    expect(bubble(alice, "in", "before my new key")).to_be_visible(timeout=WAIT)
    old = on_disk(nodes["bob"])
    env = {**os.environ, "ENCLAVE_PASSWORD": PASSWORD}
    done = subprocess.run(
        [sys.executable, "-m", "enclave", "--home", str(nodes["bob"].home), "rotate-key"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert on_disk(nodes["bob"]) != old
    audit = alice.locator("#message-list li.system", has_text=AUDIT)
    expect(audit).to_have_count(1, timeout=WAIT)
    send(alice, "to your new key")
    expect(bubble(bob, "in", "to your new key")).to_be_visible(timeout=WAIT)
    send(bob, "from my new key")
    expect(bubble(alice, "in", "from my new key")).to_be_visible(timeout=WAIT)
    expect(alice.locator(".toast.error")).to_have_count(0)
    alice.reload()
    open_chat(alice, "bob")
    expect(alice.locator("#message-list li.system", has_text=AUDIT)).to_have_count(1, timeout=WAIT)
    expect(bubble(alice, "in", "from my new key")).to_be_visible(timeout=WAIT)


def on_disk(node: WebNode) -> str:
    return keys.read_public_identity(home.Home(node.home)).fingerprint


def test_a_revoked_contact_is_marked_and_told(pages, nodes):
    """Bob revokes his key (the certificate, no password): Alice's page marks him
    revoked and says what to do, without a reload."""
    alice = pages["alice"]
    done = subprocess.run(
        [sys.executable, "-m", "enclave", "--home", str(nodes["bob"].home), "revoke", "--yes"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "ENCLAVE_PASSWORD"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    row = alice.locator("#peer-list li", has_text="bob")
    expect(row.locator(".tag", has_text="revoked")).to_be_visible(timeout=WAIT)
    expect(alice.locator(".toast", has_text="bob revoked their key")).to_be_visible(timeout=WAIT)
