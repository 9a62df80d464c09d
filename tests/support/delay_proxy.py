"""A TCP proxy on 127.0.0.1 that holds every chunk for a random time before passing it
on, in order (this kernel has no netem). Each direction of each connection is its own
pipe, so one slow chunk delays those behind it, as a slow link does.

``target`` may change while the proxy runs (a restarted node listens on a new port):
connections made after the change go there.
"""

from __future__ import annotations

import asyncio
import random


class DelayProxy:
    def __init__(self, target: tuple[str, int], max_delay: float, seed: int) -> None:
        self.target = target
        self.max_delay = max_delay
        self.random = random.Random(seed)
        self.server: asyncio.AbstractServer | None = None
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(src, dst))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pipe(self, src, dst) -> None:
        try:
            while chunk := await src.read(65536):
                # A timer that stands for the link's latency, not synchronisation.
                await asyncio.sleep(self.random.uniform(0, self.max_delay))
                dst.write(chunk)
                await dst.drain()
        except (ConnectionError, RuntimeError, asyncio.CancelledError):  # the other end closed
            pass
        finally:
            dst.close()
