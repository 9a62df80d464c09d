"""Attackers and honest traffic for the node-level attack tests (test_node_attacks.py).

Everything here talks to an in-process node over real loopback sockets. Attacking
sockets bind to 127.0.0.2 and up (all of 127.0.0.0/8 is loopback), so that the node's
per-address budgets act on them and not on the honest peer at 127.0.0.1.

- ``connect`` and ``read_to_close``: a raw connection from a chosen source address, and
  everything the node writes to it until it closes.
- ``forged_hs1``: an HS1 with the published layout (PROTOCOL.md b.2) and a junk wrap and
  signature. It is packed here with ``struct``, not with ``enclave.protocol``.
- ``RawPeer``: a peer whose private key the test holds. It drives Enclave's own sans-IO
  ``Connection`` over a socket, so it can hold back, dribble or craft what it sends.
- ``Chatter``: the honest traffic every attack runs beside; ``finish`` checks that every
  message arrived exactly once and was acked.
- ``RecordingProxy``: a TCP relay that records what the client side sent, for replays.

Waiting on any of them goes through ``support.waiting``.
"""

import asyncio
import collections
import os
import struct
import time

from enclave.protocol.connection import Connection
from enclave.protocol.crypto import Identity
from enclave.protocol.events import CryptoNeeded, Established, MessagesReceived
from enclave.protocol.policy import MemoryPolicy
from support.nodes import Recorder
from support.waiting import Watched


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


ALERT_GENERIC = frame(b"ENC2\x7f\x01\x00\x00")
ALERT_BUSY = frame(b"ENC2\x7f\x03\x00\x00")

_HS1_HEAD = struct.Struct(">4sBBBBQ16s32s32s32s")


def forged_hs1(fp_i: bytes, fp_r: bytes, n_r: int = 512, n_i: int = 512) -> bytes:
    """An HS1 payload claiming ``fp_i``: current time, fresh hs_id, random e_I, and a
    wrap and signature of the right lengths that are random bytes."""
    head = _HS1_HEAD.pack(
        b"ENC2",
        1,  # type HS1
        0,  # flags
        2,  # ver_min
        2,  # ver_max
        int(time.time() * 1000),
        os.urandom(16),
        fp_i,
        fp_r,
        os.urandom(32),
    )
    return head + os.urandom(n_r) + os.urandom(n_i)


async def connect(node, source: str):
    """A TCP connection to ``node`` whose local end is bound to ``source``."""
    host, port = node.address
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def read_to_close(reader: asyncio.StreamReader, timeout: float) -> tuple[bytes, bool]:
    """Everything the node writes until it closes: (bytes, whether it ended in a reset)."""
    chunks: list[bytes] = []

    async def drain() -> bool:
        while True:
            try:
                chunk = await reader.read(65536)
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return False
            chunks.append(chunk)

    reset = await asyncio.wait_for(drain(), timeout)
    return b"".join(chunks), reset


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass


class RawPeer(Watched):
    """A peer the test controls: its own key, Enclave's Connection, a raw socket.

    ``hold = True`` keeps what the connection wants to send in ``held`` instead of
    writing it, so the test can dribble it, ``write`` it later or never send it. ``raw``
    holds every byte the node wrote; ``eof`` is set once the node closed the connection.
    ``until(predicate)`` wakes on each event and on the close.
    """

    def __init__(self, key, node, *, source: str) -> None:
        super().__init__()
        self.identity = Identity(key)
        self.fingerprint = self.identity.fingerprint
        self.node = node
        target = node.identity.peer_key
        self.conn = Connection(self.identity, MemoryPolicy([target]), time.time(), peer=target)
        self.source = source
        self.hold = False
        self.held = b""
        self.raw = b""
        self.reset = False
        self.events: list = []
        self.eof = asyncio.Event()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self.opened_at = 0.0
        self.closed_at = 0.0

    async def open(self) -> "RawPeer":
        loop = asyncio.get_running_loop()
        self.opened_at = loop.time()
        self._reader, self._writer = await connect(self.node, self.source)
        self._task = loop.create_task(self._read())
        return self

    async def begin(self) -> None:
        """Build and sign HS1 (the job runs on a thread) and send it, unless held."""
        await self._absorb(self.conn.initiate(time.time()))
        self._push()

    async def handshake(self, timeout: float = 20.0) -> None:
        await self.open()
        await self.begin()
        await self.until(lambda p: p.conn.established or p.eof.is_set(), timeout)
        assert self.conn.established, (self.conn.close_reason, self.raw[:16])

    def send_chats(self, chats) -> None:
        self.conn.send_chats(chats)
        self._push()

    def send_crafted(self, messages) -> None:
        """Messages the Connection's API would refuse to send (an ACK beyond what was
        received, say), sealed as one APP record on this session."""
        self.conn._pending.extend(messages)
        self._push()

    def ack(self, upto: int) -> None:
        self.conn.ack(upto)
        self._push()

    def chats(self) -> list:
        return [c for ev in self.events if type(ev) is MessagesReceived for c in ev.messages]

    def established_events(self) -> list:
        return [ev for ev in self.events if type(ev) is Established]

    def write(self, data: bytes) -> None:
        """Bytes straight onto the socket, whatever ``hold`` says (say, what was held)."""
        self._emit(data)

    def write_eof(self) -> None:
        self._writer.write_eof()

    def abort(self) -> None:
        """End the connection with a reset, as a peer that vanishes does."""
        self._writer.transport.abort()

    async def dribble(self, data: bytes, pace: float) -> None:
        """Write ``data`` one byte every ``pace`` seconds; stop as soon as the node closes."""
        for k in range(len(data)):
            if self.eof.is_set():
                return
            try:
                self._writer.write(data[k : k + 1])
                await self._writer.drain()
            except (ConnectionError, OSError):
                return
            try:  # pacing that ends early when the node closes
                await asyncio.wait_for(self.eof.wait(), pace)
            except TimeoutError:
                pass

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._writer is not None:
            await close_writer(self._writer)

    # --- internals -------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                self.raw += data
                await self._absorb(self.conn.receive_data(data, time.time()))
                self._push()
        except (ConnectionError, OSError):
            self.reset = True
        finally:
            self.closed_at = asyncio.get_running_loop().time()
            self.eof.set()
            self.changed()

    async def _absorb(self, events: list) -> None:
        for ev in events:
            if type(ev) is CryptoNeeded:
                await asyncio.to_thread(ev.job.run)
                await self._absorb(self.conn.resume(ev.job, time.time()))
            else:
                self.events.append(ev)
        self.changed()

    def _push(self) -> None:
        data = self.conn.data_to_send(time.time())
        if not data:
            return
        if self.hold:
            self.held += data
        elif self._writer is not None and not self._writer.is_closing():
            self._emit(data)

    def _emit(self, data: bytes) -> None:
        self._writer.write(data)


class Chatter:
    """Honest traffic: ``sender`` keeps sending to ``receiver`` while an attack runs.

    ``start`` sends a first message and waits for its ack unless ``connected`` is False;
    then a background task sends one message every ``pace`` seconds until ``finish``.
    ``finish`` waits for every ack and checks exactly-once delivery: the receiver showed
    each message once, in order, stored it once, and the sender saw one ack per message.
    """

    def __init__(self, sender, receiver, query: str, *, pace: float = 0.02) -> None:
        self.sender, self.receiver, self.query, self.pace = sender, receiver, query, pace
        self.at_sender, self.at_receiver = Recorder(sender), Recorder(receiver)
        self.sent: list[tuple[int, bytes, str]] = []  # (rowid, id, body)
        self._n = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.roundtrip()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def roundtrip(self, timeout: float = 20.0) -> None:
        """Send one message and wait until it is acked: the honest path works now."""
        rowid = await self._send()
        await self.at_sender.until(lambda r: rowid in self._delivered(r), timeout)

    async def finish(self, timeout: float = 30.0) -> int:
        self._stop.set()
        if self._task is not None:
            await self._task
        want = {rowid for rowid, _, _ in self.sent}
        await self.at_sender.until(lambda r: want <= set(self._delivered(r)), timeout)
        delivered = self._delivered(self.at_sender)
        assert sorted(delivered) == sorted(want), "an honest message was acked twice or not at all"
        ordered = sorted(self.sent)
        peer = self.sender.fingerprint
        shown = [(m.id, m.body) for m in self.at_receiver.received() if m.peer == peer]
        assert shown == [(i, body) for _, i, body in ordered]
        stored = collections.Counter(
            (m.id, m.body)
            for m in self.receiver.store.history(peer, 10**6)
            if m.direction == "in" and m.body.startswith("honest ")
        )
        assert stored == collections.Counter((i, body) for _, i, body in ordered)
        outgoing = self._outgoing()
        assert len(outgoing) == len(want) and {m.state for m in outgoing} == {"delivered"}
        return len(self.sent)

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self._send()
            try:  # pacing; ends early when the test calls finish()
                await asyncio.wait_for(self._stop.wait(), self.pace)
            except TimeoutError:
                pass

    async def _send(self) -> int:
        body = f"honest {self._n}"
        self._n += 1
        sent = await self.sender.send(self.query, body)
        self.sent.append((sent.rowid, sent.id, body))
        return sent.rowid

    def _delivered(self, recorder) -> list[int]:
        peer = self.receiver.fingerprint
        return [e.rowid for e in recorder.states("delivered") if e.peer == peer]

    def _outgoing(self) -> list:
        rowids = {rowid for rowid, _, _ in self.sent}
        history = self.sender.store.history(self.receiver.fingerprint, 10**6)
        return [m for m in history if m.rowid in rowids]


class RecordingProxy:
    """Relays TCP from 127.0.0.1:<port> to ``target``; ``upstream[k]`` holds every byte
    the k-th client sent (what a network observer between the two would record)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.upstream: list[bytearray] = []
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()  # both pumps of each relay then see the end of their stream
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    async def _relay(self, reader, writer) -> None:
        self._tasks.add(asyncio.current_task())
        self._writers.append(writer)
        record = bytearray()
        self.upstream.append(record)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._writers.append(up_writer)
            await asyncio.gather(_pump(reader, up_writer, record), _pump(up_reader, writer, None))
        except (ConnectionError, OSError):
            writer.close()
        finally:
            self._tasks.discard(asyncio.current_task())


async def _pump(src, dst, record: bytearray | None) -> None:
    try:
        while data := await src.read(65536):
            if record is not None:
                record += data
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        dst.close()
