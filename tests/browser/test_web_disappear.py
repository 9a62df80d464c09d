"""Disappearing messages on two pages in Debian's Chromium, against two real ``enclave
--web`` processes whose clocks the test moves (a forward offset in a file each node
reads, ``enclave.node.clock.OFFSET_FILE_ENV``): the contact menu sets the timer, both
pages show the system line, and a message sent under it vanishes from both pages (and
both stores) once the clocks pass its time and a minute."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from test_web_browser import WAIT, bubble, open_chat, open_page, send
from webnodes import WebNode, closed, movable_clocks, running

from enclave.identity.home import Home
from enclave.store import Store


@pytest.fixture(scope="module")
def nodes(rsa_keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("disappear")
    made = {n: WebNode(n, base / n, key=rsa_keys[n]) for n in ("alice", "bob")}
    made["alice"].add_peer(made["bob"], "bob")
    made["bob"].add_peer(made["alice"], "alice")
    movable_clocks(made, base)
    with running(made):
        yield made


@pytest.fixture(scope="module")
def pages(browser, nodes):
    out = {name: open_page(browser, nodes[name].url) for name in ("alice", "bob")}
    yield out
    closed(out)


def _bodies(node) -> list:
    """Every body the store keeps (none erased yet), opened with the store key."""
    with Store.open(Home(node.home).db_path, key=node.store_key) as store:
        with store._lock:
            rows = store._db.execute("SELECT rowid, peer, direction, body FROM messages")
            return [store._open_body(b, rowid, p, d) for rowid, p, d, b in rows.fetchall()]


def test_the_timer_shows_on_both_pages_and_the_message_vanishes_from_both(pages, nodes):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(alice, "bob")
    open_chat(bob, "alice")
    alice.locator("#btn-contact").click()
    alice.locator("#disappear-select").select_option("3600")
    alice.keyboard.press("Escape")
    line = "set disappearing messages to 1 hour"
    expect(alice.locator("#message-list .timer-line", has_text=f"You {line}")).to_be_visible(
        timeout=WAIT
    )
    expect(bob.locator("#message-list .timer-line", has_text=f"alice {line}")).to_be_visible(
        timeout=WAIT
    )
    send(alice, "this goes in an hour")
    expect(bubble(bob, "in", "this goes in an hour")).to_be_visible(timeout=WAIT)
    send(bob, "so does this")
    expect(bubble(alice, "in", "so does this")).to_be_visible(timeout=WAIT)
    expect(alice.locator("#message-list .msg.out .tick.delivered")).to_have_count(1, timeout=WAIT)
    # The system lines stay after a reload (they are rows of the history).
    bob.reload()
    open_chat(bob, "alice")
    expect(bob.locator("#message-list .timer-line", has_text=f"alice {line}")).to_be_visible(
        timeout=WAIT
    )
    expect(bob.locator("#message-list .msg .disappear-mark")).to_have_count(2, timeout=WAIT)
    for node in nodes.values():  # the timer and a minute pass on both clocks
        node.offset.write_text(str((3600 + 60) * 1000))
    for page in (alice, bob):
        expect(page.locator("#message-list .msg")).to_have_count(0, timeout=WAIT)
        expect(page.locator("#message-list .timer-line")).to_have_count(1)
    for node in nodes.values():
        bodies = _bodies(node)  # sealed (bytes) or clear: neither holds the words
        assert not any(
            isinstance(b, str) and ("goes in an hour" in b or "so does this" in b) for b in bodies
        )
