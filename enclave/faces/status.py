"""``enclave`` (``enclave status``) and ``enclave settings``: what is here, what is in effect.

Rules:
- Nothing here asks for a password or writes a file: the status reads the public key,
  counts the contacts in the store and asks the control socket whether a node runs.
  A home that does not exist yet stays that way.
- Every command suggested works as printed for the home in use (``Home.command``).
- ``enclave settings`` prints the configuration a node started now would use
  (defaults, ``enclave.toml``, ``--set``) as an ``enclave.toml`` would hold it.
"""

from __future__ import annotations

import json

from enclave.faces import cli, runner

NEXT_WITH_PEERS = (
    ("listen", "chat in the terminal"),
    ("web", "chat in the browser"),
    ("send PEER MESSAGE", "send one message"),
    ("peers", "list your peers"),
)
NEXT_WITHOUT_PEERS = (
    ("public-key > my-key.pem", "write your public key to give to a peer"),
    ("add FILE --address HOST:PORT --name NAME", "add a peer from its public key"),
    ("listen", "start your node"),
)


def status(args) -> int:
    from enclave.identity import home

    place = cli.home_of(args)
    if not place.has_identity():
        print(f"No Enclave identity in {place.path} yet.")
        print(f"Create one: {place.command('generate')}")
        return 0
    home.check(place)
    _print_status(place)
    return 0


def _print_status(place) -> None:
    from enclave.identity import keys

    identity = keys.read_public_identity(place)
    contacts = _count_contacts(place)
    running = runner.node_running(place.path)
    print(f"Enclave identity in {place.path}")
    print(f"Fingerprint: {keys.group(identity.fingerprint)}")
    print(f"Contacts:    {contacts}")
    print(f"Node:        {'running on this home' if running else 'not running'}")
    print("Next:")
    steps = NEXT_WITH_PEERS if contacts else NEXT_WITHOUT_PEERS
    if running:
        steps = tuple(step for step in steps if step[0] not in ("listen", "web"))
    commands = [place.command(words) for words, _ in steps] + ["enclave --help"]
    width = max(len(command) for command in commands) + 2
    for command, (_, what) in zip(commands, [*steps, ("", "every command")], strict=True):
        print(f"  {command.ljust(width)}{what}")


def _count_contacts(place) -> int:
    if not place.db_path.exists():
        return 0
    from enclave.node.book import open_book

    with open_book(place.db_path) as book:
        return len(book.contacts())


def settings(args) -> int:
    from enclave.node import settings as knobs

    place = cli.home_of(args)
    config = knobs.load(place.path, knobs.overrides_from(args))
    print(f"# settings in effect for {place.path} ({config.source})")
    for name in knobs.KNOBS:
        print(f"{name} = {_toml(getattr(config, name))}")
    return 0


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)
