"""Packing: which volume(s) a study's instances go into (documented order).

- a study goes whole into the open volume when it fits its free space;
- else, when it fits an empty medium, the open volume is closed ("full") and a new one
  takes the study;
- else the study *spans* volumes: its instances, series kept together in catalogue order,
  fill the open volume's free space and then as many new volumes as needed; each volume
  records "part n of m" and the labels of every part; every part but the last is closed.
- an instance counts its size rounded up to 2048-byte sectors plus
  ``per_instance_overhead_bytes``; each medium keeps ``reserve_bytes`` for the file system.

Pure functions of the settings and the open volume: nothing here writes.
"""

from __future__ import annotations

from dicomvault.query import InstanceLocation
from optical_burner.errors import InstanceTooLarge
from optical_burner.settings import OpticalSection
from optical_burner.volumes import SECTOR, Volume

# (the volume, None for a new one; the instances that go into it), in part order.
Plan = list[tuple[Volume | None, list[InstanceLocation]]]


def cost(cfg: OpticalSection, size: int) -> int:
    """What an instance of ``size`` bytes takes on a medium."""
    return -(-size // SECTOR) * SECTOR + cfg.per_instance_overhead_bytes


def ordered(items: list[InstanceLocation]) -> list[InstanceLocation]:
    """Series kept together, in the order the catalogue lists them."""
    series: dict[str, list[InstanceLocation]] = {}
    for i in items:
        series.setdefault(i.series_instance_uid, []).append(i)
    return [i for group in series.values() for i in group]


def plan(cfg: OpticalSection, current: Volume | None, todo: list[InstanceLocation]) -> Plan:
    """Where ``todo`` goes, given the open volume ``current`` (if any)."""
    usable = cfg.capacity - cfg.reserve_bytes
    too_big = [i.sop_instance_uid for i in todo if cost(cfg, i.size_bytes) > usable]
    if too_big:
        raise InstanceTooLarge(f"instance {too_big[0]} is larger than a {cfg.media_type}")
    total = sum(cost(cfg, i.size_bytes) for i in todo)
    if current is not None and (total <= current.free_bytes
                                or (not current.studies and total <= usable)):
        return [(current, todo)]
    if total <= usable:
        return [(None, todo)]  # the open volume is closed as full by the writer
    chunks: Plan = [(current, [])]
    free = current.free_bytes if current is not None else usable
    for inst in todo:
        c = cost(cfg, inst.size_bytes)
        if c > free:
            chunks.append((None, []))
            free = usable
        chunks[-1][1].append(inst)
        free -= c
    return [(v, items) for v, items in chunks if items]
