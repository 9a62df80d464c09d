"""Asking the node that runs on a home folder, through its control socket.

Rules:
- One request per connection: a JSON object on one line; the node answers with one or
  more JSON lines and closes (``runner`` serves it).
- No node (no socket, or one left behind by a node that did not stop cleanly) is
  ``None``, so the caller falls back to working on the store itself.
- Every failure to talk to a node that is there is a one-line ``UserError``.
"""

from __future__ import annotations

import json
import socket

from enclave.errors import UserError

CONNECT_TIMEOUT = 2.0
ANSWER_TIMEOUT = 15.0


def ask(path, request: dict, timeout: float = ANSWER_TIMEOUT, each=None) -> list[dict] | None:
    """The running node's answers to ``request``, or None when no node listens;
    ``each(answer)`` is called as each one arrives (progress), if given. ``timeout``
    bounds the wait for each answer, not for all of them."""
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
        sock.settimeout(timeout)
        sock.sendall(json.dumps(request).encode() + b"\n")
        return _read_answers(sock.makefile("rb"), each)
    except TimeoutError:
        raise UserError("the running node did not answer; is it stuck?") from None
    finally:
        sock.close()


def _read_answers(stream, each=None) -> list[dict]:
    answers = []
    for raw in stream:
        try:
            answers.append(json.loads(raw))
        except ValueError:
            raise UserError("the running node gave an answer this command cannot read") from None
        if each is not None:
            each(answers[-1])
    return answers


def first_answer(answers: list[dict]) -> dict:
    """The node's first answer; its ``error`` becomes the command's one-line error."""
    if not answers:
        raise UserError("the running node closed the connection without an answer")
    if "error" in answers[0]:
        raise UserError(str(answers[0]["error"]))
    return answers[0]
