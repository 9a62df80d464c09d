"""The seed's method: one sealed v1 envelope per message, one TCP connection each.

Roles ``v1-server`` (parses, checks the time, verifies and opens each envelope, the
private operation on a pool of 2 threads) and ``v1-client`` (seals on a pool of 2).
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from enclave.protocol import legacy
from enclave.protocol.crypto import Identity, PeerKey
from refs.common import emit, load_key, percentiles_us, until_stdin_closes


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
