"""``enclave disappear PEER TIME``: the disappearing-messages timer with a contact.

Rules:
- With a node running on this home, it sets the timer (``Node.set_disappearing``): the
  TIMER goes to the contact at once and every face shows the change.
- With none running, the TIMER is written to the outbox and applied here (as the node
  would); it leaves when the node next runs. That asks the password, as ``enclave
  send`` does with no node: the outbox and the contact names are sealed in the store.
- TIME is 30s, 5m, 1h, 1d, 1w (30 s to 4 weeks) or off; a mistake is one line, exit 2.
"""

from __future__ import annotations

from enclave.errors import UserError
from enclave.faces import cli, control, runner
from enclave.identity import keys
from enclave.node.display import duration_text, parse_duration


def run(args) -> int:
    try:
        seconds = parse_duration(args.time)
    except ValueError as err:
        raise UserError(str(err)) from None
    place = cli.home_of(args)
    request = {"op": "disappear", "peer": args.peer, "seconds": seconds}
    answers = control.ask(runner.control_path(place.path), request)
    if answers is None:
        return _into_outbox(place, args, seconds)
    done = control.first_answer(answers)
    print(f"{_said(done, seconds)}; the running node told {_label(done)}")
    return 0


async def serve(node, request: dict, answer) -> None:
    """The running node's side of the command (``runner`` calls it)."""
    peer, seconds = request.get("peer"), request.get("seconds")
    if not isinstance(peer, str) or type(seconds) is not int:
        await answer({"error": "bad control request (a disappear request needs peer and seconds)"})
        return
    try:
        changed = await node.set_disappearing(peer, seconds)
    except UserError as err:
        await answer({"error": str(err)})
        return
    contact = node.resolve(changed.peer)
    await answer({"peer": changed.peer, "name": contact.name, "in_force": changed.in_force})


def _into_outbox(place, args, seconds: int) -> int:
    from enclave.identity import home
    from enclave.node.book import open_book

    if not place.db_path.exists():
        raise UserError(f"no peers yet; add one: {cli.add_peer_hint(place)}")
    home.check(place)
    # The TIMER's row joins the sealed outbox: that takes the password, as a message does.
    with open_book(place.db_path, store_key=cli.store_key(args)) as book:
        target = book.queue_timer(args.peer, seconds)
    done = {"peer": target.fingerprint, "name": target.name, "in_force": target.disappear_s}
    print(
        f"{_said(done, seconds)}; no node is running, so {_label(done)} learns it when the"
        f" node runs: {place.command('listen')}"
    )
    return 0


def _said(done: dict, seconds: int) -> str:
    line = (
        f"Disappearing messages with {_label(done)} are off"
        if not seconds
        else f"Messages with {_label(done)} now disappear after {duration_text(seconds)}"
    )
    if done.get("in_force") != seconds:
        line += f" (a newer change from them holds: {duration_text(done.get('in_force') or 0)})"
    return line


def _label(done: dict) -> str:
    return done.get("name") or keys.group(done["peer"], 4)
