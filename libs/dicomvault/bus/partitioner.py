"""KeyPartitioner: Kafka's default key → partition mapping, remembered per key.

aiokafka's ``DefaultPartitioner`` hashes every record's key with a pure-Python murmur2 (the
Java client's), about 5 % of a gateway worker's CPU under ingest, while a study's instances
all carry the same key (its Study Instance UID). The same answer is remembered per (key,
partition count): a topic that gains partitions maps keys anew, as the default does.
"""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

MAX_KEYS = 4096  # studies being received at once are far fewer; the table starts over beyond


class KeyPartitioner:
    def __init__(self) -> None:
        self._default = DefaultPartitioner()
        self._index: dict[tuple[bytes, int], int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int],
                 available: list[int]) -> int:
        if key is None:  # spread: the default picks at random
            return self._default(key, all_partitions, available)
        count = len(all_partitions)
        index = self._index.get((key, count))
        if index is None:
            if len(self._index) >= MAX_KEYS:
                self._index.clear()
            index = all_partitions.index(self._default(key, all_partitions, available))
            self._index[(key, count)] = index
        return all_partitions[index]
