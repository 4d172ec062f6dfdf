"""Publisher: an aiokafka producer with acks=all that sends CloudEvents records.

``publish`` returns only when the broker has the record (acks=all); any failure raises
PublishError so that the caller can refuse what it was about to acknowledge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from dicomvault.bus.partitioner import KeyPartitioner
from dicomvault.bus.topics import ensure_topics
from dicomvault.events import Event
from dicomvault.retry import backoff
from dicomvault.settings import BusSettings

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """The broker did not take the record."""


class Publisher:
    def __init__(self, settings: BusSettings, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        # Highest offset acknowledged per partition. Tansu (memory storage) acknowledges
        # writes to a topic that vanished in a restart and then drops them; a lower offset
        # than one seen before is how a producer notices that the broker came back empty.
        self._high: dict[tuple[str, int], int] = {}
        self.resets = 0

    async def start(self) -> None:
        # Tansu acknowledges writes to a topic that does not exist and drops them: every
        # topic this publisher may write to must exist before the first send.
        await ensure_topics(self._settings)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.bootstrap_servers,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=False,  # Tansu has no InitProducerId; consumers dedupe by ce_id
            request_timeout_ms=int(self._settings.request_timeout_s * 1000),
            max_request_size=16 * 1024 * 1024,
            linger_ms=0,
            partitioner=KeyPartitioner(),
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def send_raw(
        self, topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        """Copy a record as it is (used for the DLQ and its replay)."""
        if self._producer is None:
            raise PublishError("publisher not started")
        try:
            await asyncio.wait_for(
                self._producer.send_and_wait(topic, value, key=key, headers=headers),
                timeout=self._settings.request_timeout_s,
            )
        except (KafkaError, TimeoutError) as exc:
            raise PublishError(f"broker did not take the record: {exc!r}") from exc

    async def publish(self, topic: str, event: Event, key: str | None = None) -> None:
        """Send one event and wait for the broker's acknowledgement."""
        if self._producer is None:
            raise PublishError("publisher not started")
        value, headers = event.to_record()
        key_bytes = (key if key is not None else event.subject or event.id).encode()
        timeout = self._settings.request_timeout_s
        for attempt in (1, 2, 3):
            try:
                async with asyncio.timeout(timeout):  # no extra task per record (wait_for's)
                    md = await self._producer.send_and_wait(topic, value, key=key_bytes,
                                                            headers=headers)
                where = (md.topic, md.partition)
                seen = self._high.get(where)
                self._high[where] = md.offset
                if seen is None or md.offset > seen:
                    return
                if attempt == 3:
                    raise PublishError("broker reset again and again during one publish")
                # Offsets went backwards: the broker restarted empty and this record went to
                # a topic that no longer exists. Recreate the topics and send it again.
                self.resets += 1
                self._high = {}
                log.warning("broker reset detected by producer", extra={"topic": topic})
                await self._recreate_topics()
            except (KafkaError, TimeoutError) as exc:
                if attempt == 3:
                    raise PublishError(f"broker did not take {event.type}: {exc!r}") from exc
                # The embedded broker may have restarted empty: recreate topics and retry. A
                # broker that just came back may still answer the first retry with an error
                # (its metadata, our connection): the third try comes after fresh metadata.
                log.warning("publish failed, re-checking topics",
                            extra={"error": repr(exc), "attempt": attempt})
                await self._recreate_topics()
                if attempt == 2:
                    await asyncio.sleep(self._settings.retry_backoff_s)
                    with contextlib.suppress(Exception):  # best effort: the send says the rest
                        await asyncio.wait_for(
                            self._producer.client.force_metadata_update(), timeout=timeout)

    async def _recreate_topics(self) -> None:
        try:
            await asyncio.wait_for(
                ensure_topics(self._settings), timeout=self._settings.request_timeout_s
            )
        except Exception as exc:  # noqa: BLE001 - any failure here means "not durable"
            raise PublishError(f"broker unreachable: {exc!r}") from exc


async def publish_retrying(publisher: Publisher, topic: str, event: Event, key: str, *,
                           attempts: int = 8, first_delay_s: float = 0.2,
                           max_delay_s: float = 5.0) -> None:
    """Publish a fact that must get out even while the broker restarts (an archive's
    StudyArchived, a volume's facts): ``attempts`` tries, the delay between them doubling from
    ``first_delay_s`` up to ``max_delay_s``; the last failure is raised. The event keeps its
    id, so a retry that did reach the broker is one fact to every consumer."""
    waits = backoff(first_delay_s, max_delay_s)
    for attempt in range(attempts):
        try:
            await publisher.publish(topic, event, key=key)
            return
        except Exception:  # PublishError: the broker may be restarting
            if attempt == attempts - 1:
                raise
            log.warning("publish failed, retrying", extra={"topic": topic})
            await asyncio.sleep(next(waits))
