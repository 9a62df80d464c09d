"""``enclave invite`` and ``enclave join CODE``: pairing by short code from the
command line (README, "Pairing by code").

Rules:
- With a node running on this home, the command is the node's (control socket,
  ``control_pairing``); without one, the command starts a node for the duration on
  ``--port`` (default: the home's listening port) and stops it afterwards.
- ``invite`` prints the code at once (flushed: a script reads it while the command
  waits), then waits up to 10 minutes for the joiner and says how it ended.
- ``join`` finds the inviter on the LAN by the code's number (discovery) unless
  ``--peer-address`` names it, and puts this node's listening port in its card, so either side may write first
  afterwards. A code that is not a code at all is refused before anything starts; a
  wrong one is only known by trying it against the inviter, which burns it.
- Exit 0 when the contact was added (verified), 1 when the pairing failed, 2 for a
  mistake. The code appears nowhere but on the inviter's screen.
"""

from __future__ import annotations

import asyncio

from enclave.errors import UserError
from enclave.faces import cli, control, runner
from enclave.identity import keys

INVITE_WAIT = 11 * 60.0  # an invitation lives 10 minutes; the answer comes within that


def invite(args) -> int:
    place = cli.home_of(args)
    from enclave.identity import home

    home.require_identity(place)
    request = {"op": "pairing", "action": "invite"}
    answers = control.ask(runner.control_path(place.path), request, INVITE_WAIT, each=_show_code)
    if answers is None:
        return runner.run(args, _invite_face, interactive=False)
    control.first_answer(answers)
    return _ended(answers[-1])


def join(args) -> int:
    from enclave.node import parse_code

    parse_code(args.code)  # a mistake is told before any password is asked
    address = _address(args)
    place = cli.home_of(args)
    from enclave.identity import home

    home.require_identity(place)
    request = {"op": "pairing", "action": "join", "code": args.code, "address": address}
    answers = control.ask(runner.control_path(place.path), request, 30.0)
    if answers is None:
        return runner.run(args, _join_face(args.code, address), interactive=False)
    return _ended(control.first_answer(answers))


def _address(args) -> str | None:
    """The inviter's address as given, or None: found on the LAN by its code's number."""
    if not args.peer_address:
        return None
    from enclave.node.addresses import parse_address

    return str(parse_address(args.peer_address))


async def _invite_face(node, stop: asyncio.Event) -> int:
    invitation = node.invite()
    _show_code({"code": invitation.code})
    result = await invitation.result
    return _ended(paired_dict(result))


def _join_face(code: str, address: str):
    async def face(node, stop: asyncio.Event) -> int:
        try:
            result = await node.join(code, address)
        except UserError as err:
            return _ended({"reason": str(err)})
        return _ended(paired_dict(result))

    return face


def paired_dict(result) -> dict:
    if result.reason is not None:
        return {"reason": result.reason}
    return {"fingerprint": result.fingerprint, "name": result.name}


def _show_code(answer: dict) -> None:
    if "code" in answer:
        print(f"Your code: {answer['code']}", flush=True)
        print(
            "Read it to the other person; they run: enclave join CODE (on this LAN), or "
            "enclave join CODE --peer-address HOST:PORT (waiting up to 10 minutes, Ctrl-C to cancel)",
            flush=True,
        )


_REASONS = {
    "wrong_code": "wrong code: the invitation is used up; make a new one with enclave invite",
    "expired": "the invitation expired after 10 minutes; make a new one with enclave invite",
    "cancelled": "the invitation was cancelled",
    "interrupted": "the other side stopped half-way; the code is used up, make a new one",
}


def _ended(answer: dict) -> int:
    if "error" in answer:
        raise UserError(str(answer["error"]))
    if answer.get("reason"):
        print(f"Pairing failed: {_REASONS.get(answer['reason'], answer['reason'])}", flush=True)
        return 1
    label = answer.get("name") or keys.group(answer["fingerprint"], 4)
    print(
        f"Paired with {label} ({keys.group(answer['fingerprint'], 4)}): added as a verified contact"
    )
    return 0
