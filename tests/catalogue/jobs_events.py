"""Builders of the jobs topic's facts, as ``dicomvault.jobs.JobQueue`` publishes them."""

from __future__ import annotations

from datetime import datetime

from dicomvault.events import Event
from dicomvault.events.v1 import jobs_pb2 as jb

SOURCE = "dicomvault/hsm-archiver"


def fact(payload, study: str = "", at: datetime | None = None) -> Event:
    return Event(payload=payload, source=SOURCE, subject=study,
                 **({"time": at} if at is not None else {}))


def created(job_id: str, queue: str, study: str, kind: str = "STORE", **kw) -> Event:
    nb = kw.pop("not_before", None)
    msg = jb.JobCreated(job_id=job_id, queue=queue, kind=jb.JobKind.Value(kind),
                        study_instance_uid=study, target=kw.pop("target", queue),
                        max_retries=kw.pop("max_retries", 5),
                        created_by=kw.pop("created_by", "rule:all"), **kw)
    if nb is not None:
        msg.not_before.FromDatetime(nb)
    return fact(msg, study)


def started(job_id: str, queue: str, attempt: int, study: str = "") -> Event:
    return fact(jb.JobStarted(job_id=job_id, queue=queue, attempt=attempt, worker="hsm-1"),
                study)


def progressed(job_id: str, queue: str, completed: int, failed: int, remaining: int) -> Event:
    return fact(jb.JobProgressed(job_id=job_id, queue=queue, completed=completed,
                                 failed=failed, remaining=remaining, message="copying"))


def retry_scheduled(job_id: str, queue: str, attempt: int, next_attempt: datetime,
                    error: str) -> Event:
    msg = jb.JobRetryScheduled(job_id=job_id, queue=queue, attempt=attempt, error=error)
    msg.next_attempt.FromDatetime(next_attempt)
    return fact(msg)


def completed(job_id: str, queue: str, n: int) -> Event:
    return fact(jb.JobCompleted(job_id=job_id, queue=queue, completed=n, message="archived",
                                result={"location": f"/mnt/hsm/{job_id}"}))


def failed(job_id: str, queue: str, attempts: int, error: str) -> Event:
    return fact(jb.JobFailed(job_id=job_id, queue=queue, attempts=attempts, error=error))


def queue_state(queue: str, state: str, reason: str = "", kind: str = "STORE") -> Event:
    return fact(jb.QueueStateChanged(queue=queue, state=state, reason=reason,
                                     owner="hsm-archiver", kind=kind))
