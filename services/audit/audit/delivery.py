"""Delivery: kept messages go to the syslog receiver in order; marked delivered only after
they were written. An unreachable receiver is retried with backoff, without limit; nothing
kept is dropped meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from audit import metrics
from audit.messages import to_xml
from audit.settings import AuditSection
from audit.store import Store
from audit.syslog import SyslogSender, frame
from dicomvault.retry import backoff

log = logging.getLogger(__name__)


class Delivery:
    def __init__(self, store: Store, sender: SyslogSender | None, cfg: AuditSection,
                 hostname: str) -> None:
        self.store = store
        self.sender = sender
        self.cfg = cfg
        self.hostname = hostname
        self.wake = asyncio.Event()  # set when new messages were kept

    def frames(self, kept) -> list[bytes]:
        cfg = self.cfg
        return [frame(to_xml(k.record, cfg.source_id, cfg.enterprise_site_id, self.hostname),
                      success=k.record.outcome == 0, hostname=self.hostname,
                      app_name=cfg.app_name, msg_id=cfg.msg_id) for k in kept]

    def _backoff(self) -> Iterator[float]:
        """The waits while the receiver is unreachable: from retry_s doubling to retry_max_s."""
        return backoff(self.cfg.retry_s, self.cfg.retry_max_s)

    async def run(self, stop: asyncio.Event) -> None:
        waits = self._backoff()
        down_logged = False
        while not stop.is_set():
            try:
                due = await self.store.due(self.cfg.send_batch)
                metrics.BACKLOG.set(await self.store.backlog())
            except Exception as exc:  # noqa: BLE001 - the store may be briefly unavailable
                log.warning("audit store unavailable", extra={"error": repr(exc)[:300]})
                due = []
            if due and self.sender is not None:
                try:
                    await self.sender.send(self.frames(due))
                except OSError as exc:
                    metrics.SEND_FAILURES.inc()
                    metrics.RECEIVER_UP.set(0)
                    if not down_logged:
                        log.warning("syslog receiver unreachable: audit messages are kept and "
                                    "sent when it is back", extra={"error": str(exc)[:300]})
                        down_logged = True
                    await self._sleep(stop, next(waits))
                    continue
                await self.store.delivered([k.id for k in due])
                metrics.SENT.inc(len(due))
                metrics.RECEIVER_UP.set(1)
                if down_logged:
                    log.info("syslog receiver reachable again")
                    down_logged = False
                waits = self._backoff()  # reachable again: the next outage starts at retry_s
                if len(due) == self.cfg.send_batch:
                    continue
            await self._sleep(stop, 0.25, self.wake)
            self.wake.clear()

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float, also: asyncio.Event | None = None):
        waits = [asyncio.ensure_future(stop.wait())]
        if also is not None:
            waits.append(asyncio.ensure_future(also.wait()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()

    async def flush(self) -> None:
        """One attempt to send what is due (at stop)."""
        due = await self.store.due(self.cfg.send_batch)
        if due and self.sender is not None:
            await self.sender.send(self.frames(due))
            await self.store.delivered([k.id for k in due])
