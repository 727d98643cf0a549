"""The shared harness: reading topics back counts every message, however it was batched."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.harness import read_all, scan
from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_read_back_visits_every_message_once_across_many_small_batches(
    topics: Settings, producer: AIOKafkaProducer
) -> None:
    """200 messages in 20 batches of 10 (tansu's ListOffsets would say far fewer): the
    read-back visits each exactly once, and a second read finds the same."""
    topic = TopicNames(topics.topic_prefix).inputs[0]
    sent = [f"m{i:03d}".encode() for i in range(200)]
    for start in range(0, len(sent), 10):
        batch = [await producer.send(topic, value) for value in sent[start : start + 10]]
        await producer.flush()
        for future in batch:
            await future
    messages = await read_all(topics, [topic])
    assert sorted(m.value for m in messages) == sent
    seen: list[bytes] = []
    assert await scan(topics, [topic], lambda m: seen.append(m.value)) == len(sent)
    assert sorted(seen) == sent
