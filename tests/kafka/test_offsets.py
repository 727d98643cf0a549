"""Offsets and partitions on Apache Kafka, from fresh clients (a defect found here).

``partitions_of`` refreshed metadata with ``consumer.topics()``, which drops what it
fetches; on the embedded broker a fresh consumer knew every topic anyway, on Apache Kafka
none, and the worker's state tables, ``cdrveil replay`` and the demo said the topics did not
exist.
"""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.shell.kafka_cluster import KafkaCluster
from pipeline.shell.offsets import committed_offsets, log_end_offsets, partitions_of
from pipeline.shell.topics import TopicNames, create_topics
from soak.harness import publish
from tests.support.apache_kafka import POLICY, kafka_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_fresh_consumer_finds_every_partition_and_the_log_ends(
    kafka: KafkaCluster,
) -> None:
    """partitions_of, log_end_offsets and committed_offsets see the topics just made."""
    settings = kafka_settings(kafka, "off")
    await create_topics(settings, POLICY)
    names = TopicNames(settings.topic_prefix)
    await publish(settings, [(names.consent, b"46700000001", b"{}")] * 5)
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs("cdrveil-test"))
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [names.consent, names.warrants])
    finally:
        await consumer.stop()
    assert len(tps) == 2 * settings.partitions
    ends = await log_end_offsets(settings, [names.consent])
    assert sum(ends.values()) == 5
    done = await committed_offsets(settings, settings.group_id, list(names.inputs))
    assert len(done) == 2 * settings.partitions
    assert set(done.values()) == {0}
