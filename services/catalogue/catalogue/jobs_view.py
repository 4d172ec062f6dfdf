"""Reads of the jobs and queues projections, as the REST API's JSON.

A job's JSON is the shape ``dicomvault.jobs.snapshot.job_from_json`` reads back when a queue
adopts its unfinished jobs after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalogue.models import JobRow, QueueRow
from dicomvault.jobs import ACTIVE, JobState


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def job_json(j: JobRow) -> dict:
    return {
        "job_id": j.job_id, "queue": j.queue, "kind": j.kind,
        "study_instance_uid": j.study_instance_uid, "target": j.target, "params": j.params,
        "sop_instance_uids": j.sop_instance_uids, "state": j.state, "attempts": j.attempts,
        "max_retries": j.max_retries, "not_before": iso(j.not_before), "error": j.error,
        "message": j.message,
        "progress": {"completed": j.completed, "failed": j.failed, "remaining": j.remaining},
        "result": j.result, "worker": j.worker, "created_by": j.created_by,
        "created_at": iso(j.created_at), "updated_at": iso(j.updated_at),
        "last_command": j.last_command, "last_command_by": j.last_command_by,
    }


@dataclass
class JobFilter:
    queue: str = ""
    states: list[str] = field(default_factory=list)
    kind: str = ""
    study_instance_uid: str = ""

    def where(self, *, with_state: bool = True) -> list:
        out = []
        if self.queue:
            out.append(JobRow.queue == self.queue)
        if self.states and with_state:
            out.append(JobRow.state.in_(self.states))
        if self.kind:
            out.append(JobRow.kind == self.kind)
        if self.study_instance_uid:
            out.append(JobRow.study_instance_uid == self.study_instance_uid)
        return out


def _zero_counts() -> dict[str, int]:
    return {s.value: 0 for s in JobState}


async def list_jobs(session: AsyncSession, f: JobFilter, limit: int, offset: int) -> dict:
    """One page of jobs (oldest first), the total matching, and counts per state.

    ``counts`` ignores the state filter, so a client sees what the other states hold too."""
    total = await session.scalar(select(func.count()).select_from(JobRow).where(*f.where()))
    rows = (await session.scalars(select(JobRow).where(*f.where()).order_by(
        JobRow.created_at, JobRow.job_id).limit(limit).offset(offset))).all()
    counts = _zero_counts()
    for state, n in (await session.execute(select(JobRow.state, func.count()).where(
            *f.where(with_state=False)).group_by(JobRow.state))).all():
        counts[state] = int(n)
    return {"jobs": [job_json(j) for j in rows], "total": int(total or 0), "limit": limit,
            "offset": offset, "counts": counts}


async def queue_counts(session: AsyncSession, name: str | None = None
                       ) -> dict[str, dict[str, int]]:
    stmt = select(JobRow.queue, JobRow.state, func.count()).group_by(JobRow.queue, JobRow.state)
    if name is not None:
        stmt = stmt.where(JobRow.queue == name)
    out: dict[str, dict[str, int]] = {}
    for queue, state, n in (await session.execute(stmt)).all():
        out.setdefault(queue, _zero_counts())[state] = int(n)
    return out


async def _last_outcomes(session: AsyncSession, name: str) -> dict:
    """When the queue's latest job finished, and the latest failure with its error."""
    def latest(state: JobState):
        return select(JobRow).where(JobRow.queue == name, JobRow.state == state.value).order_by(
            JobRow.updated_at.desc(), JobRow.job_id).limit(1)

    done = (await session.scalars(latest(JobState.DONE))).first()
    failed = (await session.scalars(latest(JobState.FAILED))).first()
    return {"last_success": iso(done.updated_at) if done else None,
            "last_failure": iso(failed.updated_at) if failed else None,
            "last_failure_reason": failed.error if failed else ""}


async def queue_json(session: AsyncSession, name: str, row: QueueRow | None,
                     counts: dict[str, int] | None) -> dict:
    counts = counts or _zero_counts()
    return {
        "name": name, "kind": row.kind if row else "", "owner": row.owner if row else "",
        "state": row.state if row else "UNKNOWN",
        "reason": row.reason if row else "the queue's owner has not reported its state yet",
        "updated_at": iso(row.updated_at) if row else None, "counts": counts,
        "depth": sum(n for s, n in counts.items() if JobState(s) in ACTIVE),
        **await _last_outcomes(session, name),
    }


async def list_queues(session: AsyncSession) -> list[dict]:
    rows = {q.name: q for q in (await session.scalars(select(QueueRow))).all()}
    counts = await queue_counts(session)
    return [await queue_json(session, n, rows.get(n), counts.get(n))
            for n in sorted(set(rows) | set(counts))]


async def get_queue(session: AsyncSession, name: str) -> dict | None:
    row = await session.get(QueueRow, name)
    counts = (await queue_counts(session, name)).get(name)
    if row is None and counts is None:
        return None
    return await queue_json(session, name, row, counts)
