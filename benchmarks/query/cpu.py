"""CPU seconds of the catalogue process and of its PostgreSQL backends (Linux /proc).

On a shared machine, latency percentiles carry the waits for a core; the CPU time a request
costs does not, so the benchmark prints both.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


async def backends(dsn: str, database: str) -> list[int]:
    """Process ids of the PostgreSQL backends connected to ``database`` (not this one)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1 "
                                "AND pid <> pg_backend_pid()", database)
    finally:
        await conn.close()
    return [r[0] for r in rows]
