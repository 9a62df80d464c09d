"""Disappearing posts in a group on three pages in Debian's Chromium, against three
real ``enclave --web`` processes whose clocks the test moves (a forward offset in a
file each node reads, ``enclave.node.clock.OFFSET_FILE_ENV``): Alice, the admin, sets
the timer in the group menu (Bob, a member, sees it but cannot change it), every page
shows the system line, and posts sent under it vanish from every page (and every
store) once the clocks pass their time and a minute."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from test_web_browser import WAIT, open_page, take_focus
from test_web_groups import open_group, post, write
from webnodes import WebNode, closed, movable_clocks, running

from enclave.identity.home import Home
from enclave.store import Store


@pytest.fixture(scope="module")
def nodes(rsa_keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("grouptimer")
    made = {n: WebNode(n, base / n, key=rsa_keys[n]) for n in ("alice", "bob", "carol")}
    for name in ("bob", "carol"):
        made["alice"].add_peer(made[name], name)
        made[name].add_peer(made["alice"], "alice")
    movable_clocks(made, base)
    with running(made):
        yield made


@pytest.fixture(scope="module")
def pages(browser, nodes):
    out = {name: open_page(browser, nodes[name].url) for name in nodes}
    yield out
    closed(out)


def _group_rows(node) -> list:
    """(body, state) of every group row the node's file holds (bodies sealed or not)."""
    with Store.open(Home(node.home).db_path) as store:
        with store._lock:
            return store._db.execute("SELECT body, state FROM messages WHERE grp").fetchall()


def test_the_admin_sets_the_timer_and_posts_vanish_from_every_page(pages, nodes):
    alice, bob, carol = pages["alice"], pages["bob"], pages["carol"]
    alice.locator("#btn-new-group").click()
    alice.locator("#new-group-name").fill("night shift")
    for name in ("bob", "carol"):
        alice.locator("#new-group-contacts label", has_text=name).locator("input").check()
    alice.locator("#new-group-form button[type=submit]").click()
    expect(alice.locator("#group-name")).to_have_text("night shift", timeout=WAIT)
    for page in (bob, carol):
        open_group(page, "night shift")
    write(alice, "kept: before the timer")
    expect(post(carol, "in", "kept: before the timer")).to_be_visible(timeout=WAIT)

    take_focus(bob)  # its Escape must reach its page: keys go to the focused one
    bob.locator("#btn-group-menu").click()  # a member sees the timer, cannot change it
    expect(bob.locator("#group-disappear-select")).to_be_disabled()
    bob.keyboard.press("Escape")
    expect(bob.locator("#dlg-group")).to_be_hidden(timeout=WAIT)  # Bob can write again
    alice.locator("#btn-group-menu").click()
    alice.locator("#group-disappear-select").select_option("3600")
    expect(alice.locator("#dlg-group")).to_be_hidden(timeout=WAIT)
    line = "set disappearing messages to 1 hour"
    expect(alice.locator("#group-post-list .system", has_text=f"you {line}")).to_be_visible(
        timeout=WAIT
    )
    for page in (bob, carol):
        expect(page.locator("#group-post-list .system", has_text=f"alice {line}")).to_be_visible(
            timeout=WAIT
        )
    write(alice, "the gate code is 2468")
    write(bob, "and the alarm is off")
    for page, direction in ((bob, "in"), (carol, "in")):
        expect(post(page, direction, "the gate code is 2468")).to_be_visible(timeout=WAIT)
    for page in (alice, carol):
        expect(post(page, "in", "and the alarm is off")).to_be_visible(timeout=WAIT)
    for node in nodes.values():  # the timer and a minute pass on every clock
        node.offset.write_text(str((3600 + 60) * 1000))
    for page in (alice, bob, carol):
        expect(page.locator("#group-post-list .msg")).to_have_count(1, timeout=WAIT)
        expect(page.locator("#group-post-list .msg .body")).to_have_text("kept: before the timer")
        expect(page.locator("#group-post-list .system", has_text=line)).to_be_visible()
    for node in nodes.values():  # erased: no body left, sealed or clear
        rows = _group_rows(node)
        gone = [body for body, state in rows if state == "deleted"]
        assert len(gone) >= 2 and all(body is None for body in gone), rows
        assert not any(isinstance(b, str) and ("2468" in b or "alarm" in b) for b, _ in rows)
