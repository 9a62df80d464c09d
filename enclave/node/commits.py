"""One commit cycle of delivery: what it writes, and the received rows it stores.

One cycle is one transaction (one fsync): new outgoing rows, incoming rows and acked
rows together (see enclave.node.delivery's rules).
"""

import asyncio
import hashlib
import os
import struct

from enclave.node.outgoing import Out
from enclave.protocol.messages import Chat

_sha256 = hashlib.sha256
_stamp = struct.Struct(">q").pack  # created_ms in a ring key (cheaper than to_bytes)

INT64_MAX = (1 << 63) - 1  # SQLite's largest integer (see delivery's rules on created_ms)
# Secret to this process: no contact can tell where its chats' keys fall in the ring's
# table, so none can grind ids to crowd one slot (the keys never leave the process).
_SALT = os.urandom(16)


class Batch:
    """Everything one commit writes."""

    __slots__ = ("enqueue", "incoming", "delivered", "forget")

    def __init__(self) -> None:
        self.enqueue: list[tuple[Out, asyncio.Future | None]] = []
        # (link, chats, upto or None, legacy, size, each chat's dedupe key)
        self.incoming: list[tuple] = []
        self.delivered: dict[bytes, list[Out]] = {}
        # Peers with history off when the commit was taken (``Delivery.unkept``): their
        # chats are stored as tombstones, their acked rows erased.
        self.forget: frozenset[bytes] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.enqueue or self.incoming or self.delivered)


def chat_keys(chats) -> list[bytes]:
    """Each chat's dedupe key, computed once when it arrives: a salted hash of the
    store's own dedupe key (peer, created_ms as stored, id), so the ring never calls a
    chat a duplicate that the store would take as new."""
    return [
        _sha256(_SALT + c.sender + _stamp(min(c.created_ms, INT64_MAX)) + c.id).digest()[:16]
        for c in chats
    ]


def incoming_rows(incoming, ring, now_ms: int, forget=frozenset(), post_lasts=None):
    """The rows to store, and where each chat's row is (-1: none); a chat whose key is
    in ``ring`` is a known duplicate and costs no SQL. Only committed keys ever enter
    the ring (in ``Delivery._received``). A chat from a peer in ``forget`` (history
    off) goes without its body: the store keeps it as a tombstone. ``post_lasts(group_id,
    epoch)`` gives a post's group timer at its epoch (disappearing posts; None: no group
    has one), which its row carries for the store to set its expiry. Runs on the writer
    thread, inside ``Delivery._write``."""
    rows, where = [], []
    for _, chats, _, legacy, _, keys in incoming:
        peer_hex = chats[0].sender.hex() if chats else ""
        if chats and chats[0].sender in forget:
            _tombstones(chats, keys, peer_hex, legacy, ring, now_ms, rows, where, post_lasts)
            continue
        for c, key in zip(chats, keys, strict=True):
            created = min(c.created_ms, INT64_MAX)
            if key in ring:
                where.append(-1)
            elif type(c) is Chat:
                where.append(len(rows))
                if c.reply_to is None and c.timer_s is None:
                    rows.append((peer_hex, c.id, c.body, created, now_ms, legacy))
                else:  # a REPLY: its quote goes with it; a TIMER: its seconds
                    rows.append(
                        (
                            peer_hex,
                            c.id,
                            c.body,
                            created,
                            now_ms,
                            legacy,
                            None,
                            c.reply_to,
                            c.timer_s,
                        )
                    )
            else:  # a group post (PROTOCOL.md "Groups"): stored with its group fields
                where.append(len(rows))
                rows.append(_post_row(c, peer_hex, created, now_ms, legacy, post_lasts))
    return rows, where


def _post_row(c, peer_hex: str, created: int, now_ms: int, legacy, post_lasts) -> tuple:
    group = (c.group_id, c.epoch, c.lamport, c.seq)
    seconds = post_lasts(c.group_id, c.epoch) if post_lasts is not None else 0
    if seconds:  # the group's timer at the post's epoch: the store sets its expiry
        return (peer_hex, c.id, c.body, created, now_ms, legacy, group, None, None, seconds)
    return (peer_hex, c.id, c.body, created, now_ms, legacy, group)


def _tombstones(chats, keys, peer_hex, legacy, ring, now_ms: int, rows, where, post_lasts) -> None:
    """``incoming_rows`` for a peer with history off: its chats' keys only. Its group
    posts are kept (history off is a setting of the direct conversation)."""
    for c, key in zip(chats, keys, strict=True):
        created = min(c.created_ms, INT64_MAX)
        if key in ring:
            where.append(-1)
            continue
        where.append(len(rows))
        if type(c) is Chat and c.timer_s is not None:
            # A TIMER holds no words of anyone's, and both sides must agree on it.
            rows.append((peer_hex, c.id, c.body, created, now_ms, legacy, None, None, c.timer_s))
        elif type(c) is Chat:
            rows.append((peer_hex, c.id, None, created, now_ms, legacy))
        else:
            rows.append(_post_row(c, peer_hex, created, now_ms, legacy, post_lasts))
