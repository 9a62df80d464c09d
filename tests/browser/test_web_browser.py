"""The web page in Debian's Chromium, against real ``enclave --web`` processes.

Alice, Bob and Carol each run their own node and page. Alice also knows two peers that
are never online (Dave, and Erin who is marked legacy v1), so her list shows every kind
of peer. Tests run in file order on the same nodes, as one person's session would.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect
from support.nodes import public_pem, small_key
from webnodes import PASSWORD, WebNode, add_failed_message, free_port

from enclave.identity import keys

XSS = "<img src=x onerror=alert(1)>"
WAIT = 30_000  # ms; an upper bound for things that happen in well under a second
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def nodes(rsa_keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("web")
    alice = WebNode("alice", base / "alice", key=rsa_keys["alice"])
    bob = WebNode("bob", base / "bob", key=rsa_keys["bob"])
    carol = WebNode("carol", base / "carol", key=rsa_keys["carol"])
    for a, b in ((alice, bob), (alice, carol), (bob, carol)):
        a.add_peer(b, b.name)
        b.add_peer(a, a.name)
    alice.add_peer(None, "dave", key=rsa_keys["mallory"], port=free_port())
    erin = small_key()
    alice.add_peer(None, "erin", key=erin, port=free_port(), legacy=True)
    yesterday = int((time.time() - 86400) * 1000)
    add_failed_message(
        alice,
        keys.fingerprint(erin.public_key()),
        "Erin, are you still on the old client?",
        "legacy peer unreachable for 5 minutes; resend it if you wish",
        yesterday,
    )
    started = []
    try:
        for node in (alice, bob, carol):
            node.start()
            started.append(node)
        yield {"alice": alice, "bob": bob, "carol": carol}
    finally:
        for node in started:
            node.stop()


class Watch:
    """Dialogs (alert, confirm...) and console errors seen by a page."""

    def __init__(self, page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def script_errors(self) -> list[str]:
        """Console errors other than the 4xx answers the page handles (a wrong password)."""
        return [e for e in self.errors if not e.startswith("Failed to load resource")]

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture(scope="module")
def pages(browser, nodes):
    out = {
        name: open_page(browser, node.url, device_scale_factor=1) for name, node in nodes.items()
    }
    yield out
    for page in out.values():
        assert page.watch.dialogs == [], "a page opened a dialog"
        page.context.close()


def peer(page, name: str):
    title = page.locator(".peer-name", has_text=re.compile(f"^{re.escape(name)}$"))
    return page.locator("#peer-list .peer").filter(has=title)


def open_page(browser, url: str, **context):
    """A page of its own (a fresh context) on ``url``, watched, once the app shows."""
    page = browser.new_context(viewport=DESKTOP, **context).new_page()
    page.watch = Watch(page)
    page.goto(url)
    expect(page.locator("#app")).to_be_visible(timeout=WAIT)
    return page


def take_focus(page) -> None:
    """Give ``page`` the window's focus and wait until its document has it: keys go to
    the focused page, and several pages share one browser (another test, or a loaded
    machine, may leave the focus elsewhere for a while)."""
    page.bring_to_front()
    page.wait_for_function("document.hasFocus()", timeout=WAIT)


def open_chat(page, name: str) -> None:
    peer(page, name).click()
    expect(page.locator("#chat-name")).to_have_text(name)


def send(page, text: str) -> None:
    page.locator("#input").fill(text)
    page.locator("#input").press("Enter")


def open_menu(message) -> None:
    """A message's ⋯ menu, as a mouse opens it (the button shows on hover)."""
    message.hover()
    message.locator("button.msg-more").click()


def bubble(page, direction: str, text: str):
    return page.locator(f"#message-list .msg.{direction}").filter(
        has=page.locator(".body", has_text=text)
    )


# --- the tests -----------------------------------------------------------------------------


def test_alice_clicks_bob_sends_and_bob_sees_it_live_and_alice_sees_delivered(pages):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(bob, "alice")
    open_chat(alice, "bob")
    send(alice, "Hi Bob! Lunch at 12 at the usual place?")
    expect(bubble(bob, "in", "Lunch at 12")).to_be_visible(timeout=WAIT)
    expect(bubble(alice, "out", "Lunch at 12")).to_have_attribute(
        "data-state", "delivered", timeout=WAIT
    )
    expect(alice.locator("#chat-status")).to_contain_text("online")
    send(bob, "Sure, see you there!")
    expect(bubble(alice, "in", "see you there")).to_be_visible(timeout=WAIT)
    expect(bubble(bob, "out", "see you there")).to_have_attribute(
        "data-state", "delivered", timeout=WAIT
    )


def test_typing_shows_on_the_other_page(pages):
    alice, bob = pages["alice"], pages["bob"]
    bob.locator("#input").press_sequentially("typing a long answer")
    expect(alice.locator("#chat-status")).to_have_text("typing…", timeout=WAIT)
    send(bob, "Can we make it 12:30 instead?")
    expect(bubble(alice, "in", "12:30")).to_be_visible(timeout=WAIT)
    expect(alice.locator("#chat-status")).not_to_have_text("typing…", timeout=WAIT)
    send(alice, "12:30 works. I'll book a table for the two of us.")
    expect(bubble(bob, "in", "book a table")).to_be_visible(timeout=WAIT)


def test_html_from_a_peer_is_shown_as_text_and_runs_nothing(pages):
    alice, bob = pages["alice"], pages["bob"]
    send(alice, XSS)
    shown = bubble(bob, "in", "onerror").locator(".body")
    expect(shown).to_have_text(XSS, timeout=WAIT)
    assert bob.locator("#message-list img").count() == 0
    assert bob.evaluate("() => document.querySelectorAll('img').length") == 0
    expect(bubble(alice, "out", "onerror")).to_have_attribute(
        "data-state", "delivered", timeout=WAIT
    )
    assert alice.watch.dialogs == [] and bob.watch.dialogs == []


def test_history_survives_a_reload(pages):
    alice = pages["alice"]
    alice.reload()
    expect(alice.locator("#app")).to_be_visible(timeout=WAIT)
    open_chat(alice, "bob")
    expect(bubble(alice, "out", "Lunch at 12")).to_have_attribute("data-state", "delivered")
    expect(bubble(alice, "in", "12:30 instead")).to_be_visible()
    expect(bubble(alice, "out", "onerror").locator(".body")).to_have_text(XSS)
    assert alice.url.endswith("/")  # the token left the address bar


def test_broadcast_reaches_both_peers(pages):
    alice, bob, carol = pages["alice"], pages["bob"], pages["carol"]
    alice.locator("#btn-broadcast").click()
    alice.locator("#broadcast-input").fill("Team: the build is green, release at 5 pm.")
    alice.locator("#broadcast-form button[type=submit]").click()
    expect(bubble(bob, "in", "release at 5 pm")).to_be_visible(timeout=WAIT)
    expect(peer(carol, "alice").locator(".unread")).to_have_text("1", timeout=WAIT)
    expect(peer(carol, "alice")).to_contain_text("release at 5 pm")
    open_chat(carol, "alice")
    expect(bubble(carol, "in", "release at 5 pm")).to_be_visible()
    expect(peer(carol, "alice").locator(".unread")).to_have_count(0)
    expect(bubble(alice, "out", "release at 5 pm")).to_have_attribute(
        "data-state", "delivered", timeout=WAIT
    )
    send(carol, "Great news, thanks Alice!")
    expect(peer(alice, "carol").locator(".unread")).to_have_text("1", timeout=WAIT)
    expect(alice.locator(".toast", has_text="Great news")).to_contain_text("carol")


def test_offline_peers_keep_messages_queued_and_legacy_is_marked(pages):
    alice = pages["alice"]
    # A delivered message proves a session with bob, also when this test runs alone.
    open_chat(alice, "bob")
    send(alice, "Are you there, Bob?")
    expect(bubble(alice, "out", "Are you there")).to_have_attribute(
        "data-state", "delivered", timeout=WAIT
    )
    expect(peer(alice, "dave").locator(".avatar")).to_have_class(re.compile("dot-off"))
    expect(peer(alice, "bob").locator(".avatar")).to_have_class(re.compile("dot-on"))
    open_chat(alice, "dave")
    expect(alice.locator("#chat-status")).to_contain_text("offline")
    send(alice, "Dave, ping me when you are back online.")
    expect(bubble(alice, "out", "ping me")).to_have_attribute("data-state", "queued")
    open_chat(alice, "erin")
    expect(alice.locator("#legacy-note")).to_be_visible()
    expect(peer(alice, "erin").locator(".tag-legacy")).to_have_text("legacy v1")


def test_a_failed_message_shows_its_reason_and_retries(pages, shots):
    alice = pages["alice"]
    open_chat(alice, "erin")
    failed = bubble(alice, "out", "old client")
    expect(failed).to_have_attribute("data-state", "failed")
    expect(failed.locator(".fail")).to_contain_text("Not delivered: legacy peer unreachable")
    expect(alice.locator("#message-list .day").first).to_have_text("Yesterday")
    alice.screenshot(path=shots / "chat-failed.png")
    failed.locator(".fail button").click()
    expect(failed).to_have_attribute("data-state", "queued", timeout=WAIT)
    expect(failed.locator(".fail")).to_have_count(0)


def test_verify_dialog_marks_a_peer_verified(pages, shots):
    alice = pages["alice"]
    open_chat(alice, "bob")
    alice.locator("#btn-verify").click()
    dialog = alice.locator("#dlg-verify")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#verify-theirs span")).to_have_count(16)
    expect(dialog.locator("#verify-mine span")).to_have_count(16)
    expect(dialog.locator("#verify-safety div")).to_have_count(3, timeout=WAIT)
    number = dialog.locator("#verify-safety").inner_text().split()
    assert len(number) == 12 and all(len(g) == 5 and g.isdigit() for g in number)
    bob = pages["bob"]  # Bob's screen shows the same number for Alice
    open_chat(bob, "alice")
    bob.locator("#btn-verify").click()
    theirs = bob.locator("#dlg-verify #verify-safety")
    expect(theirs.locator("div")).to_have_count(3, timeout=WAIT)
    assert theirs.inner_text().split() == number
    bob.locator("#dlg-verify [data-close]").click()
    alice.screenshot(path=shots / "verify.png")
    dialog.locator("#btn-mark-verified").click()
    expect(peer(alice, "bob").locator(".badge-verified")).to_be_visible(timeout=WAIT)
    expect(alice.locator("#chat-badges .badge-verified")).to_be_visible()


def test_add_peer_dialog_and_search(pages, shots):
    alice = pages["alice"]
    alice.locator("#btn-add").click()
    alice.locator("#add-key").fill(public_pem(small_key()))
    alice.locator("#add-address").fill(f"127.0.0.1:{free_port()}")
    alice.locator("#add-name").fill("frank")
    alice.screenshot(path=shots / "add-peer.png")
    alice.locator("#add-form button[type=submit]").click()
    expect(alice.locator("#chat-name")).to_have_text("frank", timeout=WAIT)
    expect(peer(alice, "frank")).to_be_visible()

    alice.locator("#search").fill("table")
    results = alice.locator("#result-list .result")
    expect(results).to_have_count(1, timeout=WAIT)
    expect(results.first).to_contain_text("book a table")
    expect(alice.locator("#peer-list .peer")).to_have_count(0)
    results.first.click()
    expect(alice.locator("#chat-name")).to_have_text("bob")
    alice.locator("#search").fill("")
    expect(alice.locator("#peer-list .peer")).to_have_count(5)


def test_history_pages_in_as_the_user_scrolls_up(pages, nodes):
    alice, carol = pages["alice"], pages["carol"]
    alice.evaluate(
        """async ([peer, n]) => {
            const token = sessionStorage.getItem("enclave-token");
            for (let i = 0; i < n; i++) {
                const r = await fetch("/api/send", {method: "POST", body: JSON.stringify({peer, text: `bulk message ${i}`}),
                    headers: {"Authorization": `Bearer ${token}`, "Content-Type": "application/json"}});
                if (!r.ok) throw new Error(await r.text());
            }
        }""",
        [nodes["carol"].fingerprint, 120],
    )
    expect(peer(carol, "alice")).to_contain_text("bulk message 119", timeout=WAIT)
    carol.reload()
    open_chat(carol, "alice")
    messages = carol.locator("#message-list .msg")
    expect(bubble(carol, "in", "bulk message 119")).to_be_visible()
    assert messages.count() == 50
    oldest = bubble(carol, "in", re.compile("^bulk message 0$"))
    for _ in range(10):  # bounded: 120 messages and a few more, 50 a page
        if oldest.count():
            break
        before = messages.count()
        carol.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
        expect(messages).not_to_have_count(before, timeout=WAIT)
    expect(oldest).to_have_count(1)
    expect(bubble(carol, "in", "release at 5 pm")).to_have_count(1)
    assert messages.count() == 122  # the broadcast, the bulk, and no message twice


def no_toasts(page) -> None:
    """Toasts fade by themselves; a screenshot waits for them to go."""
    expect(page.locator(".toast")).to_have_count(0, timeout=WAIT)


def test_screenshots_of_the_chat_and_key_sharing(pages, nodes, shots):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(alice, "bob")
    no_toasts(alice)
    alice.locator("#input").fill("")
    bob.locator("#input").press_sequentially("one more thing")
    expect(alice.locator("#chat-status")).to_have_text("typing…", timeout=WAIT)
    alice.screenshot(path=shots / "chat-desktop.png")
    bob.locator("#input").fill("")
    alice.locator("#btn-share").click()
    expect(alice.locator("#dlg-share")).to_be_visible()
    alice.screenshot(path=shots / "share-key.png")
    with alice.expect_download() as download:
        alice.locator("#btn-download").click()
    pem = Path(download.value.path()).read_text()
    assert pem == public_pem(nodes["alice"].key)
    alice.context.grant_permissions(["clipboard-read", "clipboard-write"])
    alice.locator("#btn-copy-key").click()
    expect(alice.locator(".toast", has_text="Public key copied")).to_be_visible()
    assert alice.evaluate("() => navigator.clipboard.readText()") == pem
    alice.keyboard.press("Escape")
    alice.set_viewport_size(PHONE)
    alice.locator("#btn-back").click()
    expect(alice.locator("#peer-list")).to_be_visible()
    alice.screenshot(path=shots / "list-phone.png")
    open_chat(alice, "bob")
    no_toasts(alice)
    alice.screenshot(path=shots / "chat-phone.png")
    alice.set_viewport_size(DESKTOP)
    for page in pages.values():
        assert [e for e in page.watch.errors if "Content Security Policy" in e] == []


def test_the_socket_follows_the_page_scheme(pages, nodes):
    """ws: under http, wss: under https, on the page's own host and port."""
    host = nodes["alice"].url.split("/")[2]
    urls = pages["alice"].evaluate(
        """async () => {
            const { socketUrl } = await import("/static/js/connection.js");
            return [
                socketUrl(),
                socketUrl({ protocol: "https:", host: "[::1]:5000" }),
                socketUrl({ protocol: "http:", host: "localhost:5000" }),
            ];
        }"""
    )
    assert urls == [f"ws://{host}/ws", "wss://[::1]:5000/ws", "ws://localhost:5000/ws"]


def test_a_locked_identity_unlocks_in_the_page(browser, rsa_keys, tmp_path, shots):
    node = WebNode("locked", tmp_path / "home", key=rsa_keys["mallory"])
    node.start(unlock=False)
    try:
        page = browser.new_context(viewport=DESKTOP).new_page()
        watch = Watch(page)
        page.goto(node.url)
        expect(page.locator("#unlock-form")).to_be_visible(timeout=WAIT)
        page.locator("#unlock-password").fill("not the password")
        page.locator("#unlock-form button[type=submit]").click()
        expect(page.locator("#gate-error")).to_contain_text("wrong password", timeout=WAIT)
        page.screenshot(path=shots / "unlock.png")
        page.locator("#unlock-password").fill(PASSWORD)
        page.locator("#unlock-form button[type=submit]").click()
        expect(page.locator("#app")).to_be_visible(timeout=WAIT)
        expect(page.locator("#me-fp")).to_contain_text(node.fingerprint[:4])
        assert PASSWORD not in "".join(node.output) and "not the password" not in "".join(
            node.output
        )
        assert watch.dialogs == [] and watch.script_errors() == []
        page.context.close()
    finally:
        node.stop()


def test_first_run_creates_an_identity(browser, tmp_path, shots):
    fresh = WebNode("newcomer", tmp_path / "home")
    fresh.start()
    try:
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        watch = Watch(page)
        page.goto(fresh.url)
        expect(page.locator("#create-form")).to_be_visible(timeout=WAIT)
        page.locator("#create-password").fill("correct horse battery staple")
        page.locator("#create-repeat").fill("correct horse battery staple")
        page.screenshot(path=shots / "first-run.png")
        page.set_viewport_size(PHONE)
        page.screenshot(path=shots / "first-run-phone.png")
        page.set_viewport_size(DESKTOP)
        page.locator("#create-repeat").fill("something else entirely")
        page.locator("#create-form button[type=submit]").click()
        expect(page.locator("#gate-error")).to_have_text("The two passwords do not match.")
        page.locator("#create-repeat").fill("correct horse battery staple")
        page.locator("#create-form button[type=submit]").click()
        expect(page.locator("#app")).to_be_visible(timeout=120_000)
        expect(page.locator("#no-peers")).to_be_visible()
        expect(page.locator("#me-fp")).not_to_be_empty()
        assert (tmp_path / "home" / "identity.key").exists()
        page.screenshot(path=shots / "first-run-done.png")
        assert "correct horse" not in "".join(fresh.output)
        assert watch.dialogs == [] and watch.errors == []

        stranger = browser.new_context(viewport=DESKTOP).new_page()
        stranger.goto(fresh.url.split("#")[0])
        expect(stranger.locator("#gate-title")).to_have_text("Open Enclave's address")
        stranger.context.close()
        context.close()
    finally:
        fresh.stop()
