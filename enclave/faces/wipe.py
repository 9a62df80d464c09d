"""``enclave wipe``: erase this home's identity, store and settings for good.

Rules:
- Refused while a node runs on the home (stop it first: its files are open).
- On a terminal it asks the user to type ``wipe``; without one it needs ``--yes``.
- It says what went and that received files stay (``identity.wipe``).
"""

from __future__ import annotations

import sys

from enclave.errors import UserError
from enclave.faces import cli, runner


def run(args) -> int:
    from enclave.identity import wipe

    place = cli.home_of(args)
    if not place.path.exists():
        raise UserError(f"nothing to wipe: {place.path} does not exist")
    if runner.node_running(place.path):
        raise UserError("a node is running on this home; stop it first (Ctrl-D, /quit or SIGTERM)")
    if not args.yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise UserError("wiping cannot be undone; add --yes to wipe without asking")
        answer = input(
            f"This erases your identity, contacts and every message in {place.path}."
            " Type wipe to go on: "
        )
        if answer.strip() != "wipe":
            raise UserError("nothing wiped")
    removed = wipe.wipe(place)
    print(f"Wiped {place.path}: {', '.join(removed) if removed else 'nothing was there'}")
    kept = [name for name in wipe.KEPT if (place.path / name).exists()]
    if kept:
        print(f"Kept your received files: {', '.join(str(place.path / k) for k in kept)}")
    return 0
