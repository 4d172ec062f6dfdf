"""Kill the hsm-archiver (a real subprocess) in the middle of a study; the job resumes after
the restart and finishes with no duplicate and no missing instance."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dicomvault.events.v1 import events_pb2 as ev
from tests.peers.cache import cache_study, publish
from tests.peers.services import ServiceProcess
from tests.peers.wait import wait_until

from .conftest import env_of, hsm_archive, make_settings, stable


async def test_killed_mid_study_resumes_without_duplicates(bus_settings, catalogue, hsm_mount,
                                                           tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study, data = await cache_study(bus_settings, cache, tmp_path / "in", catalogue,
                                    series=3, per_series=40, size=256)
    settings = make_settings(bus_settings, cache, catalogue.url, [hsm_archive(hsm_mount)])
    url = f"http://127.0.0.1:{settings.http.port}/readyz"
    service = ServiceProcess("hsm-archiver", env_of(settings), tmp_path, ready_url=url)
    study_dir = hsm_mount / "vault" / study.study_uid

    def written() -> int:
        return len(list(study_dir.rglob("*.dcm"))) if study_dir.exists() else 0

    await asyncio.to_thread(service.start)
    try:
        await publish(bus_settings, stable(study), study.study_uid)
        # Kill -9 once some, not all, instances are on the archive.
        await wait_until(lambda: written() >= 5, what="the first instances on HSM")
        service.kill()
        at_kill = written()
        assert 0 < at_kill < len(data), at_kill
        assert not [a for a in catalogue.of_type(ev.StudyArchived)]
        await wait_until(lambda: catalogue.job_states("HSM1") == ["IN_PROGRESS"])
        # Restart: the unfinished job is adopted from the catalogue and runs again.
        await asyncio.to_thread(service.start)
        await wait_until(lambda: catalogue.of_type(ev.StudyArchived), timeout=120,
                         what="StudyArchived after the restart")
    finally:
        service.stop()
    files = sorted(p.relative_to(hsm_mount / "vault").as_posix() for p in study_dir.rglob("*")
                   if p.is_file())
    assert files == sorted(data)  # nothing missing, nothing extra (no temp file either)
    for key, raw in data.items():
        assert (hsm_mount / "vault" / key).read_bytes() == raw
    await wait_until(lambda: catalogue.job_states("HSM1") == ["DONE"], what="job DONE")
    (job,) = catalogue.jobs.values()
    assert job["attempts"] == 2
    assert len(catalogue.of_type(ev.StudyArchived)) == 1
