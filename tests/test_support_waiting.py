"""The tests' two ways to wait (``support.waiting``): woken by changes, or bounded polls."""

import asyncio
import itertools

import pytest
from support.waiting import Watched, eventually, eventually_blocking


class Counter(Watched):
    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def bump(self) -> None:
        self.value += 1
        self.changed()

    def describe(self) -> str:
        return f"; value {self.value}"


@pytest.mark.asyncio
async def test_until_wakes_on_each_change_and_not_before():
    counter, checks = Counter(), []

    def reached(c) -> bool:
        checks.append(c.value)
        return c.value >= 3

    waiting = asyncio.ensure_future(counter.until(reached, 5))
    for _ in range(3):
        await asyncio.sleep(0.01)
        counter.bump()
    await waiting
    assert checks == [0, 1, 2, 3]  # once at the start, then once per change


@pytest.mark.asyncio
async def test_until_fails_with_what_it_waited_for():
    counter = Counter()
    counter.bump()
    with pytest.raises(AssertionError, match=r"after 0.05 s waiting for three; value 1$"):
        await counter.until(lambda c: c.value == 3, 0.05, "three")


@pytest.mark.asyncio
async def test_eventually_returns_what_the_check_found():
    polls = itertools.count()
    assert await eventually(lambda: next(polls) >= 2 and "found", 5) == "found"


def test_eventually_blocking_says_what_it_waited_for_when_time_runs_out():
    seen = []

    def check():
        seen.append(len(seen))
        return None

    with pytest.raises(AssertionError, match=r"after 0.05 s waiting for \d+ checks$"):
        eventually_blocking(check, 0.05, lambda: f"{len(seen)} checks", every=0.01)
    assert len(seen) >= 2
