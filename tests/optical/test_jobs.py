"""The optical archive on the jobs engine, as ``run`` wires it, with the real broker and the
real catalogue (a subprocess): STORE jobs by rule, queue commands through the catalogue's
REST API, recall from an offline volume (WAITING for media, adopted across a restart,
continued once the disc is mounted; cancelled: its media request withdrawn) and
RecallRequested left to a better tier."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pydicom

from dicomvault.dicom import instance_stored
from dicomvault.events.v1 import archive_pb2 as ar
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import optical_pb2 as op
from dicomvault.store import FileStore, instance_key
from optical_burner.metrics import REGISTRY
from tests.optical.helpers import (  # noqa: F401 - real_catalogue, service_settings: fixtures
    RETRIEVE,
    STORE,
    command,
    extract,
    real_catalogue,
    running,
    service_settings,
    stable,
    verified,
    wait_until,
)
from tests.peers.cache import cache_study, publish
from tests.peers.datasets import ROOT, make_instance


async def store_looks(http: httpx.AsyncClient, more_than: int = -1) -> int:
    """How many times the service's STORE queue has looked at its jobs (0 until it has
    looked more than ``more_than`` times)."""
    (queue,) = [q for q in (await http.get("/api/v1/queues")).json() if q["name"] == STORE]
    return queue["looks"] if queue["looks"] > more_than else 0


def jobs_done() -> float:
    return REGISTRY.get_sample_value("dicomvault_optical_job_outcomes_total",
                                     {"outcome": "done", "queue": STORE}) or 0.0


def job_durations() -> float:
    return REGISTRY.get_sample_value("dicomvault_optical_job_duration_seconds_count",
                                     {"queue": STORE}) or 0.0


async def test_store_jobs_by_rule_obey_pause_resume_and_recall_goes_to_the_better_tier(
        bus_settings, catalogue, settings, tmp_path: Path) -> None:
    study, data = await cache_study(bus_settings, settings.cache.root, tmp_path / "ct",
                                    catalogue)
    # The service runs in this process: its counters hold what earlier tests counted too.
    done_before, durations_before = jobs_done(), job_durations()
    async with running(settings) as http:
        await wait_until(lambda: catalogue.queues.get(STORE, {}).get("state") == "RUNNING",
                         "the catalogue to know the STORE queue")
        # The administrator pauses the optical queue through the catalogue's REST API.
        await command(catalogue, f"/api/v1/queues/{STORE}/pause", reason="burner maintenance")
        await wait_until(lambda: catalogue.queues.get(STORE, {}).get("state") == "HALTED", "HALTED")
        assert catalogue.queues.get(STORE, {})["reason"] == "burner maintenance"
        queues = (await http.get("/api/v1/queues")).json()
        assert [(q["name"], q["kind"], q["state"]) for q in queues] == [
            (STORE, "STORE", "HALTED"), (RETRIEVE, "RETRIEVE", "RUNNING")]

        # The study becomes stable; the CT rule makes it a STORE job, which waits: paused.
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: catalogue.job_states(STORE) == ["NEW"], "a NEW STORE job")
        # The paused queue looks at its jobs again (every few seconds) and starts nothing.
        looks = await store_looks(http)
        await wait_until(lambda: store_looks(http, looks), "the STORE queue to look again",
                         thread=False)
        assert [j["state"] for j in (await http.get("/api/v1/jobs")).json()] == ["NEW"]
        assert catalogue.job_states(STORE) == ["NEW"]
        assert (await http.get("/api/v1/volumes")).json() == []
        (job,) = catalogue.queue_jobs(STORE)
        assert (job["kind"], job["target"], job["created_by"]) == ("STORE", "OPTICAL1",
                                                                   "rule:default")

        # Resumed: the job runs, the study is on DVD-000001, the job is DONE in the catalogue.
        await command(catalogue, f"/api/v1/queues/{STORE}/resume")
        await wait_until(lambda: catalogue.job_states(STORE) == ["DONE"], "the job DONE")
        await wait_until(lambda: catalogue.queues.get(STORE, {}).get("state") == "RUNNING", "RUNNING")
        (done,) = catalogue.queue_jobs(STORE)
        assert done["result"]["location"] == "DVD-000001"
        await wait_until(lambda: any(loc["tier"] == "optical"
                                     for loc in catalogue.study_locations(study.study_uid)),
                         "the optical location")
        (loc,) = [loc for loc in catalogue.study_locations(study.study_uid)
                  if loc["tier"] == "optical"]
        assert (loc["archive_id"], loc["location"], loc["verified"]) == (
            "OPTICAL1", "DVD-000001", True)
        volume = (await http.get("/api/v1/volumes/DVD-000001")).json()
        assert volume["studies"][0]["study_instance_uid"] == study.study_uid

        # An MR study matches no rule: no job.
        await publish(bus_settings, stable(study, "MR"), study.study_uid)

        # HSM holds a verified copy too, and HSM ranks ahead of optical: a recall request
        # is the hsm-archiver's, so this service leaves it alone.
        await publish(bus_settings, ev.StudyArchived(
            study_instance_uid=study.study_uid, tier="hsm", archive_id="HSM1",
            location="/mnt/hsm/vault/x", verified=True,
            number_of_instances=len(data)), study.study_uid)
        await wait_until(lambda: any(loc["tier"] == "hsm"
                                     for loc in catalogue.study_locations(study.study_uid)),
                         "the HSM location")
        await publish(bus_settings, ev.RecallRequested(study_instance_uid=study.study_uid,
                                                       requested_by="VIEWER"), study.study_uid)

        async def metrics() -> str:
            return (await http.get("/metrics")).text

        recall = 'type="dicomvault.study.recall-requested.v1"'
        deadline = time.monotonic() + 30
        while f'outcome="better_tier",{recall}' not in await metrics():
            assert time.monotonic() < deadline, "the recall request was not considered"
            await asyncio.sleep(0.1)
        text = await metrics()
        assert 'outcome="no_rule",type="dicomvault.study.stable.v1"' in text
        assert 'dicomvault_optical_job_outcomes_total{outcome="done",queue="OPTICAL1"}' in text
        assert (jobs_done(), job_durations()) == (done_before + 1, durations_before + 1)
        assert "dicomvault_optical_queue_depth" in text
    assert catalogue.job_states(RETRIEVE) == []
    assert catalogue.job_states(STORE) == ["DONE"]


async def test_recall_from_an_offline_volume_waits_for_the_disc(
        bus_settings, catalogue, settings, tmp_path: Path) -> None:
    cache = FileStore(settings.cache.root, fsync=False)
    study, data = await cache_study(bus_settings, settings.cache.root, tmp_path / "ct",
                                    catalogue)
    async with running(settings) as http:
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: catalogue.job_states(STORE) == ["DONE"], "the STORE job")
        # The volume is closed, burned and verified by the sweep, then released: offline.
        assert (await http.post("/api/v1/volumes/DVD-000001/close")).status_code == 200
        for _ in range(600):
            if (await http.get("/api/v1/volumes/DVD-000001")).json()["state"] == "Verified":
                break
            await asyncio.sleep(0.1)
        assert (await http.post("/api/v1/volumes/DVD-000001/release")).status_code == 200
        disc = tmp_path / "iso" / "DVD-000001-1.iso"
        assert disc.is_file()
        # The study leaves the cache (as eviction would); a viewer asks for it.
        for key in data:
            cache.delete(key)
        await publish(bus_settings, ev.RecallRequested(study_instance_uid=study.study_uid,
                                                       requested_by="VIEWER"), study.study_uid)

        # The RETRIEVE job waits for the medium: WAITING with the media request, in the
        # catalogue's /api/v1/jobs and in the optical API.
        def waiting() -> bool:
            jobs = catalogue.queue_jobs(RETRIEVE)
            return bool(jobs) and jobs[0]["state"] == "WAITING"

        await wait_until(waiting, "a WAITING retrieve job")
        (job,) = catalogue.queue_jobs(RETRIEVE)
        assert job["error"] == "insert volume DVD-000001"
        assert job["created_by"] == "recall:VIEWER"
        mine = (await http.get("/api/v1/jobs", params={"state": "WAITING"})).json()
        assert [(j["job_id"], j["waiting_reason"]) for j in mine] == [
            (job["job_id"], "insert volume DVD-000001")]
        requests = (await http.get("/api/v1/media-requests")).json()
        assert [(r["label"], r["message"], r["jobs"]) for r in requests] == [
            ("DVD-000001", "insert volume DVD-000001", [job["job_id"]])]
        assert 'dicomvault_optical_media_requests_open{archive="OPTICAL1"} 1.0' in (
            await http.get("/metrics")).text

    # A restart while the job waits: it is adopted from the catalogue and keeps waiting.
    async with running(settings) as http:
        for _ in range(300):
            if (await http.get("/api/v1/media-requests")).json():
                break
            await asyncio.sleep(0.1)
        assert [j["job_id"] for j in (await http.get("/api/v1/jobs")).json()] == [
            job["job_id"]]
        # The adopted job asks for the disc again (IN_PROGRESS, then WAITING once more).
        await wait_until(lambda: catalogue.job_states(RETRIEVE) == ["WAITING"],
                         "the adopted job waiting again")

        # The operator mounts the disc (its contents extracted) at the mount path: the job
        # continues, the cache gets the instances back, announced as a recall.
        extract(disc, tmp_path / "mnt" / "DVD-000001")
        await wait_until(lambda: catalogue.job_states(RETRIEVE) == ["DONE"], "the recall")
        assert (await http.get("/api/v1/media-requests")).json() == []
        await wait_until(lambda: catalogue.of_type(ar.StudyRecalled), "StudyRecalled")
        # The recalled copies are on the instances topic: applied in their own time.
        await wait_until(lambda: len([i for i in catalogue.of_type(ev.InstanceStored)
                                      if i.source == "recall"]) >= len(data),
                         "the recalled instances")
    for key, raw in data.items():
        assert cache.get(key) == raw
    recalled = [i for i in catalogue.of_type(ev.InstanceStored) if i.source == "recall"]
    assert sorted(i.storage_key for i in recalled) == sorted(data)
    assert {(i.tier, i.study_instance_uid) for i in recalled} == {("cache", study.study_uid)}
    (fact,) = catalogue.of_type(ar.StudyRecalled)
    assert (fact.tier, fact.archive_id, fact.location, fact.job_id) == (
        "optical", "OPTICAL1", "DVD-000001", job["job_id"])
    assert sorted(fact.sop_instance_uids) == sorted(study.sop_uids)
    assert fact.number_of_instances == len(data)


async def test_a_cancelled_retrieve_withdraws_its_media_request(
        bus_settings, catalogue, settings, tmp_path: Path) -> None:
    cache = FileStore(settings.cache.root, fsync=False)
    study, data = await cache_study(bus_settings, settings.cache.root, tmp_path / "ct",
                                    catalogue)
    uid = study.study_uid

    async with running(settings) as http:
        await publish(bus_settings, stable(study), uid)
        await wait_until(lambda: catalogue.job_states(STORE) == ["DONE"], "the STORE job")
        await verified(http, "DVD-000001")
        assert (await http.post("/api/v1/volumes/DVD-000001/release")).status_code == 200
        for key in data:
            cache.delete(key)
        # Two viewers ask for the study: two RETRIEVE jobs, both waiting for DVD-000001.
        for viewer in ("VIEWER1", "VIEWER2"):
            await publish(bus_settings, ev.RecallRequested(study_instance_uid=uid,
                                                           requested_by=viewer), uid)
        await wait_until(lambda: catalogue.job_states(RETRIEVE) == ["WAITING", "WAITING"],
                         "two WAITING retrieve jobs")
        first, second = (j["job_id"] for j in catalogue.queue_jobs(RETRIEVE))
        requests = (await http.get("/api/v1/media-requests")).json()
        assert [(r["label"], sorted(r["jobs"]), r["studies"]) for r in requests] == [
            ("DVD-000001", sorted([first, second]), [uid])]
        await wait_until(lambda: catalogue.media_requests() == [("DVD-000001", [uid])],
                         "the catalogue's media request")

        # The administrator cancels one through the catalogue: the other still needs the
        # disc, so the request stays, in both APIs.
        await command(catalogue, f"/api/v1/jobs/{first}/cancel", reason="viewer closed")
        await wait_until(lambda: catalogue.job_states(RETRIEVE) == ["CANCELLED", "WAITING"],
                         "the first job CANCELLED")

        async def burner_jobs() -> list[list[str]]:
            return [r["jobs"] for r in (await http.get("/api/v1/media-requests")).json()]

        deadline = time.monotonic() + 30
        while await burner_jobs() != [[second]]:
            assert time.monotonic() < deadline, await burner_jobs()
            await asyncio.sleep(0.1)
        assert catalogue.media_requests() == [("DVD-000001", [uid])]
        assert catalogue.of_type(op.MediaRequestWithdrawn) == []

        # The second is cancelled too: nobody waits for the disc any more.
        await command(catalogue, f"/api/v1/jobs/{second}/cancel")
        await wait_until(lambda: catalogue.job_states(RETRIEVE) == ["CANCELLED"] * 2,
                         "both jobs CANCELLED")
        deadline = time.monotonic() + 30
        while (await http.get("/api/v1/media-requests")).json():
            assert time.monotonic() < deadline, "the burner kept the media request"
            await asyncio.sleep(0.1)
        await wait_until(lambda: catalogue.media_requests() == [], "the catalogue to clear it")
        assert 'dicomvault_optical_media_requests_open{archive="OPTICAL1"} 0.0' in (
            await http.get("/metrics")).text
        vol = await asyncio.to_thread(
            httpx.get, f"{catalogue.url}/api/v1/volumes/OPTICAL1/DVD-000001", timeout=10)
        assert vol.json()["media_request"] is None
    (fact,) = catalogue.of_type(op.MediaRequestWithdrawn)
    assert (fact.archive_id, fact.label, fact.study_instance_uid, fact.reason) == (
        "OPTICAL1", "DVD-000001", uid, f"job {second} cancelled")


async def test_a_later_revision_is_appended_by_its_store_job(
        bus_settings, catalogue, settings, tmp_path: Path) -> None:
    cache = FileStore(settings.cache.root, fsync=False)
    study, data = await cache_study(bus_settings, settings.cache.root, tmp_path / "ct",
                                    catalogue)
    uid = study.study_uid

    def optical() -> dict:
        locs = [x for x in catalogue.study_locations(uid) if x["tier"] == "optical"]
        return locs[0] if locs else {}

    async with running(settings) as http:
        await publish(bus_settings, stable(study), uid)
        await wait_until(lambda: catalogue.job_states(STORE) == ["DONE"], "the first job")
        await wait_until(lambda: optical().get("number_of_instances") == len(data), "optical")
        # DVD-000001 is closed, burned, verified and released: its discs are on the shelf.
        await verified(http, "DVD-000001")
        assert (await http.post("/api/v1/volumes/DVD-000001/release")).status_code == 200

        # A reconstruction is stored later (as the gateway does: the file, then
        # InstanceStored); the catalogue's new revision is a new StudyStable.
        ds = make_instance(study_uid=uid, series_uid=pydicom.uid.generate_uid(ROOT),
                           patient_id=study.patient_id, series_number=9, seed=900)
        late = tmp_path / "late.dcm"
        ds.save_as(late, enforce_file_format=True)
        raw = late.read_bytes()
        key = instance_key(uid, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        cache.put(key, raw)
        data[key] = raw
        await publish(bus_settings, instance_stored(raw, key, source="dimse"), uid)
        await wait_until(lambda: len(catalogue.cached(uid)) == len(data), "the new instance")
        await publish(bus_settings, stable(study, revision=2), uid)

        # The second STORE job writes the new instance to DVD-000002 as part 2 of 2.
        await wait_until(lambda: catalogue.job_states(STORE) == ["DONE", "DONE"], "job 2")
        second = catalogue.queue_jobs(STORE)[1]
        assert second["result"]["location"] == "DVD-000001+DVD-000002"
        assert second["message"] == "1 new instances written to DVD-000001+DVD-000002 (7 in all)"
        volume = (await http.get("/api/v1/volumes/DVD-000002")).json()
        assert [(s["part"], s["parts"], s["number_of_instances"]) for s in volume["studies"]] == [
            (2, 2, 1)]
        assert (await http.get("/api/v1/volumes/DVD-000001")).json()["studies"][0]["parts"] == 1
        # The catalogue's optical location covers every cache instance now.
        await wait_until(lambda: optical().get("number_of_instances") == len(data),
                         "the optical location with 7 instances")
        loc = optical()
        assert (loc["location"], loc["verified"]) == ("DVD-000001+DVD-000002", True)

        # The same revision announced again: DONE, nothing written.
        await publish(bus_settings, stable(study, revision=2), uid)
        await wait_until(lambda: catalogue.job_states(STORE) == ["DONE"] * 3, "job 3")
        third = catalogue.queue_jobs(STORE)[2]
        assert third["message"] == "7 instances already on DVD-000001+DVD-000002"
        assert [v["label"] for v in (await http.get("/api/v1/volumes")).json()] == [
            "DVD-000001", "DVD-000002"]
        assert (await http.get("/api/v1/volumes/DVD-000002")).json()[
            "number_of_instances"] == 1

        # The study leaves the cache; DVD-000001's disc is mounted; a retrieve reads both
        # parts back, byte for byte.
        for k in data:
            cache.delete(k)
        extract(tmp_path / "iso" / "DVD-000001-1.iso", tmp_path / "mnt" / "DVD-000001")
        r = await http.post(f"/api/v1/studies/{uid}/retrieve")
        assert r.status_code == 202, r.text
        await wait_until(lambda: catalogue.job_states(RETRIEVE) == ["DONE"], "the retrieve")
        await wait_until(lambda: catalogue.of_type(ar.StudyRecalled), "StudyRecalled")
    for k, blob in data.items():
        assert cache.get(k) == blob
    (fact,) = catalogue.of_type(ar.StudyRecalled)
    assert (fact.location, fact.number_of_instances) == ("DVD-000001+DVD-000002", 7)
