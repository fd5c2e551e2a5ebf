"""Wait for a condition with a deadline: the one poll helper of the tests.

A test never sleeps to let something happen; it waits for the condition it needs and
fails with ``what`` when the deadline passes first.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Condition = Callable[[], bool] | Callable[[], Awaitable[bool]]


async def until(
    condition: Condition, within: float = 10.0, what: str = "condition", interval: float = 0.01
) -> None:
    """Return once ``condition()`` (sync or async) is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        assert time.monotonic() < deadline, f"{what} not met within {within} s"
        await asyncio.sleep(interval)


def until_sync(
    condition: Callable[[], bool],
    within: float = 10.0,
    what: str = "condition",
    interval: float = 0.05,
) -> None:
    """:func:`until` for a test that is not a coroutine (it blocks the thread)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {within} s"
        time.sleep(interval)
