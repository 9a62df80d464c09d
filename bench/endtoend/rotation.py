"""Key rotation on a running node: from the take-over to the contact using the new key.

Two nodes in this process on 127.0.0.1 (RSA-4096), contacts with a session open
(presence). Each round, A rotates to a key made before the clock starts (generating
RSA-4096 takes seconds and is not the hand-over); ``Node.rotate_key`` rotates the files
(two scrypt runs, the identity's cost) and takes the key over. Then the clock runs:
B applies the statement that came on the open session (``KeyChanged``), and A's next
message, sent under the new key on a new session, reaches B.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from endtoend.inprocess import contacts
from endtoend.measure import percentiles_us

PASSWORD = "bench rotation password"


def rotation_case(tmp: Path, a_key, b_key, new_keys) -> dict:
    return asyncio.run(_rounds(tmp, a_key, b_key, new_keys))


async def _rounds(tmp: Path, a_key, b_key, new_keys) -> dict:
    from enclave.identity import home, keys
    from enclave.node.events import KeyChanged, MessageReceived

    keys.save_identity(home.Home(tmp / "rot-a"), a_key, PASSWORD)  # rotate_key re-reads it
    a, b = await contacts(tmp, a_key, b_key, "rot")
    switched, received = asyncio.Event(), asyncio.Event()

    def on_b(event) -> None:
        if isinstance(event, KeyChanged):
            switched.set()
        elif isinstance(event, MessageReceived) and event.body == "under the new key":
            received.set()

    b.subscribe(on_b)
    files, handover, first = [], [], []
    try:
        await a.send("bob", "warm")  # a session is up before the first round
        for new_key in new_keys:
            switched.clear()
            received.clear()
            t0 = time.perf_counter()
            await a.rotate_key(PASSWORD, new_key)
            t1 = time.perf_counter()
            await asyncio.wait_for(switched.wait(), 30)
            t2 = time.perf_counter()
            await a.send("bob", "under the new key")
            await asyncio.wait_for(received.wait(), 30)
            t3 = time.perf_counter()
            files.append(t1 - t0)
            handover.append(t2 - t1)
            first.append(t3 - t1)
    finally:
        await a.stop()
        await b.stop()
    hand, msg, disk = (percentiles_us(x) for x in (handover, first, files))
    return {
        "rounds": len(new_keys),
        "handover_ms": hand["p50_us"] / 1000,
        "first_message_ms": msg["p50_us"] / 1000,
        "first_message_max_ms": msg["max_us"] / 1000,
        "files_ms": disk["p50_us"] / 1000,
    }


if __name__ == "__main__":  # a quick look: python bench/endtoend/rotation.py 3
    import tempfile

    from cryptography.hazmat.primitives.asymmetric import rsa

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    made = [rsa.generate_private_key(public_exponent=65537, key_size=4096) for _ in range(n + 2)]
    with tempfile.TemporaryDirectory() as tmp:
        print(rotation_case(Path(tmp), made[0], made[1], made[2:]))
