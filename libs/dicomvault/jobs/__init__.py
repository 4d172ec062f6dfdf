"""The jobs engine: event-sourced jobs and queues that archive services embed.

A service owns one or more ``JobQueue``s (one per archive target or exporter). It submits a
job when a rule matches, the queue runs it through the service's executor, and every state
change is published as a fact on the jobs topic; the catalogue projects those facts and
serves the REST API (list, pause/resume queues, retry/cancel/reschedule/suspend/resume
jobs). Administrators' commands come back as ``JobCommandIssued`` on the job-commands topic.
After a restart the queue adopts its unfinished jobs from the catalogue's projection.
"""

from dicomvault.jobs.model import (
    ACTIVE,
    COMMAND_APPLIES,
    TERMINAL,
    Job,
    JobState,
    Outcome,
    QueueState,
    RetryPolicy,
)
from dicomvault.jobs.runner import JobQueue, ProgressReporter
from dicomvault.jobs.snapshot import adopt_all, adopt_from_catalogue, catalogue_lookup

__all__ = [
    "adopt_all",
    "ACTIVE",
    "COMMAND_APPLIES",
    "TERMINAL",
    "Job",
    "JobQueue",
    "JobState",
    "Outcome",
    "ProgressReporter",
    "QueueState",
    "RetryPolicy",
    "adopt_from_catalogue",
    "catalogue_lookup",
]
