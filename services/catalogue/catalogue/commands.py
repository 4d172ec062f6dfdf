"""Administrators' commands: checked against the projection, published as JobCommandIssued.

The catalogue never changes a job itself: it publishes the command on the job-commands topic
and the queue's owner (``JobQueue.apply_command``) turns it into a fact on the jobs topic,
which the catalogue then projects. ``refusal`` says why a command cannot apply to a job in
its current state, by the table ``JobQueue.apply_command`` follows too
(``dicomvault.jobs.COMMAND_APPLIES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dicomvault.bus import Publisher
from dicomvault.events import Event
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import COMMAND_APPLIES, JobState, QueueState

Cmd = jb.JobCommandIssued
SOURCE = "dicomvault/catalogue"


@dataclass(frozen=True)
class JobCommand:
    """One job command of the REST API: its protobuf value and the states it applies to
    (from ``COMMAND_APPLIES``)."""

    name: str
    command: int
    applies_to: frozenset[JobState]


JOB_COMMANDS: dict[str, JobCommand] = {name: JobCommand(name, command, COMMAND_APPLIES[name])
                                       for name, command in (
    ("retry", Cmd.RETRY_JOB),
    ("cancel", Cmd.CANCEL_JOB),
    ("suspend", Cmd.SUSPEND_JOB),
    ("resume", Cmd.RESUME_JOB),
    ("reschedule", Cmd.RESCHEDULE_JOB),
)}


def refusal(command: JobCommand, state: str) -> str | None:
    """Why ``command`` cannot apply to a job in ``state``; None when it can."""
    if JobState(state) in command.applies_to:
        return None
    allowed = ", ".join(sorted(s.value for s in command.applies_to))
    return f"cannot {command.name} a job that is {state}: only {allowed} jobs can be"


def queue_refusal(pause: bool, state: str) -> str | None:
    if pause and state == QueueState.HALTED:
        return "the queue is already HALTED (paused)"
    if not pause and state != QueueState.HALTED:
        return f"the queue is {state or 'not reported yet'}, not HALTED: nothing to resume"
    return None


class Commands:
    """Publishes JobCommandIssued on the job-commands topic; returns the command's id."""

    def __init__(self, publisher: Publisher, topic: str) -> None:
        self._publisher = publisher
        self._topic = topic

    async def issue(self, command: int, *, queue: str, issued_by: str, job_id: str = "",
                    study_uid: str = "", not_before: datetime | None = None,
                    reason: str = "", include_refused: bool = False,
                    peer_address: str = "") -> Event:
        msg = Cmd(command=command, queue=queue, job_id=job_id, issued_by=issued_by,
                  reason=reason, include_refused=include_refused, peer_address=peer_address)
        if not_before is not None:
            msg.not_before.FromDatetime(not_before.astimezone(UTC))
        event = Event(payload=msg, source=SOURCE, subject=study_uid)
        # Keyed like the facts they lead to: by job id, or by queue name.
        await self._publisher.publish(self._topic, event, key=job_id or queue)
        return event
