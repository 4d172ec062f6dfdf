"""Which interpreter `make` builds the venv from (scripts/pick-python.sh), and the venv made
again when it was made from another one (the Makefile's ``$(VENV)/.interpreter`` stamp)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PICK = ROOT / "scripts" / "pick-python.sh"


def pick(tmp_path: Path, system: Path) -> str:
    """The script's choice with ``system`` as the distribution's interpreter and a PATH whose
    only ``python3`` is this test's interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").unlink(missing_ok=True)
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {**os.environ, "DICOMVAULT_SYSTEM_PYTHON": str(system),
           "PATH": f"{bin_dir}:/usr/bin:/bin"}
    out = subprocess.run([str(PICK)], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_the_distribution_interpreter_comes_first(tmp_path: Path) -> None:
    system = script(tmp_path / "system-python3", f'exec "{sys.executable}" "$@"')
    assert pick(tmp_path, system) == str(system)


def test_an_old_or_missing_distribution_interpreter_leaves_python3_on_path(
        tmp_path: Path) -> None:
    too_old = script(tmp_path / "python3.9", "exit 1")  # what `sys.version_info < (3, 11)` gives
    assert pick(tmp_path, too_old) == str(tmp_path / "bin" / "python3")
    assert pick(tmp_path, tmp_path / "absent") == str(tmp_path / "bin" / "python3")


def make_stamp(venv: Path, python: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "-C", str(ROOT), f"{venv}/.interpreter",
                           f"VENV={venv}", f"PYTHON={python}"],
                          capture_output=True, text=True, check=True)


def test_a_venv_made_from_another_interpreter_is_made_again(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    first = script(tmp_path / "first", f'exec "{sys.executable}" "$@"')
    second = script(tmp_path / "second", f'exec "{sys.executable}" "$@"')

    make_stamp(venv, first)
    assert (venv / ".interpreter").read_text().strip() == str(first)
    (venv / "installed-package").write_text("kept while the interpreter stays")
    stamp_time = (venv / ".interpreter").stat().st_mtime_ns

    make_stamp(venv, first)  # the same interpreter: nothing touched, nothing reinstalled
    assert (venv / "installed-package").exists()
    assert (venv / ".interpreter").stat().st_mtime_ns == stamp_time

    out = make_stamp(venv, second)
    assert "making it again" in out.stdout
    assert not (venv / "installed-package").exists()
    assert (venv / ".interpreter").read_text().strip() == str(second)
