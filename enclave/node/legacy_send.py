"""Sending to peers the user marked legacy (v1): one sealed envelope per TCP connection.

Rules (PROTOCOL.md d, "Send"):
- Only peers whose protocol the user set to ``v1`` get v1. Nothing else ever falls
  back to v1, whatever happens to a v2 handshake.
- Each message is sealed once (the RSA signature runs on the crypto pool). A retry
  sends the same bytes, and only within 5 minutes of the first attempt (the original
  client deduplicates by message ID within its ±5 minute window); after that the
  message is marked failed and the user may resend it.
- v1 has no acknowledgement: a written envelope ends as "sent (legacy, unconfirmed)",
  never "delivered".
- When the user changes the peer's protocol, ``release`` lets go of its queue: at once,
  or, while an envelope is being written, right after it is settled. That envelope is
  held out of the queue meanwhile, so the new protocol never sends it a second time;
  if the write failed it goes back to the front of the queue and ``then`` is called.
"""

import asyncio
import time
import uuid

from enclave.node.events import DeliveryChanged
from enclave.protocol import legacy

RETRY_WINDOW = 300.0
CONNECT_TIMEOUT = 5.0


class LegacySender:
    def __init__(self, identity, store, crypto, writer, publish, unkept=frozenset()) -> None:
        self.identity = identity
        self.unkept = unkept  # peers with history off: a settled envelope is erased
        self.store = store
        self.crypto = crypto  # executor for the RSA signature
        self.writer = writer  # delivery's store writer thread
        self.publish = publish
        self._tasks: dict[bytes, asyncio.Task] = {}
        self._sealed: dict[int, tuple[bytes, float]] = {}  # rowid -> (envelope, first attempt)
        self._writing: set[bytes] = set()  # peers with an envelope on the wire (or settling)
        self._released: dict[bytes, object] = {}  # peer -> called if an envelope goes back

    def kick(self, peer: bytes, queue, key, address: str | None) -> None:
        self._released.pop(peer, None)  # v1 again before a release took effect: keep going
        if peer not in self._tasks and queue:
            task = asyncio.get_running_loop().create_task(self._drain(peer, queue, key, address))
            self._tasks[peer] = task
            task.add_done_callback(lambda _t: self._ended(peer))

    def release(self, peer: bytes, then) -> None:
        """Stop sending ``peer`` v1 (its protocol changed); see the rules."""
        task = self._tasks.get(peer)
        if task is None:
            return
        self._released[peer] = then
        if peer not in self._writing:
            task.cancel()

    def _ended(self, peer: bytes) -> None:
        self._tasks.pop(peer, None)
        self._released.pop(peer, None)

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()

    async def _drain(self, peer: bytes, queue, key, address: str | None) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.5
        while queue and peer not in self._released:
            out = queue[0]
            envelope, first = await self._envelope(out, key, loop)
            if out not in queue:  # by identity: the queue may have changed while we waited
                continue
            self._writing.add(peer)
            try:
                settled = await self._write(out, peer, queue, envelope, first, address, loop)
            finally:
                self._writing.discard(peer)
            if settled:
                delay = 0.5
            elif peer in self._released:
                self._released[peer]()  # it went back to the queue: the new protocol sends it
            else:
                await asyncio.sleep(delay)  # retry backoff, not synchronisation
                delay = min(delay * 2, 30.0)

    async def _write(self, out, peer, queue, envelope, first, address, loop) -> bool:
        """One attempt, with ``out`` held out of the queue; True once it is settled."""
        queue.remove(out)
        try:
            ok = address is not None and await _send(address, envelope)
        except BaseException:  # stopped mid-write (the node stops): it stays owed
            queue.appendleft(out)
            raise
        if not ok and time.time() - first <= RETRY_WINDOW:
            queue.appendleft(out)
            return False
        self._sealed.pop(out.rowid, None)
        await self._settle(out, peer, ok, loop)
        return True

    async def _envelope(self, out, key, loop) -> tuple[bytes, float]:
        if out.rowid not in self._sealed:
            message_id = str(uuid.UUID(bytes=out.id, version=4))
            now = time.time()
            envelope = await loop.run_in_executor(
                self.crypto, lambda: legacy.seal(self.identity, key, out.body, now, message_id)
            )
            self._sealed[out.rowid] = (envelope, now)
        return self._sealed[out.rowid]

    async def _settle(self, out, peer: bytes, ok: bool, loop) -> None:
        erase = peer in self.unkept
        if ok:
            await loop.run_in_executor(self.writer, self.store.mark_legacy_sent, [out.rowid], erase)
            self.publish(
                DeliveryChanged(peer.hex(), out.rowid, out.id, "sent", "legacy, unconfirmed")
            )
        else:
            reason = "legacy peer unreachable for 5 minutes; resend it if you wish"
            await loop.run_in_executor(
                self.writer, self.store.mark_failed, [out.rowid], reason, erase
            )
            self.publish(DeliveryChanged(peer.hex(), out.rowid, out.id, "failed", reason))


async def _send(address: str, envelope: bytes) -> bool:
    """Connect, write one framed envelope, close. True if it was written and closed."""
    host, _, port = address.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port)), CONNECT_TIMEOUT
        )
    except (TimeoutError, OSError):
        return False
    try:
        writer.write(len(envelope).to_bytes(4, "big") + envelope)
        await asyncio.wait_for(writer.drain(), CONNECT_TIMEOUT)
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), CONNECT_TIMEOUT)
    except (TimeoutError, OSError):
        return False
    return True
