"""Every message of some topics, read back from their beginning to their end.

The end of each partition is taken once, at the start, from the high-water marks of fetch
answers (:func:`pipeline.shell.offsets.log_end_offsets`: tansu's ``ListOffsets`` answers
low). Then every message below it is read and counted: a count is never taken from
offsets, which on tansu undercount what a consumer reads. A partition is done when the
consumer's position reaches its end, which also holds where offsets have gaps (transaction
markers on Apache Kafka).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.settings import Settings
from pipeline.shell.offsets import log_end_offsets, partitions_of

#: A received message (aiokafka's ``ConsumerRecord``; typed loosely, as aiokafka is).
Message = Any


def _reader(settings: Settings, client_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **settings.kafka_client_kwargs(client_id),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=8 << 20,
        # Exactly-once outputs count only once committed; aborted attempts are not outputs.
        isolation_level=(
            "read_committed"
            if settings.processing_guarantee == "exactly_once"
            else "read_uncommitted"
        ),
    )


async def scan(
    settings: Settings,
    topics: Sequence[str],
    visit: Callable[[Message], None],
    max_wait: float = 300.0,
    client_id: str = "cdrveil-reader",
) -> int:
    """Call ``visit`` on every message now in ``topics``, in partition order; how many.

    Raises :class:`TimeoutError` if reading takes longer than ``max_wait`` seconds.
    """
    ends = await log_end_offsets(settings, list(topics))
    wanted: dict[TopicPartition, int] = {tp: end for tp, end in ends.items() if end > 0}
    if not wanted:
        return 0
    consumer = _reader(settings, client_id)
    await consumer.start()
    seen = 0
    try:
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        remaining = dict(wanted)
        deadline = time.monotonic() + max_wait
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=50_000)
            for tp, messages in batch.items():
                end = wanted[tp]
                for message in messages:
                    if message.offset < end:
                        visit(message)
                        seen += 1
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
            if remaining and time.monotonic() > deadline:
                raise TimeoutError(
                    f"reading {len(topics)} topics back took longer than {max_wait:.0f} s"
                )
    finally:
        await consumer.stop()
    return seen


async def read_all(
    settings: Settings, topics: Sequence[str], max_wait: float = 300.0
) -> list[Message]:
    """Every message now in ``topics``, read from the beginning."""
    messages: list[Message] = []
    await scan(settings, topics, messages.append, max_wait)
    return messages


async def read_settled(
    settings: Settings,
    topics: Sequence[str],
    expected: int,
    idle: float = 0.5,
    max_wait: float = 30.0,
) -> list[Message]:
    """Every message of ``topics``: at least ``expected``, then until ``idle`` s pass quietly.

    For output that is still being written: waiting past the expected count is what lets a
    caller see a repeated message. Raises :class:`TimeoutError` after ``max_wait`` seconds.
    """
    consumer = _reader(settings, "cdrveil-reader")
    await consumer.start()
    try:
        # A topic not created has no partitions. Not consumer.topics(): on Apache Kafka its
        # metadata never reaches the consumer's own view (pipeline.shell.offsets).
        tps = await partitions_of(consumer, list(topics), missing_ok=True)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        messages: list[Message] = []
        deadline = time.monotonic() + max_wait
        quiet_since = time.monotonic()
        while len(messages) < expected or time.monotonic() - quiet_since < idle:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                messages += records
            if batch:
                quiet_since = time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(messages)} of {expected} messages in {max_wait:.0f} s")
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return messages
