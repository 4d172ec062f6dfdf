"""Publisher: an aiokafka producer with acks=all that sends CloudEvents records.

``publish`` returns only when the broker has the record (acks=all); any failure raises
PublishError so that the caller can refuse what it was about to acknowledge.

Each ``publish`` waits for its own record's acknowledgement, so batching in the producer's
accumulator gains nothing there and costs a round of tasks and futures per record (its
sender task, batch futures, ``asyncio.wait`` over in-flight requests: ~0.15 ms of CPU per
record measured here, and as many turns of the event loop). ``publish`` therefore sends its
record in a ProduceRequest of its own straight to the partition's leader (``_produce``; same
partitioner, same acks and timeout), over a ``ProduceLink`` to that broker: a bare protocol
whose answer wakes the publisher directly (~0.07 ms of CPU per record; through aiokafka's
client and connection, 0.12). Whenever that path cannot decide alone (no metadata for the
topic yet, no leader known, a broker without ProduceRequest v3, a lost link, an error answer),
the record goes through ``send_and_wait`` as before, which waits for metadata and retries;
either way the record counts only once the broker has acknowledged it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, NoError, for_code
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from dicomvault.bus.partitioner import KeyPartitioner
from dicomvault.bus.produce_link import LinkError, ProduceLink, Unsupported
from dicomvault.bus.topics import ensure_topics
from dicomvault.events import Event
from dicomvault.retry import backoff
from dicomvault.settings import BusSettings

log = logging.getLogger(__name__)


# Records above this go through the producer (its size checks); events are a few kB at most.
DIRECT_MAX_BYTES = 1024 * 1024


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
        self._partitioner = KeyPartitioner()
        self.direct_sends = 0  # records acknowledged through ``_produce``
        self._links: dict[int, ProduceLink] = {}  # by broker node id
        self._linking = asyncio.Lock()
        self._no_link: set[int] = set()  # brokers that do not take ProduceRequest v3

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
            partitioner=self._partitioner,
        )
        await self._producer.start()

    async def stop(self) -> None:
        for link in self._links.values():
            link.close()
        self._links = {}
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
                    where, offset = await self._send(topic, value, key_bytes, headers)
                seen = self._high.get(where)
                self._high[where] = offset
                if seen is None or offset > seen:
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

    async def _send(self, topic: str, value: bytes, key: bytes,
                    headers: list[tuple[str, bytes]]) -> tuple[tuple[str, int], int]:
        """((topic, partition), offset) of the acknowledged record: ``_produce`` when it can
        decide alone, else the producer's ``send_and_wait``."""
        assert self._producer is not None
        acked = await self._produce(topic, value, key, headers)
        if acked is not None:
            return acked
        md = await self._producer.send_and_wait(topic, value, key=key, headers=headers)
        return (md.topic, md.partition), md.offset

    async def _produce(self, topic: str, value: bytes, key: bytes,
                       headers: list[tuple[str, bytes]]) -> tuple[tuple[str, int], int] | None:
        """Send one record (acks=all) in its own ProduceRequest to its partition's leader, over
        the ProduceLink to that broker, and return ((topic, partition), offset) once
        acknowledged; None, before or after sending, when the producer has to take it (nothing
        known about the topic or its leader yet, no link to the leader, a record too large, a
        link lost mid-request, an error answer: a record the broker did take is then sent again
        with the same event id, which consumers drop)."""
        assert self._producer is not None
        client = self._producer.client
        cluster = client.cluster
        partitions = cluster.partitions_for_topic(topic)
        if not partitions or len(value) > DIRECT_MAX_BYTES:
            return None
        # The producer's own choice (``AIOKafkaProducer._partition``): same lists, same order.
        partition = self._partitioner(key, list(partitions),
                                      list(cluster.available_partitions_for_topic(topic)))
        leader = cluster.leader_for_partition(TopicPartition(topic, partition))
        if leader is None or leader < 0:
            return None
        link = self._links.get(leader)
        if link is None or link.closed:
            link = await self._link(leader)
            if link is None:
                return None
        # A batch as the producer's accumulator builds it (magic 2, no compression, not
        # transactional), holding one record stamped with the current time.
        builder = DefaultRecordBatchBuilder(2, 0, is_transactional=0, producer_id=-1,
                                            producer_epoch=-1, base_sequence=0,
                                            batch_size=DIRECT_MAX_BYTES * 2)
        builder.append(0, None, key, value, headers)
        try:
            code, offset = await link.produce(topic, partition, bytes(builder.build()),
                                              int(self._settings.request_timeout_s * 1000))
        except LinkError as exc:
            log.info("direct produce failed; the producer retries",
                     extra={"topic": topic, "error": repr(exc)})
            link.close()
            client.force_metadata_update()
            return None
        error = for_code(code)
        if error is NoError:
            self.direct_sends += 1
            return (topic, partition), offset
        log.info("direct produce refused; the producer retries",
                 extra={"topic": topic, "error": error.__name__})
        if getattr(error, "invalid_metadata", False):
            client.force_metadata_update()
        return None

    async def _link(self, node: int) -> ProduceLink | None:
        """The open ProduceLink to broker ``node``, opened now if needed; None when there is
        none to have (unknown address, connection refused, no ProduceRequest v3)."""
        if node in self._no_link or self._producer is None:
            return None
        async with self._linking:  # concurrent first publishes share one link
            link = self._links.get(node)
            if link is not None and not link.closed:
                return link
            broker = self._producer.client.cluster.broker_metadata(node)
            if broker is None:
                return None
            try:
                link = await ProduceLink.open(broker.host, broker.port, self._client_id,
                                              self._settings.request_timeout_s)
            except LinkError as exc:
                log.info("no produce link; the producer's connection carries the records",
                         extra={"node": node, "error": str(exc)})
                if isinstance(exc, Unsupported):
                    self._no_link.add(node)
                return None
            self._links[node] = link
            return link

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
