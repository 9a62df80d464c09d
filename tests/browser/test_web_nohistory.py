"""History off from the page's contact menu, in Debian's Chromium against real nodes:
the header marks the conversation, messages show live (with the delivered tick), and
after a reload only what came before the switch is there; on again, it is kept."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from test_web_browser import WAIT, bubble, open_chat, send


@pytest.fixture(scope="module")
def pages(trio_pages):
    return trio_pages


def _toggle(page, text: str) -> None:
    page.locator("#btn-contact").click()
    button = page.locator("#btn-keep-history")
    expect(button).to_have_text(text)
    button.click()
    expect(page.locator(".toast", has_text="History with bob is")).to_be_visible(timeout=WAIT)
    page.keyboard.press("Escape")
    expect(page.locator("#dlg-contact")).to_be_hidden()


def test_history_off_shows_live_then_keeps_nothing_after_a_reload(pages):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(alice, "bob")
    open_chat(bob, "alice")
    send(bob, "said before the switch")
    expect(bubble(alice, "in", "said before the switch")).to_be_visible(timeout=WAIT)
    _toggle(alice, "Turn history off")
    expect(alice.locator("#chat-badges .tag", has_text="history off")).to_be_visible(timeout=WAIT)
    expect(alice.locator("#history-note")).to_be_visible()
    send(bob, "OKAPIMARK shown, then forgotten")
    expect(bubble(alice, "in", "OKAPIMARK")).to_be_visible(timeout=WAIT)  # live
    send(alice, "OKAPIMARK mine, delivered")
    expect(bubble(alice, "out", "OKAPIMARK mine")).to_have_attribute(
        "data-state", "delivered", timeout=WAIT
    )
    alice.reload()
    expect(alice.locator("#app")).to_be_visible(timeout=WAIT)
    open_chat(alice, "bob")
    expect(bubble(alice, "in", "said before the switch")).to_be_visible(timeout=WAIT)
    expect(alice.locator("#message-list .msg", has_text="OKAPIMARK")).to_have_count(0)
    expect(alice.locator("#history-note")).to_be_visible()
    expect(bubble(bob, "out", "OKAPIMARK shown")).to_be_visible()  # bob keeps his
    _toggle(alice, "Turn history on")
    expect(alice.locator("#history-note")).to_be_hidden(timeout=WAIT)
    expect(alice.locator("#chat-badges .tag", has_text="history off")).to_have_count(0)
    send(bob, "kept again")
    expect(bubble(alice, "in", "kept again")).to_be_visible(timeout=WAIT)
    alice.reload()
    expect(alice.locator("#app")).to_be_visible(timeout=WAIT)
    open_chat(alice, "bob")
    expect(bubble(alice, "in", "kept again")).to_be_visible(timeout=WAIT)
