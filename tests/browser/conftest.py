"""Browser tests: Debian's Chromium driven by Playwright (sync API, own fixture).

These run in their own pytest invocation (``pytest tests/browser``): Playwright's sync
API keeps an event loop running for the rest of a session, which would break the
asyncio tests of the main suite. Screenshots go to tests/artifacts/screenshots/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("ENCLAVE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


@pytest.fixture(scope="module")
def trio(rsa_keys, tmp_path_factory):
    """alice (her page on one port across restarts), bob and carol, running: alice has
    the other two as contacts, each has alice (webnodes.alice_bob_and_carol)."""
    from webnodes import alice_bob_and_carol, alice_web_args, running

    made = alice_bob_and_carol(rsa_keys, tmp_path_factory.mktemp("trio"), fixed_port=True)
    with running(made, alice_web_args(made)):
        yield made


@pytest.fixture(scope="module")
def trio_pages(browser, trio):
    """alice's and bob's pages on the trio, each in a browser context of its own."""
    from test_web_browser import open_page
    from webnodes import closed

    out = {name: open_page(browser, trio[name].url) for name in ("alice", "bob")}
    yield out
    closed(out)
