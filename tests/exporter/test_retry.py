"""A retried export sends again: what the remote did not confirm on every retry, what it
refused permanently only when the administrator asks for it (``include_refused``)."""

from __future__ import annotations

from collections import deque

import pytest

from dicomvault.events import Event
from dicomvault.events.v1 import exports_pb2 as ex
from dicomvault.events.v1 import jobs_pb2 as jb
from stow_exporter.policies import Commands, Hosted
from stow_exporter.queue import Export
from stow_exporter.spec import Exporter
from tests.commitment.conftest import read_facts
from tests.exporter.conftest import drain, exporter
from tests.exporter.helpers import job_facts
from tests.exporter.servers import StowServer, serve
from tests.peers.datasets import write_study
from tests.peers.orthanc import Orthanc

A900 = 0xA900  # STOW-RS / C-STORE "Error: data set does not match SOP class"


def retry(export: Export, queue: str, include_refused: bool = False) -> Event:
    """The command the catalogue publishes for ``POST /api/v1/jobs/{id}/retry``."""
    return Event(payload=jb.JobCommandIssued(
        command=jb.JobCommandIssued.RETRY_JOB, queue=queue, job_id=export.id,
        issued_by="api:ops", include_refused=include_refused), source="test", subject="")


def to_orthanc(scheme: str, orthanc: Orthanc, hosting) -> Hosted:
    if scheme == "dicom":
        exp = Exporter.model_validate({"exporterID": "DOWN-DICOM", "uri": "dicom:ORTHANC",
                                       "retry": {"maxRetries": 0}})
        return hosting(exp, modalities={"ORTHANC": {"host": "127.0.0.1",
                                                    "port": orthanc.dicom_port}})
    return hosting(exporter("DOWN-STOW", url=orthanc.dicomweb_url))


@pytest.mark.parametrize("scheme", ["dicom", "stowrs"])
async def test_retry_after_the_remote_was_down_sends_every_instance(
        tmp_path, catalogue, hosting, bus_settings, scheme):
    study = write_study(tmp_path / "study", series=1, per_series=3)
    catalogue[0].add(study)
    # Orthanc is configured but not running: the remote is down.
    orthanc = Orthanc(tmp_path / "orthanc", aet="ORTHANC")
    h = to_orthanc(scheme, orthanc, hosting)
    export = await h.queue.submit(study.study_uid, trigger="manual")
    await drain(h)
    # No retries left: FAILED. Nothing was refused; every instance waits to be sent again.
    assert export.state == "failed"
    assert set(export.unsent) == set(study.sop_uids)
    assert not export.failed and not export.stored

    with orthanc:
        # The administrator retries the job once Orthanc is up: every instance arrives.
        await Commands([h])(retry(export, h.queue.name))
        await drain(h)
        assert export.state == "exported", export.reason
        assert set(orthanc.files_by_sop_uid_of(study.study_uid)) == set(study.sop_uids)
        assert not export.unsent and export.attempts == 1

    facts = await job_facts(bus_settings, lambda fs: any(
        isinstance(f.payload, jb.JobCompleted) for f in fs))
    mine = [f.payload for f in facts if getattr(f.payload, "job_id", "") == export.id]
    # The jobs topic tells the story: failed, retried by the administrator, completed.
    assert [type(p).__name__ for p in mine if not isinstance(p, jb.JobStarted)] == [
        "JobCreated", "JobProgressed", "JobFailed", "JobStateChanged", "JobCompleted"]
    progressed = next(p for p in mine if isinstance(p, jb.JobProgressed))
    assert "3 instance(s) not confirmed by the remote (a retry sends them again)" \
        in progressed.message
    assert mine[-1].completed == 3


async def test_refused_instances_are_sent_again_only_when_asked(tmp_path, catalogue, hosting,
                                                                bus_settings):
    study = write_study(tmp_path / "study", series=1, per_series=2)
    catalogue[0].add(study)
    # The remote refuses both instances permanently (STOW-RS 409, FailureReason 0xA900).
    server = StowServer(fail=dict.fromkeys(study.sop_uids, A900))
    async with serve(server) as port:
        h = hosting(exporter("REFUSED", url=f"http://127.0.0.1:{port}/dicom-web"))
        export = await h.queue.submit(study.study_uid, trigger="manual")
        await drain(h)
        assert export.state == "failed"
        assert set(export.failed) == set(study.sop_uids) and not export.unsent
        assert all("A900" in why for why in export.failed.values()), export.failed
        # The jobs API lists each refused instance with its reason.
        facts = await job_facts(bus_settings, lambda fs: any(
            isinstance(f.payload, jb.JobFailed) for f in fs))
        progressed = [f.payload for f in facts if isinstance(f.payload, jb.JobProgressed)
                      and f.payload.job_id == export.id][-1]
        for uid in study.sop_uids:
            assert f"{uid}: {export.failed[uid]}" in progressed.message
        requests = len(server.refused) + len(server.requests)

        # The remote is fixed. A plain retry does not send what it refused …
        server.fail.clear()
        await Commands([h])(retry(export, h.queue.name))
        await drain(h)
        assert export.state == "failed" and export.reason.startswith("every instance refused")
        assert len(server.refused) + len(server.requests) == requests
        # … a retry with include_refused does, and the export completes.
        await Commands([h])(retry(export, h.queue.name, include_refused=True))
        await drain(h)
        assert export.state == "exported", export.reason
        assert sorted(server.stored_uids()) == sorted(study.sop_uids)
        assert not export.failed


async def test_retry_of_a_failed_export_the_restarted_exporter_no_longer_holds(
        tmp_path, catalogue, hosting, bus_settings):
    study = write_study(tmp_path / "study", series=1, per_series=2)
    catalogue[0].add(study)
    server = StowServer(statuses=deque([503]))
    async with serve(server) as port:
        spec = exporter("RESTART", url=f"http://127.0.0.1:{port}/dicom-web")
        first = hosting(spec)
        export = await first.queue.submit(study.study_uid, trigger="manual")
        await drain(first)
        assert export.state == "failed"
        # The catalogue projects the job's facts (here: fed from the jobs topic).
        facts = await job_facts(bus_settings, lambda fs: any(
            isinstance(f.payload, jb.JobFailed) for f in fs))
        for f in facts:
            catalogue[0].real.record(f.payload)
        # The exporter restarts: a FAILED job is not adopted, so the new process does not
        # hold it. The retry command makes it fetch the job from the catalogue and run it.
        second = hosting(spec)
        assert second.queue.get(export.id) is None
        await Commands([second])(retry(export, second.queue.name))
        await drain(second)
        again = second.queue.get(export.id)
        assert again is not None and again.state == "exported", again and again.reason
        assert sorted(server.stored_uids()) == sorted(study.sop_uids)


async def test_a_done_export_with_refusals_is_rescheduled_to_send_them(
        tmp_path, catalogue, hosting, bus_settings):
    study = write_study(tmp_path / "study", series=1, per_series=2)
    catalogue[0].add(study)
    refused = study.sop_uids[0]
    # The remote takes one instance and refuses the other (STOW-RS 202 with a failure).
    server = StowServer(fail={refused: A900})
    async with serve(server) as port:
        h = hosting(exporter("PARTIAL", url=f"http://127.0.0.1:{port}/dicom-web"))
        export = await h.queue.submit(study.study_uid, trigger="manual")
        await drain(h)
        assert export.state == "exported" and list(export.failed) == [refused]
        assert f"{refused}: " in export.reason
        # Fixed remote; the administrator reschedules the DONE job with include_refused.
        server.fail.clear()
        await Commands([h])(Event(payload=jb.JobCommandIssued(
            command=jb.JobCommandIssued.RESCHEDULE_JOB, queue=h.queue.name,
            job_id=export.id, issued_by="api:ops", include_refused=True),
            source="test", subject=""))
        await drain(h)
        assert export.state == "exported" and not export.failed, export.reason
        # Only the refused instance went again; both are at the remote now.
        assert sorted(server.stored_uids()) == sorted(study.sop_uids)
        assert len(server.requests) == 2
    # Each outcome is its own StudyExported fact: first with the refusal, then complete.
    facts = await read_facts(bus_settings, bus_settings.topics.studies, lambda evs: sum(
        isinstance(e.payload, ex.StudyExported) for e in evs) >= 2)
    exported = [e.payload for e in facts if isinstance(e.payload, ex.StudyExported)]
    assert [list(x.failed_sop_instance_uids) for x in exported] == [[refused], []]
