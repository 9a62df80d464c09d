"""The contact menu and unread counts in Debian's Chromium, against real nodes.

Alice, Bob and Carol each run ``enclave --web``. Tests run in file order on the same
nodes, as one person's session would.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect
from test_web_browser import WAIT, bubble, open_chat, open_page, peer, send
from webnodes import WebNode


@pytest.fixture(scope="module")
def nodes(rsa_keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("contacts")
    made = {n: WebNode(n, base / n, key=rsa_keys[n]) for n in ("alice", "bob", "carol")}
    alice, bob, carol = made.values()
    for a, b in ((alice, bob), (alice, carol)):
        a.add_peer(b, b.name)
        b.add_peer(a, a.name)
    started = []
    try:
        for node in made.values():
            node.start()
            started.append(node)
        yield made
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


def test_unread_counts_only_chats_that_are_not_open(pages):
    alice, bob, carol = pages["alice"], pages["bob"], pages["carol"]
    open_chat(alice, "bob")
    open_chat(bob, "alice")
    open_chat(carol, "alice")
    send(bob, "in the open chat")
    expect(bubble(alice, "in", "in the open chat")).to_be_visible(timeout=WAIT)
    send(carol, "in another chat")
    expect(peer(alice, "carol").locator(".unread")).to_have_text("1", timeout=WAIT)
    expect(peer(alice, "bob").locator(".unread")).to_have_count(0)
    expect(alice).to_have_title("(1) Enclave")
    open_chat(alice, "carol")
    expect(peer(alice, "carol").locator(".unread")).to_have_count(0, timeout=WAIT)
    expect(alice).to_have_title("Enclave")


def test_rename_from_the_contact_menu(pages):
    alice = pages["alice"]
    open_chat(alice, "bob")
    alice.locator("#btn-contact").click()
    dialog = alice.locator("#dlg-contact")
    expect(dialog).to_be_visible()
    alice.locator("#contact-name").fill("carol")  # taken: said in the dialog
    alice.locator("#btn-rename").click()
    expect(alice.locator("#contact-error")).to_contain_text("already used", timeout=WAIT)
    alice.locator("#contact-name").fill("robert")
    alice.locator("#btn-rename").click()
    expect(dialog).to_be_hidden(timeout=WAIT)
    expect(peer(alice, "robert")).to_be_visible(timeout=WAIT)
    expect(alice.locator("#chat-name")).to_have_text("robert")


def test_block_hides_what_the_contact_sends_until_unblocked(pages):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(alice, "robert")
    alice.locator("#btn-contact").click()
    alice.locator("#btn-block").click()
    expect(alice.locator("#btn-block")).to_have_text("Unblock", timeout=WAIT)
    alice.locator("#dlg-contact [data-close]").click()
    expect(peer(alice, "robert").locator(".tag-blocked")).to_be_visible(timeout=WAIT)
    expect(bob.locator("#chat-status")).to_contain_text(
        re.compile("offline|last seen"), timeout=WAIT
    )
    send(bob, "sent while blocked")
    expect(bubble(bob, "out", "sent while blocked")).to_have_attribute("data-state", "queued")
    # Nothing arrives while blocked: Bob's message stays queued on his side ...
    alice.locator("#btn-contact").click()
    alice.locator("#btn-block").click()
    expect(alice.locator("#btn-block")).to_have_text("Block", timeout=WAIT)
    alice.locator("#dlg-contact [data-close]").click()
    # ... and arrives once Alice unblocks (Bob retries with a 1 s cap on his backoff).
    expect(bubble(alice, "in", "sent while blocked")).to_be_visible(timeout=WAIT)
    expect(bubble(alice, "in", "sent while blocked")).to_have_count(1)
    expect(peer(alice, "robert").locator(".tag-blocked")).to_have_count(0)


def test_clear_history_asks_then_empties_the_chat_here_only(pages):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(alice, "robert")
    open_chat(bob, "alice")
    send(alice, "erase me soon")
    expect(bubble(bob, "in", "erase me soon")).to_be_visible(timeout=WAIT)
    alice.locator("#btn-contact").click()
    alice.locator("#btn-clear").click()
    expect(alice.locator("#clear-text")).to_contain_text("keeps theirs", timeout=WAIT)
    alice.locator("#btn-clear-cancel").click()
    expect(alice.locator("#clear-confirm")).to_be_hidden()
    expect(bubble(alice, "out", "erase me soon")).to_be_visible()
    alice.locator("#btn-clear").click()
    alice.locator("#btn-clear-yes").click()
    expect(alice.locator("#dlg-contact")).to_be_hidden(timeout=WAIT)
    expect(alice.locator("#message-list .msg")).to_have_count(0, timeout=WAIT)
    expect(peer(alice, "robert")).to_be_visible()  # the contact stays
    expect(bubble(bob, "in", "erase me soon")).to_be_visible()  # Bob keeps his copy
    alice.reload()
    open_chat(alice, "robert")
    expect(alice.locator("#message-list .msg")).to_have_count(0, timeout=WAIT)


def test_remove_asks_then_closes_the_chat(pages):
    alice = pages["alice"]
    open_chat(alice, "carol")
    alice.locator("#btn-contact").click()
    alice.locator("#btn-remove").click()
    expect(alice.locator("#remove-text")).to_contain_text("deletes its history", timeout=WAIT)
    alice.locator("#btn-remove-cancel").click()
    expect(alice.locator("#remove-confirm")).to_be_hidden()
    alice.locator("#btn-remove").click()
    alice.locator("#btn-remove-yes").click()
    expect(peer(alice, "carol")).to_have_count(0, timeout=WAIT)
    expect(alice.locator("#chat-empty")).to_be_visible()
    expect(alice.locator("#chat-view")).to_be_hidden()


def test_a_message_sent_from_the_command_line_shows_in_the_page(pages, nodes):
    """``enclave send`` into a home whose node runs: the node's page shows the text."""
    alice = pages["alice"]
    open_chat(alice, "robert")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "enclave",
            "send",
            "robert",
            "from the shell",
            "--home",
            str(nodes["alice"].home),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    ref = done.stdout.split()[0]
    shown = bubble(alice, "out", "from the shell")
    expect(shown).to_be_visible(timeout=WAIT)
    expect(shown).to_have_attribute("data-ref", ref)
    expect(shown).to_have_attribute("data-state", "delivered", timeout=WAIT)
    expect(bubble(pages["bob"], "in", "from the shell")).to_be_visible(timeout=WAIT)
