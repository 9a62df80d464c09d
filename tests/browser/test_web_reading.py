"""Reading and writing on the page in Debian's Chromium, against two real ``enclave
--web`` processes (issue 22, items 1 and 3): links in messages, the full date on
hover, the character counter near the limit, drafts kept per chat and across a reload,
and a new launch address pasted into a tab that shows "Enclave was restarted"."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from test_web_browser import WAIT, bubble, open_chat, open_menu, send


@pytest.fixture(scope="module")
def nodes(trio):
    return trio


@pytest.fixture(scope="module")
def pages(trio_pages):
    return trio_pages


def test_links_open_in_a_new_tab_and_nothing_is_fetched(pages):
    alice, bob = pages["alice"], pages["bob"]
    fetched = []
    alice.on("request", lambda r: "example.org" in r.url and fetched.append(r.url))
    open_chat(alice, "bob")
    open_chat(bob, "alice")
    send(bob, "see https://example.org/a?b=1, and javascript:alert(1) or <b>bold</b>")
    got = bubble(alice, "in", "see https://example.org")
    expect(got).to_be_visible(timeout=WAIT)
    link = got.locator("a.link")
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("href", "https://example.org/a?b=1")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")
    expect(got.locator(".body")).to_contain_text("javascript:alert(1) or <b>bold</b>")
    expect(got.locator("b")).to_have_count(0)
    assert fetched == []


def test_the_time_of_a_message_shows_the_full_date_on_hover(pages):
    alice = pages["alice"]
    stamp = bubble(alice, "in", "see https://example.org").locator(".time")
    expect(stamp).to_have_attribute("title", re.compile(r"20\d\d"))


def test_the_counter_shows_near_the_limit_and_a_long_paste_is_never_cut(pages):
    alice = pages["alice"]
    box, count = alice.locator("#input"), alice.locator("#input-count")
    box.fill("x" * 8999)
    expect(count).to_be_hidden()
    box.fill("y" * 9500)
    expect(count).to_have_text("9,500 / 10,000")
    box.fill("z" * 10012)
    expect(count).to_have_text("12 too many")
    expect(count).to_have_class(re.compile(r"\bover\b"))
    box.press("Enter")
    expect(alice.locator(".toast.error", has_text="12 characters too long")).to_be_visible()
    assert len(box.input_value()) == 10012  # kept whole: nothing cut, nothing sent
    expect(alice.locator("#message-list .msg.out")).to_have_count(0)
    box.fill("")
    expect(count).to_be_hidden()


def test_each_chat_keeps_its_draft_across_chats_and_a_reload(pages):
    alice = pages["alice"]
    open_chat(alice, "bob")
    alice.locator("#input").fill("half a thought for bob")
    open_chat(alice, "carol")
    expect(alice.locator("#input")).to_have_value("")
    alice.locator("#input").fill("for carol")
    open_chat(alice, "bob")
    expect(alice.locator("#input")).to_have_value("half a thought for bob")
    alice.reload()
    expect(alice.locator("#chat-name")).to_have_text("bob", timeout=WAIT)  # reopened
    expect(alice.locator("#input")).to_have_value("half a thought for bob")


def test_a_new_launch_address_pasted_into_the_tab_works_at_once(pages, nodes):
    alice = pages["alice"]
    node = nodes["alice"]
    open_chat(alice, "bob")
    # A browser not kept signed in (the default; test_web_signin.py has one that is).
    alice.locator("#input").fill("typed before the restart")
    node.stop()
    url = node.start(web_args=("--web-port", str(node.web_port)))
    expect(alice.locator("#gate")).to_be_visible(timeout=WAIT)  # "Enclave was restarted"
    alice.goto(url)  # the new address, pasted: only its fragment differs
    expect(alice.locator("#app")).to_be_visible(timeout=WAIT)
    expect(alice.locator("#chat-name")).to_have_text("bob", timeout=WAIT)
    expect(alice.locator("#input")).to_have_value("typed before the restart")
    send(alice, "after the restart")
    expect(bubble(pages["bob"], "in", "after the restart")).to_be_visible(timeout=WAIT)
    # While the node was down the socket could not connect, then its old token was
    # refused: the browser logs both, as it should. Nothing else may be there.
    errors = alice.watch.errors
    errors[:] = [e for e in errors if not e.startswith("WebSocket connection to")]


def test_new_messages_while_scrolled_up_wait_behind_a_jump_button(pages):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(alice, "bob")
    open_chat(bob, "alice")
    for i in range(30):  # enough to scroll
        send(bob, f"filler {i}")
    expect(bubble(alice, "in", "filler 29")).to_be_visible(timeout=WAIT)
    expect(alice).to_have_title("Enclave")  # at the bottom: read as they came
    alice.evaluate("document.getElementById('messages').scrollTop = 0")
    send(bob, "first while scrolled up")
    send(bob, "second while scrolled up")
    jump = alice.locator("#jump-new")
    expect(jump).to_have_text("2 new messages ↓", timeout=WAIT)
    expect(alice).to_have_title("(2) Enclave")  # not read: not seen yet
    divider = alice.locator("#message-list .unread-divider")
    expect(divider).to_have_count(1)
    after = alice.locator("#message-list .unread-divider + li")
    expect(after).to_contain_text("first while scrolled up")
    jump.click()
    expect(jump).to_be_hidden(timeout=WAIT)
    expect(alice).to_have_title("Enclave", timeout=WAIT)
    expect(bubble(alice, "in", "second while scrolled up")).to_be_in_viewport()


def test_a_message_can_be_copied_and_deleted_here(pages):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(alice, "bob")
    open_chat(bob, "alice")
    alice.context.grant_permissions(["clipboard-read", "clipboard-write"])
    send(bob, "copy me\u202eexactly")
    send(bob, "delete me here")
    copied = bubble(alice, "in", "copy me")
    expect(copied).to_be_visible(timeout=WAIT)
    open_menu(copied)
    menu = alice.locator("#msg-menu")
    expect(menu).to_be_visible()
    expect(alice.locator("#msg-reply")).to_be_focused()  # the first item
    alice.keyboard.press("Escape")  # closes, and focus goes back to the button
    expect(menu).to_be_hidden()
    expect(copied.locator("button.msg-more")).to_be_focused()
    alice.keyboard.press("Enter")
    alice.locator("#msg-copy").click()
    # The clipboard gets the text as it arrived (the page shows the bidi mark visibly).
    assert alice.evaluate("() => navigator.clipboard.readText()") == "copy me\u202eexactly"
    gone = bubble(alice, "in", "delete me here")
    open_menu(gone)
    alice.locator("#msg-delete").click()
    expect(gone).to_have_count(0, timeout=WAIT)
    expect(alice.locator(".toast", has_text="your contact keeps their copy")).to_be_visible()
    alice.reload()
    expect(alice.locator("#chat-name")).to_have_text("bob", timeout=WAIT)
    expect(bubble(alice, "in", "copy me")).to_be_visible(timeout=WAIT)
    expect(bubble(alice, "in", "delete me here")).to_have_count(0)
    expect(bubble(bob, "out", "delete me here")).to_be_visible()  # theirs stays


def allow_receipts(page, other: str) -> None:
    open_chat(page, other)
    page.locator("#btn-contact").click()
    expect(page.locator("#btn-receipts")).to_have_text("Turn read receipts on")
    page.locator("#btn-receipts").click()
    expect(page.locator("#btn-receipts")).to_have_text("Turn read receipts off", timeout=WAIT)
    page.keyboard.press("Escape")


def test_read_receipts_turn_the_ticks_blue_once_both_allow_them(pages):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(bob, "alice")
    allow_receipts(alice, "bob")
    send(alice, "will you read this")
    expect(bubble(bob, "in", "will you read this")).to_be_visible(timeout=WAIT)  # read
    mine = bubble(alice, "out", "will you read this")
    # Delivered (grey), and read but not told: bob does not allow receipts yet.
    expect(mine.locator(".tick")).to_have_attribute("data-state", "delivered", timeout=WAIT)
    allow_receipts(bob, "alice")  # allowing tells what bob read already
    expect(mine.locator(".tick")).to_have_attribute("data-state", "read", timeout=WAIT)
    expect(mine.locator(".sr-only")).to_contain_text(", read")
    alice.reload()
    expect(alice.locator("#chat-name")).to_have_text("bob", timeout=WAIT)
    again = bubble(alice, "out", "will you read this").locator(".tick")
    expect(again).to_have_attribute("data-state", "read", timeout=WAIT)


def test_a_broadcast_is_marked_in_each_chat(pages):
    alice = pages["alice"]
    open_chat(alice, "bob")
    alice.locator("#btn-broadcast").click()
    alice.locator("#broadcast-input").fill("one for everyone")
    alice.locator("#broadcast-form button[type=submit]").click()
    copy = bubble(alice, "out", "one for everyone")
    expect(copy.locator(".broadcast-mark")).to_have_text("broadcast", timeout=WAIT)
    alice.reload()
    expect(alice.locator("#chat-name")).to_have_text("bob", timeout=WAIT)
    expect(bubble(alice, "out", "one for everyone").locator(".broadcast-mark")).to_be_visible(
        timeout=WAIT
    )
    expect(bubble(alice, "out", "will you read this").locator(".broadcast-mark")).to_have_count(0)


def test_a_reply_quotes_the_message_on_both_pages(pages):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(alice, "bob")
    open_chat(bob, "alice")
    send(bob, "shall we meet at the station?")
    asked = bubble(alice, "in", "shall we meet at the station?")
    expect(asked).to_be_visible(timeout=WAIT)
    open_menu(asked)
    alice.locator("#msg-reply").click()
    expect(alice.locator("#reply-bar")).to_be_visible()
    expect(alice.locator("#reply-text")).to_have_text("bob: shall we meet at the station?")
    expect(alice.locator("#input")).to_be_focused()
    send(alice, "yes, at the north exit")
    expect(alice.locator("#reply-bar")).to_be_hidden(timeout=WAIT)
    mine = bubble(alice, "out", "yes, at the north exit").locator(".quote")
    expect(mine).to_contain_text("shall we meet at the station?", timeout=WAIT)
    theirs = bubble(bob, "in", "yes, at the north exit").locator(".quote")
    expect(theirs).to_contain_text("You", timeout=WAIT)
    expect(theirs).to_contain_text("shall we meet at the station?")
    bob.reload()  # from the store too
    expect(bob.locator("#chat-name")).to_have_text("alice", timeout=WAIT)
    again = bubble(bob, "in", "yes, at the north exit").locator(".quote")
    expect(again).to_contain_text("shall we meet at the station?", timeout=WAIT)
    # A reply that is not sent can be dropped: the next message quotes nothing.
    open_menu(asked)
    alice.locator("#msg-reply").click()
    alice.locator("#btn-reply-cancel").click()
    send(alice, "no quote here")
    expect(bubble(alice, "out", "no quote here")).to_be_visible(timeout=WAIT)
    expect(bubble(alice, "out", "no quote here").locator(".quote")).to_have_count(0)
