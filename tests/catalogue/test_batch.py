"""The batch policy: one transaction per fetch, exactly once by ce_id, journal order, and the
same rows as a rebuild (which replays the journal through the per-event projection)."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select

from catalogue.metrics import REGISTRY
from catalogue.models import Instance, Journal, Location, Patient, Study, StudyLocation
from catalogue.rebuild import rebuild
from dicomvault.bus import PermanentError
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from tests.catalogue.conftest import Catalogue
from tests.catalogue.helpers import instance_stored, study_archived, study_evicted, uid

STORED = "dicomvault.instance.stored.v1"


async def journal(cat: Catalogue) -> list[tuple[int, str]]:
    async with cat.sessions() as s:
        return [tuple(r) for r in (await s.execute(
            select(Journal.seq, Journal.ce_id).order_by(Journal.seq))).all()]


def consumed(outcome: str) -> float:
    return REGISTRY.get_sample_value("dicomvault_catalogue_events_consumed_total",
                                     {"type": STORED, "outcome": outcome}) or 0


async def test_a_whole_life_in_batches_equals_a_rebuild(cat: Catalogue) -> None:
    # Two studies of one patient, another patient; resends, a replace, other facts between.
    s1, s2, s3, ser1, ser2, sop = uid(), uid(), uid(), uid(), uid(), uid()
    first = [instance_stored(s1, ser1, sop, body=b"v1", instance_number="1"),
             *[instance_stored(s1, ser1, instance_number=str(n)) for n in range(2, 30)],
             instance_stored(s2, ser2, patient_name="Doe^Johnny", study_description=""),
             instance_stored(s3, uid(), patient_id="P2", modality="MR")]
    await cat.feed_batch(*first)
    async with cat.sessions() as s:
        revision = (await s.get(Study, s1)).revision
    # Next fetch: stable, archived twice, the same bytes resent (new id) and a replace of
    # the first instance with new bytes, evicted from the cache, then stored again.
    await cat.feed_batch(
        Event(payload=ev.StudyStable(study_instance_uid=s1, revision=revision),
              source="dicomvault/catalogue", subject=s1),
        study_archived(s1, n=30), study_archived(s1, tier="optical", archive_id="dvd", n=30),
        instance_stored(s1, ser1, first[1].payload.sop_instance_uid,
                        body=first[1].payload.sop_instance_uid.encode()),
        instance_stored(s1, ser1, sop, body=b"v2", study_description="Head and neck"),
        instance_stored(s1, ser1, sop, body=b"v2-from-recall", source="recall"),
        study_evicted(s3, "cache"),
        instance_stored(s3, uid(), patient_id="P2", modality="MR"),
        study_archived(s2, tier="pacs", archive_id="PACS1"),
    )
    # The replace moved the revision, reset the other copies' verification, and the recall
    # only recorded its own bytes in the cache.
    async with cat.sessions() as s:
        study = await s.get(Study, s1)
        assert study.revision > revision and study.stable_revision == revision
        assert study.study_description == "Head and neck"
        inst = await s.get(Instance, sop)
        assert inst.sha256 == hashlib.sha256(b"v2").hexdigest()
        loc = await s.get(Location, (sop, "cache"))
        assert loc.sha256 == hashlib.sha256(b"v2-from-recall").hexdigest()
        assert {r.tier: r.verified for r in (await s.scalars(select(StudyLocation).where(
            StudyLocation.study_instance_uid == s1))).all()} == {"hsm": False, "optical": False}
        # One patient row for both studies: the name of the newest fact (the replace).
        patient = await s.get(Patient, ("PAT-1", ""))
        assert (patient.patient_name, patient.updated_seq) == ("Doe^John", inst.revision)
        assert int(await s.scalar(select(func.count()).select_from(Instance))) == 32
    # The journal replayed through the per-event projection gives exactly these rows.
    report = await rebuild(cat.settings(), check_only=True)
    assert report.ok, report.differences
    assert report.journal_rows == 31 + 9


async def test_each_ce_id_is_journalled_once_even_twice_in_one_batch(cat: Catalogue) -> None:
    study, series = uid(), uid()
    a, b, c = (instance_stored(study, series) for _ in range(3))
    duplicates = consumed("duplicate")
    await cat.feed_batch(a, b, a, a)
    await cat.feed_batch(b, c, a)  # redelivered after a crash before the offset commit
    assert [ce_id for _, ce_id in await journal(cat)] == [a.id, b.id, c.id]
    assert consumed("duplicate") - duplicates == 4
    assert len(await cat.find("IMAGE", filters={"StudyInstanceUID": study})) == 3


async def test_a_studys_facts_are_applied_in_fetch_order(cat: Catalogue) -> None:
    # Two partitions' records interleaved in one fetch: each study's stay in order.
    s1, s2 = uid(), uid()
    one = [instance_stored(s1, f"{s1}.1", instance_number=str(n)) for n in range(50)]
    two = [instance_stored(s2, f"{s2}.1", instance_number=str(n)) for n in range(50)]
    await cat.feed_batch(*one, *two)
    order = [ce_id for _, ce_id in await journal(cat)]
    assert order == [e.id for e in one + two]
    async with cat.sessions() as s:
        last = await s.get(Instance, one[-1].payload.sop_instance_uid)
        assert (await s.get(Study, s1)).revision == last.revision


async def test_a_bad_fact_fails_the_whole_batch_and_leaves_no_trace(cat: Catalogue) -> None:
    study, series = uid(), uid()
    good = instance_stored(study, series)
    bad = instance_stored(study, series, sop="../../x")
    with pytest.raises(PermanentError):
        await cat.feed_batch(good, bad)
    assert await journal(cat) == []
    # The consumer loop then goes record by record: the good one is applied alone.
    await cat.feed(good)
    assert [ce_id for _, ce_id in await journal(cat)] == [good.id]
