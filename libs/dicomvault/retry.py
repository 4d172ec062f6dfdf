"""Doubling retry (exponential backoff): the one way the services try again after a failure
that time heals (a broker that is restarting, a catalogue not up yet).

``backoff(first_s, max_s)`` gives the waits: first_s, twice that, … up to max_s, then max_s
for ever. ``retry_forever`` runs an attempt until it succeeds, waiting those delays between
failures of the kinds named in ``retry_on`` (any other exception goes to the caller)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def backoff(first_s: float, max_s: float) -> Iterator[float]:
    """The waits between attempts: doubling from ``first_s``, never more than ``max_s``."""
    delay = first_s
    while True:
        yield delay
        delay = min(delay * 2, max_s)


async def retry_forever(attempt: Callable[[], Awaitable[T]], *,
                        retry_on: type[BaseException] | tuple[type[BaseException], ...],
                        first_s: float, max_s: float,
                        on_retry: Callable[[BaseException], None] | None = None) -> T:
    """``await attempt()`` until it returns; after each failure of a ``retry_on`` kind call
    ``on_retry(exc)`` (to log it) and wait the next ``backoff`` delay."""
    for delay in backoff(first_s, max_s):
        try:
            return await attempt()
        except retry_on as exc:
            if on_retry is not None:
                on_retry(exc)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: backoff never ends")
