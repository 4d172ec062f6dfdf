"""The jobs and queues projections: one function per fact of the jobs topic.

Like ``projection``, a pure function of the journal: every time it records is the event's
CloudEvents ``time``. The job's state follows what its queue (``dicomvault.jobs.JobQueue``)
holds in memory, so that a queue adopting its jobs after a restart gets them back as they were.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession

from catalogue.models import JobRow, QueueRow
from dicomvault.events import Event
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import TERMINAL, JobState

JOB_FACTS = (jb.JobCreated, jb.JobStarted, jb.JobProgressed, jb.JobRetryScheduled,
             jb.JobCompleted, jb.JobFailed, jb.JobWaiting, jb.JobStateChanged)


def _when(value: Timestamp, present: bool) -> datetime | None:
    return value.ToDatetime(tzinfo=UTC) if present else None


async def apply_jobs(session: AsyncSession, event: Event) -> bool:
    """Apply one job or queue fact; True if a row changed (False: unknown job, journal only)."""
    p = event.payload
    if isinstance(p, jb.QueueStateChanged):
        return await _queue_state(session, p, event.time)
    if isinstance(p, jb.JobCreated):
        return await _created(session, p, event.time)
    job = await session.get(JobRow, p.job_id)
    if job is None:
        return False  # a fact about a job whose creation this catalogue never saw
    job.updated_at = event.time
    if isinstance(p, jb.JobStarted):
        job.state, job.attempts, job.worker = JobState.IN_PROGRESS.value, p.attempt, p.worker
    elif isinstance(p, jb.JobProgressed):
        job.completed, job.failed, job.remaining = p.completed, p.failed, p.remaining
        job.message = p.message
    elif isinstance(p, jb.JobRetryScheduled):
        job.state, job.attempts, job.error = JobState.RETRY.value, p.attempt, p.error
        job.not_before = _when(p.next_attempt, p.HasField("next_attempt"))
    elif isinstance(p, jb.JobCompleted):
        job.state, job.error, job.message = JobState.DONE.value, "", p.message
        job.completed, job.failed, job.remaining = p.completed, p.failed, 0
        job.result = dict(sorted(p.result.items()))
    elif isinstance(p, jb.JobFailed):
        job.state, job.attempts, job.error = JobState.FAILED.value, p.attempts, p.error
    elif isinstance(p, jb.JobWaiting):
        job.state, job.error, job.message = JobState.WAITING.value, p.reason, p.reason
        job.not_before = _when(p.until, p.HasField("until"))
    elif isinstance(p, jb.JobStateChanged):
        _state_changed(job, p)
    return True


def _state_changed(job: JobRow, p: jb.JobStateChanged) -> None:
    """An administrator's command took effect: mirror what ``JobQueue.apply_command`` did."""
    was_terminal = job.state in {s.value for s in TERMINAL}
    if p.command == "retry":
        job.attempts, job.not_before = 0, None
    elif p.command == "reschedule":
        job.not_before = _when(p.not_before, p.HasField("not_before"))
        if was_terminal:
            job.attempts = 0
    job.state = p.state
    job.last_command, job.last_command_by = p.command, p.issued_by


async def _created(session: AsyncSession, p: jb.JobCreated, time: datetime) -> bool:
    values = {
        "queue": p.queue, "kind": jb.JobKind.Name(p.kind), "study_instance_uid":
        p.study_instance_uid, "target": p.target, "params": dict(sorted(p.params.items())),
        "sop_instance_uids": list(p.sop_instance_uids), "state": JobState.NEW.value,
        "attempts": 0, "max_retries": p.max_retries,
        "not_before": _when(p.not_before, p.HasField("not_before")), "error": "",
        "message": "", "completed": 0, "failed": 0, "remaining": 0, "result": {},
        "worker": "", "created_by": p.created_by, "updated_at": time,
        "last_command": "", "last_command_by": "",
    }
    job = await session.get(JobRow, p.job_id)
    if job is None:
        session.add(JobRow(job_id=p.job_id, created_at=time, **values))
    else:
        # Created again (a queue resubmitted it after a restart): it runs again from the start.
        for name, value in values.items():
            setattr(job, name, value)
    return True


async def _queue_state(session: AsyncSession, p: jb.QueueStateChanged, time: datetime) -> bool:
    row = await session.get(QueueRow, p.queue)
    if row is None:
        session.add(QueueRow(name=p.queue, kind=p.kind, owner=p.owner, state=p.state,
                             reason=p.reason, updated_at=time))
        return True
    row.kind, row.owner = p.kind or row.kind, p.owner or row.owner
    row.state, row.reason, row.updated_at = p.state, p.reason, time
    return True
