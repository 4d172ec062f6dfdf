"""A small disk (issue 13 item 7): the gateway refuses before its cache file system is full,
and a catalogue whose database disk is full says so (not ready, ERROR, metric) and catches
up without losing an event once space is back. Real tmpfs mounts of a few MB (root)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dicom_gateway import statuses as st
from dicomvault.bus import Publisher
from dicomvault.bus.broker import free_port
from dicomvault.settings import BusSettings
from tests.catalogue.helpers import instance_stored, uid
from tests.gateway.conftest import read_events, sample, send_files
from tests.peers.datasets import write_study
from tests.peers.services import FAST_BUS_ENV, ServiceProcess, catalogue_env


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MB tmpfs mounted for this test only."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path, leave_bytes: int) -> Path:
    """A filler file leaving about ``leave_bytes`` free on ``disk``."""
    st_ = os.statvfs(disk)
    filler = disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\x00" * max(0, st_.f_bavail * st_.f_frsize - leave_bytes))
    return filler


def free_bytes(disk: Path) -> int:
    s = os.statvfs(disk)
    return s.f_bavail * s.f_frsize


async def test_gateway_refuses_below_its_watermark_before_the_disk_is_full(
        start_gateway, tiny_disk: Path, tmp_path: Path, bus_settings: BusSettings) -> None:
    # 20 MB disk, 10 MB of it taken; the gateway keeps 6 MB free.
    filler = fill(tiny_disk, 10 * 1024 * 1024)
    gw = start_gateway(folder=tiny_disk, min_free_bytes=6 * 1024 * 1024, min_free_percent=0)
    study = write_study(tmp_path / "s", series=1, per_series=16, size=512, modalities=("CT",))

    # 512 KB CT images: the first few are stored, then every one is refused with 0xA700.
    statuses = await asyncio.to_thread(send_files, gw.port, study.files)
    stored = statuses.count(st.SUCCESS)
    assert 0 < stored < len(statuses)
    assert statuses == [st.SUCCESS] * stored + [st.OUT_OF_RESOURCES] * (len(statuses) - stored)
    # The disk never filled, and every acknowledged image is on it and announced.
    assert free_bytes(tiny_disk) >= 5 * 1024 * 1024
    assert len([p for p in gw.files() if p.suffix == ".dcm"]) == stored
    events = await read_events(bus_settings, bus_settings.topics.instances, stored)
    assert len({e.payload.sop_instance_uid for e in events}) == stored
    assert sample(gw.metrics(), "dicomvault_gateway_low_space_refusals_total") == len(statuses) - stored

    # Space freed: the next store is taken again (free space is re-read within a second).
    filler.unlink()
    deadline = time.monotonic() + 10
    again = await asyncio.to_thread(send_files, gw.port, study.files[stored:stored + 1])
    while again != [st.SUCCESS] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        again = await asyncio.to_thread(send_files, gw.port, study.files[stored:stored + 1])
    assert again == [st.SUCCESS]


async def _instances(http: httpx.AsyncClient, study: str) -> int:
    r = await http.get(f"/api/v1/studies/{study}/instances")
    return 0 if r.status_code == 404 else len(r.json())


async def _blocked(http: httpx.AsyncClient) -> float:
    return sample((await http.get("/metrics")).text, "dicomvault_catalogue_commit_blocked")


async def test_catalogue_on_a_full_disk_is_not_ready_and_catches_up(
        tiny_disk: Path, tmp_path: Path, bus_settings: BusSettings) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cat = ServiceProcess("catalogue", catalogue_env(
        bus_settings, f"sqlite+aiosqlite:///{tiny_disk / 'catalogue.db'}", port,
        **FAST_BUS_ENV), tmp_path, ready_url=f"{url}/readyz")
    await asyncio.to_thread(cat.start)
    try:
        study, series = uid(), uid()
        async with Publisher(bus_settings, client_id="test") as pub, httpx.AsyncClient(
                base_url=url, timeout=10, follow_redirects=True) as http:
            # One instance while there is room: visible.
            await pub.publish(bus_settings.topics.instances, instance_stored(study, series),
                              key=study)
            deadline = time.monotonic() + 30
            while await _instances(http, study) < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert await _instances(http, study) == 1

            # The disk fills up; 30 more instances arrive, with text enough that the
            # database must grow.
            filler = fill(tiny_disk, 0)
            for _ in range(30):
                await pub.publish(bus_settings.topics.instances, instance_stored(
                    study, series, study_description="x" * 60, station_name="y" * 16),
                    key=study)
            # The catalogue turns not ready, says why, and logs one ERROR.
            deadline = time.monotonic() + 30
            r = await http.get("/readyz")
            while r.status_code == 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                r = await http.get("/readyz")
            assert r.status_code == 503 and "disk full" in r.text, r.text
            assert await _blocked(http) == 1
            errors = [line for line in cat.tail(400).splitlines()
                      if "cannot commit" in line and "error" in line.lower()]
            assert len(errors) == 1, cat.tail()

            # Space back: ready again, and every instance is there (none dead-lettered).
            filler.unlink()
            deadline = time.monotonic() + 60
            while await _instances(http, study) < 31 and time.monotonic() < deadline:
                await asyncio.sleep(0.3)
            assert await _instances(http, study) == 31
            assert (await http.get("/readyz")).status_code == 200
            assert await _blocked(http) == 0
    finally:
        await asyncio.to_thread(cat.stop)
