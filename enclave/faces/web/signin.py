"""The page's device-session routes (devices.py says why and how they are safe).

- ``POST /api/device`` (with a token): keep this browser signed in, the user's choice;
  sets the device cookie and answers the PIN the page keeps in its localStorage.
- ``POST /api/device/resume`` (no token; the cookie, the PIN header, a JSON body and this
  page's Origin): a token of this session's own, for a bookmark or a tab left open over
  a restart; the cookie is renewed (its 30 days count from the last use).
- ``POST /api/device/forget`` (with a token): sign this browser out; its session and
  every token it traded end, and the cookie is cleared.

``Sessions.token_ok`` is what the guard asks besides the launch token: a token traded
by a session that still lives. The sessions file is re-read whenever it changes, so a
revocation from the command line holds on the next request.
"""

from __future__ import annotations

import secrets

from quart import Quart, make_response, request

from enclave.faces.web.devices import COOKIE_PATH, IDLE_DAYS, Devices, cookie_name
from enclave.identity import home as homes

RESUME = f"{COOKIE_PATH}/resume"  # the one /api route the token does not guard
PIN_HEADER = "X-Enclave-Pin"
MAX_TRADED = 64  # tokens a running page keeps for signed-in browsers (the oldest go)


class Sessions:
    """The tokens traded by device sessions, valid while their session lives."""

    def __init__(self, devices: Devices) -> None:
        self.devices = devices
        self.traded: dict[str, str] = {}  # token -> device id
        self._stamp: tuple | None = None
        self._live: set[str] = set()

    def trade(self, device_id: str) -> str:
        token = secrets.token_urlsafe(32)
        self.traded[token] = device_id
        while len(self.traded) > MAX_TRADED:
            self.traded.pop(next(iter(self.traded)))
        return token

    def end(self, device_id: str) -> None:
        for token in [t for t, d in self.traded.items() if d == device_id]:
            del self.traded[token]

    def token_ok(self, given: str) -> bool:
        if not self.traded:
            return False
        want = given.encode()
        device = next(
            (d for t, d in self.traded.items() if secrets.compare_digest(t.encode(), want)), None
        )
        return device is not None and device in self._live_ids()

    def _live_ids(self) -> set[str]:
        try:
            st = self.devices.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None  # no file: nobody is signed in
        if stamp != self._stamp:
            self._stamp = stamp
            self._live = self.devices.live_ids() if stamp is not None else set()
        return self._live


def device_routes(app: Quart, backend, guard, api_error, body) -> None:
    devices = Devices(backend.place.path)
    sessions = Sessions(devices)
    guard.also_ok = sessions.token_ok
    name = cookie_name(backend.place.path)
    secure = guard.scheme == "https"

    @app.post(COOKIE_PATH)
    async def device_keep():
        await body()
        homes.prepare(backend.place)  # a first launch, before setup, may have no folder yet
        known = devices.check(request.cookies.get(name))
        if known is not None:  # a browser keeps one session: the old one goes
            devices.revoke(known.id)
            sessions.end(known.id)
        device, value, pin = devices.issue(request.headers.get("User-Agent", ""))
        response = await make_response({"device": device.id, "pin": pin})
        _set(response, name, value, secure)
        return response

    @app.post(RESUME)
    async def device_resume():
        # The guard let this through without a token: the Origin is required here (a
        # browser always sends it on a POST), not merely checked when present.
        if not guard.origin_ok(request.headers.get("Origin"), request.headers.get("Host")):
            raise api_error(403, "request from another site refused (Origin)")
        await body()
        value = request.cookies.get(name)
        found = devices.check(value, request.headers.get(PIN_HEADER) or "")
        if found is None:
            raise api_error(401, "this browser is not signed in to this Enclave")
        response = await make_response({"token": sessions.trade(found.id)})
        _set(response, name, value, secure)  # renewed: 30 days from this use
        return response

    @app.post(f"{COOKIE_PATH}/forget")
    async def device_forget():
        await body()
        found = devices.check(request.cookies.get(name))
        if found is not None:
            devices.revoke(found.id)
            sessions.end(found.id)
        response = await make_response({"forgotten": found is not None})
        _set(response, name, "", secure, max_age=0)
        return response


def _set(response, name: str, value: str, secure: bool, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=IDLE_DAYS * 86400 if max_age is None else max_age,
        path=COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="Strict",
    )
