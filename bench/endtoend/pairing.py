"""Pairing by code: from ``join`` to both sides holding the other as a verified contact.

Two nodes in this process on 127.0.0.1 (RSA-4096, like a real identity), the inviter's
invitation opened before the clock starts (a person reads the code meanwhile). Each
round joins a new invitation; the clock stops when the joiner's ``join`` has returned
and the inviter's invitation has resolved. The cost is SPAKE2 (pure Python, Ed25519)
on each side, two round trips on loopback and one store write a side.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from endtoend.measure import percentiles_us


def pairing_case(tmp: Path, inviter_key, joiner_key, rounds: int) -> dict:
    return asyncio.run(_rounds(tmp, inviter_key, joiner_key, rounds))


async def _rounds(tmp: Path, inviter_key, joiner_key, rounds: int) -> dict:
    from enclave.node import Node

    a, b = Node(tmp / "pair-a", inviter_key), Node(tmp / "pair-b", joiner_key)
    await a.start("127.0.0.1", 0)
    await b.start("127.0.0.1", 0)
    where = f"127.0.0.1:{a.address[1]}"
    # One source may try 5 codes a minute; this run is that one source, on purpose.
    a.pairing.attempts.limit = rounds + 1
    seconds = []
    try:
        for _ in range(rounds + 1):  # the first one warms imports and sockets
            invitation = a.invite()
            t0 = time.perf_counter()
            await b.join(invitation.code, where)
            result = await invitation.result
            seconds.append(time.perf_counter() - t0)
            if result.reason is not None:
                raise RuntimeError(f"pairing failed: {result.reason}")
    finally:
        await a.stop()
        await b.stop()
    stats = percentiles_us(seconds[1:])
    return {
        "rounds": rounds,
        "median_ms": stats["p50_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
        "max_ms": stats["max_us"] / 1000,
    }


if __name__ == "__main__":  # a quick look: python bench/endtoend/pairing.py
    import tempfile

    from cryptography.hazmat.primitives.asymmetric import rsa

    keys = [rsa.generate_private_key(public_exponent=65537, key_size=4096) for _ in range(2)]
    with tempfile.TemporaryDirectory() as tmp:
        print(pairing_case(Path(tmp), *keys, int(sys.argv[1]) if len(sys.argv) > 1 else 20))
