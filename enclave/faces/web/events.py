"""The WebSocket's vocabulary: the ``type`` of every message on the page's socket.

Rules:
- This is the one list. ``ToPage`` names what the server sends, ``FromPage`` what the
  page may send; a type that is not here does not travel.
- The server builds every socket message with ``make`` (no dict literal with a
  ``"type"`` key anywhere else in ``enclave.faces.web``), and reads the page's with
  ``FromPage``. ``tests/test_web_events.py`` checks both, and that the page's dispatch
  table (``static/js/events.js``) handles exactly ``ToPage`` and that the page sends
  only ``FromPage``: renaming a type here without the page fails a test instead of
  falling silently through the page's dispatch.
"""

from __future__ import annotations

import enum


class ToPage(enum.StrEnum):
    """What the server sends; each has a handler in the page's dispatch table."""

    HELLO = "hello"  # the first message on a socket: {state}
    STATE = "state"  # the backend moved (setup/locked -> ready): {state}
    MESSAGE = "message"  # a message arrived: {message}
    SENT = "sent"  # a page queued a message: {message}
    DELIVERY = "delivery"  # an outgoing message's fate: {peer, rowid, id, state, reason}
    PRESENCE = "presence"  # {peer, online}
    TYPING = "typing"  # a peer types: {peer, active}
    READ = "read"  # a page opened a chat: {peer}
    PEERS = "peers"  # the address book changed: refetch it
    RESYNC = "resync"  # this page fell behind: refetch what it shows
    PROBLEM = "problem"  # the node has something to say: {text}
    RETRYING = "retrying"  # messages wait for a peer; next try in: {peer, retry_after}
    FILE = "file"  # a file transfer changed (offered, progress, delivered...): {file}
    THROTTLED = "throttled"  # a peer's node slows ours: {peer, reason, retry_after}
    GROUP_POST = "group_post"  # a post arrived in a group: {post}
    GROUP_DELIVERY = "group_delivery"  # our post's copy to one member: {group, member, id, state}
    GROUP_CHANGED = "group_changed"  # a membership change was applied: {change}
    KEY_CHANGED = "key_changed"  # a contact rotated its key: {peer, old, change}
    MESSAGE_DELETED = "message_deleted"  # deleted here, by any face: {peer, key}
    RECEIPT = "receipt"  # a contact read ours up to an id (hex): {peer, upto, read_ms}
    TIMER = "timer"  # a disappearing-messages timer was set, by either side: {message, in_force}
    EXPIRED = "expired"  # disappearing messages were erased here: {peer, keys}
    GROUP_EXPIRED = "group_expired"  # disappearing posts of a group were erased here: {group, ids}
    PAIRED = "paired"  # an invitation of this node ended: {nameplate, fingerprint, name, reason}
    ERROR = "error"  # the page's last socket message was refused: {text}


class FromPage(enum.StrEnum):
    """What the page may send."""

    TYPING = "typing"  # the user types to a peer: {peer, active}


def make(kind: ToPage, **fields) -> dict:
    """A message for the page: ``{"type": kind, **fields}``, the type as plain text."""
    return {"type": ToPage(kind).value, **fields}
