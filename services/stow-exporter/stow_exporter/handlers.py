"""Policies: StudyStable -> matching exporters' queues; an export -> delivery -> facts.

``Policies.studies(event)`` is the consumer's handler: it applies each exporter's rules to
the StudyStable event and queues the study (after the rule's delay, inside the schedule).
``Hosted.run_export`` does one attempt of one export: instance list from the catalogue,
files from the cache tier, transcoding to what the destination takes, delivery, then
StudyExported / ExportFailed on the studies topic, or a retry by the spec's policy.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from dicomvault.bus import Publisher, PublishError
from dicomvault.events import Event, deterministic_id
from dicomvault.events.v1 import events_pb2 as v1
from dicomvault.events.v1 import jobs_pb2
from dicomvault.jobs import Outcome as JobOutcome
from dicomvault.query import CatalogueError
from dicomvault.settings import TopicNames
from dicomvault.store import FileStore, StoreError
from stow_exporter import metrics
from stow_exporter.catalogue import CatalogueClient, StudyUnknown, tier_locations
from stow_exporter.delivery import Item, Outcome
from stow_exporter.events import ExportFailed, StudyExported
from stow_exporter.queue import Export, ExportQueue
from stow_exporter.schedule import Clock, local_now
from stow_exporter.spec import Exporter, delay_for
from stow_exporter.transcode import TranscodeError, for_destination

log = logging.getLogger(__name__)

SOURCE = "dicomvault/stow-exporter"


class Sender(Protocol):
    destination: str

    async def send(self, items: list[Item]) -> Outcome: ...

    async def close(self) -> None: ...


def _ts(dt: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt.astimezone(UTC))
    return t


@dataclass
class Hosted:
    """One exporter running in this process: spec, queue, sender and what they share."""

    exporter: Exporter
    sender: Sender
    catalogue: CatalogueClient
    cache: FileStore
    publisher: Publisher | None
    topics: TopicNames
    clock: Clock = local_now
    queue: ExportQueue | None = None

    @property
    def id(self) -> str:
        return self.exporter.exporter_id

    @property
    def accepted_syntaxes(self) -> list[str]:
        wa = self.exporter.web_application
        return wa.properties.transfer_syntax if wa and self.exporter.scheme == "stowrs" else []

    # -- one attempt ----------------------------------------------------------------------
    async def run_export(self, export: Export) -> JobOutcome:
        """One attempt (the engine counts it); the outcome tells the engine what next."""
        study = export.study_instance_uid
        try:
            locations = await tier_locations(self.catalogue, study)
        except StudyUnknown as exc:
            return await self._fail(export, str(exc), "unknown_study")
        except CatalogueError as exc:  # unreachable, 5xx, 4xx, not yet in the cache tier
            return await self._retry_or_fail(export, str(exc), ["catalogue"])
        export.number_of_instances = len(locations)
        todo = [loc for loc in locations
                if loc.sop_instance_uid not in export.stored
                and loc.sop_instance_uid not in export.failed]
        items: list[Item] = []
        for loc in todo:
            try:
                data = await asyncio.to_thread(self.cache.get, loc.storage_key)
            except StoreError as exc:
                return await self._retry_or_fail(export, f"cache: {exc}", ["cache"])
            try:
                data, ts = await asyncio.to_thread(for_destination, data,
                                                   self.accepted_syntaxes)
            except TranscodeError as exc:
                export.failed[loc.sop_instance_uid] = f"transcoding: {exc}"
                metrics.FAILURES.labels(self.id, "transcode").inc()
                continue
            items.append(Item(loc.sop_instance_uid, loc.sop_class_uid, data, ts))

        outcome = await self.sender.send(items) if items else Outcome()
        by_uid = {i.sop_instance_uid: i for i in items}
        for uid in outcome.stored:
            if uid in by_uid:
                export.stored[uid] = by_uid[uid].transfer_syntax_uid
                export.size_bytes += len(by_uid[uid].data)
        export.warnings.update(outcome.warnings)
        export.failed.update(outcome.failed)
        for label in outcome.reasons:
            metrics.FAILURES.labels(self.id, label).inc()
        metrics.INSTANCES.labels(self.id, "stored").inc(len(outcome.stored))
        metrics.INSTANCES.labels(self.id, "warning").inc(len(outcome.warnings))
        if outcome.retryable:
            reason = "; ".join(sorted(set(outcome.retryable.values())))
            return await self._retry_or_fail(export, reason, [], retryable=outcome.retryable)
        metrics.INSTANCES.labels(self.id, "failed").inc(len(export.failed))
        if export.stored or not export.failed:
            return await self._exported(export)
        first = next(iter(export.failed.values()))
        return await self._fail(export, f"every instance refused: {first}", None)

    async def _retry_or_fail(self, export: Export, reason: str, labels: list[str],
                             retryable: dict[str, str] | None = None) -> JobOutcome:
        for label in labels:
            metrics.FAILURES.labels(self.id, label).inc()
        assert export.job is not None
        if export.attempts <= export.job.max_retries:  # the engine backs off by the retry spec
            metrics.RETRIES.labels(self.id).inc()
            log.warning("export will be retried", extra={
                "exporter": self.id, "study": export.study_instance_uid,
                "attempt": export.attempts,
                "delay_s": self.exporter.retry.delay(export.attempts), "reason": reason})
            return JobOutcome.retry(reason, completed=len(export.stored),
                                    failed=len(export.failed))
        for uid, why in (retryable or {}).items():
            export.failed[uid] = why
        metrics.INSTANCES.labels(self.id, "failed").inc(len(export.failed))
        return await self._fail(export, f"gave up after {export.attempts} attempt(s): {reason}",
                                None)

    # -- verdicts -------------------------------------------------------------------------
    async def _exported(self, export: Export) -> JobOutcome:
        export.reason = (f"{len(export.failed)} instance(s) refused" if export.failed else "")
        metrics.STUDIES.labels(self.id, "exported").inc()
        msg = StudyExported(
            study_instance_uid=export.study_instance_uid, exporter_id=self.id,
            uri=self.exporter.uri, number_of_instances=len(export.stored),
            failed_sop_instance_uids=list(export.failed),
            failure_reasons=list(export.failed.values()),
            warning_sop_instance_uids=list(export.warnings), size_bytes=export.size_bytes,
            attempts=export.attempts, exported_time=_ts(datetime.now(UTC)),
            destination=self.sender.destination,
            transfer_syntax_uids=sorted(set(export.stored.values())), request_id=export.id)
        log.info("study exported", extra={"exporter": self.id, "study": export.study_instance_uid,
                                          "instances": len(export.stored),
                                          "failed": len(export.failed)})
        await self._publish(msg, export, "exported")
        return JobOutcome.done(export.reason, completed=len(export.stored),
                               failed=len(export.failed),
                               result={"destination": self.sender.destination,
                                       "size_bytes": str(export.size_bytes)})

    async def _fail(self, export: Export, reason: str, label: str | None) -> JobOutcome:
        if label:
            metrics.FAILURES.labels(self.id, label).inc()
        export.reason = reason
        metrics.STUDIES.labels(self.id, "failed").inc()
        msg = ExportFailed(
            study_instance_uid=export.study_instance_uid, exporter_id=self.id,
            uri=self.exporter.uri, reason=reason, attempts=export.attempts,
            number_of_instances=export.number_of_instances,
            failed_sop_instance_uids=list(export.failed),
            failure_reasons=list(export.failed.values()), failed_time=_ts(datetime.now(UTC)),
            destination=self.sender.destination, request_id=export.id)
        log.error("export failed", extra={"exporter": self.id,
                                          "study": export.study_instance_uid, "reason": reason})
        await self._publish(msg, export, "failed")
        return JobOutcome.failed_permanently(reason, completed=len(export.stored),
                                             failed=len(export.failed))

    async def _publish(self, msg, export: Export, verdict: str) -> None:
        if self.publisher is None:
            return
        event = Event(payload=msg, source=SOURCE, subject=export.study_instance_uid,
                      id=deterministic_id("export", self.id, export.id, verdict))
        delay = 0.5
        while True:  # a fact must not be lost to a broker hiccup; the id dedupes repeats
            try:
                await self.publisher.publish(self.topics.studies, event,
                                             key=export.study_instance_uid)
                return
            except PublishError as exc:
                log.warning("cannot publish export verdict, retrying",
                            extra={"exporter": self.id, "error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


class Policy:
    """The consumer handler of one exporter: StudyStable -> its queue."""

    def __init__(self, hosted: Hosted) -> None:
        self.hosted = hosted

    async def __call__(self, event: Event) -> None:
        payload = event.payload
        if not isinstance(payload, v1.StudyStable):
            return
        exp = self.hosted.exporter
        delay = delay_for(exp, list(payload.calling_aes), list(payload.modalities),
                          list(payload.station_names))
        if delay is None:
            metrics.CONSUMED.labels(event.type, "no_rule_matched").inc()
            return
        assert self.hosted.queue is not None
        await self.hosted.queue.submit(payload.study_instance_uid, request_id=event.id,
                                       delay_s=delay, trigger="rule")
        metrics.CONSUMED.labels(event.type, "queued").inc()


class Commands:
    """The job-commands consumer: administrators' commands addressed to our queues (every
    exporter sharing the queue name applies it to its own jobs)."""

    def __init__(self, hosted: list[Hosted]) -> None:
        self.hosted = hosted

    async def __call__(self, event: Event) -> None:
        if not isinstance(event.payload, jobs_pb2.JobCommandIssued):
            return
        for h in self.hosted:
            if h.queue is not None and await h.queue.apply_command(event.payload):
                metrics.CONSUMED.labels(event.type, "applied").inc()
