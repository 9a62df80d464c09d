"""The REPL's /invite and /join between real nodes on loopback, driven through
prompt-toolkit (the protocol and the node's part: test_pairing*.py, test_node_pairing.py)."""

import pytest
import pytest_asyncio
from support.nodes import small_key, start
from test_repl import repl

from enclave.faces.repl import redact
from enclave.faces.repl_commands import HELP
from enclave.node.settings import Settings


@pytest_asyncio.fixture
async def strangers(tmp_path):
    a = await start(tmp_path / "a", small_key(), Settings(display_name="alice"))
    b = await start(tmp_path / "b", small_key(), Settings(display_name="bob"))
    yield a, b
    await a.stop()
    await b.stop()


@pytest.mark.asyncio
async def test_invite_on_one_repl_and_join_on_another(strangers, tmp_path):
    a, b = strangers
    async with repl(a, tmp_path / "a") as ra, repl(b, tmp_path / "b") as rb:
        out = await ra.run("/invite", "It works once and for 10 minutes")
        code = out.split("Your code: ")[1].split()[0]
        assert "▀" in out or "█" in out  # the QR code of it
        await rb.run(f"/join {code} 127.0.0.1:{a.address[1]}", "Paired with alice")
        await ra.screen.shows("paired with bob")
        await ra.run("/peers", "bob")
        assert "yes" in ra.screen.text.split("/peers")[-1]  # verified
        await ra.run("/send bob welcome", "you -> bob: welcome")
        await ra.screen.shows("to bob: delivered")


@pytest.mark.asyncio
async def test_a_wrong_code_and_mistakes_are_one_line(strangers, tmp_path):
    a, b = strangers
    async with repl(a, tmp_path / "a") as ra, repl(b, tmp_path / "b") as rb:
        out = await ra.run("/invite", "It works once")
        n, w1, w2 = out.split("Your code: ")[1].split()[0].split("-")
        guess = f"{n}-{'velvet' if w1 != 'velvet' else 'harbor'}-{w2}"
        await rb.run(f"/join {guess} 127.0.0.1:{a.address[1]}", "error: wrong code")
        await ra.screen.shows("a wrong code was tried, so this one is used up")
        await rb.run("/join", "error: usage: /join CODE [HOST:PORT]")
        await rb.run("/join 7-notaword-velvet 127.0.0.1:1", "error: a pairing code's words")
        await ra.run("/invite cancel", "no invitation is open")
        await ra.run("/invite now", "error: usage: /invite, or /invite cancel")


def test_help_lists_pairing_and_history_keeps_codes_out():
    assert "/invite" in HELP and "/join CODE [HOST:PORT]" in HELP
    assert redact("/join 7-harbor-velvet 10.0.0.2:8000") == "/join "
