"""A stranger's handshake flood: junk HS1s claiming a contact's fingerprint.

Role ``hs-flood``: right shape, fresh, bad signature, each on its own connection from
one of ``--addresses`` source addresses; the node must refuse them all and keep
serving the contact they claim to be.
"""

import asyncio
import os
import time
from pathlib import Path

from enclave.protocol import handshake as hs
from enclave.protocol.crypto import PeerKey
from refs.common import emit, until_stdin_closes


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
