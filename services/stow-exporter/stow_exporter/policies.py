"""Policies: StudyStable -> matching exporters' queues; an export -> delivery -> facts.

``Policies.studies(event)`` is the consumer's handler: it applies each exporter's rules to
the StudyStable event and queues the study (after the rule's delay, inside the schedule).
``Hosted.run_export`` does one attempt of one export: instance list from the catalogue,
files from the cache tier, transcoding to what the destination takes, delivery, then
StudyExported / ExportFailed on the studies topic, or a retry by the spec's policy.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from dicomvault.bus import Publisher, PublishError
from dicomvault.events import Event, deterministic_id
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import Outcome as JobOutcome
from dicomvault.jobs import ProgressReporter
from dicomvault.query import CatalogueError
from dicomvault.retry import retry_forever
from dicomvault.settings import TopicNames
from dicomvault.store import FileStore, StoreError
from dicomvault.transcode import TranscodeError
from stow_exporter import metrics
from stow_exporter.catalogue import CatalogueClient, StudyUnknown, tier_locations
from stow_exporter.commit import commitment_request
from stow_exporter.delivery import Item, Outcome
from stow_exporter.events import ExportFailed, StudyExported
from stow_exporter.queue import Export, ExportQueue, instance_summary
from stow_exporter.schedule import Clock, local_now
from stow_exporter.spec import Exporter, delay_for
from stow_exporter.transcode import for_destination

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
    # Where CommitmentRequested goes (always the bus, even without ``publish_events``).
    requests: Publisher | None = None

    @property
    def id(self) -> str:
        return self.exporter.exporter_id

    @property
    def accepted_syntaxes(self) -> list[str]:
        wa = self.exporter.web_application
        return wa.properties.transfer_syntax if wa and self.exporter.scheme == "stowrs" else []

    # -- one attempt ----------------------------------------------------------------------
    async def run_export(self, export: Export,
                         progress: ProgressReporter | None = None) -> JobOutcome:
        """One attempt (the engine counts it); the outcome tells the engine what next.

        Every attempt sends each instance the remote has not confirmed yet (``unsent`` and
        the ones never tried); instances it refused permanently (``failed``) are sent again
        only after a retry command with ``include_refused``."""
        study = export.study_instance_uid
        if export.job is not None and export.job.include_refused:
            export.job.include_refused = False
            export.unsent.update(export.failed)
            export.failed.clear()
        try:
            locations = await tier_locations(self.catalogue, study)
        except StudyUnknown as exc:
            return await self._fail(export, str(exc), "unknown_study", progress)
        except CatalogueError as exc:  # unreachable, 5xx, 4xx, not yet in the cache tier
            return await self._retry_or_fail(export, str(exc), ["catalogue"], progress)
        export.number_of_instances = len(locations)
        todo = [loc for loc in locations
                if loc.sop_instance_uid not in export.stored
                and loc.sop_instance_uid not in export.failed]
        items: list[Item] = []
        for loc in todo:
            try:
                data = await asyncio.to_thread(self.cache.get, loc.storage_key)
            except StoreError as exc:
                return await self._retry_or_fail(export, f"cache: {exc}", ["cache"], progress)
            try:
                data, ts = await asyncio.to_thread(for_destination, data,
                                                   self.accepted_syntaxes)
            except TranscodeError as exc:
                export.failed[loc.sop_instance_uid] = f"transcoding: {exc}"
                export.unsent.pop(loc.sop_instance_uid, None)
                metrics.FAILURES.labels(self.id, "transcode").inc()
                continue
            export.sop_classes[loc.sop_instance_uid] = loc.sop_class_uid
            items.append(Item(loc.sop_instance_uid, loc.sop_class_uid, data, ts))

        outcome = await self.sender.send(items) if items else Outcome()
        by_uid = {i.sop_instance_uid: i for i in items}
        for uid in outcome.stored:
            if uid in by_uid:
                export.stored[uid] = by_uid[uid].transfer_syntax_uid
                export.size_bytes += len(by_uid[uid].data)
                export.unsent.pop(uid, None)
        export.warnings.update(outcome.warnings)
        for uid, why in outcome.failed.items():
            export.failed[uid] = why
            export.unsent.pop(uid, None)
        export.unsent.update(outcome.retryable)
        for label in outcome.reasons:
            metrics.FAILURES.labels(self.id, label).inc()
        metrics.INSTANCES.labels(self.id, "stored").inc(len(outcome.stored))
        metrics.INSTANCES.labels(self.id, "warning").inc(len(outcome.warnings))
        if outcome.retryable:
            reason = "; ".join(sorted(set(outcome.retryable.values())))
            return await self._retry_or_fail(export, reason, [], progress)
        metrics.INSTANCES.labels(self.id, "failed").inc(len(outcome.failed))
        if export.stored or not export.failed:
            return await self._exported(export)
        first = next(iter(export.failed.values()))
        return await self._fail(export, f"every instance refused: {first}", None, progress)

    async def _retry_or_fail(self, export: Export, reason: str, labels: list[str],
                             progress: ProgressReporter | None) -> JobOutcome:
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
                                    failed=len(export.failed) + len(export.unsent))
        # Given up: what was not confirmed stays ``unsent``, so a retry sends it again.
        metrics.INSTANCES.labels(self.id, "failed").inc(len(export.unsent))
        return await self._fail(export, f"gave up after {export.attempts} attempt(s): {reason}",
                                None, progress)

    # -- verdicts -------------------------------------------------------------------------
    async def _exported(self, export: Export) -> JobOutcome:
        export.reason = instance_summary(export) if export.failed else ""
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
        result = {"destination": self.sender.destination, "size_bytes": str(export.size_bytes),
                  "refused": str(len(export.failed))}
        request = commitment_request(self.exporter, export, SOURCE)
        if request is not None and self.requests is not None:
            await self._send(request.event, export.study_instance_uid)
            export.commitment = f"requested from {request.remote_ae} (job {request.job_id})"
            log.info("storage commitment requested", extra={
                "exporter": self.id, "study": export.study_instance_uid,
                "remote_ae": request.remote_ae, "instances": request.instances})
            result.update({"commitment_remote_ae": request.remote_ae,
                           "commitment_job_id": request.job_id,
                           "commitment_instances": str(request.instances)})
        return JobOutcome.done(export.reason, completed=len(export.stored),
                               failed=len(export.failed), result=result)

    async def _fail(self, export: Export, reason: str, label: str | None,
                    progress: ProgressReporter | None = None) -> JobOutcome:
        if label:
            metrics.FAILURES.labels(self.id, label).inc()
        export.reason = reason
        metrics.STUDIES.labels(self.id, "failed").inc()
        not_sent = {**export.failed, **export.unsent}
        if progress is not None and not_sent:  # the jobs API shows which and why
            await progress(len(export.stored), len(export.failed), len(export.unsent),
                           instance_summary(export), force=True)
        msg = ExportFailed(
            study_instance_uid=export.study_instance_uid, exporter_id=self.id,
            uri=self.exporter.uri, reason=reason, attempts=export.attempts,
            number_of_instances=export.number_of_instances,
            failed_sop_instance_uids=list(not_sent),
            failure_reasons=list(not_sent.values()), failed_time=_ts(datetime.now(UTC)),
            destination=self.sender.destination, request_id=export.id)
        log.error("export failed", extra={"exporter": self.id,
                                          "study": export.study_instance_uid, "reason": reason})
        await self._publish(msg, export, "failed")
        return JobOutcome.failed_permanently(reason, completed=len(export.stored),
                                             failed=len(not_sent))

    async def _publish(self, msg, export: Export, verdict: str) -> None:
        if self.publisher is None:
            return
        # The same verdict about the same instances is the same fact (a crash replays it);
        # a retry that ends differently (more delivered, fewer refused) is a new one.
        outcome = "\n".join(sorted(export.stored) + ["!"] + sorted(export.failed)
                            + ["?"] + sorted(export.unsent))
        digest = hashlib.sha256(outcome.encode()).hexdigest()[:16]
        event = Event(payload=msg, source=SOURCE, subject=export.study_instance_uid,
                      id=deterministic_id("export", self.id, export.id, verdict, digest))
        await self._send(event, export.study_instance_uid, self.publisher)

    async def _send(self, event: Event, study_uid: str, publisher: Publisher | None = None) -> None:
        publisher = publisher or self.requests
        assert publisher is not None
        # A fact must not be lost to a broker hiccup; the id dedupes repeats.
        await retry_forever(
            lambda: publisher.publish(self.topics.studies, event, key=study_uid),
            retry_on=PublishError, first_s=0.5, max_s=30.0,
            on_retry=lambda exc: log.warning("cannot publish export verdict, retrying",
                                             extra={"exporter": self.id, "error": str(exc)}))


class Policy:
    """The consumer handler of one exporter: StudyStable -> its queue."""

    def __init__(self, hosted: Hosted) -> None:
        self.hosted = hosted

    async def __call__(self, event: Event) -> None:
        payload = event.payload
        if not isinstance(payload, ev.StudyStable):
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
        if not isinstance(event.payload, jb.JobCommandIssued):
            return
        for h in self.hosted:
            if h.queue is not None and await h.queue.apply_command(event.payload):
                metrics.CONSUMED.labels(event.type, "applied").inc()
