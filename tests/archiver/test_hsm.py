"""HSM archive on a temporary folder: store (both layouts), read back, recall, stalls."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from pathlib import Path

import httpx

from dicomvault.events.v1 import archive_pb2 as ar
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.store import FileStore
from tests.peers.cache import cache_study, publish
from tests.peers.wait import wait_until

from .conftest import hsm_archive, make_settings, running, stable


def chattr(flag: str, path: Path) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True)


def archived(catalogue, study_uid: str, tier: str = "hsm") -> list[ev.StudyArchived]:
    return [a for a in catalogue.of_type(ev.StudyArchived)
            if a.study_instance_uid == study_uid and a.tier == tier]


async def test_a_stable_study_lands_on_hsm_verified(bus_settings, catalogue, hsm_mount,
                                                    tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study, data = await cache_study(bus_settings, cache, tmp_path / "in", catalogue)
    settings = make_settings(bus_settings, cache, catalogue.url, [hsm_archive(hsm_mount)])
    async with running(settings) as url:
        # The catalogue says the study is stable: the rule (match all) sends it to HSM1.
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: archived(catalogue, study.study_uid), what="StudyArchived")
        fact = archived(catalogue, study.study_uid)[0]
        async with httpx.AsyncClient() as client:
            api = (await client.get(url + "/api/v1/archives")).json()
            # The job's outcome is counted once its JobCompleted is out, after StudyArchived.
            done = 'dicomvault_archiver_job_outcomes_total{outcome="done",queue="HSM1"}'
            for _ in range(300):
                metrics = (await client.get(url + "/metrics")).text
                if done in metrics:
                    break
                await asyncio.sleep(0.1)
    # Every instance is under mount/subdirectory/<study>/<series>/<sop>.dcm, byte-identical.
    folder = hsm_mount / "vault"
    for key, raw in data.items():
        assert (folder / key).read_bytes() == raw
    assert fact.verified and fact.archive_id == "HSM1" and fact.number_of_instances == len(data)
    assert sorted(fact.sop_instance_uids) == sorted(study.sop_uids)
    # Which bytes the copy holds, for the catalogue to check against the current ones.
    assert dict(zip(fact.sop_instance_uids, fact.sha256s, strict=True)) == {
        k.split("/")[-1][:-4]: hashlib.sha256(v).hexdigest() for k, v in data.items()}
    assert fact.location == str(folder / study.study_uid)
    index = json.loads((folder / f"{study.study_uid}.index.json").read_text())
    assert {i["sop"]: i["sha256"] for i in index["instances"]} == {
        k.split("/")[-1][:-4]: hashlib.sha256(v).hexdigest() for k, v in data.items()}
    assert not list(folder.rglob(".tmp-*"))
    assert api[0]["id"] == "HSM1" and api[0]["ready"] and api[0]["free_bytes"] > 0
    assert [q["name"] for q in api[0]["queues"]] == ["HSM1", "HSM1-retrieve"]
    assert 'dicomvault_archiver_archive_ready{archive="HSM1"} 1.0' in metrics
    assert "dicomvault_archiver_hsm_free_bytes" in metrics
    assert done in metrics
    await wait_until(lambda: catalogue.job_states("HSM1") == ["DONE"], what="job DONE")


async def test_rules_choose_archives(bus_settings, catalogue, hsm_mount, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study, _ = await cache_study(bus_settings, cache, tmp_path / "in", catalogue)
    other = tmp_path / "hsm2"
    (other / "vault").mkdir(parents=True)
    (other / "vault" / ".dicomvault-archive").write_text("HSM2")
    settings = make_settings(bus_settings, cache, catalogue.url, [
        hsm_archive(hsm_mount, rules=[{"name": "ct", "modalities": ["CT"]}]),
        hsm_archive(other, id="HSM2", rules=[{"name": "mr", "modalities": ["MR"]},
                                             {"name": "ct01", "station_names": ["ct01"]}]),
        hsm_archive(tmp_path / "never", id="HSM3", rules=[{"calling_aes": ["OTHER"]}]),
    ])
    async with running(settings):
        await publish(bus_settings, stable(study), study.study_uid)
        # A study may go to several archives: CT to HSM1, station CT01 to HSM2, not HSM3.
        await wait_until(lambda: len(archived(catalogue, study.study_uid)) == 2)
        await asyncio.sleep(0.5)
    assert sorted(a.archive_id for a in archived(catalogue, study.study_uid)) == ["HSM1", "HSM2"]
    assert catalogue.job_states("HSM3") == []
    await wait_until(lambda: [j["created_by"] for j in catalogue.jobs.values()
                              if j["queue"] == "HSM2"] == ["rule:ct01"], what="HSM2's job")


async def test_tar_layout_round_trip_back_into_the_cache(bus_settings, catalogue, hsm_mount,
                                                         tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study, data = await cache_study(bus_settings, cache, tmp_path / "in", catalogue)
    settings = make_settings(bus_settings, cache, catalogue.url,
                             [hsm_archive(hsm_mount, hsm={"layout": "tar-per-study"})])
    async with running(settings):
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: archived(catalogue, study.study_uid))
        tar = hsm_mount / "vault" / f"{study.study_uid}.tar"
        assert archived(catalogue, study.study_uid)[0].location == str(tar)
        index = json.loads((hsm_mount / "vault" / f"{study.study_uid}.index.json").read_text())
        assert index["tar_size"] == tar.stat().st_size and len(index["instances"]) == len(data)
        # The study leaves the cache (as eviction would do) ...
        store = FileStore(cache)
        for key in data:
            store.delete(key)
        # ... and a retrieve asks for it: it comes back byte-identical, announced as a recall.
        await publish(bus_settings, ev.RecallRequested(study_instance_uid=study.study_uid,
                                                       requested_by="VIEWER"), study.study_uid)

        def recalled_instances() -> list[ev.InstanceStored]:
            return [i for i in catalogue.of_type(ev.InstanceStored) if i.source == "recall"]

        # StudyRecalled (studies topic) follows the recalled InstanceStored (instances topic):
        # the catalogue may journal it first, so wait for both.
        await wait_until(lambda: catalogue.of_type(ar.StudyRecalled)
                         and len(recalled_instances()) >= len(data),
                         what="StudyRecalled and the recalled instances")
    for key, raw in data.items():
        assert store.get(key) == raw
    recalled = recalled_instances()
    assert sorted(i.storage_key for i in recalled) == sorted(data)
    one = recalled[0]
    assert one.tier == "cache" and one.patient_id == "PAT001" and one.modality in ("CT", "OT")
    assert one.sha256 == hashlib.sha256(data[one.storage_key]).hexdigest()
    fact = catalogue.of_type(ar.StudyRecalled)[0]
    assert (fact.tier, fact.archive_id, fact.number_of_instances) == ("hsm", "HSM1", len(data))
    await wait_until(lambda: catalogue.job_states("HSM1-retrieve") == ["DONE"],
                     what="retrieve job DONE")


async def test_recall_waits_for_files_slow_to_come_back(bus_settings, catalogue, hsm_mount,
                                                        tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study, data = await cache_study(bus_settings, cache, tmp_path / "in", catalogue)
    settings = make_settings(bus_settings, cache, catalogue.url, [hsm_archive(hsm_mount)])
    async with running(settings):
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: archived(catalogue, study.study_uid))
        for key in data:
            FileStore(cache).delete(key)
        # Two files are "on tape": not in the folder until the HSM stages them back.
        staged = tmp_path / "tape"
        staged.mkdir()
        slow = sorted(data)[:2]
        for key in slow:
            (hsm_mount / "vault" / key).rename(staged / key.replace("/", "_"))
        await publish(bus_settings, ev.RecallRequested(study_instance_uid=study.study_uid),
                      study.study_uid)
        waiting = lambda: [p for p in catalogue.of_type(jb.JobProgressed)  # noqa: E731
                           if p.queue == "HSM1-retrieve" and p.remaining == 2]
        await wait_until(waiting, what="progress while waiting for the tape")
        assert "waiting for the HSM" in waiting()[0].message
        assert not catalogue.of_type(ar.StudyRecalled)
        for key in slow:  # the tape robot delivers
            (staged / key.replace("/", "_")).rename(hsm_mount / "vault" / key)
        await wait_until(lambda: catalogue.of_type(ar.StudyRecalled))
    for key, raw in data.items():
        assert FileStore(cache).get(key) == raw


async def test_queue_stalls_until_the_archive_is_ready_and_loses_nothing(
        bus_settings, catalogue, hsm_mount, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = hsm_mount / "vault"
    sentinel = folder / ".dicomvault-archive"
    settings = make_settings(bus_settings, cache, catalogue.url, [hsm_archive(hsm_mount)])

    async def stalled_with(text: str) -> None:
        await wait_until(lambda: catalogue.queues.get("HSM1", {}).get("state") == "STALLED"
                         and text in catalogue.queues["HSM1"]["reason"], what=text)

    async with running(settings) as url:
        # 1. Sentinel missing.
        sentinel.unlink()
        s1, d1 = await cache_study(bus_settings, cache, tmp_path / "s1", catalogue)
        await publish(bus_settings, stable(s1), s1.study_uid)
        await stalled_with("sentinel file")
        async with httpx.AsyncClient() as client:
            api = (await client.get(url + "/api/v1/archives")).json()[0]
        assert not api["ready"] and "is missing" in api["reason"]
        assert api["queues"][0]["state"] == "STALLED" and api["queues"][0]["depth"] == 1
        sentinel.write_text("SOMEONE-ELSE")  # a wrong archive mounted there
        await stalled_with("names 'SOMEONE-ELSE'")
        sentinel.write_text("HSM1")
        await wait_until(lambda: archived(catalogue, s1.study_uid))
        # 2. Folder not writable. Tests run as root, which ignores permission bits, so the
        #    folder is made immutable (chattr +i: not even root may create a file in it).
        await asyncio.to_thread(chattr, "+i", folder)
        try:
            s2, d2 = await cache_study(bus_settings, cache, tmp_path / "s2", catalogue)
            await publish(bus_settings, stable(s2), s2.study_uid)
            await stalled_with("not writable")
            assert not archived(catalogue, s2.study_uid)
        finally:
            await asyncio.to_thread(chattr, "-i", folder)
        await wait_until(lambda: archived(catalogue, s2.study_uid))
        await wait_until(lambda: catalogue.queues["HSM1"]["state"] == "RUNNING",
                         what="queue RUNNING again")
    # 3. Disk "full": a threshold above the disk's free space stalls the queue ...
    full = make_settings(bus_settings, cache, catalogue.url, [
        hsm_archive(hsm_mount, hsm={"free_space_min_bytes": 1 << 60})])
    async with running(full):
        s3, d3 = await cache_study(bus_settings, cache, tmp_path / "s3", catalogue)
        await publish(bus_settings, stable(s3), s3.study_uid)
        await stalled_with("below the threshold")
    await wait_until(lambda: catalogue.job_states("HSM1")[-1:] == ["NEW"], what="a NEW job")
    # ... and when there is room again (here: the threshold lowered, service restarted), the
    # job, adopted from the catalogue after the restart, drains.
    async with running(settings):
        await wait_until(lambda: archived(catalogue, s3.study_uid), what="drain after restart")
    for key, raw in {**d1, **d2, **d3}.items():
        assert (folder / key).read_bytes() == raw
    await wait_until(lambda: catalogue.job_states("HSM1") == ["DONE", "DONE", "DONE"],
                     what="three jobs DONE")


async def test_runs_with_no_archive_configured(bus_settings, catalogue, tmp_path: Path) -> None:
    # The embedded archive (`dicomvault up`) starts the service before anyone configured one.
    settings = make_settings(bus_settings, tmp_path / "cache", catalogue.url, [])
    async with running(settings) as url:
        async with httpx.AsyncClient() as client:
            assert (await client.get(url + "/api/v1/archives")).json() == []
            assert (await client.get(url + "/healthz")).status_code == 200
