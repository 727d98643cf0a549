"""OutputBatch and await_delivery against the embedded broker and the real aiokafka producer.

Messages go into record batches as they are added, and those record batches are what a
resend hands over again: these tests check that a resent batch arrives whole and
byte-identical, that full batches roll over without losing order, and that every key lands
in the partition Kafka's default partitioner gives it.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from pipeline.harness import read_all
from pipeline.settings import Settings
from pipeline.shell.produce import OutputBatch, Partitioner, await_delivery
from pipeline.shell.topics import TopicNames, create_topics
from tests.support.kafka import POLICY

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _placed(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


async def _topic(settings: Settings) -> str:
    """A fresh topic of this test's (the billing topic under the test's own prefix)."""
    await create_topics(settings, POLICY)
    return TopicNames(settings.topic_prefix)(POLICY.routes["billing"].topic)


async def _batch_for(
    settings: Settings, producer: AIOKafkaProducer
) -> tuple[str, Partitioner, OutputBatch]:
    """A fresh topic, a partitioner that knows its partition count, and an empty batch."""
    topic = await _topic(settings)
    partitioner = Partitioner()
    await partitioner.learn(producer, topic)
    return topic, partitioner, OutputBatch(partitioner, producer)


def _messages(count: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    return [
        (f"key-{i}".encode(), f"value-{i}".encode() * 3, [("n", str(i).encode()), ("h", b"x")])
        for i in range(count)
    ]


async def test_a_resent_partition_arrives_again_whole_and_byte_identical(
    settings: Settings, producer: AIOKafkaProducer
) -> None:
    topic, partitioner, batch = await _batch_for(settings, producer)
    messages = _messages(200)
    for key, value, headers in messages:
        batch.add(topic, key, value, headers)
    sends = await batch.send(producer)
    assert sum(send.count for send in sends) == len(messages)
    await asyncio.gather(*(f for send in sends for f in send.futures))

    # One partition's delivery "failed": await_delivery hands its record batches over again.
    failed = sends[0]
    lost: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    lost.set_exception(ConnectionResetError("simulated"))
    failed.futures.append(lost)
    assert await await_delivery(producer, sends) == 1

    records = await read_all(settings, [topic])
    seen = Counter((r.partition, r.key, r.value, tuple(r.headers)) for r in records)
    expected = {
        (_placed(key, partitioner.counts[topic]), key, value, tuple(headers))
        for key, value, headers in messages
    }
    assert set(seen) == expected
    twice = {entry for entry, n in seen.items() if n == 2}
    assert {entry[0] for entry in twice} == {failed.partition}
    assert len(twice) == failed.count
    assert all(n == 1 for entry, n in seen.items() if entry not in twice)


# Apache Kafka refuses the 1.5 MB message by default (message.max.bytes, ~1 MiB); the
# worker's outputs are bounded by max_record_bytes (64 KiB) long before that.
@pytest.mark.embedded_only
async def test_full_record_batches_roll_over_in_order(
    settings: Settings, producer: AIOKafkaProducer
) -> None:
    topic, partitioner, batch = await _batch_for(settings, producer)
    key = b"one-key"  # every message to one partition
    big = b"v" * 200_000  # five or so fill a 1 MiB record batch
    for i in range(12):
        batch.add(topic, key, big + str(i).encode(), [])
    batch.add(topic, key, b"w" * 1_500_000, [])  # larger than a record batch: one of its own
    sends = await batch.send(producer)
    assert len(sends) == 1
    assert len(sends[0].builders) >= 3
    assert sends[0].count == 13
    assert await await_delivery(producer, sends) == 0

    records = await read_all(settings, [topic])
    assert [r.value[-2:].lstrip(b"v") for r in records[:12]] == [str(i).encode() for i in range(12)]
    assert len(records[12].value) == 1_500_000
    assert {r.partition for r in records} == {_placed(key, partitioner.counts[topic])}


async def test_the_first_batch_learns_partition_counts_and_keyless_messages_spread(
    settings: Settings, producer: AIOKafkaProducer
) -> None:
    topic = await _topic(settings)
    batch = OutputBatch(Partitioner(), producer)  # the topic's partition count not known yet
    for i in range(64):
        batch.add(topic, None, f"keyless-{i}".encode(), [])
    assert await await_delivery(producer, await batch.send(producer)) == 0
    per_partition: defaultdict[int, int] = defaultdict(int)
    for record in await read_all(settings, [topic]):
        per_partition[record.partition] += 1
    assert sum(per_partition.values()) == 64
    assert len(per_partition) == settings.partitions  # round-robin reaches every partition
