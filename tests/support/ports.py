"""Ports for test nodes to listen on, picked below the kernel's ephemeral range.

A port the kernel picks (a bind to port 0) comes from the ephemeral range, which it
also gives out as the local port of outgoing connections. Between the pick and the
node's own bind, another node's outgoing connection may take it, and the node then
fails with "address already in use". That happened to a browser test's node, whose
port was picked before two other nodes started dialling. The kernel never gives a
port below the range to an outgoing connection, so a port from there stays free
unless something binds it on purpose.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_SPAN = 12_000  # ports below the ephemeral range to choose from
_pick = random.SystemRandom()  # no shared seed: processes running side by side differ


def _ephemeral_start() -> int:
    try:
        return int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def listen_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to now on ``host``, below the ephemeral range (or, on a
    machine whose range leaves no room below it, one the kernel picks)."""
    top = _ephemeral_start()
    low = max(1024, top - _SPAN)
    for _ in range(100 if top - low >= 1000 else 0):  # bounded: most ports are free
        port = _pick.randrange(low, top)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
