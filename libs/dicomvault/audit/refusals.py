"""C-STOREs refused before anything was stored (not permitted, out of resources, a data set
that does not match, …) as audit facts: one DICOM Instances Transferred failure per
association (PS3.15 A.5.3.2), not one per refused instance — a modality that sends
thousands of instances into a full disk makes one message a minute, not thousands.

``refused`` is what the hot path pays, and only on a refusal: a counter under a lock (from
any thread). A task flushes an association's count once no refusal came for ``quiet_s``
(the association is over or sends good instances again), at most ``max_s`` after its first.
A success is never recorded here (InstanceStored is its fact).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from dicomvault.audit import MINOR_FAILURE, Action, AuditTrail


@dataclass
class _Open:
    calling_ae: str
    called_ae: str
    peer_address: str
    first: float
    last: float
    outcome: int = MINOR_FAILURE
    statuses: Counter = field(default_factory=Counter)


class StoreRefusals:
    def __init__(self, trail: AuditTrail, *, quiet_s: float = 2.0, max_s: float = 60.0,
                 capacity: int = 10_000, service: str = "C-STORE") -> None:
        self.trail = trail
        self.quiet_s = quiet_s
        self.max_s = max_s
        self.capacity = capacity
        self.service = service
        self._lock = threading.Lock()
        self._open: dict[str, _Open] = {}
        self._task: asyncio.Task | None = None

    def refused(self, association_id: str, status: str, *, outcome: int = MINOR_FAILURE,
                calling_ae: str = "", called_ae: str = "", peer_address: str = "") -> None:
        """Count one refused instance of ``association_id`` (``status``: its label)."""
        now = time.monotonic()
        with self._lock:
            entry = self._open.get(association_id)
            if entry is None:
                if len(self._open) >= self.capacity:
                    self.trail.dropped_one("too many associations with refusals open")
                    return
                entry = self._open[association_id] = _Open(calling_ae, called_ae,
                                                           peer_address, now, now)
            entry.last = now
            entry.outcome = max(entry.outcome, outcome)
            entry.statuses[status] += 1

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-store-refusals")

    async def stop(self) -> None:
        """Record what is still open (before the trail stops)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush(everything=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, self.quiet_s / 2))
            self.flush()

    def flush(self, everything: bool = False, now: float | None = None) -> int:
        """Record the associations whose refusals are over (at ``now``, monotonic clock);
        how many were recorded."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [(k, e) for k, e in self._open.items() if everything
                   or now - e.last >= self.quiet_s or now - e.first >= self.max_s]
            for key, _ in due:
                del self._open[key]
        for key, e in due:
            count = sum(e.statuses.values())
            detail = ", ".join(f"{n} {label}" for label, n in e.statuses.most_common())
            self.trail.record(
                Action.STORE_REFUSED, outcome=e.outcome, user_id=e.calling_ae,
                peer_address=e.peer_address, calling_ae=e.calling_ae, called_ae=e.called_ae,
                service=self.service, association_id=key, instances=count,
                description=f"{count} instance{'s' if count != 1 else ''} refused before "
                f"storing: {detail}")
        return len(due)
