"""What the page receives: plain JSON-able dicts made from Node objects and events.

Fingerprints and message IDs travel as lowercase hex. Text from peers (bodies, names,
addresses) travels as data, as stored; the page puts it into the DOM with
``textContent`` only, through its ``visible()`` (the rule of ``enclave.node.display``).
A message's ``created_ms`` is the time to show, or None when the sender's time is not
believable (``display.message_time``); ``received_ms`` is when this node stored it.
"""

from __future__ import annotations

import time

from enclave.faces.web.events import ToPage, make
from enclave.identity import keys
from enclave.node import PairingEnded
from enclave.node.display import key_change_line, message_ref, message_time
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
    Retrying,
    Throttled,
    TimerChanged,
    TypingChanged,
)

PREVIEW_CHARS = 120


def me(node) -> dict:
    host, port = node.address or ("", 0)
    return {
        "fingerprint": node.fingerprint,
        "grouped": keys.group(node.fingerprint),
        "public_key": node.public_key_pem(),
        "listening": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "qr": qr_rows(node.fingerprint.upper()),
    }


def qr_rows(text: str) -> list[str]:
    """The QR code of ``text`` as rows of "0"/"1" (1 = dark); the page draws it."""
    import segno

    code = segno.make(text, error="m", micro=False)
    return ["".join("1" if cell else "0" for cell in row) for row in code.matrix]


def peer(status, unread: int, last) -> dict:
    p = status.peer
    return {
        "fingerprint": p.fingerprint,
        "grouped": keys.group(p.fingerprint),
        "name": p.name,
        "address": p.address_text,  # both, when one was learned: for people to read
        "given_address": p.address,
        "learned_address": p.learned_address,
        "online": status.online,
        # Presence: when an offline peer was last seen (ms, or None: never), how many
        # messages wait for it, and in how many seconds they are tried (None: no pause).
        "last_seen_ms": int(p.last_seen * 1000) if p.last_seen else None,
        "queued": status.queued,
        "retry_in": status.retry_in,
        "verified": p.verified,
        "legacy": p.proto == "v1",
        "protocol": p.protocol,
        "blocked": p.blocked,
        "revoked": p.revoked,
        "receipts": p.receipts,
        "keep_history": p.keep_history,
        "disappear_s": p.disappear_s,
        "unread": unread,
        "last": message(last) if last is not None else None,
    }


def message(m) -> dict:
    """A stored message (``store.Message``)."""
    return {
        "peer": m.peer,
        "id": m.id.hex(),
        "ref": message_ref(m.id),
        "rowid": m.rowid,
        "direction": m.direction,
        "body": m.body,
        "created_ms": message_time(m),
        "received_ms": m.stored_ms,
        "state": m.state,
        "reason": m.reason,
        "legacy": m.legacy,
        "file": note(m.file, m.direction) if getattr(m, "file", None) is not None else None,
        "read_ms": m.read_ms,
        "broadcast": m.broadcast,
        "reply_to": m.reply_to.hex() if m.reply_to else None,
        "timer_s": m.timer_s,  # a TIMER's row: the page shows a system line
        "expires_ms": m.expires_ms,
    }


def timer(e: TimerChanged) -> dict:
    """A TIMER as the conversation shows it (a message with ``timer_s``: a system line)."""
    mid = bytes.fromhex(e.id)
    return {
        "peer": e.peer,
        "id": e.id,
        "ref": message_ref(mid),
        "rowid": None,
        "direction": "out" if e.by == "us" else "in",
        "body": "",
        "created_ms": e.created_ms,
        "state": "queued" if e.by == "us" else "received",
        "reason": None,
        "legacy": False,
        "timer_s": e.seconds,
    }


def note(n, direction: str) -> dict:
    """What a history row shows of its file (``store.FileNote``)."""
    return {
        "key": n.key,
        "name": n.name,
        "size": n.size,
        "state": n.state,
        "reason": n.reason,
        "percent": n.percent,
        "done_bytes": n.size * n.percent // 100,
        "waiting": direction == "in" and n.state == "offered",
    }


def file(f: FileChanged) -> dict:
    """A file transfer (``FileChanged``). Its local path stays on the server."""
    return {
        "peer": f.peer,
        "key": f.key,
        "rowid": f.rowid,
        "id": f.id.hex(),
        "ref": message_ref(f.id),
        "direction": f.direction,
        "name": f.name,
        "size": f.size,
        "state": f.state,
        "done_bytes": f.done_bytes,
        "percent": f.done_bytes * 100 // f.size if f.size else 100,
        "reason": f.reason,
        "waiting": f.waiting,
        "created_ms": f.created_ms,
    }


def sent(s, body: str, reply_to: str | None = None) -> dict:
    """A message this page just queued (``node.Sent``); ``reply_to``: the id it quotes."""
    now = int(time.time() * 1000)
    return {**outgoing(s.peer, s.id, s.rowid, body, now), "reply_to": reply_to}


def outgoing(peer: str, message_id: bytes, rowid: int, body: str, created_ms: int) -> dict:
    """An outgoing message just queued, from whichever face or command sent it."""
    return {
        "peer": peer,
        "id": message_id.hex(),
        "ref": message_ref(message_id),
        "rowid": rowid,
        "direction": "out",
        "body": body,
        "created_ms": created_ms,
        "received_ms": created_ms,
        "state": "queued",
        "reason": None,
        "legacy": False,
    }


def event(e) -> dict | None:
    """A Node event for the page, or None for events the page does not show."""
    kind = type(e)
    if kind is DeliveryChanged and e.group is not None:  # one member's copy of a group post
        return make(
            ToPage.GROUP_DELIVERY,
            group=e.group,
            member=e.peer,
            id=e.id.hex(),
            state=e.state,
            reason=e.reason,
        )
    if kind is GroupMessageReceived:
        return make(ToPage.GROUP_POST, post=group_received(e))
    if kind is GroupChanged:
        return make(ToPage.GROUP_CHANGED, change=group_change(e))
    if kind is MessageReceived:
        return make(ToPage.MESSAGE, message=received(e))
    if kind is DeliveryChanged and e.body is not None:  # a new message: its text and "queued"
        shown = outgoing(e.peer, e.id, e.rowid, e.body, e.created_ms or int(time.time() * 1000))
        return make(ToPage.SENT, message=shown)
    if kind is DeliveryChanged:
        return make(
            ToPage.DELIVERY,
            peer=e.peer,
            rowid=e.rowid,
            id=e.id.hex(),
            state=e.state,
            reason=e.reason,
        )
    if kind is PeerOnline or kind is PeerOffline:
        return make(ToPage.PRESENCE, peer=e.peer, online=kind is PeerOnline)
    if kind is TypingChanged:
        return make(ToPage.TYPING, peer=e.peer, active=e.active)
    if kind is NodeProblem:
        return make(ToPage.PROBLEM, text=e.text)
    if kind is Retrying:
        return make(ToPage.RETRYING, peer=e.peer, retry_after=e.retry_after)
    if kind is Throttled:
        return make(ToPage.THROTTLED, peer=e.peer, reason=e.reason, retry_after=e.retry_after)
    if kind is FileChanged:
        return make(ToPage.FILE, file=file(e))
    if kind is KeyChanged:  # the contact is the same, its fingerprint is new
        change = key_change(e.old, e.peer, e.name, e.applied_ms)
        return make(ToPage.KEY_CHANGED, peer=e.peer, old=e.old, change=change)
    if kind is MessagesRead:
        return make(ToPage.RECEIPT, peer=e.peer, upto=e.upto, read_ms=e.read_ms)
    if kind is TimerChanged:
        return make(ToPage.TIMER, message=timer(e), in_force=e.in_force)
    if kind is MessagesExpired:
        return make(ToPage.EXPIRED, peer=e.peer, keys=list(e.keys))
    if kind is GroupMessagesExpired:
        return make(ToPage.GROUP_EXPIRED, group=e.group, ids=list(e.ids))
    if kind is MessageDeleted:
        return make(ToPage.MESSAGE_DELETED, peer=e.peer, key=f"{e.direction}:{e.id}")
    if kind is ContactChanged:  # from this page, another one, the REPL or the CLI
        return make(ToPage.PEERS, peer=e.peer, change=e.change)
    if kind is PairingEnded:
        r = e.result
        return make(
            ToPage.PAIRED,
            nameplate=e.nameplate,
            fingerprint=r.fingerprint,
            name=r.name,
            reason=r.reason,
        )
    return None


def key_change(old: str, new: str, name: str | None, at_ms: int) -> dict:
    """A contact's rotation as the conversation shows it: a system line at ``at_ms``."""
    text = key_change_line(name or new[:16])  # shown through the page's visible()
    return {"old": old, "new": new, "at_ms": at_ms, "text": text}


def received(e) -> dict:
    """A message that just arrived (``MessageReceived``), before the page refetches it."""
    return {
        "peer": e.peer,
        "id": e.id.hex(),
        "ref": message_ref(e.id),
        "rowid": None,
        "direction": "in",
        "body": e.body,
        "created_ms": e.created_ms,
        "received_ms": int(time.time() * 1000),
        "state": "received",
        "reason": None,
        "legacy": e.legacy,
        "reply_to": e.reply_to.hex() if e.reply_to else None,
    }


# --- groups -------------------------------------------------------------------------------


def group(g) -> dict:
    """A group (``GroupInfo``): its members admins first, then us, then by name."""
    return {
        "id": g.id,
        "name": g.name,
        "state": g.state,
        "epoch": g.epoch,
        "disappear_s": g.disappear_s,
        "members": [
            {
                "fingerprint": m.fingerprint,
                "grouped": keys.group(m.fingerprint),
                "name": m.name,
                "admin": m.admin,
                "contact": m.contact,
                "you": m.you,
            }
            for m in g.members
        ],
    }


def group_post(gid: str, line) -> dict:
    """One post of a group's history (``store.GroupLine``); ours carries each other
    member's state of it (fingerprint -> queued, sent, delivered or failed)."""
    return {
        "group": gid,
        "id": line.id.hex(),
        "ref": message_ref(line.id),
        "sender": line.sender,
        "direction": line.direction,
        "body": line.body,
        "created_ms": message_time(line),
        "received_ms": line.stored_ms,
        "lamport": line.lamport,
        "epoch": line.epoch,
        "states": dict(line.states),
    }


def group_received(e: GroupMessageReceived) -> dict:
    """A post that just arrived; the page places it by (lamport, sender)."""
    return {
        "group": e.group,
        "id": e.id.hex(),
        "ref": message_ref(e.id),
        "sender": e.sender,
        "direction": "in",
        "body": e.body,
        "created_ms": e.created_ms,
        "received_ms": int(time.time() * 1000),
        "lamport": e.lamport,
        "epoch": e.epoch,
        "states": {},
    }


def group_change(e: GroupChanged) -> dict:
    """A membership record applied: ``author`` did ``kind`` to ``subjects``."""
    return {
        "group": e.group,
        "group_name": e.group_name,
        "kind": e.kind,
        "author": e.author,
        "subjects": list(e.subjects),
        "epoch": e.epoch,
        "detail": e.detail,
        "seconds": e.seconds,
    }
