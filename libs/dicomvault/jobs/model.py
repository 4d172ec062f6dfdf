"""Job and queue states, retry policy, and what an executor returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class JobState(StrEnum):
    NEW = "NEW"
    IN_PROGRESS = "IN_PROGRESS"
    RETRY = "RETRY"
    WAITING = "WAITING"          # for media (offline volume) or a schedule window
    DONE = "DONE"
    FAILED = "FAILED"
    SUSPENDED = "SUSPENDED"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})
ACTIVE = frozenset(set(JobState) - TERMINAL)

# Which administrator's job command applies to a job in which state: the one table that both
# the queue's owner (``JobQueue.apply_command``) and the catalogue's REST API (409 otherwise)
# follow. Keys are the command names of the REST API (``POST /api/v1/jobs/{id}/<name>``).
COMMAND_APPLIES: dict[str, frozenset[JobState]] = {
    "retry": frozenset({JobState.FAILED, JobState.CANCELLED, JobState.RETRY, JobState.WAITING}),
    "cancel": ACTIVE,
    "suspend": ACTIVE,
    "resume": frozenset({JobState.SUSPENDED}),
    "reschedule": frozenset(set(JobState) - {JobState.IN_PROGRESS}),
}


class QueueState(StrEnum):
    RUNNING = "RUNNING"
    HALTED = "HALTED"            # paused by an administrator
    STALLED = "STALLED"          # the target is not ready; resumes by itself


class RetryPolicy(BaseModel):
    """Exponential backoff: initial × multiplier^(attempt-1), capped; then Failed."""

    max_retries: int = Field(5, ge=0, description="Retries after the first attempt.")
    initial_delay_s: float = Field(10.0, ge=0, description="Delay before the first retry.")
    max_delay_s: float = Field(600.0, ge=0, description="Ceiling of the retry delay.")
    multiplier: float = Field(2.0, ge=1.0, description="Backoff multiplier.")

    def delay(self, attempt: int) -> float:
        return min(self.max_delay_s, self.initial_delay_s * self.multiplier ** max(0, attempt - 1))


@dataclass
class Job:
    id: str
    queue: str
    kind: str                      # STORE, RETRIEVE, EXPORT, COMMIT_SCP, COMMIT_SCU
    study_uid: str
    target: str
    params: dict[str, str] = field(default_factory=dict)
    sop_uids: list[str] = field(default_factory=list)
    state: JobState = JobState.NEW
    attempt: int = 0
    max_retries: int = 5
    not_before: datetime | None = None
    error: str = ""
    created_by: str = ""
    waiting_reason: str = ""
    # Set by a retry/reschedule command with ``include_refused``: the next attempt also sends
    # again what the remote refused permanently (the executor reads and clears it).
    include_refused: bool = False


@dataclass(frozen=True)
class Outcome:
    """What an executor reports. Raising an exception counts as ``retry``."""

    status: Literal["done", "retry", "failed", "waiting"]
    message: str = ""
    completed: int = 0
    failed: int = 0
    result: dict[str, str] = field(default_factory=dict)
    waiting_for: str = ""
    until: datetime | None = None     # waiting: look again then (else the queue's re-check)

    @classmethod
    def done(cls, message: str = "", completed: int = 0, failed: int = 0,
             result: dict[str, str] | None = None) -> Outcome:
        return cls("done", message, completed, failed, result or {})

    @classmethod
    def retry(cls, message: str, completed: int = 0, failed: int = 0) -> Outcome:
        return cls("retry", message, completed, failed)

    @classmethod
    def failed_permanently(cls, message: str, completed: int = 0, failed: int = 0) -> Outcome:
        return cls("failed", message, completed, failed)

    @classmethod
    def waiting(cls, reason: str, waiting_for: str = "media",
                until: datetime | None = None) -> Outcome:
        """Not runnable now: WAITING, looked at again at ``until`` (e.g. the next schedule
        window) or, without one, after the queue's ``waiting_recheck_s``."""
        return cls("waiting", reason, waiting_for=waiting_for, until=until)
