"""StudyStable emitter: announce studies that received nothing for the quiet period.

A study is pending when ``stable_revision < revision``. Once its last instance was both
received (the gateway's clock) and journalled (the catalogue's, so that a backlog consumed
late is not announced half-way) more than ``stable_after_s`` ago, the emitter publishes StudyStable with the id
``deterministic_id(study_uid, str(revision))``: however often it is emitted (a restart, two
replicas), it is the same fact. The catalogue's own consumer then records the revision as
stable, which ends the study's pending state. Until then it is not published again, unless
``stable_republish_after_s`` passed (the broker may have lost it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue import metrics
from catalogue.models import Instance, Journal, Series, Study
from catalogue.settings import CatalogueSettings
from dicomvault.bus import Publisher, PublishError
from dicomvault.events import Event, deterministic_id
from dicomvault.events.v1 import events_pb2 as ev

log = logging.getLogger(__name__)

SOURCE = "dicomvault/catalogue"


async def build_stable(session: AsyncSession, study: Study) -> ev.StudyStable:
    """The StudyStable fact for a study at its current revision, every field filled."""
    uid = study.study_instance_uid
    n_series = await session.scalar(
        select(func.count()).select_from(Series).where(Series.study_instance_uid == uid))
    n_inst, size = (await session.execute(
        select(func.count(), func.coalesce(func.sum(Instance.size_bytes), 0)).where(
            Instance.study_instance_uid == uid))).one()
    modalities = (await session.scalars(select(Series.modality).where(
        Series.study_instance_uid == uid, Series.modality != "").distinct())).all()
    stations = (await session.scalars(select(Series.station_name).where(
        Series.study_instance_uid == uid, Series.station_name != "").distinct())).all()
    aes = (await session.scalars(select(Instance.calling_ae).where(
        Instance.study_instance_uid == uid, Instance.calling_ae != "").distinct())).all()
    msg = ev.StudyStable(
        study_instance_uid=uid, patient_id=study.patient_id, number_of_series=int(n_series or 0),
        number_of_instances=int(n_inst), size_bytes=int(size), modalities=sorted(modalities),
        calling_aes=sorted(aes), station_names=sorted(stations), revision=study.revision)
    msg.last_received_time.FromDatetime(study.last_received)
    return msg


class StableEmitter:
    def __init__(self, settings: CatalogueSettings, sessions: async_sessionmaker,
                 publisher: Publisher) -> None:
        self._s = settings.catalogue
        self._topic = settings.bus.topics.studies
        self._sessions = sessions
        self._publisher = publisher
        self._sent: dict[str, tuple[int, float]] = {}  # study -> (revision, monotonic time)

    async def tick(self, now: datetime | None = None) -> int:
        """Publish StudyStable for every quiet pending study; how many were published."""
        now = now or datetime.now(UTC)
        cutoff = now - timedelta(seconds=self._s.stable_after_s)
        published = 0
        async with self._sessions() as session:
            pending = (await session.scalars(
                select(Study).join(Journal, Journal.seq == Study.revision)
                .where(Study.stable_revision < Study.revision, Study.last_received <= cutoff,
                       Journal.recorded_at <= cutoff)
                .order_by(Study.last_received, Study.study_instance_uid)
                .limit(self._s.stable_batch))).all()
            if len(pending) < self._s.stable_batch:  # forget studies no longer pending
                still = {s.study_instance_uid for s in pending}
                self._sent = {k: v for k, v in self._sent.items() if k in still}
            for study in pending:
                uid, revision = study.study_instance_uid, study.revision
                sent = self._sent.get(uid)
                if (sent is not None and sent[0] == revision
                        and time.monotonic() - sent[1] < self._s.stable_republish_after_s):
                    continue
                payload = await build_stable(session, study)
                event = Event(payload=payload, source=SOURCE, subject=uid,
                              id=deterministic_id(uid, str(revision)), time=now)
                await self._publisher.publish(self._topic, event, key=uid)
                self._sent[uid] = (revision, time.monotonic())
                metrics.STABLE_EMITTED.inc()
                published += 1
                log.info("study stable", extra={"study": uid, "revision": revision})
        return published

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except (SQLAlchemyError, PublishError, OSError) as exc:
                log.warning("StudyStable check failed, will retry", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._s.stable_check_interval_s)
