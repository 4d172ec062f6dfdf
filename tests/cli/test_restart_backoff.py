"""The embedded supervisor's restart backoff (issue 13 item 8): it grows with exits in a row
and starts again from one second after a stable run."""

from __future__ import annotations

from dicomvault_cli.embedded import STABLE_AFTER_S, failures_after, restart_delay


def test_backoff_grows_then_is_capped() -> None:
    assert [restart_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_stable_run_resets_the_backoff() -> None:
    failures = 0
    for _ in range(6):  # six quick crashes in a row: 30 s between restarts
        failures = failures_after(failures, ran_s=2.0)
    assert restart_delay(failures) == 30
    # Then it ran for longer than STABLE_AFTER_S before dying: back to one second.
    failures = failures_after(failures, ran_s=STABLE_AFTER_S + 1)
    assert restart_delay(failures) == 1
