"""Feeding a service's queue metrics from its JobQueues.

The metrics are declared in the service's own ``metrics.py`` (once, in its registry, with its
name prefix); ``QueueMetrics`` only fills them: the observer a ``JobQueue`` calls on every
transition (outcomes, attempt durations, running/halted) and a loop that keeps each queue's
depth current.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from dicomvault.jobs.runner import JobQueue, Observer


@dataclass(frozen=True)
class QueueMetrics:
    depth: Gauge  # labels: queue — unfinished jobs
    running: Gauge  # labels: queue — 1 RUNNING, 0 HALTED or STALLED
    duration: Histogram  # labels: queue — one job attempt
    outcomes: Counter  # labels: queue, outcome — done, retry, failed, waiting, cancelled…

    def observer(self, queue: str) -> Observer:
        """The observer of the queue named ``queue``."""

        def observe(what: str, _job) -> None:
            if what.startswith("duration:"):
                self.duration.labels(queue).observe(float(what.split(":", 1)[1]))
            elif what.startswith("queue:"):
                self.running.labels(queue).set(1 if what == "queue:running" else 0)
            elif what not in ("created", "started"):
                self.outcomes.labels(queue, what).inc()

        return observe

    async def watch_depths(self, queues: Iterable[JobQueue], stop: asyncio.Event,
                           interval_s: float = 2.0) -> None:
        """Set every queue's depth every ``interval_s`` until ``stop``."""
        queues = list(queues)
        while not stop.is_set():
            for q in queues:
                self.depth.labels(q.name).set(q.depth())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
