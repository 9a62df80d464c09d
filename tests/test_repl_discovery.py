"""``/nearby`` in the REPL and ``enclave nearby`` through a running node's control socket:
contacts by name, other fingerprints as unknown, and the state when discovery is off."""

from __future__ import annotations

import asyncio
import time

import pytest
import test_repl
from test_repl import repl

from enclave.faces import cli, runner
from enclave.node.discovery import Discovery

pair = test_repl.pair  # the fixture, used by name
STRANGER = "cd" * 32


def hear(node, peers: dict[str, str]) -> None:
    """Put announcements in the node's table as its listener would (fp -> address)."""
    node.discovery = Discovery(
        node.fingerprint, "127.0.0.1", node.address[1], node._publish, node._heard
    )
    node.discovery.state = "on"
    for fp, host in peers.items():
        props = {b"v": b"1", b"fp": fp.encode(), b"inv": b"7"}
        node.discovery.table.observe(f"s-{fp[:8]}", props, [host], 7000, time.time())


@pytest.mark.asyncio
async def test_nearby_in_the_repl(pair, tmp_path):
    a, b = pair
    async with repl(a, tmp_path) as r:
        await r.run("/nearby", "LAN discovery is off: listening on loopback only")
        hear(a, {b.fingerprint: "10.0.0.2", STRANGER: "10.0.0.3"})
        out = await r.run("/nearby", "Enclave nodes on the LAN")
        assert "bob  at 10.0.0.2:7000" in out
        assert "unknown (not a contact)  at 10.0.0.3:7000  invites 7" in out
        await r.run("/nearby x", "error: usage: /nearby")
    assert a.contact(STRANGER) is None  # listed, never stored
    a.discovery = None


@pytest.mark.asyncio
async def test_enclave_nearby_asks_the_running_node(pair, capsys):
    a, b = pair
    hear(a, {STRANGER: "10.0.0.3"})
    control = await runner.start_control(a, runner.control_path(a.home))
    try:
        code = await asyncio.to_thread(cli.main, ["--home", str(a.home), "nearby"])
    finally:
        control.close()
        a.discovery = None
    out = capsys.readouterr().out
    assert code == 0 and "unknown (not a contact)  at 10.0.0.3:7000" in out, out
