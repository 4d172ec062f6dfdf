"""A retried optical STORE job writes the study into a volume, even after the optical-burner
restarted and no longer holds the FAILED job (it is fetched from the catalogue)."""

from __future__ import annotations

from pathlib import Path

from dicomvault.bus.broker import free_port
from optical_burner.settings import OpticalSettings
from tests.optical.test_jobs import STORE, command, running, stable, wait_until
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
