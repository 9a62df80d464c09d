"""The page's pairing routes: open an invitation (its code and the code's QR), cancel
it, and join someone else's.

Rules:
- Only the Node's pairing calls are used (``invite``, ``cancel_invite``, ``join``);
  a mistake is their one-line UserError, answered 400 like every other.
- How an invitation ends reaches every open page as a "paired" socket message
  (``views.event``), whichever face opened it.
- The code goes to the page that asked for it and nowhere else: not in a log, not on
  the socket.
"""

from __future__ import annotations

from quart import Quart

from enclave.faces.web import views

MAX_CODE = 64  # a code is a number and two short words; anything longer is no code
MAX_ADDRESS = 270


def pairing_routes(app: Quart, backend, api_error, body) -> None:
    @app.post("/api/invite")
    async def pairing_invite():
        invitation = backend.node.invite()
        return {
            "code": invitation.code,
            "nameplate": invitation.nameplate,
            "qr": views.qr_rows(invitation.code),
            "lifetime": 600,
        }

    @app.delete("/api/invite/<int:nameplate>")
    async def pairing_cancel(nameplate: int):
        return {"cancelled": backend.node.cancel_invite(nameplate)}

    @app.post("/api/join")
    async def pairing_join():
        data = await body()
        code, address = data.get("code"), data.get("address")
        if not isinstance(code, str) or not 0 < len(code) <= MAX_CODE:
            raise api_error(400, "'code' must be the code you were given")
        if address in ("", None):
            address = None  # found on the LAN by the code's number
        elif not isinstance(address, str) or len(address) > MAX_ADDRESS:
            raise api_error(400, "'address' must be the inviter's HOST:PORT, or empty")
        result = await backend.node.join(code, address)
        return {"fingerprint": result.fingerprint, "name": result.name}
