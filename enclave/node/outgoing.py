"""Outgoing messages as delivery holds them: in its queues, on links, awaited.

- ``Out``: one message owed to its recipient, from ``submit`` until it is acked or
  given up on (its flags say how far its outbox row and its sending have come).
- ``Carried``: what one established link carries, its unacked messages in order.
- ``Many``: the one future of ``Delivery.submit_many``.
"""

import asyncio
from collections import deque


class Out:
    """An outgoing message held in memory while it is owed to its recipient."""

    __slots__ = (
        "rowid", "peer", "id", "body", "created_ms", "sent", "durable", "listed", "taken", "group",
        "reply", "timer", "expires", "logged",
    )  # fmt: skip

    def __init__(
        self,
        rowid: int,
        peer: bytes,
        id: bytes,
        body: str,
        created_ms: int,
        durable: bool = True,
        group: tuple | None = None,
        reply: bytes | None = None,
        timer: int | None = None,
        expires: int | None = None,
    ) -> None:
        self.rowid = rowid
        self.peer = peer
        self.id = id
        self.body = body
        self.created_ms = created_ms
        self.sent = False  # handed to a link; "sent" is announced once, not on every resend
        self.durable = durable  # its outbox row is committed
        self.listed = durable  # in its peer's queue (or carried)
        self.taken = durable  # its enqueue is in a commit already running (or done)
        self.logged = False  # in the store's sending log (sent ahead of its commit)
        # A group post's (group_id, epoch, lamport, seq) (PROTOCOL.md "Groups"); None: a chat.
        self.group = group
        self.reply = reply  # the id of the message a chat quotes (a REPLY); None: none
        # A TIMER's seconds (disappearing messages: a control row, shown as a system
        # line; its fate is not published as DeliveryChanged); None: a message.
        self.timer = timer
        self.expires = expires  # when the row is erased (epoch ms; disappear.py); None: never


def group_hex(o: Out) -> str | None:
    """The group id (hex) of a group post's row, for its DeliveryChanged events."""
    return None if o.group is None else o.group[0].hex()


class Carried:
    """What one established link carries for delivery: its unacked messages."""

    __slots__ = ("peer", "base", "items")

    def __init__(self, peer: bytes) -> None:
        self.peer = peer
        self.base = 0  # the session index of items[0]
        self.items: deque[Out] = deque()


class Many:
    """The future of ``submit_many``, riding on its last row; it resolves to all rows."""

    __slots__ = ("fut", "outs")

    def __init__(self, fut: asyncio.Future, outs: list[Out]) -> None:
        self.fut, self.outs = fut, outs

    def done(self) -> bool:
        return self.fut.done()

    def set_result(self, result) -> None:
        self.fut.set_result(result)

    def set_exception(self, err) -> None:
        self.fut.set_exception(err)
