"""The thin adapter between asyncio (uvloop or not) and the sans-IO Connection.

Rules:
- A ``Link`` moves bytes between one TCP transport and one ``Connection`` and arms
  one timer from ``Connection.next_deadline()``. It holds no protocol rule.
- Writes are coalesced: whatever the connection has to say is written once per
  event-loop iteration (``schedule_flush``), so a burst of messages, acks and pongs
  leaves in one ``transport.write``.
- RSA private work (``CryptoNeeded``) goes to the owner (``hub.run_crypto``), which
  decides the thread; every other event goes to ``hub.on_event``.
- A closed connection gets its last bytes (an ALERT or CLOSE record) written, then the
  transport is closed. The hub hears about every link exactly twice: opened, closed.
- The peer's end of stream (FIN or reset) is handed to the connection
  (``receive_eof``), which may still have work to finish: a legacy envelope that came
  whole is checked, opened and committed after its sender is gone. The link reports
  closed only when both the transport and the connection are done.
- Reading stops while the connection holds a whole envelope it has no turn for yet
  (``Connection.wants_data``), and while delivery cannot store (``pause_reading``).
"""

import asyncio
import ipaddress
import itertools
import math
import socket
import time

from enclave.protocol.events import ConnectionClosed, CryptoNeeded

_ids = itertools.count(1)
_STORE_PAUSE, _CONN_PAUSE, _PARK_PAUSE = 1, 2, 4  # why a link stopped reading (any may hold)
BULK_FLUSH = 1 << 20  # file-piece bytes one flush releases
_EARLY_MAX = 1 << 20  # what a parked link may hold before it starts: one read, at most


def source_key(host: str) -> str:
    """The key budgets and caps count a source by: an IPv4 address (IPv4-mapped IPv6
    unwrapped), or an IPv6 /64 (one host usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Link(asyncio.Protocol):
    """One TCP connection and the protocol Connection it carries."""

    __slots__ = (  # one per session: no per-instance __dict__
        "hub",
        "id",
        "dialled",
        "conn",
        "transport",
        "address",
        "writable",
        "reading",
        "close_reason",
        "established",
        "state",
        "_make_conn",
        "_loop",
        "_flush_scheduled",
        "_timer",
        "_timer_at",
        "_admitted",
        "_lost",
        "_pauses",
        "_early",
        "_early_eof",
    )

    def __init__(self, hub, make_conn, *, dialled: bytes | None = None) -> None:
        self.hub = hub
        self.id = next(_ids)
        self.dialled = dialled  # the peer we dialled, or None for an accepted link
        self.conn = None
        self.transport: asyncio.Transport | None = None
        self.address = "?"
        self.writable = True
        self.reading = True
        self.close_reason: str | None = None
        self.established = asyncio.get_running_loop().create_future()
        self.state: object = None  # owned by delivery: what this link carries
        self._make_conn = make_conn
        self._loop = asyncio.get_running_loop()
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._admitted = False
        self._lost = False  # the transport is gone (connection_lost was called)
        self._pauses = 0  # _STORE_PAUSE | _CONN_PAUSE | _PARK_PAUSE: why reading is paused
        self._early: bytearray | None = None  # what a parked link got before it started
        self._early_eof = False  # ... and whether its stream ended then

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peername = transport.get_extra_info("peername")
        self.address = source_key(peername[0]) if peername else "?"
        verdict = self.hub.link_opened(self)
        if verdict == "refuse":
            self.close_reason = "connection_cap"
            transport.abort()
            return
        self._admitted = True
        if verdict == "park":  # nothing is read, no timer runs, until the hub says so
            self._early = bytearray()
            self._set_paused(_PARK_PAUSE, True)
            return
        self._start()

    def _start(self) -> None:
        now = time.time()
        self.conn = self._make_conn(self, now)
        if self.dialled is not None:
            self.handle(self.conn.initiate(now))
        self._arm()

    def unpark(self) -> None:
        """The hub admitted this parked link: start its connection and read."""
        early, self._early = self._early, None
        self._start()
        if early:  # a loop may deliver the first bytes before a pause takes hold
            self.handle(self.conn.receive_data(bytes(early), time.time()))
        if self._lost:
            self.connection_lost(None)
            return
        if self._early_eof:
            self.handle(self.conn.receive_eof(time.time()))
        self._set_paused(_PARK_PAUSE, False)

    def data_received(self, data: bytes) -> None:
        self.hub.read(len(data))
        if self.conn is not None:
            self.handle(self.conn.receive_data(data, time.time()))
        elif self._early is not None:
            # Parked: keep it for the start. uvloop starts reading after
            # connection_made even when it paused there, so pause again now (it holds).
            self.transport.pause_reading()
            self._early += data
            if len(self._early) > _EARLY_MAX:
                self.transport.abort()

    def eof_received(self):
        if self.conn is not None:
            self.handle(self.conn.receive_eof(time.time()))
        elif self._early is not None:
            self._early_eof = True
        return True  # our side closes when the connection is done (see _flush)

    def connection_lost(self, exc) -> None:
        self._lost = True
        if self._early is not None:
            return  # parked: the hub starts it (and hears of the end) when its turn comes
        conn = self.conn
        if conn is not None and not conn.closed:
            # A reset right after the last byte is an end of stream too: what came
            # whole is still finished (a v1 envelope from the original client).
            self.handle(conn.receive_eof(time.time()))
        if conn is None or conn.closed:
            self._finish()

    def _finish(self) -> None:
        """Both the transport and the connection are done: report closed, once."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf
        if not self.established.done():
            self.established.set_result(False)
        if self._admitted:
            self._admitted = False
            self.hub.link_closed(self)

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self.hub.link_writable(self)

    # --- what the hub calls -------------------------------------------------------------

    def handle(self, events: list) -> None:
        hub = self.hub
        for ev in events:
            if type(ev) is CryptoNeeded:
                hub.run_crypto(self, ev.job)
            elif type(ev) is ConnectionClosed:
                self.close_reason = ev.reason
                hub.on_closed(self, ev)
            else:
                hub.on_event(self, ev)
        conn = self.conn
        if self._lost:
            if conn.closed:
                self._finish()
                return
        elif conn.wants_data != (not self._pauses & _CONN_PAUSE):
            self._set_paused(_CONN_PAUSE, not conn.wants_data)
        self.schedule_flush()
        self._arm()

    def resume(self, job) -> None:
        if self.conn is not None:
            self.handle(self.conn.resume(job, time.time()))

    def retry_admission(self) -> None:
        """A private-op slot came free: a waiting v1 envelope asks again."""
        if self.conn is not None and not self.conn.closed:
            self.handle(self.conn.retry_admission(time.time()))

    def legacy_committed(self) -> None:
        """Delivery stored one of this link's v1 envelopes."""
        if self.conn is not None and not self.conn.closed:
            self.handle(self.conn.legacy_committed(time.time()))

    def schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def flush_now(self) -> None:
        """Write what the connection has queued now, not on the next loop iteration."""
        self._flush()

    def pause_reading(self) -> None:
        """Delivery cannot store what this link brings: stop reading until resumed."""
        self._set_paused(_STORE_PAUSE, True)

    def resume_reading(self) -> None:
        self._set_paused(_STORE_PAUSE, False)

    def _set_paused(self, why: int, paused: bool) -> None:
        self._pauses = self._pauses | why if paused else self._pauses & ~why
        reading = not self._pauses
        transport = self.transport
        if reading != self.reading and transport is not None and not transport.is_closing():
            self.reading = reading
            if reading:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def evict(self) -> None:
        """The hub dropped this unauthenticated link to make room: abort it now."""
        self.close_reason = "evicted"
        if self.conn is not None and not self.conn.closed:
            self.conn.close(time.time(), "evicted")
        if self.transport is not None:
            self.transport.abort()

    def close(self, reason: str = "local_close") -> None:
        """Say goodbye (a CLOSE record if established) and close the transport."""
        if self.conn is not None and not self.conn.closed:
            self.handle(self.conn.close(time.time(), reason))
        self.schedule_flush()

    # --- internals ----------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        transport, conn = self.transport, self.conn
        if transport is None or conn is None or transport.is_closing():
            return
        # File pieces leave only while the transport takes them, BULK_FLUSH at a time:
        # a chat queued meanwhile waits behind at most that much (strict priority).
        bulk = conn.bulk_queued
        parts = conn.parts_to_send(time.time(), BULK_FLUSH if self.writable else 0)
        if parts:
            transport.writelines(parts)  # no join: a flush of pieces is a megabyte
            self.hub.wrote(sum(map(len, parts)))
        if conn.closed:
            transport.close()
        elif bulk:
            if conn.bulk_queued and self.writable:
                self.schedule_flush()  # the rest next iteration, after what came in
            self.hub.bulk_flushed(self)

    def _arm(self) -> None:
        conn = self.conn
        deadline = conn.next_deadline() if conn is not None else None
        if deadline is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer, self._timer_at = None, math.inf
            return
        # Deadlines only move later with traffic, so an early timer just re-arms; a
        # handle is replaced only when the new deadline is earlier.
        if deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self._loop.call_later(max(0.0, deadline - time.time()), self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        if self.conn is not None and not self.conn.closed:
            self.handle(self.conn.handle_timer(time.time()))
