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
