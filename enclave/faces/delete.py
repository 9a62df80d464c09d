"""``enclave delete PEER REF``: delete one message here ("delete for me").

Rules:
- REF names the message as ``/delete`` does: its ``#ref`` (``enclave history`` shows
  it) or its full id (``enclave history --json``; ``--direction`` when the contact
  reused one of ours). A REF that is neither is refused before the password is asked.
- With a node running on this home, the node deletes it (``Node.delete_message``), so
  every open face (REPL, page) drops it at once. With none, the store does, by the
  same rules (``Book.delete_message``). Finding a message by its #ref reads the
  conversation, so it asks the password, as every command that reads messages does.
- Only this device's copy goes (the contact keeps its own). A message still on its way,
  a file, or a REF that names no message (or several) of that conversation is a
  one-line mistake, exit 2, and nothing is deleted.
"""

from __future__ import annotations

from enclave.errors import UserError
from enclave.faces import cli, control, runner
from enclave.identity import keys
from enclave.node.display import message_ref


def run(args) -> int:
    ref, direction = cli.message_named(args.ref)
    if args.direction is not None:
        if direction is None:
            raise UserError("--direction goes with a message's full id, not with a #ref")
        direction = args.direction
    place = cli.home_of(args)
    request = {"op": "delete", "peer": args.peer, "ref": ref, "direction": direction}
    answers = control.ask(runner.control_path(place.path), request)
    if answers is None:
        done = _in_store(place, args, ref, direction)
    else:
        done = control.first_answer(answers)
    label = done.get("name") or keys.group(done["peer"], 4)
    print(f"Deleted {done['ref']} with {label} on this device ({label} keeps its copy)")
    return 0


async def serve(node, request: dict, answer) -> None:
    """The running node's side of the command (``runner`` calls it)."""
    peer, ref, direction = request.get("peer"), request.get("ref"), request.get("direction")
    if (
        not isinstance(peer, str)
        or not isinstance(ref, str)
        or direction not in (None, "in", "out", "either")
    ):
        await answer({"error": "bad control request (a delete request needs peer and ref)"})
        return
    await node.settled()  # a chat shown a moment ago is stored first
    try:
        gone = node.delete_message(peer, ref, direction)
    except UserError as err:
        await answer({"error": str(err)})
        return
    contact = node.contact(gone.peer)
    name = contact.name if contact else None
    await answer({"peer": gone.peer, "name": name, "ref": message_ref(gone.id)})


def _in_store(place, args, ref: str, direction: str | None) -> dict:
    from enclave.identity import home
    from enclave.node.book import open_book

    home.require_identity(place)
    if not place.db_path.exists():
        raise UserError(f"no peer matches {args.peer!r}")
    # The conversation is read to find the message: the password, as history asks it.
    with open_book(place.db_path, store_key=cli.store_key(args)) as book:
        peer, gone = book.delete_message(args.peer, ref, direction)
    return {"peer": peer.fingerprint, "name": peer.name, "ref": message_ref(gone.id)}
