"""In-memory protocol pairs: two Connections wired together, no sockets.

``run`` executes CryptoNeeded jobs inline (the node runs them in a pool) and
returns the other events; ``pump`` moves bytes both ways until both sides are quiet.
``chats``, ``received`` and ``closed_reason`` read and write the traffic of a pair.
"""

from enclave.protocol.connection import Connection, Limits
from enclave.protocol.crypto import Identity
from enclave.protocol.events import ConnectionClosed, CryptoNeeded, Established, MessagesReceived
from enclave.protocol.messages import Chat
from enclave.protocol.policy import MemoryPolicy

DEFAULT_LIMITS = Limits()
T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15) so every test is deterministic


def run(conn: Connection, events: list, now: float) -> list:
    out = []
    for ev in events:
        if isinstance(ev, CryptoNeeded):
            ev.job.run()
            out += run(conn, conn.resume(ev.job, now), now)
        else:
            out.append(ev)
    return out


class Pair:
    """Alice (initiator) and Bob (responder) by default; any two names from rsa_keys."""

    def __init__(self, keys, a="alice", b="bob", now=T0, limits=DEFAULT_LIMITS, **responder_kw):
        self.now = now
        self.ida, self.idb = Identity(keys[a]), Identity(keys[b])
        self.pol_a = MemoryPolicy([self.idb.peer_key])
        self.pol_b = MemoryPolicy([self.ida.peer_key])
        self.i = Connection(self.ida, self.pol_a, now, peer=self.idb.peer_key, limits=limits)
        self.r = Connection(
            self.idb, self.pol_b, now, source="127.0.0.2", limits=limits, **responder_kw
        )
        self.ev_i: list = []
        self.ev_r: list = []

    def start(self) -> None:
        self.ev_i += run(self.i, self.i.initiate(self.now), self.now)

    def pump(self, rounds: int = 20) -> None:
        """Move bytes both ways until neither side has anything to say."""
        for _ in range(rounds):
            to_r = self.i.data_to_send(self.now)
            if to_r:
                self.ev_r += run(self.r, self.r.receive_data(to_r, self.now), self.now)
            to_i = self.r.data_to_send(self.now)
            if to_i:
                self.ev_i += run(self.i, self.i.receive_data(to_i, self.now), self.now)
            if not to_r and not to_i:
                return
        raise AssertionError("the pair never went quiet")

    def handshake(self) -> "Pair":
        self.start()
        self.pump()
        assert self.i.established and self.r.established, (self.i.close_reason, self.r.close_reason)
        return self

    def events(self, side: str, kind: type) -> list:
        evs = self.ev_i if side == "i" else self.ev_r
        return [e for e in evs if isinstance(e, kind)]


def established(events: list) -> bool:
    return any(isinstance(e, Established) for e in events)


def closed_reason(events: list) -> str | None:
    closes = [e for e in events if isinstance(e, ConnectionClosed)]
    return closes[0].reason if closes else None


def chats(p: Pair, n: int, sender="i", start=0, body="x" * 100) -> list[Chat]:
    """``n`` Chats from one side of ``p`` to the other, numbered from ``start``."""
    a, b = (p.ida, p.idb) if sender == "i" else (p.idb, p.ida)
    return [
        Chat(k.to_bytes(16, "big"), a.fingerprint, b.fingerprint, 1000 + k, body)
        for k in range(start, start + n)
    ]


def received(p: Pair, side="r") -> list[Chat]:
    return [c for ev in p.events(side, MessagesReceived) for c in ev.messages]
