"""Wall time for what the node times by the calendar (disappearing messages), as one
object a test can replace: ``now_ms()`` and, for a clock that jumps, ``watch``.

The real clock never jumps; a test's clock (tests/support/clocks.py) moves when told
and calls its watchers, so the expiry loop wakes at once instead of at its next nap.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    def __init__(self) -> None:
        self._watchers: list[Callable[[], None]] = []

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def watch(self, callback: Callable[[], None]) -> None:
        self._watchers.append(callback)

    def unwatch(self, callback: Callable[[], None]) -> None:
        if callback in self._watchers:
            self._watchers.remove(callback)

    def jumped(self) -> None:
        """Tell the watchers that ``now_ms`` moved by more than the time that passed."""
        for callback in list(self._watchers):
            callback()


# A test of separate processes (the browser tests) moves a node's clock through a file
# named by this variable: it holds a forward offset in ms (never negative: moving the
# clock can only make messages expire sooner, never keep them longer). Read when the
# node starts and checked every OFFSET_POLL_S while it runs.
OFFSET_FILE_ENV = "ENCLAVE_TEST_CLOCK_OFFSET_FILE"
OFFSET_POLL_S = 0.2


class OffsetFileClock(Clock):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.offset_ms = self._read()
        self._poll = None

    def _read(self) -> int:
        try:
            with open(self.path, encoding="ascii") as f:
                return max(0, int(f.read().strip() or 0))
        except (OSError, ValueError):
            return 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms

    def watch(self, callback) -> None:
        super().watch(callback)
        if self._poll is None:
            import asyncio

            self._poll = asyncio.get_running_loop().call_later(OFFSET_POLL_S, self._check)

    def unwatch(self, callback) -> None:
        super().unwatch(callback)
        if not self._watchers and self._poll is not None:
            self._poll.cancel()
            self._poll = None

    def _check(self) -> None:
        import asyncio

        offset = self._read()
        if offset != self.offset_ms:
            self.offset_ms = offset
            self.jumped()
        self._poll = asyncio.get_running_loop().call_later(OFFSET_POLL_S, self._check)


def from_environment() -> Clock:
    """The real clock, or a test's (``OFFSET_FILE_ENV``)."""
    import os

    path = os.environ.get(OFFSET_FILE_ENV)
    return OffsetFileClock(path) if path else Clock()
