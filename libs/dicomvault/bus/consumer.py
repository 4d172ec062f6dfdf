"""Consumer loop: ``getmany``, effect, then commit; retries, DLQ, and broker-reset recovery.

The handler is the service's ``policy(event)``: it performs the effect and returns only when
the effect is durable; the loop then commits the offset. Delivery is at least once, so
handlers are idempotent on ``event.id``.

Batch mode (``batch_handler``): the decodable records of one ``getmany`` (up to
``max_records``, from every assigned partition, each partition's records in offset order) go
to one call of ``batch_handler(events)``, which must apply all of them or none (one
transaction); the offsets of the whole fetch are committed only after it returned. A
``TransientError`` retries the whole batch, without limit, like a record's. Any other
exception makes the loop fall back to the per-record ``handler`` for the same records, so one
bad record never blocks a batch forever and the failure rules below hold record by record,
exactly as without batching.

``fetch_min_bytes`` / ``fetch_max_wait_ms``: the broker answers a fetch once that many bytes
are there or that long passed. With Kafka's default of 1 byte every record of a steady trickle
is a fetch of its own, which the embedded broker pays for on every partition the consumer
holds; a few KiB make it gather the trickle (measured in docs/scaling.md).

``batch_linger_ms``: when a fetch brings only a few records (fewer than ``max_records`` / 16),
keep fetching for up to this long, or until that many arrived, before applying: a steady
trickle (one record per fetch under live ingest) still becomes batches, and the
per-transaction cost (commit, lookups, an fsync on SQLite) is shared by the records of the
wait, at the price of that much latency. A backlog never waits: its fetches are large, and
applying one while the next is fetched is what makes a drain fast. 0 applies each fetch at
once.

Failures:
- ``TransientError`` (database or peer unreachable): retried with backoff, without limit;
  the partition does not advance, nothing goes to the DLQ.
- ``PermanentError`` or an undecodable record: straight to the DLQ.
- any other exception: retried ``max_attempts`` times, then to the DLQ with its error.

Offset gaps (``bus.offset_gap_grace_s``): a fetch that skips offsets is cut at the first
missing one and that partition is fetched again from there, so a record the broker shows late
(Tansu with several producers on one partition) is never stepped over; see ``gaps``.

Broker reset: the embedded Tansu broker keeps everything in memory. After it restarts,
a consumer's positions point past the new logs and its committed offsets are gone. Every
``health_check_interval_s`` the loop compares positions with end offsets and committed
offsets with what it committed; on a mismatch it recreates the topics and rejoins from the
beginning (handlers de-duplicate what they already applied).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from dicomvault.bus.gaps import OffsetGaps
from dicomvault.bus.publisher import Publisher
from dicomvault.bus.topics import ensure_topics
from dicomvault.events import EnvelopeError, Event
from dicomvault.retry import backoff
from dicomvault.settings import BusSettings

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]
BatchHandler = Callable[[list[Event]], Awaitable[None]]


class TransientError(RuntimeError):
    """An infrastructure failure: retry the same record later, never dead-letter it."""


class PermanentError(RuntimeError):
    """The record can never be applied: dead-letter it at once."""


class _Rejoin(Exception):
    """Internal: leave the group and start a fresh consumer."""


class ConsumerLoop:
    """Runs one consumer group member until ``stop()``."""

    def __init__(
        self,
        settings: BusSettings,
        *,
        group_id: str,
        topics: list[str],
        handler: Handler,
        dlq: Publisher,
        client_id: str,
        on_record: Callable[[str, str], None] | None = None,
        batch_handler: BatchHandler | None = None,
        max_records: int = 500,
        fetch_max_wait_ms: int = 500,
        fetch_min_bytes: int = 1,
        batch_linger_ms: int = 0,
    ) -> None:
        self._s = settings
        self._group_id = group_id
        self._topics = topics
        self._handler = handler
        self._batch_handler = batch_handler
        self._max_records = max_records
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._fetch_min_bytes = fetch_min_bytes
        self._linger_s = batch_linger_ms / 1000
        self.batch_fallbacks = 0  # batches re-run record by record, for tests and logs
        self._dlq = dlq
        self._client_id = client_id
        self._on_record = on_record or (lambda _type, _outcome: None)
        self._stopping = asyncio.Event()
        self._committed: dict[TopicPartition, int] = {}
        self.gaps = OffsetGaps(settings.offset_gap_grace_s)
        self.resets = 0  # broker resets survived, for tests and metrics
        self.ready = asyncio.Event()  # set once partitions are assigned

    def stop(self) -> None:
        self._stopping.set()

    def _backoff(self) -> Iterator[float]:
        """The waits between tries: doubling from ``retry_backoff_s`` up to its max."""
        return backoff(self._s.retry_backoff_s, self._s.retry_backoff_max_s)

    async def run(self) -> None:
        waits = self._backoff()  # between reconnections, for the loop's whole life
        delay = next(waits)
        while not self._stopping.is_set():
            consumer = self._make_consumer()
            try:
                await consumer.start()
                consumer.subscribe(self._topics, listener=_Forget(self.gaps))
                await self._consume(consumer)  # returns only once stopping
            except _Rejoin:
                self.resets += 1
                log.warning("broker reset detected: rejoining from the beginning",
                            extra={"group": self._group_id})
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # our own task was cancelled: end
                    raise
                log.warning("consumer call cancelled under us, reconnecting",
                            extra={"group": self._group_id})
                await self._sleep(delay)
            except Exception as exc:  # noqa: BLE001 - only stop() ends the loop
                log.warning("consumer error, reconnecting",
                            extra={"group": self._group_id, "error": repr(exc)[:300]})
                await self._sleep(delay)
                delay = next(waits)
            finally:
                self.ready.clear()
                try:
                    await asyncio.wait_for(consumer.stop(), timeout=10)
                except Exception:  # noqa: BLE001 - a dead broker may make stop fail
                    log.debug("consumer stop failed", exc_info=True)

    def _make_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._s.bootstrap_servers,
            group_id=self._group_id,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._s.session_timeout_ms,
            heartbeat_interval_ms=max(1000, self._s.session_timeout_ms // 4),
            request_timeout_ms=int(self._s.request_timeout_s * 1000) + 5000,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            fetch_max_wait_ms=self._fetch_max_wait_ms,
            fetch_min_bytes=self._fetch_min_bytes,
        )

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        await ensure_topics(self._s, [*self._topics, self._s.topics.dlq])
        self._committed.clear()
        self.gaps.forget()
        next_check = time.monotonic() + self._s.health_check_interval_s
        while not self._stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=self._max_records)
            if batches and self._batch_handler is not None and self._linger_s > 0:
                await self._linger(consumer, batches)
            if batches and await self._hold_gaps(consumer, batches):
                await self._sleep(0.005)  # the missing records are a produce request away
            if consumer.assignment():
                self.ready.set()
            skip: set[tuple[TopicPartition, int]] = set()  # already dead-lettered
            if self._batch_handler is not None and batches:
                if self._stopping.is_set():
                    return
                skip = await self._process_batch(batches)
                if skip is None:  # applied: commit the whole fetch
                    offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
                    await consumer.commit(offsets)
                    self._committed.update(offsets)
                    batches = {}
            for tp, records in batches.items():
                for record in records:
                    if self._stopping.is_set():
                        return
                    if (tp, record.offset) not in skip:
                        await self._process(record)
                offset = records[-1].offset + 1
                await consumer.commit({tp: offset})
                self._committed[tp] = offset
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self._s.health_check_interval_s
                reason = await self._broker_was_reset(consumer)
                if reason:
                    log.warning("broker reset suspected", extra={"group": self._group_id,
                                                                  "reason": reason})
                    await ensure_topics(self._s, [*self._topics, self._s.topics.dlq])
                    # Forget positions: a fresh member starts from the beginning of each log.
                    raise _Rejoin()

    async def _hold_gaps(self, consumer: AIOKafkaConsumer,
                         batches: dict[TopicPartition, list[ConsumerRecord]]) -> bool:
        """Cut ``batches`` at missing offsets and seek back to them (see ``gaps``); True when
        something was cut. A partition's first fetch is checked from its committed offset."""
        for tp in batches:
            if not self.gaps.knows(tp):
                committed = await consumer.committed(tp)
                if committed is not None:
                    self.gaps.expect(tp, committed)
        seek = self.gaps.trim(batches, time.monotonic())
        for tp, offset in seek.items():
            log.info("offset gap: fetching the partition again from the missing offset",
                     extra={"group": self._group_id, "topic": tp.topic,
                            "partition": tp.partition, "offset": offset})
            consumer.seek(tp, offset)
        return bool(seek)

    async def _linger(self, consumer: AIOKafkaConsumer,
                      batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Add what arrives within ``batch_linger_ms`` to ``batches`` (in place, each
        partition's records still in offset order), until ``max_records`` / 16 are there."""
        count = sum(len(records) for records in batches.values())
        enough = max(1, self._max_records // 16)
        deadline = time.monotonic() + self._linger_s
        while count < enough and not self._stopping.is_set():
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                return
            more = await consumer.getmany(timeout_ms=remaining_ms,
                                          max_records=self._max_records - count)
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                count += len(records)

    async def _broker_was_reset(self, consumer: AIOKafkaConsumer) -> str:
        """Why we think the broker came back empty ('' when it did not).

        Signals: the group forgot an offset that it had (ours, or one it gave us at
        assignment), or a partition we hold a position in is empty again. A position merely
        beyond the end offset is no signal: Tansu's end offset can lag by a record or two
        when several producers write to one partition at once.
        """
        assigned = list(consumer.assignment())
        if not assigned:
            return ""
        try:
            ends = await consumer.end_offsets(assigned)
            for tp in assigned:
                position = await consumer.position(tp)
                if position > 0 and ends.get(tp, 0) == 0:
                    return f"{tp.topic}/{tp.partition}: empty, but our position is {position}"
                known = self._committed.get(tp)
                theirs = await consumer.committed(tp)
                if known and (theirs is None or theirs < known):
                    return f"{tp.topic}/{tp.partition}: committed {theirs} < known {known}"
                if theirs is not None and (known is None or theirs > known):
                    self._committed[tp] = theirs
        except KafkaError as exc:
            log.warning("health check failed", extra={"error": repr(exc)})
        return ""

    async def _process_batch(
        self, batches: dict[TopicPartition, list[ConsumerRecord]]
    ) -> set[tuple[TopicPartition, int]] | None:
        """One call of the batch handler for a whole fetch: None when it applied every record,
        else the records already dead-lettered here, and the caller goes record by record.

        Undecodable records are dead-lettered here, as ``_process`` would; the rest reach the
        handler in fetch order (per partition, in offset order)."""
        events: list[Event] = []
        dead: set[tuple[TopicPartition, int]] = set()
        for tp, records in batches.items():
            for record in records:
                try:
                    events.append(Event.from_record(record.value, record.headers))
                except EnvelopeError as exc:
                    await self._dead_letter(record, f"EnvelopeError: {exc}")
                    self._on_record("unknown", "dead_lettered")
                    dead.add((tp, record.offset))
        if not events:
            return None
        for delay in self._backoff():
            try:
                await self._batch_handler(events)
                break
            except TransientError as exc:
                # Infrastructure trouble holds up every record alike: retry the whole batch
                # without limit (record by record would then crawl through it).
                log.warning("transient failure of a batch, will retry",
                            extra={"group": self._group_id, "records": len(events),
                                   "error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - the per-record path applies the rules
                self.batch_fallbacks += 1
                log.warning("batch failed, applying its records one by one",
                            extra={"group": self._group_id, "records": len(events),
                                   "error": repr(exc)})
                return dead
            if self._stopping.is_set():
                raise _Rejoin()  # leave without committing; the records are redelivered
            await self._sleep(delay)
        for event in events:
            self._on_record(event.type, "applied")
        return None

    async def _process(self, record: ConsumerRecord) -> None:
        try:
            event = Event.from_record(record.value, record.headers)
        except EnvelopeError as exc:
            await self._dead_letter(record, f"EnvelopeError: {exc}")
            self._on_record("unknown", "dead_lettered")
            return
        attempt = 0
        for delay in self._backoff():
            attempt += 1
            try:
                await self._handler(event)
                self._on_record(event.type, "applied")
                return
            except TransientError as exc:
                log.warning("transient failure, will retry",
                            extra={"ce_id": event.id, "error": str(exc)})
                attempt = 0  # never dead-letter for infrastructure trouble
            except PermanentError as exc:
                await self._dead_letter(record, f"PermanentError: {exc}")
                self._on_record(event.type, "dead_lettered")
                return
            except Exception as exc:  # noqa: BLE001 - any handler bug is retried, then DLQ
                log.exception("handler failed", extra={"ce_id": event.id, "attempt": attempt})
                if attempt >= self._s.max_attempts:
                    await self._dead_letter(record, f"{type(exc).__name__}: {exc}")
                    self._on_record(event.type, "dead_lettered")
                    return
            if self._stopping.is_set():
                raise _Rejoin()  # leave without committing; the record is redelivered
            await self._sleep(delay)

    async def _dead_letter(self, record: ConsumerRecord, error: str) -> None:
        """Copy the record to the DLQ with where it came from and why it failed."""
        headers = list(record.headers or ()) + [
            ("dlq_error", error.encode("utf-8", "replace")[:4000]),
            ("dlq_topic", record.topic.encode()),
            ("dlq_partition", str(record.partition).encode()),
            ("dlq_offset", str(record.offset).encode()),
            ("dlq_group", self._group_id.encode()),
        ]
        await self._dlq.send_raw(self._s.topics.dlq, record.value, record.key, headers)
        log.error("record dead-lettered", extra={"topic": record.topic, "offset": record.offset,
                                                 "error": error})

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass


class _Forget(ConsumerRebalanceListener):
    """A rebalance makes the next offset of the partitions it moves unknown."""

    def __init__(self, gaps: OffsetGaps) -> None:
        self._gaps = gaps

    def on_partitions_revoked(self, revoked) -> None:
        self._gaps.forget(revoked)

    def on_partitions_assigned(self, assigned) -> None:
        self._gaps.forget(assigned)
