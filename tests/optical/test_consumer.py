"""The studies-topic policy on the real broker: StudyStable → one STORE job by the optical
rule (redeliveries change nothing), the job writes the study into the open volume;
RecallRequested → a RETRIEVE job only when no tier ranked ahead of optical holds a verified
copy (the tier order decides)."""

from __future__ import annotations

import asyncio

from dicomvault.bus import ConsumerLoop, Publisher
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.jobs import JobQueue, JobState
from optical_burner.jobs import Executors
from optical_burner.policies import Policies
from optical_burner.queues import Queues
from tests.peers.wait import wait_until


def queues_of(arc, cache, publisher, topics) -> Queues:
    run = Executors(arc, cache)
    return Queues(*(JobQueue(name=name, kind=kind, owner="optical-burner", publisher=publisher,
                             topics=topics, execute=execute)
                    for name, kind, execute in (("OPTICAL1", "STORE", run.store),
                                                ("OPTICAL1-retrieve", "RETRIEVE",
                                                 run.retrieve))))


async def test_study_stable_and_recall_requested_become_jobs(
        bus_settings, optical_config, make_archive, new_study, catalogue, cache):
    arc, emitted = make_archive(optical_config(rules=[{"modalities": ["CT"],
                                                       "calling_aes": ["CT_SCANNER"]}]))
    ct, mr = new_study(), new_study(modalities=("MR",))
    applied: list[str] = []

    async with Publisher(bus_settings, client_id="test-modality") as publisher:
        queues = queues_of(arc, cache, publisher, bus_settings.topics)
        policies = Policies(arc, queues, ["hsm", "pacs", "optical"])

        async def handler(event: Event) -> None:
            await policies.studies(event)
            applied.append(event.id)

        loop = ConsumerLoop(bus_settings, group_id="optical-test", topics=[
            bus_settings.topics.studies], handler=handler, dlq=publisher, client_id="optical")
        task = asyncio.create_task(loop.run())
        stop = asyncio.Event()
        runners: list[asyncio.Task] = []
        try:
            async def send(payload, study) -> Event:
                e = Event(payload=payload, source="dicomvault/test", subject=study.study_uid)
                await publisher.publish(bus_settings.topics.studies, e, key=e.subject)
                return e

            def stable(study, modality, ae):
                return ev.StudyStable(study_instance_uid=study.study_uid, modalities=[modality],
                                      calling_aes=[ae], number_of_instances=len(study.files))

            first = await send(stable(ct, "CT", "CT_SCANNER"), ct)
            await publisher.publish(bus_settings.topics.studies, first, key=first.subject)
            await send(stable(mr, "MR", "MR_SCANNER"), mr)
            await wait_until(lambda: len(applied) == 3, "three StudyStable events")

            # Only the CT study matches the rule: one STORE job, whatever the redeliveries.
            (job,) = queues.store.jobs.values()
            assert (job.study_uid, job.kind, job.created_by) == (ct.study_uid, "STORE",
                                                                 "rule:default")
            runners += [asyncio.create_task(q.run(stop)) for q in queues]
            await wait_until(lambda: job.state == JobState.DONE, "the STORE job")
            assert arc.store.get("DVD-000001").study(ct.study_uid) is not None
            archived = emitted.of("StudyArchived")
            assert [a.study_instance_uid for a in archived] == [ct.study_uid]
            catalogue.record(archived[0])

            # A recall request for a study only optical holds: a RETRIEVE job.
            await send(ev.RecallRequested(study_instance_uid=ct.study_uid,
                                          requested_by="VIEWER"), ct)
            await wait_until(lambda: len(queues.retrieve.jobs) == 1, "a RETRIEVE job")
            # A study no volume holds is not ours.
            await send(ev.RecallRequested(study_instance_uid=mr.study_uid), mr)
            # HSM (ranked ahead of optical) now holds a verified copy: the next request is
            # the hsm-archiver's.
            catalogue.record(ev.StudyArchived(study_instance_uid=ct.study_uid, tier="hsm",
                                              archive_id="HSM1", location="x", verified=True))
            await send(ev.RecallRequested(study_instance_uid=ct.study_uid), ct)
            await wait_until(lambda: len(applied) == 6, "three RecallRequested events")
            assert len(queues.retrieve.jobs) == 1
            # With optical ranked first, optical recalls even though HSM holds a copy.
            policies.tier_order = ["optical", "hsm"]
            await send(ev.RecallRequested(study_instance_uid=ct.study_uid), ct)
            await wait_until(lambda: len(queues.retrieve.jobs) == 2, "a second RETRIEVE job")
            await wait_until(lambda: all(j.state == JobState.DONE
                                       for j in queues.retrieve.jobs.values()), "the retrieves")
            recalled = emitted.of("StudyRecalled")
            assert [(r.tier, r.location) for r in recalled] == [("optical", "DVD-000001")] * 2
        finally:
            stop.set()
            loop.stop()
            await task
            await asyncio.gather(*runners)
