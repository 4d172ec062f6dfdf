"""The publisher's partitioner puts every key where Kafka's default partitioner does: one
study's facts stay on one partition, whichever service (or version) publishes them."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from dicomvault.bus.partitioner import MAX_KEYS, KeyPartitioner


@given(st.lists(st.binary(max_size=80), min_size=1, max_size=50),
       st.integers(min_value=1, max_value=64))
def test_same_partition_as_kafkas_default(keys: list[bytes], count: int) -> None:
    partitions = list(range(count))
    ours, default = KeyPartitioner(), DefaultPartitioner()
    for _ in range(2):  # the second time from its table
        for key in keys:
            assert ours(key, partitions, partitions) == default(key, partitions, partitions)


def test_a_topic_with_more_partitions_maps_keys_anew() -> None:
    ours, default = KeyPartitioner(), DefaultPartitioner()
    keys = [f"1.2.826.0.1.{n}".encode() for n in range(200)]
    for count in (4, 12, 4):
        partitions = list(range(count))
        assert [ours(k, partitions, partitions) for k in keys] == \
            [default(k, partitions, partitions) for k in keys]


def test_the_table_stays_bounded() -> None:
    ours = KeyPartitioner()
    partitions = list(range(4))
    for n in range(MAX_KEYS * 3):
        ours(f"study-{n}".encode(), partitions, partitions)
    assert len(ours._index) <= MAX_KEYS


def test_records_without_a_key_are_spread() -> None:
    ours = KeyPartitioner()
    partitions = list(range(4))
    assert {ours(None, partitions, partitions) for _ in range(400)} == set(partitions)
