"""Groups on the web page in Debian's Chromium, between three real ``enclave --web``
processes: Alice makes a group of Bob and Carol on her page (who are not each other's
contacts), posts to it and sees each member's tick; Bob's post reaches Alice's page;
Carol leaves from her group menu and the others' pages show the system line."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from test_web_browser import WAIT, open_page
from webnodes import WebNode


@pytest.fixture(scope="module")
def nodes(rsa_keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("groups")
    alice = WebNode("alice", base / "alice", key=rsa_keys["alice"])
    bob = WebNode("bob", base / "bob", key=rsa_keys["bob"])
    carol = WebNode("carol", base / "carol", key=rsa_keys["carol"])
    for other in (bob, carol):
        alice.add_peer(other, other.name)
        other.add_peer(alice, "alice")
    started = []
    try:
        for node in (alice, bob, carol):
            node.start()
            started.append(node)
        yield {"alice": alice, "bob": bob, "carol": carol}
    finally:
        for node in started:
            node.stop()


@pytest.fixture(scope="module")
def pages(browser, nodes):
    out = {name: open_page(browser, node.url) for name, node in nodes.items()}
    yield out
    for page in out.values():
        assert page.watch.dialogs == [], "a page opened a dialog"
        assert page.watch.script_errors() == []
        page.context.close()


def group_row(page, name: str):
    title = page.locator(".peer-name", has_text=re.compile(f"^{re.escape(name)}$"))
    return page.locator("#group-list .peer").filter(has=title)


def post(page, direction: str, text: str):
    return page.locator(f"#group-post-list .msg.{direction}").filter(
        has=page.locator(".body", has_text=text)
    )


def open_group(page, name: str) -> None:
    expect(group_row(page, name)).to_be_visible(timeout=WAIT)
    group_row(page, name).click()
    expect(page.locator("#group-name")).to_have_text(name)


def write(page, text: str) -> None:
    page.locator("#group-input").fill(text)
    page.locator("#group-input").press("Enter")


def test_alice_makes_a_group_on_her_page_and_every_member_gets_her_post(pages):
    alice, bob, carol = pages["alice"], pages["bob"], pages["carol"]
    alice.locator("#btn-new-group").click()
    expect(alice.locator("#dlg-new-group")).to_be_visible()
    alice.locator("#new-group-name").fill("lunch <b>club</b>")
    for name in ("bob", "carol"):
        alice.locator("#new-group-contacts label", has_text=name).locator("input").check()
    alice.locator("#new-group-form button[type=submit]").click()
    expect(alice.locator("#dlg-new-group")).to_be_hidden(timeout=WAIT)
    expect(alice.locator("#group-name")).to_have_text("lunch <b>club</b>", timeout=WAIT)
    roles = alice.locator("#group-members .member")
    expect(roles).to_have_count(3)
    expect(roles.filter(has_text="you")).to_contain_text("admin")
    expect(roles.filter(has_text="bob")).to_contain_text("member")

    write(alice, "Lunch at noon, everyone?")
    ticks = post(alice, "out", "Lunch at noon").locator(".group-ticks")
    expect(ticks).to_have_text("✓ 2/2", timeout=WAIT)
    title = ticks.get_attribute("title")
    assert "bob" in title and "carol" in title, title
    for page in (bob, carol):
        open_group(page, "lunch <b>club</b>")
        shown = post(page, "in", "Lunch at noon")
        expect(shown).to_be_visible(timeout=WAIT)
        expect(shown.locator(".sender")).to_have_text("alice")
        assert page.locator("#group-post-list b").count() == 0
    # Bob and Carol meet only through the group: each is "not a contact" to the other.
    expect(bob.locator("#group-members .member", has_text="carol")).to_contain_text(
        "in lunch <b>club</b>, not a contact"
    )


def test_a_post_from_another_member_reaches_alice_in_order(pages, shots):
    alice, bob = pages["alice"], pages["bob"]
    write(bob, "Count me in.")
    shown = post(alice, "in", "Count me in")
    expect(shown).to_be_visible(timeout=WAIT)
    expect(shown.locator(".sender")).to_have_text("bob")
    bodies = alice.locator("#group-post-list .msg .body")
    expect(bodies).to_have_text(["Lunch at noon, everyone?", "Count me in."])
    expect(post(bob, "out", "Count me in").locator(".group-ticks")).to_have_text(
        "✓ 2/2", timeout=WAIT
    )
    alice.screenshot(path=shots / "group.png")
    bob.screenshot(path=shots / "group-member.png")


def test_carol_leaves_and_the_others_see_a_system_line(pages):
    alice, bob, carol = pages["alice"], pages["bob"], pages["carol"]
    carol.locator("#btn-group-menu").click()
    expect(carol.locator("#dlg-group")).to_be_visible()
    expect(carol.locator("#group-add-form")).to_be_hidden()  # not an admin
    carol.locator("#btn-group-leave").click()
    expect(carol.locator("#dlg-group")).to_be_hidden(timeout=WAIT)
    expect(carol.locator("#group-status")).to_have_text("you left", timeout=WAIT)
    for page in (alice, bob):
        expect(page.locator("#group-post-list .system", has_text="carol left")).to_be_visible(
            timeout=WAIT
        )
        expect(page.locator("#group-members .member")).to_have_count(2, timeout=WAIT)


def test_alice_removes_bob_from_her_group_menu(pages):
    alice, bob = pages["alice"], pages["bob"]
    alice.locator("#btn-group-menu").click()
    expect(alice.locator("#group-add-form")).to_be_visible()
    alice.locator("#group-remove-list li", has_text="bob").locator("button").click()
    expect(alice.locator("#dlg-group")).to_be_hidden(timeout=WAIT)
    expect(alice.locator("#group-post-list .system", has_text="you removed bob")).to_be_visible(
        timeout=WAIT
    )
    expect(bob.locator("#group-post-list .system", has_text="alice removed you")).to_be_visible(
        timeout=WAIT
    )
    expect(bob.locator("#group-status")).to_have_text("you were removed", timeout=WAIT)


def test_system_lines_outlive_a_reload_in_their_place(pages):
    alice = pages["alice"]
    name = alice.locator("#group-name").inner_text()
    alice.reload()
    expect(alice.locator("#app")).to_be_visible(timeout=WAIT)
    open_group(alice, name)
    lines = alice.locator("#group-post-list li")
    expect(lines.first).to_contain_text("you created", timeout=WAIT)
    expect(lines.last).to_contain_text("you removed bob")
    texts = lines.all_inner_texts()
    left = next(i for i, t in enumerate(texts) if "carol left" in t)
    assert any("Count me in." in t for t in texts[:left])  # after the posts before it
