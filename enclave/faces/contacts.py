"""``enclave add / rename / block / unblock / remove / clear / receipts / keep-history``:
the address book from the command line.

Rules:
- If a node runs on this home folder, the change is made by that node (its control
  socket, ``faces.control``): its sessions close or open, its queues follow and its
  REPL and page show the change. If none runs, the store is changed directly.
- ``remove`` deletes the contact's history and what is still owed to it, so it asks
  first (saying how many undelivered messages go), unless ``--yes``. Without a terminal
  to ask on and without ``--yes`` it refuses, and nothing changes.
- With a node running, no password is needed: the node has the store key. With none,
  each command asks it once (``ENCLAVE_PASSWORD`` or ``--password-file`` in scripts):
  contact names are sealed in the store (docs/STORE.md), and every command here
  matches or shows one.
- ``add`` (``--add-peer``) checks the key file and the address before it asks anyone;
  a refused downgrade says how to force it.
"""

from __future__ import annotations

import shlex
import sys

from enclave.errors import UserError
from enclave.faces import cli, control, runner
from enclave.identity import keys

MAX_PEER_KEY_BYTES = 64 * 1024


def add(args) -> int:
    from enclave.identity import home

    if args.peer_address is None:
        raise UserError("--add-peer needs --peer-address HOST:PORT, e.g. 192.168.1.100:8000")
    if args.force and args.protocol != "v1":
        raise UserError(
            "--force with --add-peer only forces --protocol v1 onto a peer that has spoken v2"
        )
    data = home.read_file(cli.path_of(args.add_peer), "peer key", MAX_PEER_KEY_BYTES)
    request = {
        "op": "contact",
        "action": "add",
        "peer": "",
        "text": args.name or "",
        "pem": data.decode("utf-8", "replace"),
        "address": args.peer_address,
        "protocol": args.protocol,
        "force": bool(args.force),
        "source": args.add_peer,
    }
    answers = control.ask(runner.control_path(_place(args).path), request)
    if answers is not None and answers and answers[0].get("downgrade"):
        raise UserError(
            f"{answers[0]['error']}; only if it went back to the original client, add --force"
        )
    done = control.first_answer(answers) if answers is not None else _add_in_store(args, data)
    _say_added(done)
    return 0


def _add_in_store(args, data: bytes) -> dict:
    from enclave.node.book import DowngradeRefused, check_addition, open_book

    place = _place(args)
    own = keys.read_public_identity(place)
    # A mistake is told before the password is asked (the name is sealed: it needs it).
    check_addition(own.fingerprint, data, args.peer_address, args.name, args.add_peer)
    with open_book(place.db_path, own.fingerprint, cli.store_key(args)) as book:
        try:
            done = book.add(
                data,
                args.peer_address,
                args.name,
                args.protocol,
                force=args.force,
                source=args.add_peer,
            )
        except DowngradeRefused as err:
            raise UserError(
                f"{err}; only if it went back to the original client, add --force"
            ) from None
    return done.summary()


def _say_added(done: dict) -> None:
    if done.get("weak"):
        print(f"enclave: warning: {done['weak']}", file=sys.stderr)
    label = done.get("name") or keys.group(done["peer"], 2)
    print(f"{'Added' if done.get('added') else 'Updated'} peer {label} at {done.get('address')}")
    if done.get("downgraded"):
        print(
            f"enclave: warning: {label} had spoken Enclave's own protocol (v2); it is now sent "
            "legacy v1, which its node refuses if it still runs Enclave",
            file=sys.stderr,
        )
    if done.get("proto") == "v1":
        print("Marked legacy (v1): messages to it are not forward-secret and are never confirmed.")
    print(f"Fingerprint: {keys.group(done['peer'])}")
    if done.get("added"):
        print(
            "Compare this fingerprint with your peer over a channel you trust before relying on it."
        )


def rename(args) -> int:
    from enclave.node import check_name

    check_name(args.new_name)  # a mistake is told before the password is asked
    done = _change(args, "rename", args.new_name)
    print(f"Renamed {args.peer} to {done['name']}")
    return 0


def block(args) -> int:
    done = _change(args, "block")
    label = _label(done)
    print(
        f"Blocked {label}: its connections and messages are refused until "
        f"{_place(args).command('unblock', label)}; messages queued for it wait"
    )
    return 0


def receipts(args) -> int:
    on = args.choice == "on"
    done = _change(args, "receipts_on" if on else "receipts_off")
    if on:
        print(
            f"Read receipts with {_label(done)} are on: it learns what you read, and you what "
            "it read, once it allows them too"
        )
    else:
        print(f"Read receipts with {_label(done)} are off: neither side learns what the other read")
    return 0


def keep_history(args) -> int:
    """``enclave keep-history PEER on|off``: history off keeps nothing new of the
    conversation on this device (the contact is not told); what is kept stays."""
    on = args.choice == "on"
    done = _change(args, "history_on" if on else "history_off")
    who = _label(done)
    if on:
        print(f"History with {who} is on: new messages are kept")
    else:
        print(
            f"History with {who} is off: new messages are shown, then kept nowhere on this "
            f"device ({who} is not told). What is kept stays: {_place(args).command('clear', shlex.quote(who))}"
            " erases it"
        )
    return 0


def unblock(args) -> int:
    done = _change(args, "unblock")
    print(f"Unblocked {_label(done)}; messages queued for it go out when it is reachable")
    return 0


def remove(args) -> int:
    owed = _change(args, "owed")["owed"]
    if not args.yes:
        _confirm(args.peer, owed)
    done = _change(args, "remove")
    print(f"Removed {_label(done)} with its history" + (f" and {owed} undelivered" if owed else ""))
    return 0


def clear(args) -> int:
    """``enclave clear PEER``: erase the history with a contact on this device."""
    owed = _change(args, "owed")["owed"]
    if not args.yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise UserError(
                f"clearing erases your history with {args.peer}; add --yes to clear it without asking"
            )
        extra = f" and {owed} undelivered message{'s' * (owed != 1)}" if owed else ""
        answer = input(f"Erase your history with {args.peer}{extra} on this device? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise UserError("nothing erased")
    done = _change(args, "clear")
    print(f"Erased your history with {_label(done)} on this device (they keep theirs)")
    return 0


def _confirm(peer: str, owed: int) -> None:
    what = (
        f"its history and {owed} undelivered message{'s' * (owed != 1)}" if owed else "its history"
    )
    if sys.stdin is None or not sys.stdin.isatty():
        raise UserError(f"removing {peer} deletes {what}; add --yes to remove it without asking")
    answer = input(f"Remove {peer}? This deletes {what}. [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UserError("nothing removed")


def _change(args, action: str, name: str | None = None) -> dict:
    """Make the change through the running node, or in the store when none runs."""
    place = _place(args)
    request = {"op": "contact", "action": action, "peer": args.peer, "text": name or ""}
    answers = control.ask(runner.control_path(place.path), request)
    if answers is not None:
        return control.first_answer(answers)
    return _in_store(args, place, action, name)


def _in_store(args, place, action: str, name: str | None) -> dict:
    from enclave.identity import home
    from enclave.node.book import open_book

    if not place.db_path.exists():
        raise UserError(f"no peers yet; add one: {cli.add_peer_hint(place)}")
    home.check(place)
    peer = args.peer
    with open_book(place.db_path, store_key=cli.store_key(args)) as book:
        if action == "owed":
            return {"owed": book.owed(peer)}
        changes = {
            "rename": lambda: book.rename(peer, name),
            "block": lambda: book.block(peer, True),
            "unblock": lambda: book.block(peer, False),
            "remove": lambda: book.remove(peer),
            "clear": lambda: book.clear(peer),
            "receipts_on": lambda: book.receipts(peer, True),
            "receipts_off": lambda: book.receipts(peer, False),
            "history_on": lambda: book.keep_history(peer, True),
            "history_off": lambda: book.keep_history(peer, False),
        }
        done = changes[action]()
    return {"peer": done.fingerprint, "name": done.name}


def _place(args):
    return cli.home_of(args)


def _label(done: dict) -> str:
    return done.get("name") or keys.group(done["peer"], 4)
