"""JobQueue: schedules, runs and records the jobs of one queue.

Every transition is published before the queue moves on (facts on the jobs topic, keyed
by job id; queue facts keyed by queue name). Publishing is retried until it succeeds, so a
broker outage delays a transition but never loses it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from dicomvault.bus import Publisher, PublishError
from dicomvault.events import Event, deterministic_id
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs.model import (
    COMMAND_APPLIES,
    TERMINAL,
    Job,
    JobState,
    Outcome,
    QueueState,
    RetryPolicy,
)
from dicomvault.retry import retry_forever
from dicomvault.settings import TopicNames

log = logging.getLogger(__name__)

Cmd = jb.JobCommandIssued
# The job commands by their protobuf value, named as in ``COMMAND_APPLIES``.
JOB_COMMAND_NAMES = {Cmd.RETRY_JOB: "retry", Cmd.CANCEL_JOB: "cancel", Cmd.SUSPEND_JOB: "suspend",
                     Cmd.RESUME_JOB: "resume", Cmd.RESCHEDULE_JOB: "reschedule"}
UNMATCHED_COMMANDS = 10_000   # commands kept for jobs not adopted yet


def _ts(dt: datetime | None) -> Timestamp | None:
    if dt is None:
        return None
    t = Timestamp()
    t.FromDatetime(dt.astimezone(UTC))
    return t


class ProgressReporter:
    """Given to executors: ``await report(completed, failed, remaining, message)``."""

    def __init__(self, queue: JobQueue, job: Job, min_interval_s: float = 1.0) -> None:
        self._queue, self._job = queue, job
        self._min, self._last = min_interval_s, 0.0

    async def __call__(self, completed: int, failed: int, remaining: int, message: str = "",
                       force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._min and remaining:
            return
        self._last = now
        await self._queue._emit(jb.JobProgressed(  # noqa: SLF001 - the reporter is the queue's
            job_id=self._job.id, queue=self._queue.name, completed=completed, failed=failed,
            remaining=remaining, message=message), self._job)


Executor = Callable[[Job, ProgressReporter], Awaitable[Outcome]]
Readiness = Callable[[], Awaitable[str | None]]
Observer = Callable[[str, Job | None], None]
# Finds a job this queue does not hold (finished and forgotten, or not adopted after a
# restart) in the catalogue's projection; None when unknown or not this queue's.
Lookup = Callable[[str], Awaitable[Job | None]]


class JobQueue:
    def __init__(
        self,
        *,
        name: str,
        kind: str,
        owner: str,
        publisher: Publisher,
        topics: TopicNames,
        execute: Executor,
        retry: RetryPolicy | None = None,
        readiness: Readiness | None = None,
        concurrency: int = 1,
        readiness_interval_s: float = 5.0,
        waiting_recheck_s: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observer: Observer | None = None,
        lookup: Lookup | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.owner = owner
        self.retry = retry or RetryPolicy()
        self.jobs: dict[str, Job] = {}
        self.state = QueueState.RUNNING
        self.reason = ""
        self._halted_reason = ""
        self._pub = publisher
        self._topics = topics
        self._execute = execute
        self._readiness = readiness
        self._concurrency = max(1, concurrency)
        self._readiness_interval = readiness_interval_s
        self._waiting_recheck = waiting_recheck_s
        self._clock = clock
        self._observer = observer or (lambda _what, _job: None)
        self.lookup = lookup
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._announced = False
        # How many times the scheduler has looked at its jobs (counted as each look ends):
        # what proves that time passed when nothing is to start, e.g. in a paused queue.
        self.looks = 0
        # Commands for jobs this queue does not hold (yet): a job adopted late (the catalogue
        # was unreachable at start-up and the consumers started without it) gets its
        # commands when it arrives, before it runs. Bounded: the oldest are forgotten.
        self._unmatched: OrderedDict[str, list[jb.JobCommandIssued]] = OrderedDict()
        self._matched: list[jb.JobCommandIssued] = []

    # --- what services call -------------------------------------------------------------
    async def submit(
        self,
        study_uid: str,
        *,
        target: str,
        dedupe_key: str,
        params: dict[str, str] | None = None,
        sop_uids: list[str] | None = None,
        not_before: datetime | None = None,
        created_by: str = "",
    ) -> Job:
        """Create a job (idempotent on ``dedupe_key``, e.g. the triggering event's id)."""
        job_id = deterministic_id("job", self.name, dedupe_key)
        if job_id in self.jobs:
            return self.jobs[job_id]
        job = Job(id=job_id, queue=self.name, kind=self.kind, study_uid=study_uid,
                  target=target, params=dict(params or {}), sop_uids=list(sop_uids or []),
                  max_retries=self.retry.max_retries, not_before=not_before,
                  created_by=created_by)
        await self._emit(jb.JobCreated(
            job_id=job.id, queue=self.name, kind=jb.JobKind.Value(self.kind),
            study_instance_uid=study_uid, target=target, params=job.params,
            not_before=_ts(not_before), max_retries=job.max_retries, created_by=created_by,
            sop_instance_uids=job.sop_uids), job)
        self.jobs[job.id] = job
        self._observer("created", job)
        self._match(job.id)
        self._wake.set()
        return job

    def adopt(self, job: Job) -> int:
        """Take over an unfinished job known to the catalogue (after a restart)."""
        if job.id in self.jobs or job.state in TERMINAL:
            return 0
        if job.state == JobState.IN_PROGRESS:  # it was running when the service stopped
            job.state = JobState.RETRY
            job.not_before = None
        elif job.state == JobState.WAITING:  # what it waits for may have changed meanwhile
            job.not_before = None
        self.jobs[job.id] = job
        self._match(job.id)
        self._wake.set()
        return 1

    def _match(self, job_id: str) -> None:
        """Commands that came for this job before it was here are applied next (``_tick``)."""
        if (cmds := self._unmatched.pop(job_id, None)) is not None:
            log.info("commands that came before the job applied now",
                     extra={"job": job_id, "queue": self.name, "commands": len(cmds)})
            self._matched.extend(cmds)

    def adopt_state(self, state: QueueState, reason: str) -> None:
        if state == QueueState.HALTED:
            self.state, self.reason, self._halted_reason = state, reason, reason

    def wake(self) -> None:
        """Look at the jobs again now (a condition outside the queue changed)."""
        self._wake.set()

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in JobState}
        for job in self.jobs.values():
            out[job.state.value] += 1
        return out

    def depth(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state not in TERMINAL)

    async def apply_command(self, cmd: jb.JobCommandIssued) -> bool:
        """Apply an administrator's command addressed to this queue; True if it was ours."""
        if cmd.queue != self.name:
            return False
        by = cmd.issued_by or "api"
        if cmd.command == Cmd.PAUSE_QUEUE:
            self._halted_reason = cmd.reason or f"paused by {by}"
            await self._set_queue_state(QueueState.HALTED, self._halted_reason)
            return True
        if cmd.command == Cmd.RESUME_QUEUE:
            self._halted_reason = ""
            await self._set_queue_state(QueueState.RUNNING, f"resumed by {by}")
            self._wake.set()
            return True
        job = self.jobs.get(cmd.job_id)
        if job is None and cmd.command in (Cmd.RETRY_JOB, Cmd.RESCHEDULE_JOB):
            job = await self._look_up(cmd.job_id)
        if job is None:
            self._unmatched.setdefault(cmd.job_id, []).append(cmd)
            self._unmatched.move_to_end(cmd.job_id)
            while len(self._unmatched) > UNMATCHED_COMMANDS:
                self._unmatched.popitem(last=False)
            log.warning("command for a job not here (yet): kept until the job is adopted",
                        extra={"job": cmd.job_id, "queue": self.name,
                               "command": Cmd.Command.Name(cmd.command)})
            return True
        nb = cmd.not_before.ToDatetime(tzinfo=UTC) if cmd.HasField("not_before") else None
        name = JOB_COMMAND_NAMES.get(cmd.command, "")
        if name not in COMMAND_APPLIES or job.state not in COMMAND_APPLIES[name]:
            log.info("command not applicable", extra={"job": job.id, "state": job.state,
                                                      "command": Cmd.Command.Name(cmd.command)})
        elif name in ("cancel", "suspend"):
            await self._stop_task(job)
            state = JobState.CANCELLED if name == "cancel" else JobState.SUSPENDED
            await self._change(job, state, name, by, cmd.reason)
        elif name == "resume":
            await self._change(job, JobState.NEW, name, by, cmd.reason)
        elif name == "retry":
            job.attempt = 0
            job.not_before = None
            job.include_refused = cmd.include_refused
            await self._change(job, JobState.NEW, name, by, cmd.reason)
        else:  # reschedule
            job.not_before = nb
            job.include_refused = cmd.include_refused
            job.attempt = 0 if job.state in TERMINAL else job.attempt
            await self._change(job, JobState.NEW, name, by, cmd.reason, nb)
        self._wake.set()
        return True

    async def _look_up(self, job_id: str) -> Job | None:
        """A retried job this queue no longer holds (a finished job is not adopted after a
        restart, and old finished jobs are forgotten): fetch it, so the retry runs it."""
        if self.lookup is None:
            return None
        try:
            job = await self.lookup(job_id)
        except Exception as exc:  # noqa: BLE001 - catalogue down: kept as unmatched instead
            log.warning("job lookup failed", extra={"job": job_id, "queue": self.name,
                                                    "error": repr(exc)})
            return None
        if job is None or job.queue != self.name:
            return None
        self.jobs[job.id] = job
        log.info("retried job fetched from the catalogue",
                 extra={"job": job.id, "queue": self.name, "state": job.state})
        return job

    # --- the scheduler ------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        if not self._announced:
            await self._set_queue_state(self.state, self.reason or "started", force=True)
            self._announced = True
        try:
            while not stop.is_set():
                timeout = await self._tick()
                self.looks += 1
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
        finally:
            for task in list(self._running.values()):
                task.cancel()
            if self._running:
                await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _tick(self) -> float:
        """Start what is due; return how long to sleep before the next look."""
        while self._matched:  # before anything starts: a cancelled job must not run
            await self.apply_command(self._matched.pop(0))
        if self.state == QueueState.HALTED:
            return 5.0
        now = self._clock()
        due = [j for j in self.jobs.values()
               if j.state in (JobState.NEW, JobState.RETRY, JobState.WAITING)
               and j.id not in self._running and (j.not_before is None or j.not_before <= now)]
        if due and self._readiness is not None:
            try:
                reason = await self._readiness()
            except Exception as exc:  # noqa: BLE001 - a failing check means "not ready"
                reason = f"readiness check failed: {exc!r}"
            if reason:
                await self._set_queue_state(QueueState.STALLED, reason)
                return self._readiness_interval
        if self.state == QueueState.STALLED:
            await self._set_queue_state(QueueState.RUNNING, "ready again")
        due.sort(key=lambda j: (j.not_before or datetime.min.replace(tzinfo=UTC), j.id))
        for job in due[: self._concurrency - len(self._running)]:
            self._running[job.id] = asyncio.create_task(self._run_job(job), name=f"job-{job.id}")
        upcoming = [j.not_before for j in self.jobs.values()
                    if j.state in (JobState.NEW, JobState.RETRY, JobState.WAITING)
                    and j.not_before is not None and j.not_before > now]
        if upcoming:
            return max(0.05, min(5.0, (min(upcoming) - now).total_seconds()))
        return 5.0

    async def _run_job(self, job: Job) -> None:
        try:
            job.attempt += 1
            job.state = JobState.IN_PROGRESS
            await self._emit(jb.JobStarted(job_id=job.id, queue=self.name, attempt=job.attempt,
                                           worker=self.owner), job)
            self._observer("started", job)
            started = time.monotonic()
            try:
                outcome = await self._execute(job, ProgressReporter(self, job))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - an executor error is a retryable failure
                log.exception("job failed", extra={"job": job.id, "queue": self.name})
                outcome = Outcome.retry(f"{type(exc).__name__}: {exc}")
            job.error = outcome.message if outcome.status != "done" else ""
            if outcome.status == "done":
                job.state = JobState.DONE
                await self._emit(jb.JobCompleted(
                    job_id=job.id, queue=self.name, completed=outcome.completed,
                    failed=outcome.failed, message=outcome.message, result=outcome.result), job)
            elif outcome.status == "waiting":
                job.attempt -= 1  # waiting for media or a window is not a failed try
                job.state = JobState.WAITING
                job.waiting_reason = outcome.message
                job.not_before = outcome.until or (
                    self._clock() + timedelta(seconds=self._waiting_recheck))
                await self._emit(jb.JobWaiting(job_id=job.id, queue=self.name,
                                               reason=outcome.message,
                                               waiting_for=outcome.waiting_for,
                                               until=_ts(job.not_before)), job)
            elif outcome.status == "failed" or job.attempt > job.max_retries:
                job.state = JobState.FAILED
                await self._emit(jb.JobFailed(job_id=job.id, queue=self.name,
                                              attempts=job.attempt, error=outcome.message), job)
            else:
                job.state = JobState.RETRY
                job.not_before = self._clock() + timedelta(seconds=self.retry.delay(job.attempt))
                await self._emit(jb.JobRetryScheduled(
                    job_id=job.id, queue=self.name, attempt=job.attempt,
                    next_attempt=_ts(job.not_before), error=outcome.message), job)
            self._observer(job.state.value.lower(), job)
            self._observer(f"duration:{time.monotonic() - started}", job)
        finally:
            self._running.pop(job.id, None)
            self._wake.set()

    async def _stop_task(self, job: Job) -> None:
        task = self._running.pop(job.id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _change(self, job: Job, state: JobState, command: str, by: str, reason: str,
                      not_before: datetime | None = None) -> None:
        job.state = state
        await self._emit(jb.JobStateChanged(job_id=job.id, queue=self.name, state=state.value,
                                            command=command, issued_by=by, reason=reason,
                                            not_before=_ts(not_before)), job)
        self._observer(state.value.lower(), job)

    async def _set_queue_state(self, state: QueueState, reason: str, force: bool = False) -> None:
        if self._halted_reason and state != QueueState.HALTED:
            state, reason = QueueState.HALTED, self._halted_reason  # a pause outranks readiness
        if not force and state == self.state and reason == self.reason:
            return
        if state != self.state or force:
            log.warning("queue state", extra={"queue": self.name, "state": state, "reason": reason})
        self.state, self.reason = state, reason
        await self._emit(jb.QueueStateChanged(queue=self.name, state=state.value, reason=reason,
                                              owner=self.owner, kind=self.kind), None)
        self._observer(f"queue:{state.value.lower()}", None)

    async def _emit(self, payload, job: Job | None) -> None:
        subject = job.study_uid if job is not None else ""
        key = job.id if job is not None else self.name
        event = Event(payload=payload, source=f"dicomvault/{self.owner}", subject=subject)
        await retry_forever(
            lambda: self._pub.publish(self._topics.jobs, event, key=key),
            retry_on=PublishError, first_s=0.2, max_s=10.0,
            on_retry=lambda exc: log.warning("job event not published yet, retrying",
                                             extra={"queue": self.name, "error": str(exc)}))
