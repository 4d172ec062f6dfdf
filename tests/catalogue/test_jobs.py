"""Jobs and queues projected from the jobs topic's facts and served by the REST API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update

from catalogue.models import JobRow, Journal, QueueRow
from catalogue.rebuild import rebuild
from dicomvault.bus import PermanentError
from dicomvault.events.v1 import jobs_pb2 as jb
from tests.catalogue.conftest import Catalogue
from tests.catalogue.helpers import uid
from tests.catalogue.jobs_events import (
    completed,
    created,
    fact,
    failed,
    progressed,
    queue_state,
    retry_scheduled,
    started,
)


async def test_a_jobs_life_is_projected_and_served_with_counts(cat: Catalogue) -> None:
    study = uid()
    queue, job = "HSM1", "job-life-1"
    await cat.feed(queue_state(queue, "RUNNING", "started"),
                   created(job, queue, study, sop_instance_uids=["1.2.3.4"],
                           params={"layout": "tar"}, created_by="rule:ct-to-hsm"))

    r = await cat.client.get(f"/api/v1/jobs/{job}")
    assert r.status_code == 200
    j = r.json()
    assert (j["state"], j["kind"], j["study_instance_uid"], j["target"]) == (
        "NEW", "STORE", study, queue)
    assert (j["params"], j["sop_instance_uids"], j["created_by"], j["max_retries"]) == (
        {"layout": "tar"}, ["1.2.3.4"], "rule:ct-to-hsm", 5)

    # The first attempt copies two of five instances, then the HSM goes away: retry later.
    next_try = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    await cat.feed(started(job, queue, 1, study), progressed(job, queue, 2, 0, 3),
                   retry_scheduled(job, queue, 1, next_try, "mount point missing"))
    j = (await cat.client.get(f"/api/v1/jobs/{job}")).json()
    assert (j["state"], j["attempts"], j["error"]) == ("RETRY", 1, "mount point missing")
    assert j["progress"] == {"completed": 2, "failed": 0, "remaining": 3}
    assert datetime.fromisoformat(j["not_before"]) == next_try
    q = (await cat.client.get(f"/api/v1/queues/{queue}")).json()
    assert (q["state"], q["counts"]["RETRY"], q["depth"]) == ("RUNNING", 1, 1)

    # The second attempt finishes the job; a redelivered fact changes nothing.
    done = completed(job, queue, 5)
    await cat.feed(started(job, queue, 2, study), progressed(job, queue, 4, 0, 1), done, done)
    j = (await cat.client.get(f"/api/v1/jobs/{job}")).json()
    assert (j["state"], j["attempts"], j["error"], j["worker"]) == ("DONE", 2, "", "hsm-1")
    assert j["progress"] == {"completed": 5, "failed": 0, "remaining": 0}
    assert j["result"] == {"location": f"/mnt/hsm/{job}"}
    assert j["created_at"] <= j["updated_at"]

    listed = (await cat.client.get("/api/v1/queues")).json()["queues"]
    assert [(x["name"], x["state"], x["counts"]["DONE"], x["depth"]) for x in listed] == [
        (queue, "RUNNING", 1, 0)]

    # The journal rebuilds the same jobs and queues.
    report = await rebuild(cat.settings(), check_only=True)
    assert report.ok, report.differences
    assert (report.rows["jobs"], report.rows["queues"]) == (1, 1)

    # A job row changed behind the journal's back is reported, and a rebuild restores it.
    async with cat.sessions() as s, s.begin():
        await s.execute(update(JobRow).where(JobRow.job_id == job).values(state="FAILED"))
        await s.execute(delete(QueueRow))
    report = await rebuild(cat.settings(), check_only=True)
    assert not report.ok and report.difference_count == 2
    assert any(d.startswith(f"jobs['{job}'].state: live='FAILED' journal='DONE'")
               for d in report.differences), report.differences
    assert any("queues['HSM1']: missing from the live projection" in d
               for d in report.differences), report.differences
    assert (await rebuild(cat.settings(), check_only=False)).ok
    assert (await cat.client.get(f"/api/v1/jobs/{job}")).json()["state"] == "DONE"
    assert (await cat.client.get(f"/api/v1/queues/{queue}")).json()["state"] == "RUNNING"


async def test_jobs_filters_paging_and_counts(cat: Catalogue) -> None:
    a, b = uid(), uid()
    await cat.feed(
        created("j1", "HSM1", a), created("j2", "HSM1", b), created("j3", "HSM1", a),
        created("j4", "PACS2", a, kind="EXPORT"), created("j5", "PACS2", b, kind="EXPORT"),
        started("j2", "HSM1", 1), completed("j2", "HSM1", 3),
        started("j3", "HSM1", 1), failed("j3", "HSM1", 1, "checksum mismatch"),
        started("j5", "PACS2", 1))

    async def ids(**params) -> tuple[list[str], int]:
        r = await cat.client.get("/api/v1/jobs", params=params)
        assert r.status_code == 200, r.text
        return [j["job_id"] for j in r.json()["jobs"]], r.json()["total"]

    assert await ids() == (["j1", "j2", "j3", "j4", "j5"], 5)
    assert await ids(queue="HSM1") == (["j1", "j2", "j3"], 3)
    assert await ids(queue="HSM1", state="DONE,FAILED") == (["j2", "j3"], 2)
    assert await ids(state="in progress") == (["j5"], 1)
    assert await ids(kind="EXPORT") == (["j4", "j5"], 2)
    assert await ids(study_instance_uid=a) == (["j1", "j3", "j4"], 3)
    assert await ids(limit=2, offset=2) == (["j3", "j4"], 5)
    assert await ids(queue="NOPE") == ([], 0)

    # Counts per state ignore the state filter: the other states stay visible.
    body = (await cat.client.get("/api/v1/jobs", params={"queue": "HSM1",
                                                          "state": "FAILED"})).json()
    assert {k: v for k, v in body["counts"].items() if v} == {"NEW": 1, "DONE": 1, "FAILED": 1}
    queues = {q["name"]: q for q in (await cat.client.get("/api/v1/queues")).json()["queues"]}
    assert queues["PACS2"]["counts"]["IN_PROGRESS"] == 1
    assert queues["PACS2"]["state"] == "UNKNOWN"  # no queue fact yet: said so, not guessed
    hsm = queues["HSM1"]
    assert (hsm["depth"], hsm["last_failure_reason"]) == (1, "checksum mismatch")
    assert hsm["last_success"] is not None and hsm["last_failure"] is not None
    assert queues["PACS2"]["last_success"] is None

    # Bad input is refused with the reason.
    for params in ({"state": "BROKEN"}, {"kind": "DANCE"}, {"limit": 0}, {"offset": -1}):
        r = await cat.client.get("/api/v1/jobs", params=params)
        assert r.status_code == 422, params
    assert "BROKEN" in (await cat.client.get("/api/v1/jobs?state=BROKEN")).json()["detail"]
    assert (await cat.client.get("/api/v1/jobs/nope")).status_code == 404
    assert (await cat.client.get("/api/v1/queues/nope")).status_code == 404


async def test_malformed_job_facts_are_refused_and_strays_only_journalled(
        cat: Catalogue) -> None:
    # Facts that can never be projected go to the DLQ (PermanentError), nothing is written.
    for bad in (started("", "HSM1", 1), queue_state("HSM1", "ASLEEP"),
                fact(jb.JobStateChanged(job_id="j1", queue="HSM1", state="LIMBO"))):
        with pytest.raises(PermanentError):
            await cat.feed(bad)
    # A fact about a job this catalogue never saw created is kept in the journal only.
    await cat.feed(started("ghost", "HSM1", 1))
    assert (await cat.client.get("/api/v1/jobs/ghost")).status_code == 404
    async with cat.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Journal)) == 1
