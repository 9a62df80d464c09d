"""``enclave send PEER MESSAGE``: one message, through the running node or the outbox.

Rules:
- If a node runs on this home folder, the message goes through its control socket
  (``runner``): the node resolves the peer, queues it durably and sends it at once.
  The command waits a few seconds to report "delivered", else says it is on its way.
- If none runs, the message is written to the store's outbox and leaves at the next
  ``enclave --listen``; the command says so. No password is needed either way: the
  node encrypts when it sends.
- Mistakes (unknown or ambiguous peer, empty or over-long text) are one line, exit 2,
  and nothing is queued.
"""

from __future__ import annotations

import json
import socket

from enclave.errors import UserError
from enclave.faces import cli, runner
from enclave.node import check_text

CONNECT_TIMEOUT = 2.0
ANSWER_TIMEOUT = runner.DELIVERY_WAIT + 10.0


def run(args) -> int:
    check_text(args.message)
    place = cli.home_of(args)
    from enclave.identity import home
    from enclave.node import settings

    home.require_identity(place)
    if args.set_overrides:  # a global option: checked here too, though sending needs none
        settings.load(place.path, settings.overrides_from(args))
    answers = _through_node(runner.control_path(place.path), args.peer, args.message)
    if answers is None:
        return _into_outbox(place, args.peer, args.message)
    return _report(answers)


def _through_node(path, peer: str, text: str) -> list[dict] | None:
    """The node's answers, or None when no node listens on ``path``."""
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return None  # a socket left behind by a node that did not stop cleanly
        except OSError as err:
            raise UserError(f"cannot reach the running node at {path}: {err.strerror}") from None
        sock.settimeout(ANSWER_TIMEOUT)
        request = {"op": "send", "peer": peer, "text": text}
        sock.sendall(json.dumps(request).encode() + b"\n")
        return _read_answers(sock.makefile("rb"))
    except TimeoutError:
        raise UserError("the running node did not answer; is it stuck?") from None
    finally:
        sock.close()


def _read_answers(stream) -> list[dict]:
    answers = []
    for raw in stream:
        try:
            answers.append(json.loads(raw))
        except ValueError:
            raise UserError("the running node gave an answer this command cannot read") from None
    return answers


def _report(answers: list[dict]) -> int:
    if not answers:
        raise UserError("the running node closed the connection without an answer")
    first = answers[0]
    if "error" in first:
        raise UserError(str(first["error"]))
    label = first.get("name") or first.get("peer", "")[:16]
    last = answers[-1]
    if last.get("state") == "delivered":
        print(f"Delivered to {label} by the running node")
    elif last.get("state") == "failed":
        print(f"Sending to {label} failed: {last.get('reason') or 'no reason given'}")
        return 1
    else:
        print(f"Queued in the running node; it delivers to {label} as soon as it can")
    return 0


def _into_outbox(place, peer: str, text: str) -> int:
    from enclave.node.book import open_book

    if not place.db_path.exists():
        raise UserError(f"no peers yet; add one: {cli.add_peer_hint(place)}")
    with open_book(place.db_path) as book:
        target = book.queue(peer, text)
    label = target.name or target.fingerprint[:16]
    print(
        f"No node is running; the message to {label} is queued in the outbox "
        f"and leaves when the node runs: {place.command('listen')}"
    )
    return 0
