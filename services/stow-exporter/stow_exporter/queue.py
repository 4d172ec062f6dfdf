"""One exporter's queue: exports waiting (delay, schedule, retry), running, and finished.

Every export is a study to send to the exporter's destination. The queue runs them one at a
time; inside one export the sender decides how many requests go at once. Time (delays,
schedule windows, retry backoff) comes from an injectable clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from stow_exporter import metrics
from stow_exporter.schedule import Clock, in_window, next_window, parse_schedule
from stow_exporter.spec import Exporter

log = logging.getLogger(__name__)

PENDING = ("delayed", "waiting_schedule", "queued", "in_progress", "retrying", "suspended")
FINISHED = ("exported", "failed")


@dataclass
class Export:
    id: str
    exporter_id: str
    study_instance_uid: str
    trigger: str                 # "rule" (StudyStable) or "manual"
    created: datetime
    not_before: datetime
    immediate: bool = False      # manual request that ignores the schedule
    state: str = "queued"
    attempts: int = 0
    reason: str = ""
    number_of_instances: int = 0
    size_bytes: int = 0
    stored: dict[str, str] = field(default_factory=dict)    # sop uid -> transfer syntax sent
    warnings: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    finished: datetime | None = None
    next_window: datetime | None = None

    def view(self) -> dict:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "id": self.id, "exporter_id": self.exporter_id,
            "study_instance_uid": self.study_instance_uid, "trigger": self.trigger,
            "state": self.state, "reason": self.reason, "attempts": self.attempts,
            "created": iso(self.created), "not_before": iso(self.not_before),
            "next_window": iso(self.next_window), "finished": iso(self.finished),
            "number_of_instances": self.number_of_instances,
            "stored": len(self.stored), "size_bytes": self.size_bytes,
            "warnings": [{"sop_instance_uid": k, "reason": v} for k, v in self.warnings.items()],
            "failed": [{"sop_instance_uid": k, "reason": v} for k, v in self.failed.items()],
        }


Runner = Callable[[Export], Awaitable[None]]


class ExportQueue:
    def __init__(self, exporter: Exporter, run_export: Runner, *, clock: Clock,
                 tick_s: float = 1.0, history: int = 500) -> None:
        self.exporter = exporter
        self.id = exporter.exporter_id
        self.schedules = [parse_schedule(s) for s in exporter.schedules]
        self._run_export = run_export
        self._clock = clock
        self._tick_s = tick_s
        self._pending: OrderedDict[str, Export] = OrderedDict()  # by export id, FIFO
        self._finished: deque[Export] = deque(maxlen=history)
        self._seen: OrderedDict[str, None] = OrderedDict()       # trigger ids, bounded
        self._wake = asyncio.Event()
        self.idle = asyncio.Event()  # set when nothing is pending (tests, readiness)
        self.idle.set()

    # -- intake ---------------------------------------------------------------------------
    def submit(self, study_uid: str, *, request_id: str | None = None, delay_s: float = 0.0,
               trigger: str = "rule", immediate: bool = False) -> Export:
        """Queue a study (idempotent on ``request_id``; one pending export per study)."""
        request_id = request_id or str(uuid.uuid4())
        for e in self._pending.values():
            if e.study_instance_uid == study_uid and e.state != "in_progress":
                e.immediate = e.immediate or immediate
                return e  # it will read the study's instances as they are when it runs
        if request_id in self._seen:
            for e in (*self._pending.values(), *self._finished):
                if e.id == request_id:
                    return e
        self._seen[request_id] = None
        while len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        now = self._clock()
        export = Export(id=request_id, exporter_id=self.id, study_instance_uid=study_uid,
                        trigger=trigger, created=now,
                        not_before=now + timedelta(seconds=delay_s), immediate=immediate)
        self._pending[export.id] = export
        self._classify(export, now)
        self.idle.clear()
        self._update_gauges()
        self._wake.set()
        log.info("export queued", extra={"exporter": self.id, "study": study_uid,
                                         "state": export.state, "trigger": trigger})
        return export

    # -- views ----------------------------------------------------------------------------
    def exports(self) -> list[Export]:
        return [*self._pending.values(), *self._finished]

    def get(self, export_id: str) -> Export | None:
        return next((e for e in self.exports() if e.id == export_id), None)

    def depth(self) -> int:
        return len(self._pending)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys((*PENDING, *FINISHED), 0)
        for e in self.exports():
            out[e.state] += 1
        return out

    # -- the loop -------------------------------------------------------------------------
    def _classify(self, e: Export, now: datetime) -> bool:
        """Set the waiting state of a pending export; True if it may run now."""
        if e.state == "in_progress":
            return False
        if self.exporter.suspended:
            e.state, e.reason = "suspended", "exporter suspended"
            return False
        if now < e.not_before:
            if e.state != "retrying":
                e.state = "delayed"
            return False
        if not e.immediate and not in_window(self.schedules, now):
            e.state = "waiting_schedule"
            e.next_window = next_window(self.schedules, now)
            e.reason = f"outside schedule {' | '.join(self.exporter.schedules)}"
            return False
        e.state, e.next_window = "queued", None
        return True

    def _update_gauges(self) -> None:
        counts = dict.fromkeys(PENDING, 0)
        for e in self._pending.values():
            counts[e.state] += 1
        for state, n in counts.items():
            metrics.QUEUE_DEPTH.labels(self.id, state).set(n)

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = self._clock()
            due = [e for e in list(self._pending.values()) if self._classify(e, now)]
            self._update_gauges()
            for export in due:
                if stop.is_set():
                    break
                export.state = "in_progress"
                self._update_gauges()
                try:
                    await self._run_export(export)
                except Exception as exc:  # noqa: BLE001 - a bug must not kill the queue
                    log.exception("export crashed", extra={"exporter": self.id,
                                                           "study": export.study_instance_uid})
                    export.state, export.reason = "failed", f"internal error: {exc!r}"
                if export.state == "in_progress":  # the runner left no verdict
                    export.state = "failed"
                if export.state in FINISHED:
                    export.finished = self._clock()
                    self._pending.pop(export.id, None)
                    self._finished.appendleft(export)
                self._update_gauges()
            if not self._pending:
                self.idle.set()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._tick_s)
