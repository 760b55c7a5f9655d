"""Waiting for what happens after the client has its answer.

A log entry written when the handler finishes, an upstream noticing a closed
connection, a slot given back: the tests never sleep a fixed time for these.
``poll`` checks a condition every few milliseconds and fails, saying what it
waited for, only when the deadline passes, which only a hang reaches.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


async def poll(check: Callable[[], Any | Awaitable[Any]], what: str, timeout: float = 10.0, every: float = 0.01) -> Any:
    """Wait until ``check()`` (a plain or an async function) returns something
    truthy, and return it; fail after ``timeout`` seconds saying ``what`` never
    happened."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)
