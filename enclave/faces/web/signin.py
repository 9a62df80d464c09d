"""The page's device-session routes (devices.py says why and how they are safe).

- ``POST /api/device`` (with the launch token): keep this browser signed in; sets the
  device cookie unless the request already carries a live one.
- ``POST /api/device/resume`` (no token; the cookie, a JSON body and this page's
  Origin): the current launch token, for a bookmark or a tab left open over a restart.
- ``POST /api/device/forget`` (with the token): sign this browser out; its session
  ends and the cookie is cleared.
"""

from __future__ import annotations

from quart import Quart, make_response, request

from enclave.faces.web.devices import COOKIE_PATH, IDLE_DAYS, Devices, cookie_name
from enclave.identity import home as homes

RESUME = f"{COOKIE_PATH}/resume"  # the one /api route the token does not guard


def device_routes(app: Quart, backend, guard, api_error, body) -> None:
    devices = Devices(backend.place.path)
    name = cookie_name(backend.place.path)

    def held():
        return devices.check(request.cookies.get(name))

    @app.post(COOKIE_PATH)
    async def device_keep():
        await body()
        found = held()
        if found is not None:
            return {"device": found.id, "new": False}
        homes.prepare(backend.place)  # a first launch, before setup, may have no folder yet
        device, value = devices.issue(request.headers.get("User-Agent", ""))
        response = await make_response({"device": device.id, "new": True})
        _set(response, name, value, guard.scheme == "https")
        return response

    @app.post(RESUME)
    async def device_resume():
        # The guard let this through without a token: the Origin is required here (a
        # browser always sends it on a POST), not merely checked when present.
        if not guard.origin_ok(request.headers.get("Origin"), request.headers.get("Host")):
            raise api_error(403, "request from another site refused (Origin)")
        await body()
        if held() is None:
            raise api_error(401, "this browser is not signed in to this Enclave")
        return {"token": guard.token}

    @app.post(f"{COOKIE_PATH}/forget")
    async def device_forget():
        await body()
        found = held()
        if found is not None:
            devices.revoke(found.id)
        response = await make_response({"forgotten": found is not None})
        _set(response, name, "", guard.scheme == "https", max_age=0)
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
