"""The wiring every event-driven service repeats, written once.

A service's ``run(settings, stop)`` opens a ``Service`` and hands it only what is its own::

    async with Service("hsm-archiver", settings, stop, client_id=hs.client_id,
                       audit_dropped=metrics.AUDIT_DROPPED.inc) as service:
        service.on_close(catalogue.close)
        adoption = await service.first(adopt_all(queues, catalogue, 5.0, stop))
        service.consume(f"{hs.client_id}.studies", [bus.topics.studies], policies.studies)
        verifier = service.tokens("hsm-archiver REST API (…)")
        service.serve_http(build_app(hosted, service.ready, verifier))
        service.spawn(queue.run(stop), "queue-HSM1")
        await service.until_stopped()

Entering: the topics exist, the publisher is open (it is also every consumer's DLQ) and the
audit trail is started, with Application Start recorded. Leaving (on ``stop``, or on an
error) keeps one stop order: ``stop`` is set, the consumers stop, the HTTP listener closes,
the tasks started by ``first`` are cancelled, every task is awaited; then what ``on_close``
registered runs (last registered first), the trail records Application Stop and flushes,
and the publisher closes last.

``fail_on_early_end``: a task that ends before ``stop`` (the consumer, the HTTP listener…)
makes ``until_stopped`` raise ``ServiceFailed``, after which ``serve`` exits non-zero and a
supervisor restarts the process. Without it, only ``stop`` ends the service.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from dicomvault.audit import AuditTrail
from dicomvault.audit.activity import start_application, stop_application
from dicomvault.audit.http import AuthFailures
from dicomvault.auth import TokenVerifier
from dicomvault.bus import ConsumerLoop, Handler, Publisher, ensure_topics
from dicomvault.lifecycle import HttpServer, ServiceFailed
from dicomvault.service.settings import ServiceSettings

NOT_ASSIGNED = "consumers not assigned to partitions yet"


class Service:
    """One service's publisher, audit trail, consumers, tasks and HTTP listener, and the
    order in which they stop."""

    def __init__(self, name: str, settings: ServiceSettings, stop: asyncio.Event, *,
                 client_id: str, audit_dropped: Callable[[], None] | None = None,
                 application_activity: bool = True, audit_flush_s: float = 3.0,
                 fail_on_early_end: bool = False) -> None:
        """``application_activity``: record Application Start/Stop on the audit topic (the
        audit service keeps its own in its store instead); ``audit_flush_s``: the longest
        the trail may take to send what it holds at the stop."""
        self.name = name
        self.settings = settings
        self.stop = stop
        self._client_id = client_id
        self._audit_dropped = audit_dropped
        self._activity = application_activity
        self._flush_s = audit_flush_s
        self._fail_on_early_end = fail_on_early_end
        self._exits = contextlib.AsyncExitStack()
        self._loops: list[tuple[str, ConsumerLoop]] = []
        self._tasks: list[asyncio.Task] = []
        self._firsts: list[asyncio.Task] = []
        self._server: HttpServer | None = None
        self.publisher: Publisher
        self.trail: AuditTrail

    async def __aenter__(self) -> Service:
        try:
            await self._open()
        except BaseException:
            await self._exits.aclose()
            raise
        return self

    async def _open(self) -> None:
        bus = self.settings.bus
        await ensure_topics(bus)
        self.publisher = await self._exits.enter_async_context(
            Publisher(bus, client_id=self._client_id))
        if self._activity:
            self.trail = await start_application(self.publisher, bus.topics.audit, self.name,
                                                 on_drop=self._audit_dropped)
            self._exits.push_async_callback(stop_application, self.trail, self._flush_s)
        else:  # only the API's refusals (401/403) go to the audit topic
            self.trail = AuditTrail(self.publisher, bus.topics.audit, self.name,
                                    on_drop=self._audit_dropped)
            await self.trail.start()
            self._exits.push_async_callback(self.trail.stop, self._flush_s)

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        try:
            for _name, loop in self._loops:
                loop.stop()
            if self._server is not None:
                self._server.should_exit = True
            for task in self._firsts:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            await self._exits.aclose()

    def on_close(self, close: Callable[[], Awaitable[Any]]) -> None:
        """Run ``close()`` at the stop, once every task has ended, before the trail and the
        publisher close (last registered, first run)."""
        self._exits.push_async_callback(close)

    def consume(self, group_id: str, topics: list[str], handler: Handler, *,
                client_id: str | None = None, name: str = "consumer",
                **options: Any) -> ConsumerLoop:
        """A consumer loop of ``group_id`` on ``topics`` calling ``handler``, dead letters to
        the publisher, started now and stopped at the stop; ``name`` names its task and, while
        it waits for partitions, ``waiting()``; ``options`` go to ``ConsumerLoop``."""
        loop = ConsumerLoop(self.settings.bus, group_id=group_id, topics=topics,
                            handler=handler, dlq=self.publisher,
                            client_id=client_id or self._client_id, **options)
        self._loops.append((name, loop))
        self.spawn(loop.run(), name)
        return loop

    def waiting(self) -> list[str]:
        """The names of the consumers not yet assigned to partitions."""
        return [name for name, loop in self._loops if not loop.ready.is_set()]

    def ready(self) -> str | None:
        """The readiness of a service whose only condition is its consumers' assignment."""
        return NOT_ASSIGNED if self.waiting() else None

    def tokens(self, api: str) -> TokenVerifier:
        """The bearer-token verifier of the REST API, announced (logged) as ``api``."""
        verifier = TokenVerifier(self.settings.auth)
        verifier.announce(api)
        return verifier

    def serve_http(self, app: Any, name: str = "http") -> HttpServer:
        """Serve ``app`` on ``settings.http``, its 401/403 answers recorded on the trail."""
        self._server = HttpServer.for_app(AuthFailures(app, self.trail), self.settings.http)
        self.spawn(self._server.serve(), name)
        return self._server

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        """Run ``work`` until the stop (it watches ``stop`` or ends when cancelled)."""
        task = asyncio.create_task(work, name=name)
        self._tasks.append(task)
        return task

    async def first(self, work: Coroutine[Any, Any, Any], name: str = "first",
                    within_s: float = 30.0) -> asyncio.Task:
        """Start ``work`` and give it up to ``within_s`` before going on (adopting unfinished
        jobs before consuming, so a redelivered trigger finds its job); if it is still
        running at the stop, it is cancelled."""
        task = self.spawn(work, name)
        self._firsts.append(task)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout=within_s)
        return task

    async def until_stopped(self) -> None:
        """Wait for ``stop``; with ``fail_on_early_end`` a task ending before it raises
        ``ServiceFailed`` naming the task (and its error)."""
        if not self._fail_on_early_end:
            await self.stop.wait()
            return
        watched = [task for task in self._tasks if task not in self._firsts]
        stopped = asyncio.create_task(self.stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait([stopped, *watched],
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if self.stop.is_set():  # a task that watches ``stop`` may end before ``stopped`` does
            return
        for task in done:
            if task is stopped:
                continue
            if task.cancelled() or task.exception() is None:
                raise ServiceFailed(f"{self.name} task {task.get_name()} ended early")
            raise ServiceFailed(f"{self.name} task {task.get_name()} failed: "
                                f"{task.exception()!r}"[:300])
