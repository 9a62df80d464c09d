"""The two ways a test waits, and when each is allowed.

- ``Watched.until``: for anything that tells when it changed. The test double calls
  ``changed()`` after each change (a node event recorded, bytes from the node, a line
  on the REPL's screen), and ``until`` re-checks its predicate then, never on a timer.
- ``eventually`` (in a coroutine) and ``eventually_blocking`` (in a plain test): bounded
  polling, only for what has no event to wait on: a node's counters and tables
  (``stats()``, budget slots, learned addresses, the v1 seen table), and whatever
  another process holds (its store, a tmux pane). Both run the one polling loop below.

Every wait has a deadline and fails with an ``AssertionError`` that says what it was
waiting for; none of them sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator


class Watched:
    """Base of the test doubles that other code changes; see the module header."""

    def __init__(self) -> None:
        self._change = asyncio.Event()

    def changed(self) -> None:
        self._change.set()

    def describe(self) -> str:
        """What a failed wait adds to its message (nothing unless a subclass says)."""
        return ""

    async def until(self, predicate, timeout: float = 20.0, what: str = "the condition"):
        """Wait until ``predicate(self)`` holds, checking it again after each change."""

        async def wait():
            while not predicate(self):
                self._change.clear()
                await self._change.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            message = f"timed out after {timeout:g} s waiting for {what}{self.describe()}"
            raise AssertionError(message) from None


Described = str | Callable[[], str]


def _polls(timeout: float, what: Described) -> Iterator[None]:
    """One turn per check; past the deadline the next turn fails."""
    deadline = time.monotonic() + timeout
    while True:
        yield
        if time.monotonic() > deadline:
            told = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {told}")


async def eventually(check, timeout: float = 10.0, what: Described = "condition", every=0.01):
    """Poll ``check()`` (a counter with no event) until it returns something true."""
    for _ in _polls(timeout, what):
        if result := check():
            return result
        await asyncio.sleep(every)


def eventually_blocking(check, timeout: float, what: Described, every: float = 0.05):
    """``eventually`` for a plain test polling another process (its store, its screen)."""
    for _ in _polls(timeout, what):
        if result := check():
            return result
        time.sleep(every)
