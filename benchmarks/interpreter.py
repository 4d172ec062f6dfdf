"""Which Python the benchmark (and the services it starts, with the same interpreter) ran on:
a plain source build takes 1.2-1.5 times as long as an optimised one for the same code
(scripts/pick-python.sh), so every report names it."""

from __future__ import annotations

import os
import platform
import sys


def describe() -> str:
    """E.g. ``CPython 3.11.2 (/usr/bin/python3.11, libpython linked in)``."""
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    return (f"{platform.python_implementation()} {platform.python_version()} ({base}, "
            f"{'libpython as a shared library' if _shared() else 'libpython linked in'})")


def _shared() -> bool:
    """Whether this process loaded libpython as a shared library (a ``--enable-shared``
    interpreter such as pyenv's) rather than carrying it in its executable (Debian's)."""
    try:
        with open("/proc/self/maps") as fh:
            return any("libpython" in line for line in fh)
    except OSError:
        return False
