"""The references of bench/e2e.py, each side in its own process (uvloop).

    python bench/ref_worker.py ROLE [options]

Roles (every role prints JSON lines on stdout; servers first ``{"ev": "ready", "port"}``):

- ``stream-server`` / ``stream-client`` with ``--kind tls|raw|raw-batch``: the same chat
  messages Enclave sends (msgpack ``[1, id16, from32, to32, created, body100]``), each
  with a 4-byte length prefix, over one TCP connection on 127.0.0.1. ``tls``: Python ssl
  (TLS 1.3, self-signed certificate) carrying the plain frames. ``raw``: the ceiling, one
  AES-256-GCM seal per frame and nothing else. ``raw-batch``: what Enclave's record layer
  does, one msgpack array and one AES-256-GCM seal per write of 64 messages. The client writes 64 frames per write and
  keeps at most 32,768 unacknowledged; the server decodes every frame and acks the count
  after each read (one ack per batch). ``--mode throughput`` times N messages until the
  last ack; ``--mode latency`` sends one message per tick at ``--rate`` with its send time
  (``time.monotonic_ns``) in the created field, and the server reports one-way latency
  percentiles when the connection closes.
- ``v1-server`` / ``v1-client``: the seed's method, one sealed v1 envelope per message
  (``legacy.seal``: AES key, OAEP wrap, RSA-PSS signature) on its own TCP connection;
  the server parses, checks the time, verifies and opens each (``legacy.open_text``, one
  private operation) on a pool of 2 threads, like the sender's seals.
- ``dial``: handshakes per second against a node: ``--concurrency`` initiator
  Connections at a time, each closed as soon as it is established, for ``--seconds``;
  the initiator's private operations run on a pool of 2 threads.
- ``hold``: ``--n`` sessions to a node, each kept open once established (see ``hold``).
- ``flood``: one authenticated contact that ignores what it is told: once established it
  writes batches of ``--n`` chats of 100 B as fast as the socket takes them, never
  waiting for acks and ignoring THROTTLE, until stdin closes (see ``flood``).
- ``first-messages``: an honest contact's first message, ``--n`` times: a new session,
  one chat, the node's ack; connect-to-delivered percentiles.
- ``hs-flood``: a stranger's handshake flood: junk HS1s claiming a contact's fingerprint
  (right shape, fresh, bad signature) from ``--addresses`` source addresses, each on its
  own connection, ``--concurrency`` at a time, until stdin closes or ``--seconds`` pass.
- ``rsa``: RSA-4096 private operations (PSS sign) per second, on 1 and on 2 threads.

Keys arrive as unencrypted PEM files written by the harness into its temporary folder.
"""

import argparse
import asyncio
import json
import os
import socket
import ssl
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclave._fast import FrameSplitter
from enclave.protocol import handshake as hs
from enclave.protocol import legacy
from enclave.protocol.connection import Connection
from enclave.protocol.crypto import Identity, PeerKey
from enclave.protocol.events import Acked, ConnectionClosed, CryptoNeeded, Established, Throttled
from enclave.protocol.messages import Chat
from enclave.protocol.policy import Policy

CHUNK = 64  # frames per write
WINDOW = 32768  # unacknowledged messages, as Enclave's MAX_UNACKED
BODY, LATENCY_BODY = "x" * 100, "L" * 100
FP_A, FP_B = bytes(range(32)), bytes(range(32, 64))
AES_KEY = bytes(range(32))  # a benchmark key, both sides know it


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def percentiles_us(values_ns: list[int]) -> dict:
    if not values_ns:
        return {}
    v = sorted(values_ns)

    def at(q: float) -> float:
        return v[min(len(v) - 1, int(q * len(v)))] / 1000

    return {
        "count": len(v),
        "p50_us": at(0.50),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
        "max_us": v[-1] / 1000,
        "mean_us": statistics.fmean(v) / 1000,
    }


def nodelay(transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Sealer:
    """Length-prefixed frames, AES-256-GCM per frame (raw) or as is (tls)."""

    def __init__(self, raw: bool) -> None:
        self.aead = AESGCM(AES_KEY) if raw else None
        self.seq = 0

    def frame(self, payload: bytes) -> bytes:
        if self.aead is not None:
            payload = self.aead.encrypt(self.seq.to_bytes(12, "big"), payload, None)
            self.seq += 1
        return len(payload).to_bytes(4, "big") + payload

    def open(self, frame: bytes) -> bytes:
        if self.aead is None:
            return frame
        plain = self.aead.decrypt(self.seq.to_bytes(12, "big"), frame, None)
        self.seq += 1
        return plain


# --- TLS 1.3 and the raw AES-GCM stream ---------------------------------------------------


def tls_contexts(cert_dir: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate made in memory (written to the harness's temp folder,
    since ``ssl`` loads certificates from files); TLS 1.3 only on both sides."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = cert_dir / "tls-cert.pem", cert_dir / "tls-key.pem"
    if not cert_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256())
        )
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    server.load_cert_chain(cert_path, key_path)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    client.load_verify_locations(cert_path)
    return server, client


class StreamServer(asyncio.Protocol):
    def __init__(self, raw: bool, batched: bool) -> None:
        self.rx, self.tx = Sealer(raw), Sealer(raw)
        self.batched = batched
        self.splitter = FrameSplitter(1 << 20)
        self.count = 0
        self.latency: list[int] = []
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        nodelay(transport)

    def data_received(self, data: bytes) -> None:
        frames = self.splitter.feed(data)
        if not frames:
            return
        now = time.monotonic_ns()
        unpackb, open_ = msgpack.unpackb, self.rx.open
        lat = self.latency
        count = self.count
        for f in frames:
            batch = unpackb(open_(f))
            for msg in batch if self.batched else (batch,):
                if msg[5][0] == "L":  # latency mode: the created field is a monotonic_ns stamp
                    lat.append(now - msg[4])
                count += 1
        self.count = count
        self.transport.write(self.tx.frame(self.count.to_bytes(8, "big")))

    def connection_lost(self, exc) -> None:
        emit({"ev": "conn", "received": self.count, "latency": percentiles_us(self.latency)})


class StreamClient(asyncio.Protocol):
    def __init__(self, raw: bool) -> None:
        self.tx, self.rx = Sealer(raw), Sealer(raw)
        self.splitter = FrameSplitter(1 << 16)
        self.acked = 0
        self.changed = asyncio.Event()
        self.writable = True
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        nodelay(transport)

    def data_received(self, data: bytes) -> None:
        for f in self.splitter.feed(data):
            self.acked = int.from_bytes(self.rx.open(f), "big")
        self.changed.set()

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self.changed.set()

    async def until(self, predicate) -> None:
        while not predicate():
            self.changed.clear()
            await self.changed.wait()


def chat(created: int, body: str = BODY) -> bytes:
    return msgpack.packb([1, os.urandom(16), FP_A, FP_B, created, body])


async def stream_client(args) -> None:
    raw, batched = args.kind != "tls", args.kind == "raw-batch"
    loop = asyncio.get_running_loop()
    ctx = tls_contexts(Path(args.dir))[1] if args.kind == "tls" else None
    _, proto = await loop.create_connection(
        lambda: StreamClient(raw),
        "127.0.0.1",
        args.port,
        ssl=ctx,
        server_hostname="localhost" if ctx else None,
    )
    n = args.n
    t0 = time.monotonic()
    if args.mode == "throughput":
        sent, frame = 0, proto.tx.frame
        created = int(time.time() * 1000)
        while sent < n:
            if sent - proto.acked >= WINDOW or not proto.writable:
                await proto.until(lambda s=sent: s - proto.acked < WINDOW and proto.writable)
            k = min(CHUNK, n - sent)
            if batched:  # one msgpack array and one AES-GCM seal for the whole write
                fields = [[1, os.urandom(16), FP_A, FP_B, created, BODY] for _ in range(k)]
                proto.transport.write(frame(msgpack.packb(fields)))
            else:
                proto.transport.write(b"".join([frame(chat(created)) for _ in range(k)]))
            sent += k
            if sent % (CHUNK * 16) == 0:
                await asyncio.sleep(0)  # let acks in, as an event loop would anyway
    else:
        began = time.monotonic() + 0.01
        for i in range(n):
            wait = began + i / args.rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # pacing the producer
            msg = chat(time.monotonic_ns(), LATENCY_BODY)
            if batched:  # a batch of one
                msg = msgpack.packb([msgpack.unpackb(msg)])
            proto.transport.write(proto.tx.frame(msg))
    await proto.until(lambda: proto.acked >= n)
    seconds = time.monotonic() - t0
    proto.transport.close()
    emit({"ev": "done", "n": n, "seconds": seconds, "rate": n / seconds})


async def stream_server(args) -> None:
    raw, batched = args.kind != "tls", args.kind == "raw-batch"
    loop = asyncio.get_running_loop()
    ctx = tls_contexts(Path(args.dir))[0] if args.kind == "tls" else None
    server = await loop.create_server(lambda: StreamServer(raw, batched), "127.0.0.1", 0, ssl=ctx)
    emit({"ev": "ready", "port": server.sockets[0].getsockname()[1]})
    await until_stdin_closes()


async def until_stdin_closes() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# --- the seed's method: one v1 envelope per message, one connection each -------------------


def load_key(path: str):
    return serialization.load_pem_private_key(Path(path).read_bytes(), None)


async def v1_server(args) -> None:
    identity = Identity(load_key(args.key_file))
    sender = PeerKey.from_pem(Path(args.peer_pem).read_bytes())
    pool = ThreadPoolExecutor(2)
    loop = asyncio.get_running_loop()
    state = {"count": 0, "first": None, "last": None, "errors": 0}
    latency: list[int] = []

    async def handle(reader, writer) -> None:
        try:
            head = await reader.readexactly(4)
            frame = await reader.readexactly(int.from_bytes(head, "big"))
            env = legacy.parse(frame, identity.modulus_bytes)
            legacy.check_time(env, time.time())
            legacy.verify(env, sender)
            text = await loop.run_in_executor(pool, legacy.open_text, identity, env)
            now = time.monotonic_ns()
            stamp = int(text.split(".", 1)[0])
            if stamp > 0:
                latency.append(now - stamp)
            state["count"] += 1
            state["first"] = state["first"] or now
            state["last"] = now
        except Exception:
            state["errors"] += 1
        finally:
            writer.close()
        if state["count"] + state["errors"] == args.expect:
            emit({"ev": "conn", **state, "latency": percentiles_us(latency)})

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    emit({"ev": "ready", "port": server.sockets[0].getsockname()[1]})
    await until_stdin_closes()


async def v1_client(args) -> None:
    identity = Identity(load_key(args.key_file))
    recipient = PeerKey.from_pem(Path(args.peer_pem).read_bytes())
    pool = ThreadPoolExecutor(2)
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(args.concurrency)

    async def one(stamp: int) -> None:
        async with gate:
            text = f"{stamp}.".ljust(100, ".")
            envelope = await loop.run_in_executor(
                pool, legacy.seal, identity, recipient, text, time.time()
            )
            _, writer = await asyncio.open_connection("127.0.0.1", args.port)
            writer.write(len(envelope).to_bytes(4, "big") + envelope)
            await writer.drain()
            writer.close()
            await writer.wait_closed()

    t0 = time.monotonic_ns()
    if args.mode == "throughput":
        await asyncio.gather(*(one(0) for _ in range(args.n)))
    else:
        tasks, began = [], time.monotonic() + 0.01
        for i in range(args.n):
            wait = began + i / args.rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # pacing the producer
            tasks.append(loop.create_task(one(time.monotonic_ns())))
        await asyncio.gather(*tasks)
    emit({"ev": "done", "n": args.n, "start_ns": t0})


# --- handshakes against a node -----------------------------------------------------------


class Dialer(asyncio.Protocol):
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
        if not self.done.done():
            self.done.set_result("connection_lost")

    def handle(self, events: list) -> None:
        established = False
        for ev in events:
            if type(ev) is CryptoNeeded:
                self._run_crypto(ev.job)
            elif type(ev) is Established:
                established = True
            elif type(ev) is ConnectionClosed and not self.done.done():
                self.done.set_result(f"{ev.reason} {ev.detail or ''}".strip())
        self._write()
        if established:  # HS3 is on its way: say CLOSE right behind it
            if not self.done.done():
                self.done.set_result("ok")
            self.conn.close(time.time(), "bench_done")
            self._write()

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


async def dial(args) -> None:
    identity = Identity(load_key(args.key_file))
    peer_key = PeerKey.from_pem(Path(args.peer_pem).read_bytes())
    pool = ThreadPoolExecutor(2)
    loop = asyncio.get_running_loop()
    outcomes: dict[str, int] = {}
    times: list[int] = []
    stop_at = time.monotonic() + args.seconds

    async def worker() -> None:
        while time.monotonic() < stop_at:
            done = loop.create_future()
            t = time.monotonic_ns()
            try:
                await loop.create_connection(
                    lambda d=done: Dialer(identity, peer_key, pool, d), "127.0.0.1", args.port
                )
                outcome = await asyncio.wait_for(done, 30)
            except (OSError, TimeoutError) as err:
                outcome = type(err).__name__
            if outcome == "ok":
                times.append(time.monotonic_ns() - t)
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


class Holder(Dialer):
    """An initiator that stays connected once established (answering the node's pings)."""

    def handle(self, events: list) -> None:
        for ev in events:
            if type(ev) is CryptoNeeded:
                self._run_crypto(ev.job)
            elif type(ev) is Established and not self.done.done():
                self.done.set_result("ok")
            elif type(ev) is ConnectionClosed and not self.done.done():
                self.done.set_result(f"{ev.reason} {ev.detail or ''}".strip())
        self._write()


async def hold(args) -> None:
    """Open ``--n`` sessions to a node and keep them until stdin closes. Session k uses
    key ``k % keys`` of ``--keys-dir`` (k0.pem, k1.pem, ...) and source address
    127.0.0.(``--first-address`` + k // ``--per-address``), so the node's per-address
    caps see at most that many from one address."""
    keys = sorted(Path(args.keys_dir).glob("k*.pem"), key=lambda p: int(p.stem[1:]))
    identities = [Identity(load_key(str(k))) for k in keys]
    peer_key = PeerKey.from_pem(Path(args.peer_pem).read_bytes())
    pool = ThreadPoolExecutor(2)
    loop = asyncio.get_running_loop()
    outcomes: dict[str, int] = {}
    held = []
    next_k = iter(range(args.first, args.first + args.n))

    async def worker() -> None:
        for k in next_k:
            done = loop.create_future()
            source = f"127.0.0.{args.first_address + k // args.per_address}"
            ident = identities[k % len(identities)]
            try:
                transport, proto = await loop.create_connection(
                    lambda d=done, i=ident: Holder(i, peer_key, pool, d),
                    "127.0.0.1",
                    args.port,
                    local_addr=(source, 0),
                )
                outcome = await asyncio.wait_for(done, 60)
            except (OSError, TimeoutError) as err:
                outcome = type(err).__name__
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


class Flooder(Dialer):
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

    def handle(self, events: list) -> None:
        for ev in events:
            if type(ev) is CryptoNeeded:
                self._run_crypto(ev.job)
            elif type(ev) is Established and not self.done.done():
                self.done.set_result("ok")
            elif type(ev) is Throttled:
                self.throttles[ev.reason] = self.throttles.get(ev.reason, 0) + 1
            elif type(ev) is Acked:
                self.acked = ev.upto
            elif type(ev) is ConnectionClosed and not self.done.done():
                self.done.set_result(f"{ev.reason} {ev.detail or ''}".strip())
        self._write()


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
        batch = [
            Chat((sent + k).to_bytes(16, "big"), me, to, now_ms, BODY) for k in range(args.n)
        ]
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


class Messenger(Dialer):
    """An honest contact's first message on a new session: handshake, one chat, and the
    node's ack (the chat is stored). ``done`` gets "ok" once acked."""

    def handle(self, events: list) -> None:
        for ev in events:
            if type(ev) is CryptoNeeded:
                self._run_crypto(ev.job)
            elif type(ev) is Established:
                me, to = self.identity.fingerprint, self.peer_key.fingerprint
                chat_id = os.urandom(16)
                self.conn.send_chats([Chat(chat_id, me, to, int(time.time() * 1000), BODY)])
            elif type(ev) is Acked and not self.done.done():
                self.done.set_result("ok")
                self.conn.close(time.time(), "bench_done")
            elif type(ev) is ConnectionClosed and not self.done.done():
                self.done.set_result(f"{ev.reason} {ev.detail or ''}".strip())
        self._write()


async def first_messages(args) -> None:
    """``--n`` new sessions, one after another, each carrying one chat: the time from
    the TCP connect to the node's ack of the chat (connect-to-delivered)."""
    identity = Identity(load_key(args.key_file))
    peer_key = PeerKey.from_pem(Path(args.peer_pem).read_bytes())
    pool = ThreadPoolExecutor(2)
    loop = asyncio.get_running_loop()
    times, outcomes = [], {}
    for _ in range(args.n):
        done = loop.create_future()
        t = time.monotonic_ns()
        try:
            await loop.create_connection(
                lambda d=done: Messenger(identity, peer_key, pool, d), "127.0.0.1", args.port
            )
            outcome = await asyncio.wait_for(done, 30)
        except (OSError, TimeoutError) as err:
            outcome = type(err).__name__
        if outcome == "ok":
            times.append(time.monotonic_ns() - t)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    emit({"ev": "done", "latency": percentiles_us(times), "outcomes": outcomes})


def junk_hs1(claim: bytes, target: PeerKey, wrap: bytes, e_pub: bytes, n_claim: int) -> bytes:
    """An HS1 of the right shape claiming ``claim``, fresh (time, id), signature random:
    it passes every check before the verify, and fails the verify."""
    prefix = hs.hs1_body(
        int(time.time() * 1000), os.urandom(16), claim, target.fingerprint, e_pub, wrap
    )
    return prefix + os.urandom(n_claim)


async def hs_flood(args) -> None:
    """Junk HS1s claiming a contact's fingerprint (``--claim-pem``), from ``--addresses``
    source addresses 127.X.Y.Z (X = ``--first-address``), ``--concurrency`` at a time,
    each on its own connection, until stdin closes or ``--seconds`` pass (bounded)."""
    target = PeerKey.from_pem(Path(args.peer_pem).read_bytes())
    claim = PeerKey.from_pem(Path(args.claim_pem).read_bytes())
    wrap = target.wrap_v2(os.urandom(32), hs.LABEL_I)  # one wrap serves every junk HS1
    e_pub = os.urandom(32)
    loop = asyncio.get_running_loop()
    sources = [f"127.{args.first_address}.{k // 250}.{k % 250 + 1}" for k in range(args.addresses)]
    outcomes: dict[str, int] = {}
    stop_at = time.monotonic() + args.seconds
    stdin_closed = loop.create_task(until_stdin_closes())
    sent = 0

    async def one(source: str) -> None:
        nonlocal sent
        frame = junk_hs1(claim.fingerprint, target, wrap, e_pub, claim.modulus_bytes)
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", args.port, local_addr=(source, 0)
            )
            writer.write(len(frame).to_bytes(4, "big") + frame)
            sent += 1
            answer = await asyncio.wait_for(reader.read(64), 10)
            outcome = "alert" if answer[8:9] else "closed"
            writer.transport.abort()
        except (OSError, TimeoutError) as err:
            outcome = type(err).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    async def worker(k: int) -> None:
        i = k
        while time.monotonic() < stop_at and not stdin_closed.done():
            await one(sources[i % len(sources)])
            i += args.concurrency

    emit({"ev": "flooding"})
    t0 = time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(args.concurrency)))
    emit({"ev": "done", "sent": sent, "seconds": time.monotonic() - t0, "outcomes": outcomes})
    await stdin_closed


# --- RSA-4096 private operations -----------------------------------------------------------


def rsa_rate(args) -> None:
    key = load_key(args.key_file)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    data = b"x" * 200
    result = {"ev": "done", "bits": key.key_size}
    for threads in (1, 2):
        stop_at = time.monotonic() + args.seconds

        def spin(stop=stop_at) -> int:
            n = 0
            while time.monotonic() < stop:
                key.sign(data, pss, hashes.SHA256())
                n += 1
            return n

        t0 = time.monotonic()
        with ThreadPoolExecutor(threads) as pool:
            total = sum(pool.map(lambda _i: spin(), range(threads)))
        result[f"ops_per_s_{threads}_threads"] = total / (time.monotonic() - t0)
    emit(result)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "role",
        choices=[
            "stream-server",
            "stream-client",
            "v1-server",
            "v1-client",
            "dial",
            "hold",
            "flood",
            "first-messages",
            "hs-flood",
            "rsa",
        ],
    )
    parser.add_argument("--kind", choices=["tls", "raw", "raw-batch"], default="raw")
    parser.add_argument("--mode", choices=["throughput", "latency"], default="throughput")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--dir", default=".")
    parser.add_argument("--key-file")
    parser.add_argument("--peer-pem")
    parser.add_argument("--claim-pem")
    parser.add_argument("--addresses", type=int, default=64)
    parser.add_argument("--keys-dir")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--first-address", type=int, default=2)
    parser.add_argument("--per-address", type=int, default=60)
    args = parser.parse_args(argv)
    if args.role == "rsa":
        rsa_rate(args)
        return 0
    run = {
        "stream-server": stream_server,
        "stream-client": stream_client,
        "v1-server": v1_server,
        "v1-client": v1_client,
        "dial": dial,
        "hold": hold,
        "flood": flood,
        "first-messages": first_messages,
        "hs-flood": hs_flood,
    }[args.role]
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
