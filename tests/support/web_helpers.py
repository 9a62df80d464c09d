"""Quart test-client helpers for the web face: apps over real in-process nodes."""

from __future__ import annotations

import json

from enclave.faces.web import security
from enclave.faces.web.app import create_app
from enclave.faces.web.backend import Backend

TOKEN = "test-token-0123456789abcdefghijklmnopqrstuvwxyz"
PORT = 5000
HOST = f"127.0.0.1:{PORT}"
ORIGIN = f"http://{HOST}"
GOOD = {"Host": HOST, "Origin": ORIGIN, "Authorization": f"Bearer {TOKEN}"}
WS_PROTOCOLS = [security.SUBPROTOCOL, security.TOKEN_PREFIX + TOKEN]


def make_app(backend: Backend):
    return create_app(backend, security.Guard(TOKEN, PORT))


def headers(**changes) -> dict:
    """The page's own headers with some changed (None drops one)."""
    out = dict(GOOD)
    for key, value in changes.items():
        key = key.replace("_", "-").title()
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def socket(client, *, protocols=None, **changes):
    wanted = WS_PROTOCOLS if protocols is None else protocols
    return client.websocket(
        "/ws", headers=headers(Authorization=None, **changes), scope_base={"subprotocols": wanted}
    )


async def next_event(ws, kind: str, limit: int = 200) -> dict:
    """The next event of ``kind`` (events of other kinds are skipped; bounded)."""
    for _ in range(limit):
        event = json.loads(await ws.receive())
        if event["type"] == kind:
            return event
    raise AssertionError(f"no {kind!r} event in {limit} events")
