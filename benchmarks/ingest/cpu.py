"""CPU seconds used by a process and its live descendants (Linux /proc), for CPU-per-instance
figures: read before and after a run, subtract."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                out.setdefault(int(fields[1]), []).append(int(entry.name))
    return out


def cpu_seconds(*pids: int) -> float:
    """user + system seconds of ``pids`` and every descendant alive now (plus what their
    reaped children used)."""
    children = _children()
    seen: set[int] = set()
    todo = [p for p in pids if p]
    total = 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        fields = _stat(pid)
        if fields:
            # utime, stime, cutime, cstime are fields 14-17 (index 11-14 here)
            total += sum(int(v) for v in fields[11:15])
        todo += children.get(pid, [])
    return total / TICK


def machine_jiffies() -> tuple[int, int]:
    """(all, idle) CPU time of the whole machine so far, in clock ticks (/proc/stat); idle
    counts waiting for I/O too. Read before and after a run: idle / all of the difference says
    whether the run was computing or waiting."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:8]), fields[3] + fields[4]  # user … steal; idle + iowait


def idle_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    spent = after[0] - before[0]
    return (after[1] - before[1]) / spent if spent else 0.0
