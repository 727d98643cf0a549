"""OutputBatch without a broker: a dry run counts, and keys are placed as Kafka places them."""

from __future__ import annotations

import random

from aiokafka.partitioner import murmur2 as kafka_murmur2

from pipeline.shell.produce import OutputBatch, Partitioner, murmur2


def test_a_dry_run_batch_counts_without_a_producer() -> None:
    batch = OutputBatch(Partitioner(), None)
    for i in range(5):
        batch.add("any-topic", f"k{i}".encode(), b"v", [("h", b"1")])
    assert batch.size == 5


def test_murmur2_gives_the_java_clients_partition_for_every_key_length() -> None:
    rng = random.Random(7)
    for length in range(0, 40):
        for _ in range(20):
            key = rng.randbytes(length)
            assert murmur2(key) & 0x7FFFFFFF == kafka_murmur2(key) & 0x7FFFFFFF, key


def test_cached_partitions_are_the_ones_kafka_gives() -> None:
    partitioner = Partitioner()
    keys = [f"subscriber-{i}".encode() for i in range(50)]
    first = [partitioner.partition(key, 8) for key in keys]
    assert [partitioner.partition(key, 8) for key in keys] == first  # from the cache now
    assert first == [(kafka_murmur2(key) & 0x7FFFFFFF) % 8 for key in keys]
