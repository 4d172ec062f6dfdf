"""The one way a test waits for something: poll a condition until it holds, within a bound on
a hang (a deadline, never a timing assertion), then fail saying what was waited for.

``wait_until`` serves async tests (the condition may be a plain function, a coroutine
function, or a blocking function run in a thread with ``thread=True``); ``wait_until_blocking``
serves synchronous ones. Both return the condition's first truthy value."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

Tolerated = tuple[type[BaseException], ...]


def _failure(what: str, pred: object, timeout: float, last: object,
             explain: Callable[[], str] | None) -> AssertionError:
    text = f"timed out after {timeout:g}s waiting for {what or pred}"
    if last is not None:
        text += f" (last: {last!r})"
    if explain is not None:
        text += "\n" + explain()
    return AssertionError(text)


async def wait_until(pred: Callable[[], object], what: str = "", *, timeout: float = 60.0,
                     interval: float = 0.05, thread: bool = False, tolerate: Tolerated = (),
                     explain: Callable[[], str] | None = None) -> object:
    """Poll ``pred`` until it returns something truthy; exceptions in ``tolerate`` count as
    "not yet" (their last one is named in the failure)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = await asyncio.to_thread(pred) if thread else pred()
            if inspect.isawaitable(value):
                value = await value
        except tolerate as exc:
            last = exc
        else:
            if value:
                return value
        if time.monotonic() > deadline:
            raise _failure(what, pred, timeout, last, explain)
        await asyncio.sleep(interval)


def wait_until_blocking(pred: Callable[[], object], what: str = "", *, timeout: float = 60.0,
                        interval: float = 0.2, tolerate: Tolerated = (),
                        explain: Callable[[], str] | None = None) -> object:
    """``wait_until`` for synchronous tests and threads."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = pred()
        except tolerate as exc:
            last = exc
        else:
            if value:
                return value
        if time.monotonic() > deadline:
            raise _failure(what, pred, timeout, last, explain)
        time.sleep(interval)
