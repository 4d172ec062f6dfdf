"""The service as wired by ``run``: it starts on the real broker, serves its API, stops; and
the robot hot-folder back end against a stand-in robot that answers with a done file."""

from __future__ import annotations

import asyncio

import httpx

from dicomvault.bus.broker import free_port
from dicomvault.jobs import JobQueue
from dicomvault.settings import TopicNames
from optical_burner.burning import burn_volume
from optical_burner.service import migrate_pending, run
from optical_burner.settings import OpticalSettings
from optical_burner.volumes import VolumeState, VolumeStore
from tests.peers.wait import wait_until


async def test_service_runs_and_stops(tmp_path, bus_settings, optical_config,
                                      catalogue_service):
    port = free_port()
    settings = OpticalSettings(bus=bus_settings, http={"port": port},
                               cache={"root": tmp_path / "cache"}, auth={"enabled": False},
                               optical=optical_config(catalogue_url=catalogue_service.url))
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            for _ in range(600):
                if await ready():
                    break
                await asyncio.sleep(0.1)
            assert await ready(), "optical-burner never became ready"
            assert (await http.get("/api/v1/volumes")).json() == []
            assert "dicomvault_optical_volumes" in (await http.get("/metrics")).text
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


async def test_robot_hotfolder_backend(tmp_path, optical_config, make_archive, new_study):
    hot = tmp_path / "hot"
    arc, emitted = make_archive(optical_config(burner={"backend": "robot-hotfolder",
                                                       "hot_folder": hot, "poll_s": 0.05,
                                                       "timeout_s": 120}))
    await arc.archive_study(new_study().study_uid)
    await arc.close_volume("DVD-000001")

    async def robot() -> None:  # a disc publisher: takes the job, answers with a done file
        await wait_until(lambda: (hot / "DVD-000001-1.JRQ").exists(), "the job file")
        job = (hot / "DVD-000001-1.JRQ").read_text()
        assert "ImageFile=" in job and "VolumeName=DVD_000001" in job
        (hot / "DVD-000001-1.DON").write_text("OK\n")

    robot_task = asyncio.create_task(robot())
    vol = await burn_volume(arc, "DVD-000001")
    await robot_task
    assert vol.state == VolumeState.VERIFIED, vol.last_error
    assert emitted.of("VolumeBurned")[0].backend == "robot-hotfolder"


async def test_pending_studies_of_an_earlier_version_become_store_jobs(tmp_path,
                                                                       optical_config):
    # An earlier version queued stable studies in pending.json; at start-up they become STORE
    # jobs with the same dedupe key (the StudyStable event id), and the file goes.

    class Published(list):
        async def publish(self, topic, event, key=None) -> None:
            self.append((topic, event))

    cfg = optical_config()
    store = VolumeStore(cfg.volume_store, fsync=False)
    (store.root / "pending.json").write_text(
        '{"1.2.3": {"event_id": "e1", "rule": "ct", "due": "2030-01-01T00:00:00+00:00",'
        ' "attempts": 2, "error": "", "revision": 3}}')
    published = Published()
    queue = JobQueue(name="OPTICAL1", kind="STORE", owner="optical-burner", publisher=published,
                     topics=TopicNames(), execute=None)
    assert await migrate_pending(store, queue, "OPTICAL1") == 1
    (job,) = queue.jobs.values()
    assert (job.study_uid, job.created_by, job.params["revision"]) == ("1.2.3", "rule:ct", "3")
    assert job.not_before.year == 2030
    assert not (store.root / "pending.json").exists()
    assert await migrate_pending(store, queue, "OPTICAL1") == 0
    assert [type(e.payload).__name__ for _t, e in published] == ["JobCreated"]
