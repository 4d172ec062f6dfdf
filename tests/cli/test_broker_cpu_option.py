"""`dicomvault up --broker-cpu`: auto (one CPU picked), all (no pinning) or a CPU number this
process may use; anything else is refused with the option named, before anything starts."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from dicomvault_cli.app import app
from dicomvault_cli.embedded import EmbeddedOptions, Supervisor


def _refused(value: str, tmp_path: Path) -> str:
    result = CliRunner().invoke(app, ["up", "--data-dir", str(tmp_path / "var"),
                                      "--broker-cpu", value])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "var").exists()  # refused before anything was made or started
    return " ".join(result.output.replace("│", " ").split())  # the error box wraps lines


def test_a_value_that_is_not_a_cpu_is_refused(tmp_path: Path) -> None:
    assert "'two': auto, all or a CPU number" in _refused("two", tmp_path)


def test_a_cpu_this_process_may_not_use_is_refused(tmp_path: Path) -> None:
    allowed = ", ".join(map(str, sorted(os.sched_getaffinity(0))))
    out = _refused("4096", tmp_path)
    assert f"CPU 4096 is not one this process may use ({allowed})" in out


def test_the_supervisor_hands_the_choice_to_the_broker(tmp_path: Path) -> None:
    last = max(os.sched_getaffinity(0))
    assert Supervisor(EmbeddedOptions(data_dir=tmp_path, broker_cpu=last)).broker.cpu == last
    assert Supervisor(EmbeddedOptions(data_dir=tmp_path, broker_cpu=None)).broker.cpu is None
    picked = Supervisor(EmbeddedOptions(data_dir=tmp_path)).broker.cpu
    assert picked in os.sched_getaffinity(0)
