"""``enclave listen --json``: the node's events as JSON lines, for scripts.

Rules:
- One JSON object per line on stdout, flushed, for each event; every object has a
  ``"type"``. Nothing else goes to stdout (the runner's start and stop lines are JSON
  objects too, ``runner.say``); the README's "Scripts" section is the schema.
- Fingerprints are full lowercase hex; ``name`` is the contact's name or null. Message
  ids are hex. Times are Unix seconds (float); a sender's time that is not believable
  is null.
- Text is the message as sent: JSON escaping keeps control characters harmless.
- An event this module does not know is skipped, never a crash: new event kinds
  appear in the stream only once they are described here.
"""

from __future__ import annotations

import asyncio
import json
import time

from enclave.faces import runner
from enclave.node.display import key_change_line, message_ref
from enclave.node.events import (
    ContactChanged,
    DeliveryChanged,
    FileChanged,
    GroupChanged,
    GroupMessageReceived,
    GroupMessagesExpired,
    KeyChanged,
    MessageDeleted,
    MessageReceived,
    MessagesExpired,
    MessagesRead,
    NodeProblem,
    PeerOffline,
    PeerOnline,
    Throttled,
    TimerChanged,
    TypingChanged,
)


def encode(event, name_of) -> dict | None:
    """The JSON object for ``event`` (``name_of(fingerprint)``: its name or None)."""
    if isinstance(event, MessageReceived):
        sent = None if event.created_ms is None else event.created_ms / 1000
        return {
            "type": "message",
            **_peer(event.peer, name_of),
            "id": event.id.hex(),
            "text": event.body,
            "timestamp": sent,
            "received": round(time.time(), 3),
            "legacy": event.legacy,
            "reply_to": message_ref(event.reply_to) if event.reply_to else None,
        }
    if isinstance(event, DeliveryChanged):
        line = {
            "type": "delivery",
            **_peer(event.peer, name_of),
            "rowid": event.rowid,
            "id": event.id.hex(),
            "ref": message_ref(event.id),
            "state": event.state,
            "reason": event.reason,
        }
        if event.body is not None:  # a new message, sent here or through this node
            line["text"] = event.body
        if event.group is not None:  # one member's copy of a group post
            line["group"] = event.group
        return line
    if isinstance(event, PeerOnline | PeerOffline):
        online = isinstance(event, PeerOnline)
        return {"type": "presence", **_peer(event.peer, name_of), "online": online}
    return _other(event, name_of)


def _group(event, name_of) -> dict | None:
    if isinstance(event, GroupMessageReceived):
        sent = None if event.created_ms is None else event.created_ms / 1000
        return {
            "type": "group_message", "group": event.group, "group_name": event.group_name,
            **_peer(event.sender, name_of), "id": event.id.hex(), "text": event.body,
            "timestamp": sent, "lamport": event.lamport,
        }  # fmt: skip
    if isinstance(event, GroupChanged):
        return {
            "type": "group", "group": event.group, "group_name": event.group_name,
            "change": event.kind, "by": event.author, "members": list(event.subjects),
            "epoch": event.epoch,
            **({} if event.seconds is None else {"seconds": event.seconds}),
        }  # fmt: skip
    return None


def _other(event, name_of) -> dict | None:
    if isinstance(event, GroupMessageReceived | GroupChanged):
        return _group(event, name_of)
    if isinstance(event, TypingChanged):
        return {"type": "typing", **_peer(event.peer, name_of), "active": event.active}
    if isinstance(event, Throttled):
        return {
            "type": "warning",
            "what": "throttled",
            **_peer(event.peer, name_of),
            "reason": event.reason,
            "retry_after": event.retry_after,
            "text": f"the peer's node is throttling this one ({event.reason})",
        }
    if isinstance(event, NodeProblem):
        return {"type": "warning", "what": "problem", "text": event.text}
    if isinstance(event, MessagesRead):
        ref = message_ref(bytes.fromhex(event.upto))
        return {"type": "read", **_peer(event.peer, name_of), "upto": ref, "read_ms": event.read_ms}
    if isinstance(event, MessageDeleted):
        return {"type": "message_deleted", **_peer(event.peer, name_of), "ref": event.ref}
    if isinstance(event, TimerChanged):
        return {"type": "timer", **_peer(event.peer, name_of), "by": event.by,
                "seconds": event.seconds, "in_force": event.in_force}  # fmt: skip
    if isinstance(event, MessagesExpired):
        return {"type": "expired", **_peer(event.peer, name_of), "refs": list(event.refs)}
    if isinstance(event, GroupMessagesExpired):
        return {"type": "group_expired", "group": event.group, "refs": list(event.refs)}
    if isinstance(event, ContactChanged):
        return {"type": "contact", "peer": event.peer, "name": event.name, "change": event.change}
    if isinstance(event, KeyChanged):
        who = event.name or event.peer[:16]
        return {"type": "key_changed", "peer": event.peer, "old": event.old,
                "name": event.name, "seq": event.seq, "text": key_change_line(who)}  # fmt: skip
    if isinstance(event, FileChanged):
        return {
            "type": "file", **_peer(event.peer, name_of), "key": event.key,
            "ref": message_ref(event.id), "direction": event.direction, "file": event.name,
            "size": event.size, "state": event.state, "done": event.done_bytes,
            "reason": event.reason, "path": event.path, "waiting": event.waiting,
        }  # fmt: skip
    return None


def _peer(fingerprint: str, name_of) -> dict:
    return {"peer": fingerprint, "name": name_of(fingerprint)}


async def json_face(node, stop: asyncio.Event) -> int:
    """Write every event as a JSON line until a signal sets ``stop``."""

    def name_of(fingerprint: str) -> str | None:
        record = node.contact(fingerprint)
        return record.name if record else None

    def on_event(event) -> None:
        try:
            line = encode(event, name_of)
        except Exception as err:  # noqa: BLE001 - one odd event must not stop the stream
            line = {"type": "error", "text": f"could not encode an event ({type(err).__name__})"}
        if line is not None:
            runner.log(json.dumps(line, ensure_ascii=False))

    unsubscribe = node.subscribe(on_event)
    try:
        await stop.wait()
    finally:
        unsubscribe()
    return 0
