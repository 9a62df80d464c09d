"""``enclave send PEER MESSAGE``: one message, through the running node or the outbox;
``enclave reply PEER REF MESSAGE``: one that quotes a message of the conversation.

Rules:
- If a node runs on this home folder, the message goes through its control socket
  (``runner``): the node resolves the peer, queues it durably and sends it at once.
  The command waits a few seconds to report "delivered", else says it is on its way.
- If none runs, the message is written to the store's outbox and leaves at the next
  ``enclave --listen``; the command says so. Through the node no password is needed;
  into the outbox it is asked, since the store seals the text and the contact names.
- Mistakes (unknown or ambiguous peer, empty or over-long text) are one line, exit 2,
  and nothing is queued.
- A reply names the message it quotes as ``/reply`` does: its ``#ref`` (``enclave
  history`` shows it) or its full id (``--json``), found among the conversation's
  messages by the node's own rules (``find_message``) with the node or without it.
  A REF that is neither is refused before the password is asked; one that names no
  message of that conversation, or several, is a one-line mistake too.
"""

from __future__ import annotations

from enclave.errors import UserError
from enclave.faces import cli, control, runner
from enclave.identity import keys
from enclave.node import check_text
from enclave.node.display import message_ref

ANSWER_TIMEOUT = runner.DELIVERY_WAIT + 10.0


def run(args) -> int:
    check_text(args.message)
    place = _checked_home(args)
    request = {"op": "send", "peer": args.peer, "text": args.message}
    answers = control.ask(runner.control_path(place.path), request, ANSWER_TIMEOUT)
    if answers is None:
        return _into_outbox(place, args)
    return _report(answers)


def reply(args) -> int:
    """``enclave reply PEER REF MESSAGE``: ``send`` with a quote."""
    ref, direction = cli.message_named(args.ref)
    if args.direction is not None:
        if direction is None:
            raise UserError("--direction goes with a message's full id, not with a #ref")
        direction = args.direction
    check_text(args.message)
    place = _checked_home(args)
    request = {
        "op": "reply", "peer": args.peer, "text": args.message, "ref": ref, "direction": direction
    }  # fmt: skip
    answers = control.ask(runner.control_path(place.path), request, ANSWER_TIMEOUT)
    if answers is None:
        return _into_outbox(place, args, (ref, direction))
    return _report(answers, _quoting(ref))


def _checked_home(args):
    from enclave.identity import home
    from enclave.node import settings

    place = cli.home_of(args)
    home.require_identity(place)
    if args.set_overrides:  # a global option: checked here too, though sending needs none
        settings.load(place.path, settings.overrides_from(args))
    return place


def _quoting(ref: str) -> str:
    """What a reply's line adds, ' (quoting #k3f9)': the #ref as every face shows it."""
    shown = message_ref(bytes.fromhex(ref)) if len(ref) == 32 else f"#{ref.removeprefix('#')}"
    return f" (quoting {shown})"


def _report(answers: list[dict], quoting: str = "") -> int:
    first = control.first_answer(answers)
    label = first.get("name") or keys.group(first.get("peer", ""), 4)
    # The message's short reference, as the node's REPL and page show it too.
    ref = f"{first['ref']} " if isinstance(first.get("ref"), str) else ""
    last = answers[-1]
    if last.get("state") == "delivered":
        print(f"{ref}Delivered to {label} by the running node{quoting}")
    elif last.get("state") == "failed":
        print(f"{ref}Sending to {label} failed: {last.get('reason') or 'no reason given'}")
        return 1
    else:
        print(f"{ref}Queued in the running node; it delivers to {label} as soon as it can{quoting}")
    return 0


def _into_outbox(place, args, quote: tuple[str, str | None] | None = None) -> int:
    from enclave.node.book import open_book

    if not place.db_path.exists():
        raise UserError(f"no peers yet; add one: {cli.add_peer_hint(place)}")
    # The outbox seals the text: that takes the password, as the node would have.
    with open_book(place.db_path, store_key=cli.store_key(args)) as book:
        if quote is None:
            target, message_id = book.queue(args.peer, args.message)
            quoting = ""
        else:
            target, message_id, quoted = book.queue_reply(args.peer, args.message, *quote)
            quoting = f", quoting {message_ref(quoted)},"
    label = target.name or keys.group(target.fingerprint, 4)
    print(
        f"No node is running; the message to {label} ({message_ref(message_id)}){quoting} is "
        f"queued in the outbox and leaves when the node runs: {place.command('listen')}"
    )
    return 0
