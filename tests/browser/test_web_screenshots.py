"""The main views in both themes, on a desktop and at a phone's 390 px, in Debian's
Chromium against real ``enclave --web`` processes: nothing overflows sideways at 390 px,
every view renders in either theme, and each is saved as a screenshot
(tests/artifacts/screenshots/; README.md shows the copies under docs/screenshots/)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from test_web_browser import DESKTOP, WAIT, bubble, open_chat, open_page, send
from webnodes import alice_bob_and_carol, closed, running

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def nodes(rsa_keys, tmp_path_factory):
    with running(alice_bob_and_carol(rsa_keys, tmp_path_factory.mktemp("shots"))) as made:
        yield made


@pytest.fixture(scope="module")
def pages(browser, nodes):
    out = {name: open_page(browser, nodes[name].url) for name in ("alice", "bob")}
    alice, bob = out["alice"], out["bob"]
    open_chat(alice, "bob")
    open_chat(bob, "alice")
    lines = [
        (bob, "Are we still on for the review at 3?"),
        (alice, "Yes — I'll bring the notes. Room 4B?"),
        (bob, "4B works. The draft is at https://example.org/draft (read it first)"),
        (alice, "On it. See you there."),
    ]
    for page, text in lines:
        send(page, text)
        expect(bubble(alice, "out" if page is alice else "in", text[:20])).to_be_visible(
            timeout=WAIT
        )
    yield out
    closed(out)


def overflow(page) -> int:
    """How far the page reaches past the viewport sideways (0: it fits)."""
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_the_main_views_fit_a_phone_and_render_in_both_themes(pages, shots, theme):
    alice = pages["alice"]
    alice.evaluate("(t) => localStorage.setItem('enclave-theme', t)", theme)
    alice.set_viewport_size(DESKTOP)
    alice.reload()
    expect(alice.locator("#app")).to_be_visible(timeout=WAIT)
    expect(alice.locator("html")).to_have_attribute("data-theme", theme)
    expect(alice.locator("#chat-name")).to_have_text("bob", timeout=WAIT)
    expect(bubble(alice, "out", "On it")).to_be_visible(timeout=WAIT)
    alice.screenshot(path=shots / f"{theme}-desktop-chat.png")
    alice.locator("#btn-settings").click()
    expect(alice.locator("#dlg-settings")).to_be_visible()
    alice.screenshot(path=shots / f"{theme}-desktop-settings.png")
    alice.keyboard.press("Escape")
    alice.set_viewport_size(PHONE)
    expect(alice.locator("#chat-name")).to_be_visible()
    assert overflow(alice) <= 0
    alice.screenshot(path=shots / f"{theme}-phone-chat.png")
    alice.locator("#btn-back").click()
    expect(alice.locator("#peer-list")).to_be_visible()
    assert overflow(alice) <= 0
    alice.screenshot(path=shots / f"{theme}-phone-list.png")
    open_chat(alice, "bob")
    alice.set_viewport_size(DESKTOP)
    alice.evaluate("() => localStorage.removeItem('enclave-theme')")
