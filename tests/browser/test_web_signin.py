"""Staying signed in, notifications, themes and small faults of the page, in Debian's
Chromium against real ``enclave --web`` processes (issue 22, items 1, 2, 5, 7 and 8):

- a browser that opened the printed address keeps an HttpOnly device cookie: a tab left
  open over a restart carries on by itself with its draft, a bookmark opens the page
  after a restart, and signing out (the page or ``enclave web-sessions``) ends that;
- an address cut short says so, an earlier launch's says that;
- notifications only once chosen, naming the sender only unless chosen, never for a
  muted contact; the unread total on the tab's icon;
- the theme follows the system until the user picks one, and is kept;
- a contact added on the command line shows at once; names take spaces and any script;
- wording and small faults: broadcast counts, the verification button, an empty search,
  avatar colours, a stop with a tab open."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect
from support.nodes import public_pem
from test_web_browser import DESKTOP, WAIT, bubble, open_chat, open_page, peer, send
from webnodes import WebNode

from enclave.faces.web import security


@pytest.fixture(scope="module")
def nodes(trio):
    return trio


@pytest.fixture(scope="module")
def pages(trio_pages):
    return trio_pages


def base(url: str) -> str:
    return url.split("#", 1)[0]


def restart(node: WebNode) -> str:
    node.stop()
    return node.start(web_args=("--web-port", str(node.web_port)))


def web_sessions(node: WebNode, *argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "enclave", "--home", str(node.home), "web-sessions", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def device_cookies(page) -> list[dict]:
    return [c for c in page.context.cookies() if c["name"].startswith("enclave-device-")]


def keep_signed_in(page) -> None:
    page.locator("#btn-settings").click()
    page.locator("#keep-signed-in").check()
    expect(page.locator(".toast", has_text="stays signed in")).to_be_visible(timeout=WAIT)
    page.keyboard.press("Escape")


def test_signing_in_is_a_choice_and_sets_a_strict_cookie_and_a_pin(pages):
    alice = pages["alice"]
    expect(alice.locator("#app")).to_be_visible()
    assert device_cookies(alice) == []  # nothing until the user chooses it
    keep_signed_in(alice)
    (cookie,) = device_cookies(alice)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/api/device"
    assert alice.evaluate("() => document.cookie") == ""  # page scripts never see it
    # The other half lives in this origin's storage: another port's page cannot read it.
    assert len(alice.evaluate("() => localStorage.getItem('enclave-device-pin')")) >= 40


def test_a_tab_left_open_over_a_restart_carries_on_with_its_draft(pages, nodes):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(bob, "alice")
    open_chat(alice, "bob")
    alice.locator("#input").fill("typed before the restart")
    before = alice.evaluate("() => sessionStorage.getItem('enclave-token')")
    restart(nodes["alice"])
    # No new address pasted: the cookie brought the new launch's token.
    alice.wait_for_function(
        "(old) => (sessionStorage.getItem('enclave-token') || old) !== old",
        arg=before,
        timeout=WAIT,
    )
    expect(alice.locator("#conn-banner")).to_be_hidden(timeout=WAIT)
    expect(alice.locator("#app")).to_be_visible(timeout=WAIT)
    expect(alice.locator("#chat-name")).to_have_text("bob", timeout=WAIT)
    expect(alice.locator("#input")).to_have_value("typed before the restart", timeout=WAIT)
    expect(alice.locator("#gate")).to_be_hidden()
    send(alice, "after a restart, no address pasted")
    expect(bubble(bob, "in", "after a restart, no address pasted")).to_be_visible(timeout=WAIT)
    # The socket could not connect while the node was down, then its old token was
    # refused: the browser logs both, as it should. Nothing else may be there.
    alice.watch.errors[:] = [
        e for e in alice.watch.errors if not e.startswith("WebSocket connection to")
    ]


def test_a_bookmark_opens_the_page_after_a_restart_until_revoked(pages, nodes):
    alice_node = nodes["alice"]
    alice = pages["alice"]
    bookmark = base(alice_node.url)
    tab = alice.context.new_page()  # a new tab of the same browser
    tab.goto(bookmark)
    expect(tab.locator("#app")).to_be_visible(timeout=WAIT)
    expect(peer(tab, "bob")).to_be_visible()
    listed = web_sessions(alice_node)
    assert "1 browser kept signed in" in listed and "Chrome" in listed
    assert web_sessions(alice_node, "--revoke-all").startswith("Signed out 1 browser")
    # At once: the open tab's token was this session's, and it ended with it.
    tab.reload()
    expect(tab.locator("#gate")).to_contain_text("was signed out", timeout=WAIT)
    later = alice.context.new_page()
    later.goto(bookmark)
    expect(later.locator("#gate")).to_contain_text("the address Enclave printed", timeout=WAIT)
    tab.close()
    later.close()
    alice.goto(alice_node.url)  # the launch's own address still opens it
    expect(alice.locator("#app")).to_be_visible(timeout=WAIT)
    alice.watch.errors[:] = [e for e in alice.watch.errors if "401" not in e]


def test_signing_out_from_the_page_forgets_this_browser(browser, nodes):
    page = open_page(browser, nodes["alice"].url)
    keep_signed_in(page)
    assert len(device_cookies(page)) == 1
    page.locator("#btn-settings").click()
    expect(page.locator("#keep-signed-in")).to_be_checked()
    page.locator("#keep-signed-in").uncheck()
    expect(page.locator(".toast", has_text="signed out")).to_be_visible(timeout=WAIT)
    assert device_cookies(page) == []
    assert page.evaluate("() => localStorage.getItem('enclave-device-pin')") is None
    again = page.context.new_page()
    again.goto(base(nodes["alice"].url))
    expect(again.locator("#gate-title")).to_have_text("Open Enclave's address", timeout=WAIT)
    page.context.close()


def test_a_cut_address_and_an_earlier_launchs_address_say_which(browser, nodes):
    url = nodes["bob"].url
    address, token = url.split("#token=")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{address}#token={token[:-1]}")
    expect(page.locator("#gate")).to_contain_text("cut short or mistyped", timeout=WAIT)
    page.goto("about:blank")
    page.goto(f"{address}#token={security.new_token()}")  # whole, but not this launch's
    expect(page.locator("#gate")).to_contain_text("an earlier launch", timeout=WAIT)
    context.close()


@pytest.mark.parametrize("system", ["light", "dark"])
def test_the_theme_follows_the_system_until_one_is_chosen(browser, nodes, system):
    page = open_page(browser, nodes["bob"].url, color_scheme=system)
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", system)
    other = "dark" if system == "light" else "light"
    page.locator("#btn-settings").click()
    page.locator("#theme-choice").select_option(other)
    expect(html).to_have_attribute("data-theme", other)
    light = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    page.reload()
    expect(page.locator("#app")).to_be_visible(timeout=WAIT)
    expect(html).to_have_attribute("data-theme", other)  # kept in this browser
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == light
    page.locator("#btn-settings").click()
    page.locator("#theme-choice").select_option("system")
    expect(html).to_have_attribute("data-theme", system)
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") != light
    assert page.watch.script_errors() == []
    page.context.close()


def test_broadcast_wording_verification_button_and_an_empty_search(pages):
    alice = pages["alice"]
    alice.locator("#btn-broadcast").click()
    alice.locator("#broadcast-input").fill("to both of you")
    alice.locator("#broadcast-form button[type=submit]").click()
    expect(alice.locator(".toast", has_text="Broadcast to 2 contacts")).to_be_visible(timeout=WAIT)
    open_chat(alice, "bob")
    alice.locator("#btn-verify").click()
    mark = alice.locator("#btn-mark-verified")
    expect(mark).to_have_class("primary")
    mark.click()
    alice.locator("#btn-verify").click()
    expect(mark).to_have_text("Remove verification")
    expect(mark).to_have_class("ghost danger")  # the lesser action does not look like the main one
    alice.keyboard.press("Escape")
    alice.locator("#search").fill("nothing like this was ever written")
    expect(alice.locator("#result-list")).to_contain_text("No messages contain", timeout=WAIT)
    alice.locator("#search").fill("")


def test_contacts_get_avatar_colours_of_their_own(pages):
    alice = pages["alice"]
    colours = {
        name: peer(alice, name)
        .locator(".avatar")
        .evaluate("(a) => getComputedStyle(a).backgroundColor")
        for name in ("bob", "carol")
    }
    assert colours["bob"] != colours["carol"], colours


def test_a_stop_with_a_page_open_is_quick_and_quiet(browser, rsa_keys, tmp_path):
    node = WebNode("quiet", tmp_path / "quiet", key=rsa_keys["mallory"])
    node.start()
    try:
        page = open_page(browser, node.url)
        node.stop()
        assert node.proc.returncode == 0
        said = "".join(node.output)
        assert "internal problem" not in said and "Traceback" not in said
        # The page was told the node went away (the socket closed as "going away").
        expect(page.locator("#conn-banner")).to_be_visible(timeout=WAIT)
        page.context.close()
    finally:
        node.stop()


# Every notification the page makes, recorded (and still shown by Chromium's own).
RECORD_NOTIFICATIONS = """
window.shown = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) {
    super(title, options);
    window.shown.push({ title, body: options && options.body });
  }
};
"""


def shown(page) -> list[dict]:
    return page.evaluate("() => window.shown")


def test_notifications_name_the_sender_only_unless_chosen_and_respect_mute(browser, nodes, pages):
    context = browser.new_context(viewport=DESKTOP, permissions=["notifications"])
    context.add_init_script(RECORD_NOTIFICATIONS)
    alice = context.new_page()
    alice.goto(nodes["alice"].url)
    expect(alice.locator("#app")).to_be_visible(timeout=WAIT)
    bob = pages["bob"]
    open_chat(bob, "alice")
    open_chat(pages["alice"], "carol")  # the other tab would read bob's messages at once
    open_chat(alice, "carol")  # bob's chat is not in view
    send(bob, "nothing asked yet")
    expect(peer(alice, "bob").locator(".unread")).to_be_visible(timeout=WAIT)
    assert shown(alice) == []  # off until the user turns them on
    # The unread total is on the tab's icon as well as in its title.
    expect(alice.locator("link[rel=icon]")).to_have_attribute("href", re.compile("^blob:"))
    alice.locator("#btn-settings").click()
    alice.locator("#notify-on").check()
    expect(alice.locator("#notify-text")).to_be_enabled()
    alice.keyboard.press("Escape")
    send(bob, "the secret plan")
    alice.wait_for_function("() => window.shown.length === 1", timeout=WAIT)
    assert shown(alice) == [{"title": "\u2068bob\u2069 · Enclave", "body": "New message"}]
    alice.locator("#btn-settings").click()
    alice.locator("#notify-text").check()
    alice.keyboard.press("Escape")
    send(bob, "now with its text")
    alice.wait_for_function("() => window.shown.length === 2", timeout=WAIT)
    assert shown(alice)[1]["body"] == "now with its text"
    open_chat(alice, "bob")
    expect(alice.locator("link[rel=icon]")).to_have_attribute("href", "/static/icon.svg")
    alice.locator("#btn-contact").click()
    alice.locator("#btn-mute").click()
    expect(alice.locator("#btn-mute")).to_have_text("Unmute notifications")
    alice.keyboard.press("Escape")
    open_chat(alice, "carol")
    send(bob, "muted, so silent")
    expect(peer(alice, "bob").locator(".unread")).to_have_text("1", timeout=WAIT)
    assert len(shown(alice)) == 2
    context.close()


def test_a_contact_added_from_the_command_line_appears_with_a_spaced_name(pages, nodes, rsa_keys):
    alice = pages["alice"]
    node = nodes["alice"]
    pem = node.home.parent / "dave.pem"
    pem.write_text(public_pem(rsa_keys["mallory"]))
    argv = ["add", str(pem), "--address", "127.0.0.1:9", "--name", "Dave  O'Brien Jr"]
    done = subprocess.run(
        [sys.executable, "-m", "enclave", "--home", str(node.home), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    # The open page shows it at once (the running node did the adding), no reload.
    expect(peer(alice, "Dave O'Brien Jr")).to_be_visible(timeout=WAIT)
    open_chat(alice, "Dave O'Brien Jr")
    alice.locator("#btn-contact").click()
    alice.locator("#contact-name").fill("Дэйв 王 Smith")
    alice.locator("#btn-rename").click()
    expect(peer(alice, "Дэйв 王 Smith")).to_be_visible(timeout=WAIT)
    expect(alice.locator("#dlg-contact")).to_be_hidden()  # a rename closes it
    alice.locator("#btn-contact").click()
    alice.locator("#contact-name").fill("bad\u202ename")
    alice.locator("#btn-rename").click()
    expect(alice.locator("#contact-error")).to_contain_text("invalid peer name", timeout=WAIT)
    alice.keyboard.press("Escape")
