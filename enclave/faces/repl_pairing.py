"""The REPL's pairing commands: ``/invite`` and ``/join CODE [HOST:PORT]``.

Rules:
- ``/join CODE`` alone finds the inviter on the LAN (its announcement names the
  code's number); with HOST:PORT it goes there.
- ``/invite`` shows the code at once, with a QR code of it, and leaves the prompt free:
  how the invitation ends (a new verified contact, or why not) comes as a line of its
  own when it happens (``render_ended``). ``/invite cancel`` ends the open ones.
- ``/join`` waits for the exchange (seconds at most) and says what it added.
- The code is shown once, to the person who made it, and never written to a log.
"""

from __future__ import annotations

from enclave.errors import UserError
from enclave.faces.repl_contacts import terminal_qr
from enclave.identity import keys
from enclave.node import PairingEnded, parse_code
from enclave.node.display import visible

HELP = """\
  /invite [cancel]       a short code: who joins with it becomes a verified contact
  /join CODE [HOST:PORT] join the invitation of whoever read you CODE (found on the
                         LAN, or at HOST:PORT)                /join 7-harbor-velvet"""

_WHY = {
    "wrong_code": "a wrong code was tried, so this one is used up; /invite again",
    "expired": "nobody joined within 10 minutes",
    "cancelled": "cancelled",
    "interrupted": "the other side stopped half-way; the code is used up, /invite again",
}


async def cmd_invite(commands, rest: str) -> None:
    if rest == "cancel":
        ended = [i.nameplate for i in commands.node.invitations()]
        for nameplate in ended:
            commands.node.cancel_invite(nameplate)
        if not ended:
            commands.write("no invitation is open")
        return
    if rest:
        raise UserError("usage: /invite, or /invite cancel")
    invitation = commands.node.invite()
    commands.write(
        f"Your code: {invitation.code}\n"
        + terminal_qr(invitation.code)
        + "Read it to the other person (not in writing where others see it); they run\n"
        f"  /join {invitation.code}   (on this network; from elsewhere add your HOST:PORT)\n"
        "It works once and for 10 minutes; you will see here when they have joined."
    )


async def cmd_join(commands, rest: str) -> None:
    parts = rest.split()
    if len(parts) not in (1, 2):
        raise UserError("usage: /join CODE [HOST:PORT] (the code the inviter read you)")
    parse_code(parts[0])
    if len(parts) == 1:
        commands.write("Looking for the inviter on this network…")
    result = await commands.node.join(parts[0], parts[1] if len(parts) == 2 else None)
    commands.write(f"Paired with {_label(result)}: added as a verified contact")


def render_ended(event: PairingEnded, clock: str) -> str:
    result = event.result
    if result.reason is None:
        return f"[{clock}] paired with {_label(result)}: added as a verified contact"
    return f"[{clock}] your invitation ended: {_WHY.get(result.reason, result.reason)}"


def _label(result) -> str:
    fp = keys.group(result.fingerprint, 4)
    return f"{visible(result.name, False)} ({fp})" if result.name else fp


HANDLERS = {"/invite": cmd_invite, "/join": cmd_join}
