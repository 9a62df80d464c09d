"""``enclave nearby`` and the REPL's ``/nearby``: the nodes LAN discovery heard lately.

Rules:
- With a node running on the home, it is asked (control request ``{"op": "nearby"}``,
  answered by ``serve``); without one, the command listens ``LISTEN_SECONDS`` itself.
- A contact is shown by its name; any other fingerprint as "unknown": listed, never
  trusted (pairing or ``enclave add`` makes a contact). With no node running, naming a
  contact that was heard takes the password (names are sealed in the store); nothing
  heard, or no contact among it, asks nothing.
- Discovery that is off or blocked is said in one line.
"""

from __future__ import annotations

from enclave.identity import keys
from enclave.node.display import visible

LISTEN_SECONDS = 3.0
HELP = "  /nearby                Enclave nodes heard on the LAN (contacts and unknown)"


def entry_dict(n) -> dict:
    return {"fp": n.fingerprint, "addresses": list(n.addresses), "contact": n.contact,
            "known": n.known, "invites": list(n.invites), "last_seen": n.last_seen}  # fmt: skip


def lines(entries: list[dict], state: str) -> list[str]:
    """What a person reads: one line per node, or why there are none."""
    if state == "blocked":
        return ["LAN discovery is off: multicast is blocked here; explicit addresses still work"]
    if state.startswith("off"):
        return [f"LAN discovery is {state}"]
    if not entries:
        return ["No Enclave node heard on the LAN yet"]
    shown = []
    for e in entries:
        who = visible(e["contact"], False) if e["contact"] else "unknown (not a contact)"
        if e["known"] and not e["contact"]:
            who = "contact"
        invites = f"  invites {','.join(map(str, e['invites']))}" if e["invites"] else ""
        where = ", ".join(e["addresses"])
        shown.append(f"  {keys.group(e['fp'], 4)}  {who}  at {where}{invites}")
    return ["Enclave nodes on the LAN:", *shown]


async def serve(node, answer) -> None:
    await answer({"state": node.discovery_state, "nearby": [entry_dict(n) for n in node.nearby()]})


async def cmd_nearby(commands, rest: str) -> None:
    from enclave.errors import UserError

    if rest:
        raise UserError("usage: /nearby")
    node = commands.node
    for line in lines([entry_dict(n) for n in node.nearby()], node.discovery_state):
        commands.write(line)


HANDLERS = {"/nearby": cmd_nearby}


def run(args) -> int:
    from enclave.faces import cli, control, runner
    from enclave.identity import home

    place = cli.home_of(args)
    answers = control.ask(runner.control_path(place.path), {"op": "nearby"})
    if answers is not None:
        first = control.first_answer(answers)
        entries, state = first["nearby"], first["state"]
    else:
        entries, state = _listen(args, place, home), "on"
    print("\n".join(lines(entries, state)))
    return 0


def _listen(args, place, home) -> list[dict]:
    """No node: listen a few seconds here, and name the contacts from the store."""
    import asyncio

    from enclave.node import browse_nearby

    own = ""
    if place.path.exists() and place.has_identity():
        own = keys.read_public_identity(place).fingerprint
    heard = asyncio.run(browse_nearby(LISTEN_SECONDS, own))
    names = _contact_names(args, place, home, {n.fingerprint for n in heard})
    return [
        entry_dict(n) | {"contact": names.get(n.fingerprint), "known": n.fingerprint in names}
        for n in heard
    ]


def _contact_names(args, place, home, heard: set[str]) -> dict:
    if not heard or not place.db_path.exists():
        return {}
    home.check(place)
    from enclave.faces import cli
    from enclave.node.book import open_book

    with open_book(place.db_path) as book:
        contacts, locked = book.contacts(), book.locked
    if locked and any(p.fingerprint in heard for p in contacts):  # sealed names
        with open_book(place.db_path, store_key=cli.store_key(args)) as book:
            contacts = book.contacts()
    return {p.fingerprint: p.name for p in contacts}
