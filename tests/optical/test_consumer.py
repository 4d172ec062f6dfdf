"""The StudyStable consumer on the real broker: the optical rule queues a study durably, the
sweep writes it into the open volume (StudyArchived), redeliveries change nothing."""

from __future__ import annotations

import asyncio

from dicomvault.bus import ConsumerLoop, Publisher
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from optical_burner.handlers import Policies, write_pending


async def wait_for(predicate, what: str, timeout_s: float = 60.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), timeout=timeout_s)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for {what}") from None


async def test_study_stable_flows_by_rule_into_the_open_volume(
        bus_settings, optical_config, make_archive, new_study):
    arc, emitted = make_archive(optical_config(rules=[{"modalities": ["CT"],
                                                       "calling_aes": ["CT_SCANNER"]}]))
    ct, mr = new_study(), new_study(modalities=("MR",))
    policies = Policies(arc)
    applied: list[str] = []

    async def handler(event: Event) -> None:
        await policies.studies(event)
        applied.append(event.id)

    async with Publisher(bus_settings, client_id="test-modality") as publisher:
        loop = ConsumerLoop(bus_settings, group_id="optical-test", topics=[
            bus_settings.topics.studies], handler=handler, dlq=publisher, client_id="optical")
        task = asyncio.create_task(loop.run())
        try:
            def stable(study, modality, ae):
                return Event(payload=ev.StudyStable(
                    study_instance_uid=study.study_uid, modalities=[modality],
                    calling_aes=[ae], number_of_instances=len(study.files)),
                    source="dicomvault/catalogue", subject=study.study_uid)

            first = stable(ct, "CT", "CT_SCANNER")
            for e in (first, first, stable(mr, "MR", "MR_SCANNER")):  # one redelivery
                await publisher.publish(bus_settings.topics.studies, e, key=e.subject)
            await wait_for(lambda: len(applied) == 3, "three StudyStable events")

            # Only the CT study matches the rule; it waits durably in the pending list.
            assert list(arc.store.load_pending()) == [ct.study_uid]
            assert await write_pending(arc) == [ct.study_uid]
            assert arc.store.get("DVD-000001").study(ct.study_uid) is not None
            assert [a.study_instance_uid for a in emitted.of("StudyArchived")] == [ct.study_uid]

            # A new StudyStable for a study already on a volume is not queued again.
            await publisher.publish(bus_settings.topics.studies,
                                    stable(ct, "CT", "CT_SCANNER"), key=ct.study_uid)
            await wait_for(lambda: len(applied) == 4, "the fourth event")
            assert arc.store.load_pending() == {}
        finally:
            loop.stop()
            await task
