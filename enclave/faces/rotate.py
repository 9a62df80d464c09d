"""``enclave rotate-key``: a new identity key, handed to every contact by a statement the
old key signs (README, "Rotating or revoking your key").

Rules:
- With a node running on this home, that node rotates (control request ``rotate_key``
  over the 0600 socket, with the password) and takes the new key over at once; without
  one, the files rotate here and the next start hands the key over.
- The password stays the same; it is asked like everywhere (``ENCLAVE_PASSWORD`` or
  ``--password-file`` in scripts). On a terminal the command asks for confirmation
  first unless ``--yes``; without one it asks nothing.
- A wrong password changes nothing. Exit 0 when rotated, 2 for a mistake.
"""

from __future__ import annotations

import sys
import time

from enclave.errors import UserError
from enclave.faces import cli, control, runner

ROTATE_WAIT = 120.0  # generating RSA-4096 and two scrypt runs, on a busy machine


def run(args) -> int:
    from enclave.identity import home, passwords

    place = home.require_identity(cli.home_of(args))
    if not args.yes and sys.stdin is not None and sys.stdin.isatty():
        answer = input(
            "Replace your identity key? Contacts switch to the new one the next time "
            "they talk to you. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            raise UserError("nothing changed")
    password = passwords.existing(
        f"Password for {place.key_path}: ", password_file=getattr(args, "password_file", None)
    )
    print("Generating a new RSA-4096 key; this takes a few seconds...", file=sys.stderr, flush=True)
    request = {"op": "rotate_key", "password": password}
    answers = control.ask(runner.control_path(place.path), request, ROTATE_WAIT)
    if answers is not None:
        _report(control.first_answer(answers), running=True)
    else:
        _report(_offline(place, password), running=False)
    return 0


def _offline(place, password: str) -> dict:
    from enclave.node import key_rotation

    done = key_rotation.rotate_home(place, password, time.time_ns() // 10**6)
    return {"old": done.old_fp, "new": done.new_fp, "seq": done.seq, "waiting": done.waiting}


def _report(done: dict, *, running: bool) -> None:
    from enclave.identity import keys

    print(f"New fingerprint: {keys.group(done['new'])}")
    print(f"(was {keys.group(done['old'], 4)}...; kept to answer contacts until they switch)")
    n = done["waiting"]
    when = "as soon as they talk to this node" if running else "when they next talk to you"
    print(f"{n} contact{'s' * (n != 1)} switch to the new key {when}, without any warning")
    print("A new revocation certificate was written; keep a copy offline")


async def serve_rotation(node, request: dict, answer) -> None:
    """The running node's side (control socket)."""
    password = request.get("password")
    if not isinstance(password, str):
        await answer({"error": "bad control request (rotate_key needs the password)"})
        return
    try:
        done = await node.rotate_key(password)
    except UserError as err:
        await answer({"error": str(err)})
        return
    await answer({"old": done.old_fp, "new": done.new_fp, "seq": done.seq, "waiting": done.waiting})


REVOKE_TIMEOUT = 5.0  # per contact address: connect, then the node's answer


def revoke(args) -> int:
    """``enclave revoke``: tell every reachable contact that the key is revoked."""
    import asyncio

    from enclave.identity import home
    from enclave.node import key_rotation

    place = cli.home_of(args)
    path = args.certificate or key_rotation.revocation_path(place)
    certificate = key_rotation.read_certificate(path)
    if not place.db_path.exists():
        raise UserError(f"no contacts in {place.path} to tell")
    home.check(place)
    if not args.yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise UserError("revoking cannot be undone; add --yes to revoke without asking")
        answer = input("Revoke this key for good? Contacts refuse it from then on. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise UserError("nothing revoked")
    key_rotation.mark_revoked(place, certificate)
    done = asyncio.run(key_rotation.send_revocation(place.db_path, certificate, REVOKE_TIMEOUT))
    if done.told:
        print(f"Told {len(done.told)} contact{'s' * (len(done.told) != 1)}: {', '.join(done.told)}")
    if done.unreachable:
        print(
            f"Not reachable now: {', '.join(done.unreachable)}; run enclave revoke again"
            " when they are online"
        )
        return 1
    return 0
