"""Accessibility of the page in Debian's Chromium (issue 22, item 6), against real
``enclave --web`` processes: axe-core (from the npm registry, injected into the test's
own browser context only: the page never serves it) finds no WCAG 2.x A/AA violation
on the chat or on the unlock screen; what a screen reader gets (rows, messages, only new
messages announced); the keyboard (shortcuts, toasts, Escape, focus after a wrong
password)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect
from test_web_browser import (
    DESKTOP,
    WAIT,
    Watch,
    bubble,
    open_chat,
    open_menu,
    send,
    take_focus,
)
from webnodes import WebNode, alice_bob_and_carol, closed, running

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

pytestmark = pytest.mark.skipif(not AXE.exists(), reason="axe-core is installed by npm ci")


@pytest.fixture(scope="module")
def nodes(rsa_keys, tmp_path_factory):
    with running(alice_bob_and_carol(rsa_keys, tmp_path_factory.mktemp("a11y"))) as made:
        yield made


def checked_page(browser, url: str, scheme: str = "dark"):
    """A page in a context that lets the test inject axe-core past the page's CSP; the
    system preference ``scheme`` picks the page's theme."""
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True, color_scheme=scheme)
    page = context.new_page()
    page.watch = Watch(page)
    page.goto(url)
    return page


def violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
        ".violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))",
        WCAG,
    )
    return list(found)


@pytest.fixture(scope="module")
def pages(browser, nodes):
    out = {name: checked_page(browser, nodes[name].url) for name in ("alice", "bob")}
    for page in out.values():
        expect(page.locator("#app")).to_be_visible(timeout=WAIT)
    yield out
    closed(out)


def test_the_chat_has_no_wcag_violation(pages):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(alice, "bob")
    open_chat(bob, "alice")
    send(alice, "hello, with a link https://example.org")
    send(bob, "hello back")
    expect(bubble(alice, "in", "hello back")).to_be_visible(timeout=WAIT)
    assert violations(alice) == []


DIALOGS = ("btn-settings", "btn-share", "btn-add", "btn-broadcast", "btn-verify", "btn-contact")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_main_views_and_dialogs_have_no_violation_in_either_theme(pages, theme):
    alice = pages["alice"]
    alice.evaluate("(t) => localStorage.setItem('enclave-theme', t)", theme)
    alice.reload()
    expect(alice.locator("#app")).to_be_visible(timeout=WAIT)
    expect(alice.locator("html")).to_have_attribute("data-theme", theme)
    assert violations(alice) == []  # the chat list
    open_chat(alice, "bob")
    expect(bubble(alice, "in", "hello back")).to_be_visible(timeout=WAIT)
    assert violations(alice) == []  # the conversation
    for button in DIALOGS:
        alice.locator(f"#{button}").click()
        dialog = alice.locator("dialog[open]")
        expect(dialog).to_have_count(1)
        assert violations(alice) == [], button
        alice.keyboard.press("Escape")
        expect(dialog).to_have_count(0)
    # A message's menu, and the reply bar it opens.
    theirs = bubble(alice, "in", "hello back")
    open_menu(theirs)
    expect(alice.locator("#msg-menu")).to_be_visible()
    assert violations(alice) == [], "message menu"
    alice.locator("#msg-reply").click()
    expect(alice.locator("#reply-bar")).to_be_visible()
    assert violations(alice) == [], "reply bar"
    alice.locator("#btn-reply-cancel").click()
    alice.evaluate("() => localStorage.removeItem('enclave-theme')")


def test_a_screen_reader_hears_who_when_and_only_new_messages(pages):
    alice, bob = pages["alice"], pages["bob"]
    assert alice.locator("#messages").get_attribute("aria-live") is None  # no re-reads
    row = alice.locator("#peer-list li[data-fp]").filter(has_text="bob")
    expect(row).to_have_attribute("role", "option")
    expect(row).to_have_attribute("aria-selected", "true")
    expect(row.locator(".sr-only")).to_have_text(", online, ")
    said = bubble(alice, "in", "hello back").locator(".sr-only")
    expect(said).to_contain_text("bob, ")
    expect(said).to_contain_text("20")  # the full date, with its year
    mine = bubble(alice, "out", "hello, with a link").locator(".sr-only")
    expect(mine).to_contain_text("you, ")
    expect(mine).to_contain_text(", delivered", timeout=WAIT)
    send(bob, "only this is announced")
    expect(alice.locator("#announcer")).to_have_text("bob: only this is announced", timeout=WAIT)


def test_shortcuts_move_between_chats_and_to_search(pages):
    alice = pages["alice"]
    # Keys go to the page that has the window's focus: another test may have left it
    # on Bob's page (a focused element also needs its document focused).
    take_focus(alice)
    open_chat(alice, "bob")
    alice.locator("#input").press("Alt+ArrowDown")
    expect(alice.locator("#chat-name")).not_to_have_text("bob", timeout=WAIT)
    alice.keyboard.press("Alt+ArrowUp")
    expect(alice.locator("#chat-name")).to_have_text("bob", timeout=WAIT)
    # The chat's row takes the focus once the chat has opened (its history loaded): a
    # search shortcut pressed before then would lose the focus to it.
    row = alice.locator("#peer-list li[data-fp]").filter(has_text="bob")
    expect(row).to_be_focused(timeout=WAIT)
    alice.keyboard.press("Control+k")
    expect(alice.locator("#search")).to_be_focused()
    alice.keyboard.press("Escape")
    expect(alice.locator("#search")).not_to_be_focused()


def test_escape_closes_a_dialog_and_a_toast_is_reachable_by_keyboard(pages, nodes):
    alice, bob = pages["alice"], pages["bob"]
    alice.locator("#btn-contact").click()
    expect(alice.locator("#dlg-contact")).to_be_visible()
    alice.keyboard.press("Escape")
    expect(alice.locator("#dlg-contact")).to_be_hidden()
    open_chat(alice, "carol")  # Bob's next message arrives for a chat that is not open
    send(bob, "a toast for alice")
    note = alice.locator(".toast.clickable", has_text="a toast for alice")
    expect(note).to_have_attribute("role", "button", timeout=WAIT)
    note.focus()
    alice.keyboard.press("Enter")
    expect(alice.locator("#chat-name")).to_have_text("bob", timeout=WAIT)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_unlock_screen_has_no_violation_and_keeps_focus_after_a_wrong_password(
    browser, rsa_keys, tmp_path, scheme
):
    locked = WebNode("locked", tmp_path / "locked", key=rsa_keys["mallory"])
    locked.start(unlock=False)
    try:
        page = checked_page(browser, locked.url, scheme)
        expect(page.locator("html")).to_have_attribute("data-theme", scheme)
        expect(page.locator("#unlock-form")).to_be_visible(timeout=WAIT)
        assert violations(page) == []
        page.locator("#unlock-password").fill("not the password at all")
        page.locator("#unlock-password").press("Enter")
        expect(page.locator("#gate-error")).to_be_visible(timeout=WAIT)
        expect(page.locator("#unlock-password")).to_be_focused()
        expect(page.locator("#unlock-password")).to_be_enabled()
        assert json.dumps(page.watch.script_errors()) == "[]"
        page.context.close()
    finally:
        locked.stop()
