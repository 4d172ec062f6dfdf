"""Media requests the catalogue shows but no RETRIEVE job waits for any more are withdrawn
(``optical_burner.stale_requests.StaleRequests``): the case of a job cancelled while the
burner was down, whose request the restarted burner no longer holds in memory.

The catalogue is the real one (in this process: its projection and REST API); the jobs are
those the RETRIEVE queue holds after adoption."""

from __future__ import annotations

from types import SimpleNamespace

from dicomvault.events.v1 import optical_pb2 as op
from dicomvault.jobs import Job, JobState
from optical_burner.catalogue import CatalogueClient
from optical_burner.jobs import Executors
from optical_burner.stale_requests import REASON, StaleRequests
from tests.optical.helpers import offline_volume

LABEL = "DVD-000001"


async def _progress(*_a, **_k) -> None:
    return None


async def test_requests_no_job_waits_for_are_withdrawn(
        optical_config, make_archive, new_study, cache, catalogue) -> None:
    # Two studies on DVD-000001, verified and released: the disc is offline.
    arc, emitted = make_archive(optical_config())
    a, b = new_study(), new_study()
    await offline_volume(arc, LABEL, a, b)

    # Two RETRIEVE jobs asked for the disc; the catalogue projected both requests.
    j1, j2 = (Job(id=f"j{n}", queue="OPTICAL1-retrieve", kind="RETRIEVE",
                  study_uid=s.study_uid, target="OPTICAL1") for n, s in ((1, a), (2, b)))
    run = Executors(arc, cache)
    for job in (j1, j2):
        assert (await run.retrieve(job, _progress)).status == "waiting"
        job.state = JobState.WAITING

    def project_emitted() -> None:
        for _t, p, _k, _i in emitted[len(projected):]:
            catalogue.record(p)
            projected.append(p)

    projected: list = []
    project_emitted()
    assert [(r["label"], r["studies"]) for r in await arc.catalogue.media_requests()] == [
        (LABEL, [a.study_uid, b.study_uid])]

    # The burner restarts: its memory of the requests is gone. j1 is adopted (still
    # WAITING); j2 was cancelled while the burner was down.
    arc.media_requests.clear()
    j2.state = JobState.CANCELLED
    queue = SimpleNamespace(jobs={j.id: j for j in (j1, j2)})
    adopted, t = False, [1000.0]
    stale = StaleRequests(arc, queue, arc.catalogue, adopted=lambda: adopted, grace_s=30,
                          clock=lambda: t[0])

    # Before adoption every request would look unneeded: nothing is touched.
    before = len(emitted)
    assert await stale.sweep() == []
    adopted = True
    # Unneeded, but perhaps only because the catalogue has not applied a withdrawal yet:
    # nothing during the grace period.
    assert await stale.sweep() == []
    t[0] += 29
    assert await stale.sweep() == []
    assert len(emitted) == before

    t[0] += 2
    assert await stale.sweep() == [(LABEL, b.study_uid)]
    (topic, fact, key, _id) = emitted[-1]
    assert isinstance(fact, op.MediaRequestWithdrawn)
    assert (topic, key) == ("volumes", LABEL)
    assert (fact.archive_id, fact.label, fact.study_instance_uid, fact.reason) == (
        "OPTICAL1", LABEL, b.study_uid, REASON)
    # The projection has not caught up yet: the same withdrawal is not published again.
    t[0] += 60
    assert await stale.sweep() == []
    assert len(emitted) == before + 1

    project_emitted()
    assert [(r["label"], r["studies"]) for r in await arc.catalogue.media_requests("OPTICAL1")
            ] == [(LABEL, [a.study_uid])]
    assert await arc.catalogue.media_requests("OTHER") == []

    # A study the burner itself holds a request for is left alone, even without a job.
    arc.media_requests[LABEL] = {"label": LABEL, "studies": [a.study_uid], "jobs": []}
    j1.state = JobState.CANCELLED
    assert await stale.sweep() == []
    # Then the burner withdraws it itself (its job's observer); the catalogue applies that
    # within the grace period: no second withdrawal.
    arc.media_requests.clear()
    assert await stale.sweep() == []
    t[0] += 5
    catalogue.record(op.MediaRequestWithdrawn(archive_id="OPTICAL1", label=LABEL,
                                              study_instance_uid=a.study_uid,
                                              reason="job j1 cancelled"))
    assert await arc.catalogue.media_requests() == []
    t[0] += 60
    assert await stale.sweep() == []
    assert len(emitted) == before + 1


async def test_an_unreachable_catalogue_is_tried_again_later(optical_config, make_archive
                                                               ) -> None:
    arc, emitted = make_archive(optical_config())
    down = CatalogueClient("http://127.0.0.1:9", timeout_s=1)
    try:
        stale = StaleRequests(arc, SimpleNamespace(jobs={}), down, adopted=lambda: True,
                              grace_s=0)
        assert await stale.sweep() == []
        assert emitted == []
    finally:
        await down.close()

