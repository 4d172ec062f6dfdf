"""Retried optical jobs do their work again: a STORE writes the study into a volume, even
after the optical-burner restarted and no longer holds the FAILED job (it is fetched from the
catalogue); a RETRIEVE that failed on a bad copy recalls the study once the copy is good."""

from __future__ import annotations

from pathlib import Path

from dicomvault.bus.broker import free_port
from dicomvault.events.v1 import archive_pb2 as ar
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.store import FileStore
from optical_burner.settings import OpticalSettings
from tests.optical.helpers import RETRIEVE, STORE, command, running, stable, wait_until
from tests.peers.cache import cache_study, publish


async def test_store_retried_after_a_failure_and_a_restart_writes_the_volume(
        bus_settings, catalogue_service, optical_config, tmp_path: Path) -> None:
    catalogue = catalogue_service
    settings = OpticalSettings(
        bus=bus_settings, http={"host": "127.0.0.1", "port": free_port()},
        cache={"root": tmp_path / "cache", "fsync": False}, auth={"enabled": False},
        optical=optical_config(catalogue_url=catalogue.url, media_recheck_s=600,
                               adopt_retry_s=0.5, retry={"max_retries": 0}))
    study, data = await cache_study(bus_settings, settings.cache.root, tmp_path / "ct",
                                    catalogue)
    # One cache file does not match the catalogue's checksum: the STORE fails (no retries).
    key, raw = next(iter(data.items()))
    (settings.cache.root / key).write_bytes(raw[:-4] + b"XXXX")
    async with running(settings):
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: catalogue.job_states(STORE) == ["FAILED"], "STORE FAILED")
    (job,) = catalogue.queue_jobs(STORE)
    assert "checksum" in job["error"]

    # Repaired; the service starts again without the FAILED job; the administrator retries.
    (settings.cache.root / key).write_bytes(raw)
    async with running(settings) as http:
        await command(catalogue, f"/api/v1/jobs/{job['job_id']}/retry")
        await wait_until(lambda: catalogue.job_states(STORE) == ["DONE"], "STORE DONE")
        (done,) = catalogue.queue_jobs(STORE)
        assert done["result"]["location"] == "DVD-000001"
        volume = (await http.get("/api/v1/volumes/DVD-000001")).json()
        assert [s["study_instance_uid"] for s in volume["studies"]] == [study.study_uid]
    await wait_until(lambda: any(loc["tier"] == "optical" and loc["verified"]
                                 for loc in catalogue.study_locations(study.study_uid)),
                     "the optical location in the catalogue")


async def test_retrieve_retried_after_a_checksum_failure_recalls_the_study(
        bus_settings, catalogue_service, optical_config, tmp_path: Path) -> None:
    catalogue = catalogue_service
    settings = OpticalSettings(
        bus=bus_settings, http={"host": "127.0.0.1", "port": free_port()},
        cache={"root": tmp_path / "cache", "fsync": False}, auth={"enabled": False},
        optical=optical_config(catalogue_url=catalogue.url, media_recheck_s=600,
                               adopt_retry_s=0.5, retry={"max_retries": 0}))
    cache = FileStore(settings.cache.root, fsync=False)
    study, data = await cache_study(bus_settings, settings.cache.root, tmp_path / "ct",
                                    catalogue)
    async with running(settings):
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: catalogue.job_states(STORE) == ["DONE"], "STORE DONE")
        for key in data:
            cache.delete(key)
        # The volume's copy of one instance went bad: the RETRIEVE fails (no retries).
        key, raw = next(iter(data.items()))
        (on_volume,) = settings.optical.volume_store.rglob(key.split("/")[-1])
        on_volume.write_bytes(raw[:-4] + b"XXXX")
        await publish(bus_settings, ev.RecallRequested(study_instance_uid=study.study_uid,
                                                       requested_by="VIEWER"), study.study_uid)
        await wait_until(lambda: catalogue.job_states(RETRIEVE) == ["FAILED"], "RETRIEVE FAILED")
        (job,) = catalogue.queue_jobs(RETRIEVE)
        assert "checksum" in job["error"]
        # Repaired (another copy of the disc, say); the administrator retries: recalled.
        on_volume.write_bytes(raw)
        await command(catalogue, f"/api/v1/jobs/{job['job_id']}/retry")
        await wait_until(lambda: catalogue.job_states(RETRIEVE) == ["DONE"], "RETRIEVE DONE")
        await wait_until(lambda: catalogue.of_type(ar.StudyRecalled), "StudyRecalled")
    for k, v in data.items():
        assert cache.get(k) == v
