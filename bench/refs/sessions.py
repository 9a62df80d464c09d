"""Sessions with a node, as a contact: handshakes per second, idle sessions held, a
contact that floods, an honest contact's first messages.

Roles ``dial``, ``hold``, ``flood`` and ``first-messages``. Each session is an initiator
``Connection`` (the sans-IO core) on its own TCP connection; its private-key steps run
on a pool of 2 threads. ``open_session`` makes one and says how it ended.
"""

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from enclave.protocol.connection import Connection
from enclave.protocol.crypto import Identity, PeerKey
from enclave.protocol.events import Acked, ConnectionClosed, CryptoNeeded, Established, Throttled
from enclave.protocol.messages import Chat
from enclave.protocol.policy import Policy
from refs.common import BODY, emit, load_key, nodelay, percentiles_us, until_stdin_closes


class Initiator(asyncio.Protocol):
    """One initiator session on its own connection. ``done`` gets "ok" once established
    (``on_event``, which the roles below override for what else they do), or how the
    session ended; it stays open until the node or the role closes it."""

    def __init__(self, identity, peer_key, pool, done: asyncio.Future) -> None:
        self.identity, self.peer_key, self.pool, self.done = identity, peer_key, pool, done
        self.conn = None
        self.transport = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport) -> None:
        self.transport = transport
        nodelay(transport)
        now = time.time()
        self.conn = Connection(self.identity, Policy(), now, peer=self.peer_key)
        self.handle(self.conn.initiate(now))

    def data_received(self, data: bytes) -> None:
        self.handle(self.conn.receive_data(data, time.time()))

    def connection_lost(self, exc) -> None:
        self._finish("connection_lost")

    def handle(self, events: list) -> None:
        for ev in events:
            if type(ev) is CryptoNeeded:
                self._run_crypto(ev.job)
            elif type(ev) is ConnectionClosed:
                self._finish(f"{ev.reason} {ev.detail or ''}".strip())
            else:
                self.on_event(ev)
        self._write()

    def on_event(self, ev) -> None:
        if type(ev) is Established:
            self._finish("ok")

    def _finish(self, outcome: str) -> None:
        if not self.done.done():
            self.done.set_result(outcome)

    def _run_crypto(self, job) -> None:
        """The private-key step on the pool; the connection resumes on the loop."""
        fut = self.loop.run_in_executor(self.pool, job.run)
        fut.add_done_callback(lambda _f: self.handle(self.conn.resume(job, time.time())))

    def _write(self) -> None:
        data = self.conn.data_to_send(time.time())
        if data and not self.transport.is_closing():
            self.transport.write(data)
        if self.conn.closed:
            self.transport.close()


class Dialer(Initiator):
    """An initiator that closes as soon as it is established (handshakes per second)."""

    _established = False

    def on_event(self, ev) -> None:
        if type(ev) is Established:
            self._established = True

    def handle(self, events: list) -> None:
        super().handle(events)
        if self._established:  # HS3 is on its way: say CLOSE right behind it
            self._established = False
            self._finish("ok")
            self.conn.close(time.time(), "bench_done")
            self._write()


async def open_session(factory, port: int, timeout: float, local_addr=None):
    """One connection to the node, its protocol made by ``factory(done)``; waits until
    ``done`` resolves. Returns the outcome ("ok", or how it ended), the nanoseconds from
    the connect until then, and the protocol (None if the connect failed)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    proto = None
    t = time.monotonic_ns()
    try:
        _, proto = await loop.create_connection(
            lambda: factory(done), "127.0.0.1", port, local_addr=local_addr
        )
        outcome = await asyncio.wait_for(done, timeout)
    except (OSError, TimeoutError) as err:
        outcome = type(err).__name__
    return outcome, time.monotonic_ns() - t, proto


async def dial(args) -> None:
    identity = Identity(load_key(args.key_file))
    peer_key = PeerKey.from_pem(Path(args.peer_pem).read_bytes())
    pool = ThreadPoolExecutor(2)
    outcomes: dict[str, int] = {}
    times: list[int] = []
    stop_at = time.monotonic() + args.seconds

    async def worker() -> None:
        while time.monotonic() < stop_at:
            outcome, ns, _ = await open_session(
                lambda done: Dialer(identity, peer_key, pool, done), args.port, 30
            )
            if outcome == "ok":
                times.append(ns)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    t0, cpu0 = time.monotonic(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    seconds = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    ok = outcomes.get("ok", 0)
    emit(
        {
            "ev": "done",
            "ok": ok,
            "seconds": seconds,
            "rate": ok / seconds,
            "outcomes": outcomes,
            "handshake_latency": percentiles_us(times),
            "initiator_private_ops": identity.private_ops,
            "initiator_cpu_share": round(cpu / seconds, 3),
        }
    )


class Holder(Initiator):
    """An initiator that stays connected once established (answering the node's pings)."""


async def hold(args) -> None:
    """Open ``--n`` sessions to a node and keep them until stdin closes. Session k uses
    key ``k % keys`` of ``--keys-dir`` (k0.pem, k1.pem, ...) and source address
    127.0.0.(``--first-address`` + k // ``--per-address``), so the node's per-address
    caps see at most that many from one address."""
    keys = sorted(Path(args.keys_dir).glob("k*.pem"), key=lambda p: int(p.stem[1:]))
    identities = [Identity(load_key(str(k))) for k in keys]
    peer_key = PeerKey.from_pem(Path(args.peer_pem).read_bytes())
    pool = ThreadPoolExecutor(2)
    outcomes: dict[str, int] = {}
    held = []
    next_k = iter(range(args.first, args.first + args.n))

    async def worker() -> None:
        for k in next_k:
            source = f"127.0.0.{args.first_address + k // args.per_address}"
            ident = identities[k % len(identities)]
            outcome, _, proto = await open_session(
                lambda done, i=ident: Holder(i, peer_key, pool, done),
                args.port,
                60,
                local_addr=(source, 0),
            )
            if outcome == "ok":
                held.append(proto)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    emit({"ev": "held", "ok": len(held), "outcomes": outcomes, "seconds": time.monotonic() - t0})
    await until_stdin_closes()
    for proto in held:
        proto.transport.abort()


# --- a contact that floods ------------------------------------------------------------------


class Flooder(Initiator):
    """An authenticated initiator that sends chats as fast as the socket takes them and
    ignores what the node says (THROTTLE, acks), apart from counting it."""

    def __init__(self, identity, peer_key, pool, done: asyncio.Future) -> None:
        super().__init__(identity, peer_key, pool, done)
        self.writable = asyncio.Event()
        self.writable.set()
        self.throttles: dict[int, int] = {}
        self.acked = -1

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc) -> None:
        self.writable.set()  # wake the writer: it stops on a closed connection
        super().connection_lost(exc)

    def on_event(self, ev) -> None:
        if type(ev) is Throttled:
            self.throttles[ev.reason] = self.throttles.get(ev.reason, 0) + 1
        elif type(ev) is Acked:
            self.acked = ev.upto
        else:
            super().on_event(ev)


async def flood(args) -> None:
    """Flood a node as one of its contacts until stdin closes; then report what was
    sent, what the node acked and how often it said THROTTLE (by reason)."""
    identity = Identity(load_key(args.key_file))
    peer_key = PeerKey.from_pem(Path(args.peer_pem).read_bytes())
    pool = ThreadPoolExecutor(2)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    transport, proto = await loop.create_connection(
        lambda: Flooder(identity, peer_key, pool, done), "127.0.0.1", args.port
    )
    outcome = await asyncio.wait_for(done, 30)
    if outcome != "ok":
        emit({"ev": "error", "outcome": outcome})
        return
    emit({"ev": "flooding"})
    stdin_closed = loop.create_task(until_stdin_closes())
    stdin_closed.add_done_callback(lambda _t: proto.writable.set())  # stop a waiting writer
    sent, t0 = 0, time.monotonic()
    me, to = identity.fingerprint, peer_key.fingerprint
    while not stdin_closed.done() and not transport.is_closing():
        await proto.writable.wait()
        if transport.is_closing():
            break
        now_ms = int(time.time() * 1000)
        batch = [Chat((sent + k).to_bytes(16, "big"), me, to, now_ms, BODY) for k in range(args.n)]
        proto.conn.send_chats(batch)
        sent += args.n
        proto._write()
        await asyncio.sleep(0)  # let reads (THROTTLE, pings) in between writes
    seconds = time.monotonic() - t0
    emit(
        {
            "ev": "done",
            "sent": sent,
            "acked": proto.acked + 1,
            "throttles": proto.throttles,
            "seconds": seconds,
            "closed": proto.conn.close_reason,
        }
    )
    await stdin_closed
    transport.abort()


# --- handshake floods and an honest contact beside them ------------------------------------


class Messenger(Initiator):
    """An honest contact's first message on a new session: handshake, one chat, and the
    node's ack (the chat is stored). ``done`` gets "ok" once acked."""

    def on_event(self, ev) -> None:
        if type(ev) is Established:
            me, to = self.identity.fingerprint, self.peer_key.fingerprint
            chat_id = os.urandom(16)
            self.conn.send_chats([Chat(chat_id, me, to, int(time.time() * 1000), BODY)])
        elif type(ev) is Acked and not self.done.done():
            self._finish("ok")
            self.conn.close(time.time(), "bench_done")


async def first_messages(args) -> None:
    """``--n`` new sessions, one after another, each carrying one chat: the time from
    the TCP connect to the node's ack of the chat (connect-to-delivered)."""
    identity = Identity(load_key(args.key_file))
    peer_key = PeerKey.from_pem(Path(args.peer_pem).read_bytes())
    pool = ThreadPoolExecutor(2)
    times, outcomes = [], {}
    for _ in range(args.n):
        outcome, ns, _ = await open_session(
            lambda done: Messenger(identity, peer_key, pool, done), args.port, 30
        )
        if outcome == "ok":
            times.append(ns)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    emit({"ev": "done", "latency": percentiles_us(times), "outcomes": outcomes})
