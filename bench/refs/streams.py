"""The stream references: the raw AES-GCM ceiling, the same batched, and TLS 1.3.

Roles ``stream-server`` and ``stream-client`` (``--kind tls|raw|raw-batch``, ``--mode
throughput|latency``); bench/ref_worker.py's docstring says what each measures.
"""

import asyncio
import os
import ssl
import time
from pathlib import Path

import msgpack
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclave._fast import FrameSplitter
from refs.common import BODY, emit, nodelay, percentiles_us, until_stdin_closes

CHUNK = 64  # frames per write
WINDOW = 32768  # unacknowledged messages, as Enclave's MAX_UNACKED

LATENCY_BODY = "L" * 100
FP_A, FP_B = bytes(range(32)), bytes(range(32, 64))
AES_KEY = bytes(range(32))  # a benchmark key, both sides know it


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
