"""A WAITING job's next look (JobWaiting ``until``) is projected as its ``not_before``, so the
administrator sees when an export waiting for its window, or a recall waiting for a disc, is
looked at again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from catalogue.rebuild import rebuild
from dicomvault.events.v1 import jobs_pb2 as jb
from tests.catalogue.conftest import Catalogue
from tests.catalogue.helpers import uid
from tests.catalogue.jobs_events import created, fact, started


def waiting(job_id: str, queue: str, reason: str, until: datetime | None) -> object:
    msg = jb.JobWaiting(job_id=job_id, queue=queue, reason=reason, waiting_for="schedule")
    if until is not None:
        msg.until.FromDatetime(until)
    return fact(msg)


async def test_waiting_until_is_the_jobs_next_look(cat: Catalogue) -> None:
    study = uid()
    evening = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=6)
    await cat.feed(created("exp-1", "Export1", study, kind="EXPORT"), started("exp-1", "Export1", 1),
                   waiting("exp-1", "Export1", "outside schedule hour=18-6", evening))
    j = (await cat.client.get("/api/v1/jobs/exp-1")).json()
    assert (j["state"], j["error"]) == ("WAITING", "outside schedule hour=18-6")
    assert datetime.fromisoformat(j["not_before"]) == evening

    # A wait without a time (an older producer) says nothing about the next look.
    await cat.feed(started("exp-1", "Export1", 2), waiting("exp-1", "Export1", "outside", None))
    j = (await cat.client.get("/api/v1/jobs/exp-1")).json()
    assert (j["state"], j["not_before"]) == ("WAITING", None)

    report = await rebuild(cat.settings(), check_only=True)
    assert report.ok, report.differences
