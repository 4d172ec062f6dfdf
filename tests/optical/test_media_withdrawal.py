"""A RETRIEVE job that ends without its disc (cancelled, failed for good) withdraws its media
requests: ``optical_burner.retrieve.withdraw_media_requests`` through the RETRIEVE queue's
observer (``optical_burner.jobs.MediaWithdrawals``), and the catalogue's volumes projection
of MediaRequestWithdrawn (a pure function of the journal: a replay gives the same rows).

The service end to end (cancelled through the catalogue's REST API) is in test_jobs.py.
"""

from __future__ import annotations

from types import SimpleNamespace

from dicomvault.events import TYPES
from dicomvault.events.v1 import optical_pb2 as op
from dicomvault.jobs import Job, JobState
from optical_burner import metrics
from optical_burner.jobs import Executors, MediaWithdrawals
from tests.optical.helpers import VolumesCatalogue, offline_volume, volume_facts

LABEL = "DVD-000001"


async def _progress(*_a, **_k) -> None:
    return None


def test_the_fact_is_registered() -> None:
    assert TYPES["dicomvault.media.request-withdrawn.v1"] is op.MediaRequestWithdrawn


async def test_ended_jobs_withdraw_what_no_active_job_needs(
        tmp_path, optical_config, make_archive, new_study, cache):
    async with VolumesCatalogue(tmp_path) as vc:
        feed, http = vc.feed, vc.http

        async def catalogue_requests() -> list[tuple[str, list[str]]]:
            got = (await http.get("/api/v1/media-requests")).json()["media_requests"]
            return [(r["label"], r["studies"]) for r in got]

        # Two studies on DVD-000001, closed, burned, verified, released: the disc is offline.
        arc, emitted = make_archive(optical_config())
        a, b = new_study(), new_study()
        await offline_volume(arc, LABEL, a, b)

        # Three RETRIEVE jobs wait for it: j1 and j2 for study A, j3 for study B.
        jobs = {j.id: j for j in (
            Job(id=f"j{n}", queue="OPTICAL1-retrieve", kind="RETRIEVE", study_uid=s.study_uid,
                target="OPTICAL1") for n, s in ((1, a), (2, a), (3, b)))}
        run = Executors(arc, cache)
        for job in jobs.values():
            assert (await run.retrieve(job, _progress)).status == "waiting"
            job.state = JobState.WAITING
        assert arc.media_requests[LABEL]["jobs"] == ["j1", "j2", "j3"]
        assert arc.media_requests[LABEL]["studies"] == [a.study_uid, b.study_uid]
        await feed(volume_facts(emitted))
        assert await catalogue_requests() == [(LABEL, [a.study_uid, b.study_uid])]

        withdrawals = MediaWithdrawals(arc, SimpleNamespace(jobs=jobs))

        async def end(job_id: str, state: JobState) -> list:
            before = len(emitted)
            jobs[job_id].state = state
            withdrawals(state.value.lower(), jobs[job_id])  # the queue calls it synchronously
            assert withdrawals.tasks  # scheduled on the running loop, referenced until done
            await withdrawals.drain()
            assert not withdrawals.tasks
            new = emitted[before:]
            await feed(volume_facts(new))
            return [p for _t, p, _k, _i in new]

        # Other state changes are none of its business.
        withdrawals("waiting", jobs["j1"])
        withdrawals("cancelled", None)
        assert not withdrawals.tasks

        # j1 fails for good: j2 still waits for study A, so nothing is withdrawn.
        jobs["j1"].error = "disc unreadable"
        assert await end("j1", JobState.FAILED) == []
        assert arc.media_requests[LABEL]["jobs"] == ["j2", "j3"]
        assert await catalogue_requests() == [(LABEL, [a.study_uid, b.study_uid])]

        # j3 is cancelled: study B leaves the request, which stays for study A (j2).
        (fact,) = await end("j3", JobState.CANCELLED)
        assert isinstance(fact, op.MediaRequestWithdrawn)
        assert (fact.archive_id, fact.label, fact.study_instance_uid, fact.reason) == (
            "OPTICAL1", LABEL, b.study_uid, "job j3 cancelled")
        assert emitted[-1][0] == "volumes" and emitted[-1][2] == LABEL
        assert (arc.media_requests[LABEL]["jobs"], arc.media_requests[LABEL]["studies"]) == (
            ["j2"], [a.study_uid])
        assert metrics.MEDIA_REQUESTS.labels("OPTICAL1")._value.get() == 1
        assert await catalogue_requests() == [(LABEL, [a.study_uid])]

        # j2 is cancelled: no active job needs the disc any more, the request goes.
        (fact,) = await end("j2", JobState.CANCELLED)
        assert (fact.study_instance_uid, fact.reason) == (a.study_uid, "job j2 cancelled")
        assert arc.media_requests == {}
        assert metrics.MEDIA_REQUESTS.labels("OPTICAL1")._value.get() == 0
        assert await catalogue_requests() == []
        # Ended again (a redelivered command): nothing left to withdraw.
        assert await end("j2", JobState.CANCELLED) == []
        withdrawn = [i for _t, p, _k, i in emitted if isinstance(p, op.MediaRequestWithdrawn)]
        assert len(set(withdrawn)) == 2

        # Study B asked for again (a new job): a new MediaRequested, not the journalled one.
        j4 = Job(id="j4", queue="OPTICAL1-retrieve", kind="RETRIEVE", study_uid=b.study_uid,
                 target="OPTICAL1")
        before = len(emitted)
        assert (await run.retrieve(j4, _progress)).status == "waiting"
        requested = [i for _t, p, _k, i in emitted if isinstance(p, op.MediaRequested)]
        assert len(requested) == len(set(requested)) == 3
        await feed(volume_facts(emitted[before:]))
        assert await catalogue_requests() == [(LABEL, [b.study_uid])]

        # A replay of the journalled facts into a fresh database gives the same rows (rebuild).
        assert await vc.replay_matches()


async def test_projection_of_a_withdrawal(tmp_path):
    async with VolumesCatalogue(tmp_path) as vc:
        feed, http = vc.feed, vc.http

        def requested(study: str) -> op.MediaRequested:
            return op.MediaRequested(archive_id="OPTICAL1", label=LABEL, study_instance_uid=study,
                                     message=f"insert volume {LABEL}", mount_path="/mnt/x")

        def withdrawn(study: str, label: str = LABEL) -> op.MediaRequestWithdrawn:
            return op.MediaRequestWithdrawn(archive_id="OPTICAL1", label=label,
                                            study_instance_uid=study, reason="job j cancelled")

        async def listed() -> list[tuple[str, list[str], str]]:
            got = (await http.get("/api/v1/media-requests")).json()["media_requests"]
            return [(r["label"], r["studies"], r["requested_at"]) for r in got]

        await feed([op.VolumeClosed(archive_id="OPTICAL1", label=LABEL, media_type="DVD-R",
                                    study_instance_uids=["1.2.1", "1.2.2"], reason="manual"),
                    requested("1.2.1"), requested("1.2.2")])
        ((_, studies, since),) = await listed()
        assert studies == ["1.2.1", "1.2.2"]

        # One study withdrawn: the request stays for the other, since when it was asked for.
        await feed([withdrawn("1.2.1")])
        assert await listed() == [(LABEL, ["1.2.2"], since)]
        # A withdrawal of a study it does not list, or of a volume without a row: no change.
        await feed([withdrawn("1.2.1"), withdrawn("1.2.9"), withdrawn("1.2.2", "DVD-000099")])
        assert await listed() == [(LABEL, ["1.2.2"], since)]
        assert (await http.get("/api/v1/volumes/OPTICAL1/DVD-000099")).status_code == 404
        # The last study withdrawn: the request is cleared; the volume row stays.
        await feed([withdrawn("1.2.2")])
        assert await listed() == []
        vol = (await http.get(f"/api/v1/volumes/OPTICAL1/{LABEL}")).json()
        assert (vol["state"], vol["media_request"]) == ("Closed", None)
        # Asked for again later: a new request, from that fact's time.
        await feed([requested("1.2.2")])
        ((_, studies, again),) = await listed()
        assert studies == ["1.2.2"] and again > since

        assert await vc.replay_matches()
