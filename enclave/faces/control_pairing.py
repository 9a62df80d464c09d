"""The running node's side of ``enclave invite`` and ``enclave join`` (control socket).

``invite``: one answer with the code at once, a last one with how it ended (the
request's connection stays open while the invitation waits; closing it cancels the
invitation). ``join``: one answer, the new contact or the reason it failed.
"""

from __future__ import annotations

import asyncio

from enclave.errors import UserError
from enclave.faces.pairing import paired_dict


async def serve_pairing(node, request: dict, answer) -> None:
    try:
        action = request.get("action")
        if action == "invite":
            await _invite(node, answer)
        elif action == "join":
            code, address = request.get("code"), request.get("address")
            if not isinstance(code, str) or not isinstance(address, str | None):
                raise UserError("bad control request (join needs code and address)")
            await answer(paired_dict(await node.join(code, address)))
        else:
            raise UserError(f"bad control request (pairing action {action!r})")
    except UserError as err:
        await answer({"error": str(err)})


async def _invite(node, answer) -> None:
    invitation = node.invite()
    try:
        await answer({"code": invitation.code, "nameplate": invitation.nameplate})
        await answer(paired_dict(await asyncio.shield(invitation.result)))
    finally:
        if not invitation.result.done():  # the command went away: nobody shows the code
            node.cancel_invite(invitation.nameplate)
