"""Files on the web page in Debian's Chromium, between two real ``enclave --web``
processes: a file dropped on a chat, or pasted into its message box, reaches the peer's
page, whose Download link fetches the same bytes (and the sender's staged copy goes);
pasted text stays text; an image shows an inline preview (a blob: URL)."""

from __future__ import annotations

import base64
import os
import re

import pytest
from playwright.sync_api import expect
from support.images import png
from support.waiting import eventually_blocking
from test_web_browser import WAIT, open_chat, open_page
from webnodes import WebNode

TAKE = ("--set", "file_disk_margin_bytes=0")

DROP = """([name, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name));
  const zone = document.getElementById("messages");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
  }
}"""

# A paste as the browser fires it when the clipboard holds a file: a ClipboardEvent
# whose DataTransfer has the File. Returns whether the page took it (preventDefault).
PASTE = """([name, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name));
  const input = document.getElementById("input");
  input.focus();
  const event = new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true });
  input.dispatchEvent(event);
  return event.defaultPrevented;
}"""

# Counts the uploads the page starts (every file leaves by a POST of XMLHttpRequest).
COUNT_UPLOADS = r"""() => {
  window.uploadsStarted = 0;
  const open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    if (method === "POST" && /\/files(\?|$)/.test(url)) window.uploadsStarted += 1;
    return open.call(this, method, url, ...rest);
  };
}"""

FETCH = """async (path) => {
  const token = sessionStorage.getItem("enclave-token");
  const r = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  const bytes = new Uint8Array(await r.arrayBuffer());
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return [r.status, r.headers.get("content-disposition"), btoa(text)];
}"""


@pytest.fixture(scope="module")
def nodes(rsa_keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("files")
    alice = WebNode("alice", base / "alice", key=rsa_keys["alice"])
    bob = WebNode("bob", base / "bob", key=rsa_keys["bob"])
    alice.add_peer(bob, "bob")
    bob.add_peer(alice, "alice")
    started = []
    try:
        for node in (alice, bob):
            node.start(web_args=TAKE)
            started.append(node)
        yield {"alice": alice, "bob": bob}
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


def card(page, direction: str, name: str):
    return page.locator(f"#message-list .msg.{direction} .file-card").filter(
        has=page.locator(".file-name", has_text=name)
    )


def test_a_dropped_file_reaches_the_peer_and_downloads_the_same_bytes(pages, nodes, shots):
    alice, bob = pages["alice"], pages["bob"]
    open_chat(alice, "bob")
    open_chat(bob, "alice")
    data = os.urandom(300_000)
    alice.evaluate(DROP, ["notes.bin", base64.b64encode(data).decode()])
    mine = card(alice, "out", "notes.bin")
    expect(mine).to_be_visible(timeout=WAIT)
    expect(mine.locator(".file-size")).to_have_text("293 KiB")
    expect(mine.locator(".file-state")).to_have_text("Delivered", timeout=WAIT)
    theirs = card(bob, "in", "notes.bin")
    expect(theirs.locator(".file-state")).to_have_text("Received", timeout=WAIT)
    link = theirs.locator("a.file-download")
    expect(link).to_have_text("Download")
    status, disposition, body = bob.evaluate(FETCH, link.get_attribute("data-href"))
    assert status == 200 and disposition == "attachment; filename*=UTF-8''notes.bin"
    assert base64.b64decode(body) == data
    outgoing = nodes["alice"].home / "outgoing"
    assert outgoing.stat().st_mode & 0o777 == 0o700
    # The staged copy goes with the "Delivered" the page shows (another process: polled).
    eventually_blocking(lambda: not any(outgoing.iterdir()), 10, "alice's staged copy gone")
    bob.screenshot(path=str(shots / "web-files-received.png"))


def test_a_pasted_file_reaches_the_peer_and_downloads_the_same_bytes(pages):
    alice, bob = pages["alice"], pages["bob"]
    data = os.urandom(200_000)
    taken = alice.evaluate(PASTE, ["pasted.bin", base64.b64encode(data).decode()])
    assert taken is True  # the file is uploaded, nothing is inserted in the box
    expect(card(alice, "out", "pasted.bin").locator(".file-state")).to_have_text(
        "Delivered", timeout=WAIT
    )
    expect(alice.locator("#input")).to_have_value("")
    theirs = card(bob, "in", "pasted.bin")
    expect(theirs.locator(".file-state")).to_have_text("Received", timeout=WAIT)
    status, disposition, body = bob.evaluate(
        FETCH, theirs.locator("a.file-download").get_attribute("data-href")
    )
    assert status == 200 and disposition == "attachment; filename*=UTF-8''pasted.bin"
    assert base64.b64decode(body) == data


def test_pasted_text_is_inserted_and_uploads_nothing(pages):
    alice = pages["alice"]
    alice.context.grant_permissions(["clipboard-read", "clipboard-write"])
    text = "just words, no file"
    alice.evaluate("(t) => navigator.clipboard.writeText(t)", text)
    cards = alice.locator("#message-list .file-card").count()
    alice.evaluate(COUNT_UPLOADS)
    box = alice.locator("#input")
    box.fill("")
    box.focus()
    alice.keyboard.press("ControlOrMeta+V")  # a real paste: the browser inserts the text
    expect(box).to_have_value(text)
    # The page's paste handler ran before the text went in: it started no upload.
    assert alice.evaluate("() => window.uploadsStarted") == 0
    expect(alice.locator("#uploads li")).to_have_count(0)
    expect(alice.locator("#message-list .file-card")).to_have_count(cards)
    box.fill("")


def test_an_image_shows_an_inline_preview_and_survives_a_reload(pages):
    alice, bob = pages["alice"], pages["bob"]
    alice.evaluate(DROP, ["dot.png", base64.b64encode(png()).decode()])
    theirs = card(bob, "in", "dot.png")
    expect(theirs.locator(".file-state")).to_have_text("Received", timeout=WAIT)
    img = theirs.locator("img.file-preview")
    expect(img).to_be_visible(timeout=WAIT)
    assert img.get_attribute("src").startswith("blob:")
    bob.wait_for_function(
        "() => [...document.querySelectorAll('img.file-preview')].some((i) => i.complete && i.naturalWidth > 0)",
        timeout=WAIT,
    )
    assert img.evaluate("(i) => i.naturalWidth") == 3
    alice.evaluate(DROP, ["fake.png", base64.b64encode(b"<html>not an image</html>").decode()])
    fake = card(bob, "in", "fake.png")
    expect(fake.locator(".file-state")).to_have_text("Received", timeout=WAIT)
    bob.reload()
    expect(bob.locator("#app")).to_be_visible(timeout=WAIT)
    open_chat(bob, "alice")
    expect(card(bob, "in", "dot.png").locator("img.file-preview")).to_be_visible(timeout=WAIT)
    expect(card(bob, "in", "notes.bin").locator("a.file-download")).to_be_visible()
    expect(card(bob, "in", "fake.png").locator("img.file-preview")).to_be_hidden()


def test_the_broadcast_dialog_offers_a_file_to_every_contact(pages):
    alice, bob = pages["alice"], pages["bob"]
    alice.locator("#btn-broadcast").click()
    expect(alice.locator("#dlg-broadcast")).to_be_visible()
    alice.locator("#broadcast-file").set_input_files(
        files=[{"name": "to all.txt", "mimeType": "text/plain", "buffer": b"hello everyone"}]
    )
    expect(alice.locator("#dlg-broadcast")).to_be_hidden()
    expect(card(alice, "out", "to all.txt").locator(".file-state")).to_have_text(
        "Delivered", timeout=WAIT
    )
    theirs = card(bob, "in", "to all.txt")
    expect(theirs.locator(".file-state")).to_have_text("Received", timeout=WAIT)
    _, _, body = bob.evaluate(FETCH, theirs.locator("a.file-download").get_attribute("data-href"))
    assert base64.b64decode(body) == b"hello everyone"


@pytest.fixture(scope="module")
def asking(rsa_keys, tmp_path_factory, browser):
    """Carol (who asks before taking any file) and Alice, and their pages."""
    base = tmp_path_factory.mktemp("asking")
    alice = WebNode("alice", base / "alice", key=rsa_keys["alice"])
    carol = WebNode("carol", base / "carol", key=rsa_keys["carol"])
    alice.add_peer(carol, "carol")
    carol.add_peer(alice, "alice")
    started, pages = [], {}
    try:
        alice.start(web_args=TAKE)
        started.append(alice)
        carol.start(web_args=(*TAKE, "--set", "file_auto_accept_bytes=0"))
        started.append(carol)
        for name, node in (("alice", alice), ("carol", carol)):
            pages[name] = open_page(browser, node.url)
        yield pages
        for page in pages.values():
            assert page.watch.script_errors() == []
    finally:
        for page in pages.values():
            page.context.close()
        for node in started:
            node.stop()


def test_a_waiting_file_is_accepted_or_declined_from_the_page(asking):
    alice, carol = asking["alice"], asking["carol"]
    open_chat(alice, "carol")
    open_chat(carol, "alice")
    for name in ("keep.txt", "drop.txt"):
        alice.evaluate(DROP, [name, base64.b64encode(f"body of {name}".encode()).decode()])
    keep, drop = card(carol, "in", "keep.txt"), card(carol, "in", "drop.txt")
    expect(keep.locator(".file-state")).to_have_text("Offered to you", timeout=WAIT)
    expect(drop.locator("button.file-decline")).to_be_visible(timeout=WAIT)
    # The answer to the accept is held back until the page has heard (over its
    # WebSocket) that the file arrived: an answer that comes late, as on a busy machine,
    # must not take the card back to "Accepted, starting".
    held = []
    carol.route("**/api/files/*/accept", lambda route: held.append((route, route.fetch())))
    keep.locator("button.file-accept").click()
    expect(keep.locator(".file-state")).to_have_text("Received", timeout=WAIT)
    ((route, answer),) = held  # the accept reached the node: the file could not come else
    assert answer.json()["file"]["state"] == "accepted"
    with carol.expect_response("**/api/files/*/accept"):
        route.fulfill(response=answer)
    carol.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
    expect(keep.locator(".file-state")).to_have_text("Received")
    carol.unroute("**/api/files/*/accept")
    expect(card(alice, "out", "keep.txt").locator(".file-state")).to_have_text(
        "Delivered", timeout=WAIT
    )
    drop.locator("button.file-decline").click()
    expect(drop.locator(".file-state")).to_have_text(re.compile("Failed|Cancelled"), timeout=WAIT)
    expect(drop.locator("button")).to_have_count(0)
    expect(card(alice, "out", "drop.txt").locator(".file-state")).to_have_text(
        re.compile("Failed|Cancelled"), timeout=WAIT
    )
