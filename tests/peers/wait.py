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


class _Deadline:
    """The bound on one wait, and what its failure says."""

    def __init__(self, pred: object, what: str, timeout: float,
                 explain: Callable[[], str] | None) -> None:
        self.pred, self.what, self.timeout, self.explain = pred, what, timeout, explain
        self.at = time.monotonic() + timeout
        self.last: object = None

    def check(self) -> None:
        """Raise the AssertionError that says what was waited for once the time is up."""
        if time.monotonic() <= self.at:
            return
        text = f"timed out after {self.timeout:g}s waiting for {self.what or self.pred}"
        if self.last is not None:
            text += f" (last: {self.last!r})"
        if self.explain is not None:
            text += "\n" + self.explain()
        raise AssertionError(text)


async def wait_until(pred: Callable[[], object], what: str = "", *, timeout: float = 60.0,
                     interval: float = 0.05, thread: bool = False, tolerate: Tolerated = (),
                     explain: Callable[[], str] | None = None) -> object:
    """Poll ``pred`` until it returns something truthy; exceptions in ``tolerate`` count as
    "not yet" (their last one is named in the failure)."""
    deadline = _Deadline(pred, what, timeout, explain)
    while True:
        try:
            value = await asyncio.to_thread(pred) if thread else pred()
            if inspect.isawaitable(value):
                value = await value
        except tolerate as exc:
            value, deadline.last = None, exc
        if value:
            return value
        deadline.check()
        await asyncio.sleep(interval)


def wait_until_blocking(pred: Callable[[], object], what: str = "", *, timeout: float = 60.0,
                        interval: float = 0.2, tolerate: Tolerated = (),
                        explain: Callable[[], str] | None = None) -> object:
    """``wait_until`` for synchronous tests and threads."""
    deadline = _Deadline(pred, what, timeout, explain)
    while True:
        try:
            value = pred()
        except tolerate as exc:
            value, deadline.last = None, exc
        if value:
            return value
        deadline.check()
        time.sleep(interval)
