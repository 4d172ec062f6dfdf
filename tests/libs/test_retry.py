"""The one doubling retry: the waits a service makes between attempts, and that it gives up on
nothing it was told to retry and on everything else at once."""

from __future__ import annotations

import itertools

import pytest

from dicomvault.retry import backoff, retry_forever


def test_the_waits_double_up_to_the_ceiling() -> None:
    assert list(itertools.islice(backoff(0.2, 10.0), 8)) == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4,
                                                              10.0, 10.0]


async def test_an_attempt_is_repeated_until_it_succeeds() -> None:
    failures: list[str] = []
    calls = iter([ConnectionError("broker down"), ConnectionError("still down"), "sent"])

    async def attempt() -> str:
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = await retry_forever(attempt, retry_on=ConnectionError, first_s=0.001, max_s=0.002,
                                 on_retry=lambda exc: failures.append(str(exc)))

    assert result == "sent"
    assert failures == ["broker down", "still down"]


async def test_a_failure_of_another_kind_is_not_retried() -> None:
    async def attempt() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await retry_forever(attempt, retry_on=ConnectionError, first_s=0.001, max_s=0.002)
