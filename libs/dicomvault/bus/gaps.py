"""Offset gaps: never step over a record the broker has not shown yet.

A partition's offsets are consecutive on a topic without compaction or transactions (the
archive's topics have neither). The embedded Tansu broker (0.6, memory storage) breaks that
when several producers write to one partition at once — two gateway workers, or several
gateway pods: a fetch can return offset n+9 before n+1..n+8 of the other producer's request
are visible (measured: 2 gaps of 8 records in 10,000 with two producers). A consumer that
takes what it got moves its position past the missing records and commits beyond them; they
are never delivered to it, although the broker holds them a millisecond later.

``OffsetGaps.trim`` checks each partition's fetched records against the offset that must come
next and cuts the fetch at the first missing one; the loop seeks back there and fetches again.
A gap that is still there after ``grace_s`` is real (a topic someone compacted, records
deleted): it is logged at WARNING and stepped over, so a consumer is never stuck for good.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka import ConsumerRecord, TopicPartition

log = logging.getLogger(__name__)

Batches = dict[TopicPartition, list[ConsumerRecord]]


class OffsetGaps:
    """The next offset expected per partition, and the gaps being waited out."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._next: dict[TopicPartition, int] = {}
        self._waiting: dict[TopicPartition, tuple[int, float]] = {}  # tp -> (offset, since)
        self.held = 0  # fetches cut at a gap, for tests and logs
        self.skipped = 0  # records given up on after the grace

    def expect(self, tp: TopicPartition, offset: int) -> None:
        """``offset`` comes next on ``tp`` (its committed offset when it was assigned)."""
        self._next[tp] = offset

    def knows(self, tp: TopicPartition) -> bool:
        return tp in self._next

    def forget(self, tps: Iterable[TopicPartition] | None = None) -> None:
        """Partitions revoked (all of them when ``tps`` is None): their next offset is unknown."""
        for tp in list(self._next) if tps is None else tps:
            self._next.pop(tp, None)
            self._waiting.pop(tp, None)

    def trim(self, batches: Batches, now: float) -> dict[TopicPartition, int]:
        """Cut ``batches`` (in place) before each partition's first missing offset; the
        offsets to fetch those partitions from again. A partition's first fetch sets what
        comes next (its records are taken as they are)."""
        seek: dict[TopicPartition, int] = {}
        for tp, records in list(batches.items()):
            expected = self._next.get(tp, records[0].offset)
            keep = len(records)
            for i, record in enumerate(records):
                if record.offset > expected and not self._give_up(tp, expected, record.offset,
                                                                  now):
                    keep = i
                    break
                expected = record.offset + 1
            else:
                self._waiting.pop(tp, None)
            self._next[tp] = expected
            if keep < len(records):
                seek[tp] = expected
                self.held += 1
                if keep:
                    batches[tp] = records[:keep]
                else:
                    del batches[tp]
        return seek

    def _give_up(self, tp: TopicPartition, missing: int, found: int, now: float) -> bool:
        offset, since = self._waiting.get(tp, (None, now))
        if offset != missing:
            self._waiting[tp] = (missing, now)
            since = now
        if now - since < self.grace_s:
            return False
        self._waiting.pop(tp, None)
        self.skipped += found - missing
        log.warning("offsets missing from a partition for longer than the grace: stepping "
                    "over them", extra={"topic": tp.topic, "partition": tp.partition,
                                        "first": missing, "last": found - 1,
                                        "grace_s": self.grace_s})
        return True
