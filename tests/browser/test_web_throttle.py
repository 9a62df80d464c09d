"""The page shows that a peer's node throttles us (PROTOCOL.md, "Receive quotas").

Two real ``enclave --web`` processes: Bob's node keeps at most 1 MiB of each contact's
messages (``stored_bytes_per_peer`` in its enclave.toml). Alice's page queues more than
that for Bob; Bob's node stores what fits and throttles her; her page says so.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from webnodes import WebNode

WAIT = 30_000  # ms


@pytest.fixture(scope="module")
def alice_and_bob(rsa_keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("throttle")
    alice = WebNode("alice", base / "alice", key=rsa_keys["alice"])
    bob = WebNode("bob", base / "bob", key=rsa_keys["bob"])
    alice.add_peer(bob, "bob")
    bob.add_peer(alice, "alice")
    (bob.home / "enclave.toml").write_text("stored_bytes_per_peer = 1048576\n")
    started = []
    try:
        for node in (alice, bob):
            node.start()
            started.append(node)
        yield alice, bob
    finally:
        for node in started:
            node.stop()


def test_the_page_says_when_a_peer_throttles_us(browser, alice_and_bob, shots):
    alice, bob = alice_and_bob
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(alice.url)
    expect(page.locator("#app")).to_be_visible(timeout=WAIT)
    page.evaluate(
        """async ([peer, n]) => {
            const token = sessionStorage.getItem("enclave-token");
            const text = "q".repeat(9990);
            for (let i = 0; i < n; i++) {
                const r = await fetch("/api/send", {method: "POST",
                    body: JSON.stringify({peer, text: `${i} ${text}`}),
                    headers: {"Authorization": `Bearer ${token}`, "Content-Type": "application/json"}});
                if (!r.ok) throw new Error(await r.text());
            }
        }""",
        [bob.fingerprint, 120],
    )
    toast = page.locator(".toast", has_text="node is throttling you")
    expect(toast).to_have_text(
        "bob's node is throttling you: storage (its quota for your messages is full);"
        " retrying in 300 s",
        timeout=WAIT,
    )
    page.screenshot(path=shots / "throttled.png")
    assert errors == []
    page.context.close()
