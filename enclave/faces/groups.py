"""``enclave group create|add|remove|promote|rename|disappear|leave|list|send``: group
chat from the command line.

Rules:
- If a node runs on this home folder, the command is the node's (its control socket,
  ``control_groups``): changes are signed with the unlocked identity and reach the
  members at once; ``send`` waits a few seconds to report how many copies were
  delivered, like ``enclave send``.
- With no node: ``list`` reads the store (each log checked whole; the password is
  asked when a group holds a contact, whose name is sealed), ``send`` leaves the
  post in the outbox for the next ``enclave listen``, as ``enclave send`` does. A
  change (create, add, remove, leave) is signed by the identity key, so it needs the
  running node: the command says how to start one. ``disappear`` (an admin's timer)
  is signed here with the unlocked key, which takes the password; the members hear
  of it when the node runs.
- Mistakes are one line, exit 2, and nothing changes.
"""

from __future__ import annotations

from enclave.errors import UserError
from enclave.faces import cli, control, runner
from enclave.identity import keys
from enclave.node import check_text

ANSWER_TIMEOUT = runner.DELIVERY_WAIT + 15.0
CHANGES = ("create", "add", "remove", "promote", "rename", "leave")


def run(args) -> int:
    place = cli.home_of(args)
    from enclave.identity import home

    home.require_identity(place)
    action = args.group_action
    if action == "send":
        check_text(" ".join(args.message))
    if action == "disappear":
        args.seconds = _seconds(args.time)
    request = _request(args)
    answers = control.ask(runner.control_path(place.path), request, ANSWER_TIMEOUT)
    if answers is None:
        return _offline(place, args)
    first = control.first_answer(answers)
    if action == "list":
        _print_groups(first["groups"])
    elif action == "send":
        _report_send(first, answers[-1])
    elif action == "disappear":
        print(f"{_timer_said(first['group'], args.seconds)}; the running node told the members")
    else:
        _print_groups([first["group"]])
    return 0


def _request(args) -> dict:
    action = args.group_action
    request = {"op": "group", "action": action, "peer": "", "text": ""}
    if action != "list":
        request["group"] = args.group
    if action in ("create", "add", "remove", "promote"):
        request["peers"] = args.peers if action == "create" else [args.peer]
    if action == "rename":
        request["peers"] = [args.new_name]
    if action == "disappear":
        request["seconds"] = args.seconds
    if action == "send":
        request["text"] = " ".join(args.message)
    return request


def _report_send(first: dict, last: dict) -> int:
    copies = first.get("copies", 0)
    done = last.get("delivered", 0)
    if copies and done == copies:
        print(f"{first['ref']} Delivered to all {copies} members by the running node")
    else:
        print(
            f"{first['ref']} Delivered to {done} of {copies} members so far; the running"
            " node delivers the rest as they come online"
        )
    return 0


def _offline(place, args) -> int:
    from enclave.node.book import open_book

    action = args.group_action
    if action == "disappear":
        return _offline_timer(place, args)
    if action in CHANGES:
        raise UserError(
            f"group {action} needs the running node (it signs the change): {place.command('listen')}"
        )
    if not place.db_path.exists():
        if action == "list":
            print("No groups yet")
            return 0
        raise UserError("no groups yet: start a node and create one (/group create)")
    own = keys.read_public_identity(place)
    if action == "list":
        with open_book(place.db_path, own.fingerprint) as book:
            locked = book.locked
            groups = [] if locked else book.groups()
        if locked:  # the membership records are sealed: they hold names
            with open_book(place.db_path, own.fingerprint, cli.store_key(args)) as book:
                groups = book.groups()
        _print_groups([_as_dict(i) for i in groups])
        return 0
    # The post is sealed in the outbox: that takes the password.
    with open_book(place.db_path, own.fingerprint, cli.store_key(args)) as book:
        name, copies = book.queue_group(args.group, " ".join(args.message))
    print(
        f"No node is running; the post to {name} ({copies} copies) is queued in the outbox"
        f" and leaves when the node runs: {place.command('listen')}"
    )
    return 0


def _seconds(text: str) -> int:
    from enclave.node.display import parse_duration

    try:
        return parse_duration(text)
    except ValueError as err:
        raise UserError(str(err)) from None


def _offline_timer(place, args) -> int:
    from enclave.node.book import open_book

    if not place.db_path.exists():
        raise UserError("no groups yet: start a node and create one (/group create)")
    own = keys.read_public_identity(place)
    # A record of the group's log, signed with the identity key: that takes the password.
    identity = cli.unlock(args)
    with open_book(place.db_path, own.fingerprint, identity.store_key) as book:
        info = book.set_group_timer(args.group, args.seconds, identity.private_key)
    print(
        f"{_timer_said(_as_dict(info), args.seconds)}; no node is running, so the members"
        f" learn it when the node runs: {place.command('listen')}"
    )
    return 0


def _timer_said(group: dict, seconds: int) -> str:
    from enclave.node.display import duration_text, visible

    name = visible(group["name"], False)
    if not seconds:
        return f"Disappearing messages in {name} are off"
    return f"Posts in {name} now disappear after {duration_text(seconds)}"


def _as_dict(info) -> dict:
    return {
        "id": info.id, "name": info.name, "state": info.state,
        "disappear_s": info.disappear_s,
        "members": [{"fingerprint": m.fingerprint, "name": m.name, "admin": m.admin,
                     "contact": m.contact, "you": m.you} for m in info.members],
    }  # fmt: skip


def _print_groups(groups: list[dict]) -> None:
    from enclave.node.display import duration_text, visible

    if not groups:
        print("No groups yet")
        return
    for g in groups:
        state = "" if g["state"] == "member" else f" ({g['state']})"
        timer = g.get("disappear_s") or 0
        timer = f"  disappearing: {duration_text(timer)}" if timer else ""
        print(f"{visible(g['name'], False)}  {g['id'][:8]}{state}{timer}")
        for m in g["members"]:
            role = "admin" if m["admin"] else "member"
            note = "" if m["contact"] else f" (in {visible(g['name'], False)}, not a contact)"
            name = visible(m["name"], False)
            print(f"  {name:<16} {keys.group(m['fingerprint'], 4)}  {role}{note}")
