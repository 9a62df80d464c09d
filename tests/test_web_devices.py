"""Device sessions (enclave/faces/web/devices.py, signin.py): a browser kept signed in
trades its HttpOnly cookie and the PIN only its origin can read for a token of its own,
only from the page's own origin, only while the session lives (a revocation ends the
traded token at once); the command line lists and revokes them; the launch token
carries a check that tells a mistyped address from an earlier launch's."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest
from support.web_helpers import TOKEN, headers, make_app

from enclave.faces.web import devices, security
from enclave.faces.web.backend import Backend

RESUME = "/api/device/resume"


async def _no_starter(identity):
    raise AssertionError("no node starts here")


def _app(home):
    home.mkdir(mode=0o700, exist_ok=True)
    return make_app(Backend(home, _no_starter)).test_client(use_cookies=False)


def _cookie(response, home) -> str | None:
    name = devices.cookie_name(home)
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(f"{name}="):
            return header
    return None


def _value(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


async def _resume(client, home, value, pin, **changes):
    hdrs = headers(Authorization=None, **changes)
    if value is not None:
        hdrs["Cookie"] = f"{devices.cookie_name(home)}={value}"
    if pin is not None:
        hdrs["X-Enclave-Pin"] = pin
    response = await client.post(RESUME, headers=hdrs, json={})
    return response.status_code, await response.get_json()


async def _state_with(client, token) -> int:
    response = await client.get("/api/state", headers=headers(Authorization=f"Bearer {token}"))
    return response.status_code


async def _keep(client, home, cookie=None):
    hdrs = headers()
    if cookie is not None:
        hdrs["Cookie"] = f"{devices.cookie_name(home)}={cookie}"
    response = await client.post("/api/device", headers=hdrs, json={})
    return response, await response.get_json()


@pytest.mark.asyncio
async def test_a_kept_browser_gets_a_strict_cookie_and_a_pin_and_trades_both(tmp_path):
    home = tmp_path / "home"
    client = _app(home)
    response, body = await _keep(client, home)
    assert response.status_code == 200 and len(body["pin"]) >= 40
    header = _cookie(response, home)
    attrs = [a.strip().lower() for a in header.split(";")]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/api/device" in attrs
    assert any(a.startswith("max-age=") and int(a[8:]) == devices.IDLE_DAYS * 86400 for a in attrs)
    value, pin = _value(header), body["pin"]
    # The file keeps digests, never the secret or the PIN, and only its owner reads it.
    stored = (home / devices.FILE).read_text()
    assert value.split(".", 1)[1] not in stored and pin not in stored
    assert stat.S_IMODE((home / devices.FILE).stat().st_mode) == 0o600
    status, answer = await _resume(client, home, value, pin)
    assert status == 200 and answer["token"] != TOKEN  # a token of this session's own
    assert await _state_with(client, answer["token"]) == 200
    # Keeping again replaces the session: one per browser.
    again, body = await _keep(client, home, value)
    assert len(devices.Devices(home).load()) == 1
    assert (await _resume(client, home, value, pin))[0] == 401
    assert (await _resume(client, home, _value(_cookie(again, home)), body["pin"]))[0] == 200


@pytest.mark.asyncio
async def test_the_exchange_refuses_everything_but_the_signed_in_page(tmp_path):
    home = tmp_path / "home"
    client = _app(home)
    response, body = await _keep(client, home)
    value, pin = _value(_cookie(response, home)), body["pin"]
    ident, secret = value.split(".", 1)
    bad_cookies = (None, "", ident, f"{ident}.", f"{ident}.{secret[:-1]}x", f"{'0' * 32}.{secret}")
    for wrong in bad_cookies:
        status, answer = await _resume(client, home, wrong, pin)
        assert status == 401 and "token" not in answer, wrong
    # The cookie alone, as a page on another port of this host would send it: no PIN.
    for wrong_pin in (None, "", pin[:-1], "x" * len(pin)):
        status, answer = await _resume(client, home, value, wrong_pin)
        assert status == 401 and "token" not in answer, wrong_pin
    # Another site, no Origin, a rebinding Host: refused before the cookie is looked at.
    for changes in (
        {"Origin": "http://evil.example"},
        {"Origin": None},
        {"Host": "evil.example:5000"},
    ):
        status, answer = await _resume(client, home, value, pin, **changes)
        assert status == 403 and "token" not in answer, changes
    # A form post (no JSON) is refused too.
    hdrs = headers(Authorization=None)
    hdrs["Cookie"] = f"{devices.cookie_name(home)}={value}"
    hdrs["X-Enclave-Pin"] = pin
    response = await client.post(RESUME, headers=hdrs, form={"a": "b"})
    assert response.status_code == 415
    # Keeping a device needs a token; the cookie and PIN open nothing else.
    jsonish = dict(hdrs, **{"Content-Type": "application/json"})
    for method, path in (("POST", "/api/device"), ("POST", "/api/device/forget"),
                         ("POST", "/api/peers"), ("GET", "/api/state")):  # fmt: skip
        response = await client.open(path, method=method, headers=jsonish, data="{}")
        assert response.status_code == 401, path


@pytest.mark.asyncio
async def test_signing_out_and_revoking_end_the_traded_token_at_once(tmp_path):
    home = tmp_path / "home"
    client = _app(home)
    kept = []
    for _ in range(2):
        response, body = await _keep(client, home)
        value = _value(_cookie(response, home))
        token = (await _resume(client, home, value, body["pin"]))[1]["token"]
        kept.append((value, body["pin"], token))
    (first, _, first_token), (second, second_pin, second_token) = kept
    hdrs = headers(Authorization=f"Bearer {first_token}")
    hdrs["Cookie"] = f"{devices.cookie_name(home)}={first}"
    response = await client.post("/api/device/forget", headers=hdrs, json={})
    assert (await response.get_json()) == {"forgotten": True}
    assert "max-age=0" in _cookie(response, home).lower()
    assert await _state_with(client, first_token) == 401  # its traded token ended with it
    assert await _state_with(client, second_token) == 200
    # The command line, while the page runs: the next request with its token is refused.
    out = _cli(home, "web-sessions")
    assert "1 browser kept signed in" in out and second.split(".")[0][:8] in out
    out = _cli(home, "web-sessions", "--revoke", second.split(".")[0][:6])
    assert out.startswith("Signed out 1 browser:")
    assert await _state_with(client, second_token) == 401
    assert (await _resume(client, home, second, second_pin))[0] == 401
    assert await _state_with(client, TOKEN) == 200  # the launch token is the launch's
    assert "No browser is kept signed in" in _cli(home, "web-sessions")


def test_sessions_expire_unused_and_are_capped(tmp_path):
    now = [1_000_000_000_000]
    book = devices.Devices(tmp_path, clock=lambda: now[0])
    _, old, _ = book.issue("Chromium")
    now[0] += devices.IDLE_DAYS * 86_400_000 - 1
    assert book.check(old) is not None  # used just in time: the idle clock starts again
    now[0] += devices.IDLE_DAYS * 86_400_000 + 1
    assert book.check(old) is None
    values = [book.issue(f"browser {i}")[1] for i in range(devices.MAX_SESSIONS + 3)]
    live = book.load()
    assert len(live) == devices.MAX_SESSIONS
    assert book.check(values[0]) is None and book.check(values[-1]) is not None


def test_a_damaged_sessions_file_and_bad_revocations_are_one_line(tmp_path):
    (tmp_path / devices.FILE).write_text("{not json")
    assert "damaged" in _cli(tmp_path, "web-sessions", code=1)
    (tmp_path / devices.FILE).unlink()
    devices.Devices(tmp_path).issue("a\u202ebrowser\x1b[31m")
    listed = _cli(tmp_path, "web-sessions")
    assert "\x1b" not in listed and "\u202e" not in listed
    assert "at least 4" in _cli(tmp_path, "web-sessions", "--revoke", "ab", code=1)
    assert "no web session" in _cli(tmp_path, "web-sessions", "--revoke", "ffffffff", code=1)
    assert _cli(tmp_path, "web-sessions", "--revoke-all").startswith("Signed out 1 browser:")
    assert json.loads((tmp_path / devices.FILE).read_text())["sessions"] == []


def test_homes_on_one_machine_use_different_cookies(tmp_path):
    # Cookies ignore ports: two homes' pages on one host must not share one.
    assert devices.cookie_name(tmp_path / "a") != devices.cookie_name(tmp_path / "b")
    assert devices.cookie_name(tmp_path / "a") == devices.cookie_name(tmp_path / "a")


def test_a_token_carries_a_check_that_catches_typing_mistakes():
    token = security.new_token()
    body, check = token[:-3], token[-3:]
    assert security.token_check(body) == check and len(body) >= 43
    swapped = (
        body[1] + body[0] + body[2:] if body[0] != body[1] else body[:-2] + body[-1] + body[-2]
    )
    for wrong in (
        body[:-1],
        body[1:],
        "x" + body[1:] if body[0] != "x" else "y" + body[1:],
        swapped,
    ):
        assert security.token_check(wrong) != check


def _cli(home, *argv, code=0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "enclave", "--home", str(home), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == (2 if code else 0), done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout if code == 0 else done.stderr
