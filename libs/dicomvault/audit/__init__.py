"""Audit facts, published fire-and-forget (the audit service turns them into DICOM audit
messages, PS3.15 A.5).

Actions with no event of their own (a query, a retrieve started, a refused association or
token, a start or stop) are recorded here as ``AuditRecorded`` facts on the audit topic.
Auditing must never slow down or fail what it records: ``AuditTrail.record`` only puts the
fact in a bounded buffer (from any thread) and returns; one task publishes the buffer. When
the buffer is full or the broker refuses, the fact is dropped and ``on_drop`` counts it (the
service's metric), never raised.

    trail = AuditTrail(publisher, bus.topics.audit, "dicom-gateway", on_drop=metric.inc)
    await trail.start()                      # on the service's loop
    trail.record(Action.QUERY, user_id="CT1", peer_address="10.0.0.5:40112", ...)
    await trail.stop()                       # flushes what is buffered (bounded)

Also here: ``http.AuthFailures`` (the ASGI middleware every service's HTTP app gets: 401/403
are User Authentication failures), ``activity.application_trail`` (a service's trail with its
Application Start/Stop) and ``refusals.StoreRefusals`` (refused C-STOREs, one fact per
association).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from dicomvault.bus.publisher import Publisher, PublishError
from dicomvault.events import Event
from dicomvault.events.v1 import audit_pb2 as au

log = logging.getLogger(__name__)

Action = au.AuditRecorded.Action
AuditRecorded = au.AuditRecorded

# EventOutcomeIndicator (PS3.15 A.5.1, RFC 3881)
SUCCESS = 0
MINOR_FAILURE = 4
SERIOUS_FAILURE = 8
MAJOR_FAILURE = 12


class AuditTrail:
    """A bounded, non-blocking publisher of audit facts."""

    def __init__(self, publisher: Publisher, topic: str, application: str, *,
                 capacity: int = 1000, on_drop: Callable[[], None] | None = None,
                 send_timeout_s: float = 5.0) -> None:
        self._publisher = publisher
        self._topic = topic
        self.application = application
        self._capacity = capacity
        self._on_drop = on_drop or (lambda: None)
        self._send_timeout_s = send_timeout_s
        self._queue: asyncio.Queue[AuditRecorded] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self.dropped = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self._capacity)
        self._task = asyncio.create_task(self._drain(), name="audit-trail")

    async def stop(self, flush_s: float = 3.0) -> None:
        """Send what is buffered (at most ``flush_s``), then stop."""
        if self._task is None or self._queue is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=flush_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def record(self, action: int, *, outcome: int = SUCCESS, user_id: str = "",
               peer_address: str = "", calling_ae: str = "", called_ae: str = "",
               service: str = "", study_instance_uids: Iterable[str] = (),
               sop_class_uid: str = "", query: bytes = b"", description: str = "",
               destination: str = "", association_id: str = "", instances: int = 0) -> None:
        """Buffer one fact; never blocks, never raises (from any thread)."""
        try:
            now = time.time()
            fact = AuditRecorded(
                action=action, outcome=outcome, user_id=user_id, peer_address=peer_address,
                calling_ae=calling_ae, called_ae=called_ae, service=service,
                study_instance_uids=[u for u in study_instance_uids if u],
                sop_class_uid=sop_class_uid, query=query[:65536],
                description=description[:1000], application=self.application,
                destination=destination, association_id=association_id, instances=instances,
                time=Timestamp(seconds=int(now), nanos=int((now % 1) * 1e9)))
            loop = self._loop
            if loop is None or self._queue is None or loop.is_closed():
                self._drop("audit trail not started")
                return
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._put(fact)
            else:
                loop.call_soon_threadsafe(self._put, fact)
        except Exception:  # noqa: BLE001 - auditing never breaks what it records
            log.exception("audit fact not recorded")
            self._drop("error")

    def _put(self, fact: AuditRecorded) -> None:
        try:
            self._queue.put_nowait(fact)
        except asyncio.QueueFull:
            self._drop("buffer full")

    def dropped_one(self, why: str) -> None:
        """Count a fact that could not even be buffered (a caller's own limit)."""
        self._drop(why)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        with contextlib.suppress(Exception):
            self._on_drop()
        if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
            log.warning("audit fact dropped", extra={"reason": why, "dropped": self.dropped})

    async def _drain(self) -> None:
        assert self._queue is not None
        while True:
            fact = await self._queue.get()
            try:
                subject = fact.study_instance_uids[0] if fact.study_instance_uids else ""
                event = Event(payload=fact, source=f"dicomvault/{self.application}",
                              subject=subject)
                await asyncio.wait_for(
                    self._publisher.publish(self._topic, event,
                                            key=subject or fact.user_id or event.id),
                    timeout=self._send_timeout_s)
            except (PublishError, TimeoutError) as exc:
                self._drop(f"broker did not take it: {exc!r}"[:200])
            except Exception:  # noqa: BLE001
                log.exception("audit fact not published")
                self._drop("error")
            finally:
                self._queue.task_done()

