"""Log-end and committed offsets: how far the topics go, and how far a group has come.

The embedded broker (tansu 0.6.0) answers ``ListOffsets(latest)`` with the base offset of
the partition's last record *batch* + 1, not the log end: after one batch of ten records it
says 1, where the truth is 10. The high-water mark in a ``Fetch`` answer is right, so the
end of a partition is read from there; on Apache Kafka both agree.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.errors import BrokerError
from pipeline.settings import Settings


async def partitions_of(
    consumer: AIOKafkaConsumer, topics: list[str], missing_ok: bool = False
) -> list[TopicPartition]:
    """Every partition of ``topics``; a :class:`BrokerError` names a missing topic (or, with
    ``missing_ok``, a missing topic has no partitions)."""
    tps = []
    every: Any = None
    for topic in topics:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            # Not consumer.topics(): it fetches every topic's metadata into a copy it then
            # drops, so the consumer's own view stays as it was. On the embedded broker
            # that view held every topic once started; on Apache Kafka it holds none, and
            # every topic looked missing.
            if every is None:
                every = await consumer._client.fetch_all_metadata()
            parts = every.partitions_for_topic(topic)
        if not parts:
            if missing_ok:
                continue
            raise BrokerError(
                f"topic {topic} does not exist; create the topics with `cdrveil topics create`"
            )
        tps += [TopicPartition(topic, p) for p in sorted(parts)]
    return tps


async def high_water_marks(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], max_wait: float = 30.0
) -> dict[TopicPartition, int]:
    """The log end of each partition, from fetch answers (see the module docstring).

    ``consumer`` must have ``tps`` assigned; it reads (and skips) up to one record per
    call, so use a consumer whose position does not matter.
    """
    marks: dict[TopicPartition, int] = {}
    deadline = time.monotonic() + max_wait
    while len(marks) < len(tps):
        await consumer.getmany(*tps, timeout_ms=100, max_records=1)
        for tp in tps:
            mark = consumer.highwater(tp)
            if mark is not None and tp not in marks:
                marks[tp] = mark
        if time.monotonic() > deadline:
            raise BrokerError("no fetch answer from Kafka while reading the end of the topics")
    return marks


async def log_end_offsets(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    """The current end offset of every partition of ``topics``."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs("cdrveil-offsets"),
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=1024,
    )
    try:
        await consumer.start()
        tps = await partitions_of(consumer, topics)
        consumer.assign(tps)
        # Start near the end: ListOffsets errs low on tansu, never high, so a fetch from
        # there transfers little and still carries the true high-water mark.
        await consumer.seek_to_end(*tps)
        return await high_water_marks(consumer, tps)
    finally:
        await consumer.stop()


async def committed_offsets(
    settings: Settings, group_id: str, topics: list[str]
) -> dict[TopicPartition, int]:
    """The offsets ``group_id`` has committed on ``topics`` (0 where nothing is committed)."""
    # Not the admin client's list_consumer_group_offsets: tansu answers its "every
    # partition" form with a frame aiokafka cannot decode. Asking per partition works.
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs("cdrveil-offsets"),
        group_id=group_id,
        enable_auto_commit=False,
    )
    try:
        await consumer.start()
        tps = await partitions_of(consumer, topics)
        consumer.assign(tps)  # manual assignment: reads the group's offsets, never joins it
        return {tp: (await consumer.committed(tp)) or 0 for tp in tps}
    finally:
        await consumer.stop()


async def wait_until_committed(
    settings: Settings,
    group_id: str,
    topics: list[str],
    max_wait: float = 60.0,
    poll: float = 0.2,
) -> dict[TopicPartition, int]:
    """Wait until ``group_id`` has committed every partition of ``topics`` up to its end.

    Returns the end offsets; raises :class:`TimeoutError` with the remaining lag.
    """
    ends = await log_end_offsets(settings, topics)
    deadline = time.monotonic() + max_wait
    while True:
        done = await committed_offsets(settings, group_id, topics)
        lag = sum(end - done.get(tp, 0) for tp, end in ends.items())
        if lag <= 0:
            return ends
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group_id} still {lag} records behind after {max_wait} s")
        await asyncio.sleep(poll)
