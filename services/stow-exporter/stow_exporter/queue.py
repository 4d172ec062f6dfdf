"""One exporter's queue on the shared jobs engine (``dicomvault.jobs.JobQueue``).

Every export is an ``EXPORT`` job in the queue named by the exporter's ``queueName``; the
engine publishes every transition on the jobs topic (the catalogue's queues/jobs API and the
operator's Exporter status read them), applies administrators' job commands, retries by the
exporter's retry spec and keeps a job ``WAITING`` outside the schedule windows. This module
adds what the exporter shows on its own API: per-instance results of each export, the
exporter's state names (delayed, waiting_schedule, queued, …) and the depth gauges. Time
(delays, schedule windows, retry backoff) comes from an injectable clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dicomvault.bus import Publisher
from dicomvault.jobs import TERMINAL, Job, JobQueue, JobState, Outcome, ProgressReporter
from dicomvault.settings import TopicNames
from stow_exporter import metrics
from stow_exporter.schedule import Clock, in_window, next_window, parse_schedule
from stow_exporter.spec import Exporter

log = logging.getLogger(__name__)

OWNER = "stow-exporter"
KIND = "EXPORT"
PENDING = ("delayed", "waiting_schedule", "queued", "in_progress", "retrying", "suspended")
FINISHED = ("exported", "failed", "cancelled")


@dataclass
class Export:
    id: str                      # the job id
    exporter_id: str
    study_instance_uid: str
    trigger: str                 # "rule" (StudyStable) or "manual"
    created: datetime
    immediate: bool = False      # manual request that ignores the schedule
    job: Job | None = None
    state: str = "queued"        # set by the queue from the job's state (see ``refresh``)
    reason: str = ""
    number_of_instances: int = 0
    size_bytes: int = 0
    stored: dict[str, str] = field(default_factory=dict)    # sop uid -> transfer syntax sent
    warnings: dict[str, str] = field(default_factory=dict)
    # Refused permanently by the remote (or not transcodable): sop uid -> reason. Sent again
    # only by a retry command with ``include_refused``.
    failed: dict[str, str] = field(default_factory=dict)
    # Not confirmed by the remote yet (it was down, timed out, asked to retry): sop uid ->
    # last reason. Every attempt, and every retry of a FAILED export, sends these again.
    unsent: dict[str, str] = field(default_factory=dict)
    sop_classes: dict[str, str] = field(default_factory=dict)  # sop uid -> SOP class sent
    commitment: str = ""         # "requested from <AE> (job <id>)" after a committed export
    finished: datetime | None = None
    next_window: datetime | None = None

    @property
    def attempts(self) -> int:
        return self.job.attempt if self.job else 0

    @property
    def not_before(self) -> datetime:
        nb = self.job.not_before if self.job else None
        return nb or self.created

    def view(self) -> dict:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "id": self.id, "exporter_id": self.exporter_id,
            "study_instance_uid": self.study_instance_uid, "trigger": self.trigger,
            "state": self.state, "reason": self.reason, "attempts": self.attempts,
            "job_state": self.job.state.value if self.job else None,
            "created": iso(self.created), "not_before": iso(self.not_before),
            "next_window": iso(self.next_window), "finished": iso(self.finished),
            "number_of_instances": self.number_of_instances,
            "stored": len(self.stored), "size_bytes": self.size_bytes,
            "warnings": [{"sop_instance_uid": k, "reason": v} for k, v in self.warnings.items()],
            "failed": [{"sop_instance_uid": k, "reason": v} for k, v in self.failed.items()],
            "unsent": [{"sop_instance_uid": k, "reason": v} for k, v in self.unsent.items()],
            "commitment": self.commitment,
        }


LISTED = 20  # instances named in a job's message; the exporter's API lists them all


def instance_summary(export: Export) -> str:
    """What was not delivered and why, for the job's message in the jobs API."""
    parts = []
    if export.failed:
        named = "; ".join(f"{u}: {r}" for u, r in list(export.failed.items())[:LISTED])
        more = f"; and {len(export.failed) - LISTED} more" if len(export.failed) > LISTED else ""
        parts.append(f"{len(export.failed)} instance(s) refused (sent again only by a retry "
                     f"with include_refused): {named}{more}")
    if export.unsent:
        why = "; ".join(sorted(set(export.unsent.values()))[:3])
        parts.append(f"{len(export.unsent)} instance(s) not confirmed by the remote (a retry "
                     f"sends them again): {why}")
    return " | ".join(parts)


# One attempt of one export: returns the engine's outcome (done, retry, failed, waiting).
Runner = Callable[[Export, ProgressReporter], Awaitable[Outcome]]


class ExportQueue:
    def __init__(self, exporter: Exporter, run_export: Runner, *, publisher: Publisher,
                 topics: TopicNames, clock: Clock, tick_s: float = 1.0, history: int = 500,
                 schedule_recheck_s: float = 60.0) -> None:
        self.exporter = exporter
        self.id = exporter.exporter_id
        self.schedules = [parse_schedule(s) for s in exporter.schedules]
        self._run_export = run_export
        self._clock = clock
        self._tick_s = tick_s
        self._history = history
        self._exports: OrderedDict[str, Export] = OrderedDict()  # by job id, oldest first
        self.idle = asyncio.Event()  # set when nothing is pending (tests, readiness)
        self.idle.set()
        self.jobs = JobQueue(
            name=exporter.queue_name, kind=KIND, owner=OWNER, publisher=publisher,
            topics=topics, execute=self._execute, retry=exporter.retry.to_retry_policy(),
            readiness=self._readiness, readiness_interval_s=tick_s,
            waiting_recheck_s=schedule_recheck_s, clock=clock, observer=self._observe)

    @property
    def name(self) -> str:
        return self.jobs.name

    # -- intake ---------------------------------------------------------------------------
    async def submit(self, study_uid: str, *, request_id: str | None = None,
                     delay_s: float = 0.0, trigger: str = "rule",
                     immediate: bool = False) -> Export:
        """Queue a study (idempotent on ``request_id``; one pending export per study)."""
        for e in self._exports.values():
            if (e.study_instance_uid == study_uid and e.job is not None
                    and e.job.state in (JobState.NEW, JobState.RETRY, JobState.WAITING)):
                if immediate and not e.immediate:
                    e.immediate = True
                    if e.job.state == JobState.WAITING:  # do not wait for the window
                        e.job.not_before = None
                        self.jobs.wake()
                return e  # it will read the study's instances as they are when it runs
        now = self._clock()
        # Several exporters may share a queue name: the exporter id keeps their jobs apart.
        dedupe = f"{self.id}/{request_id}" if request_id else f"{self.id}/{trigger}/{now.isoformat()}"
        job = await self.jobs.submit(
            study_uid, target=self.id, dedupe_key=dedupe,
            params={"exporter_id": self.id, "trigger": trigger,
                    "immediate": "true" if immediate else "false"},
            not_before=now + timedelta(seconds=delay_s) if delay_s else None,
            created_by=f"{trigger}:{self.id}")
        export = self._exports.get(job.id)
        if export is None:
            export = self._track(job, trigger, immediate, now)
            log.info("export queued", extra={"exporter": self.id, "study": study_uid,
                                             "state": export.state, "trigger": trigger})
        return export

    def _track(self, job: Job, trigger: str, immediate: bool, now: datetime) -> Export:
        export = Export(id=job.id, exporter_id=self.id, study_instance_uid=job.study_uid,
                        trigger=trigger, created=now, immediate=immediate, job=job)
        self._exports[job.id] = export
        self._refresh()
        return export

    def adopted(self) -> int:
        """Track the jobs the engine adopted from the catalogue; drop other exporters' jobs
        of a shared queue. Returns how many are ours."""
        mine = 0
        for job in list(self.jobs.jobs.values()):
            if job.id in self._exports:
                continue
            if job.target != self.id:
                del self.jobs.jobs[job.id]
                continue
            self._track(job, job.params.get("trigger", "rule"),
                        job.params.get("immediate") == "true", self._clock())
            mine += 1
        return mine

    # -- views ----------------------------------------------------------------------------
    def exports(self) -> list[Export]:
        pending = [e for e in self._exports.values() if e.state not in FINISHED]
        done = [e for e in reversed(self._exports.values()) if e.state in FINISHED]
        return [*pending, *done]

    def get(self, export_id: str) -> Export | None:
        return self._exports.get(export_id)

    def depth(self) -> int:
        return self.jobs.depth()

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys((*PENDING, *FINISHED), 0)
        for e in self._exports.values():
            out[e.state] += 1
        return out

    def wake(self) -> None:
        self.jobs.wake()

    async def run(self, stop: asyncio.Event) -> None:
        await self.jobs.run(stop)

    async def apply_command(self, cmd) -> bool:
        ours = await self.jobs.apply_command(cmd)
        self.adopted()  # a retried job the engine fetched from the catalogue
        self._refresh()
        return ours

    # -- the engine's callbacks -----------------------------------------------------------
    async def _readiness(self) -> str | None:
        return "exporter suspended" if self.exporter.suspended else None

    async def _execute(self, job: Job, progress: ProgressReporter) -> Outcome:
        export = self._exports.get(job.id)
        if export is None:  # adopted after the views were built
            self.adopted()
            export = self._exports[job.id]
        now = self._clock()
        if not export.immediate and not in_window(self.schedules, now):
            export.next_window = next_window(self.schedules, now)
            return Outcome.waiting(f"outside schedule {' | '.join(self.exporter.schedules)}",
                                   waiting_for="schedule", until=export.next_window)
        export.next_window = None
        self._refresh()
        try:
            return await self._run_export(export, progress)
        except Exception as exc:  # noqa: BLE001 - a bug fails the export, not the queue
            log.exception("export crashed", extra={"exporter": self.id,
                                                   "study": export.study_instance_uid})
            return Outcome.failed_permanently(f"internal error: {exc!r}")

    def _observe(self, what: str, _job: Job | None) -> None:
        if not what.startswith("duration:"):
            self._refresh()

    # -- state names, history, gauges -----------------------------------------------------
    def _refresh(self) -> None:
        now = self._clock()
        for e in self._exports.values():
            job = e.job
            if job is None:
                continue
            s = job.state
            if s == JobState.DONE:
                e.state = "exported"
            elif s == JobState.FAILED:
                e.state = "failed"
                e.reason = job.error or e.reason
            elif s == JobState.CANCELLED:
                e.state, e.reason = "cancelled", e.reason or "cancelled"
            elif s == JobState.SUSPENDED or self.exporter.suspended:
                e.state, e.reason = "suspended", "exporter suspended" \
                    if self.exporter.suspended else "suspended by an administrator"
            elif s == JobState.IN_PROGRESS:
                e.state = "in_progress"
            elif s == JobState.RETRY:
                e.state, e.reason = "retrying", f"attempt {job.attempt}: {job.error}"
            elif s == JobState.WAITING or (
                    not e.immediate and (job.not_before is None or job.not_before <= now)
                    and not in_window(self.schedules, now)):
                e.state = "waiting_schedule"
                e.reason = job.waiting_reason or \
                    f"outside schedule {' | '.join(self.exporter.schedules)}"
                e.next_window = e.next_window or next_window(self.schedules, now)
            elif job.not_before is not None and job.not_before > now:
                e.state = "delayed"
            else:
                e.state = "queued"
            if s in TERMINAL and e.finished is None:
                e.finished = now
        finished = [k for k, e in self._exports.items() if e.state in FINISHED]
        for k in finished[: max(0, len(finished) - self._history)]:
            del self._exports[k]
            self.jobs.jobs.pop(k, None)  # the catalogue keeps the record
        counts = dict.fromkeys(PENDING, 0)
        for e in self._exports.values():
            if e.state in counts:
                counts[e.state] += 1
        for state, n in counts.items():
            metrics.QUEUE_DEPTH.labels(self.id, state).set(n)
        if any(e.state not in FINISHED for e in self._exports.values()):
            self.idle.clear()
        else:
            self.idle.set()
