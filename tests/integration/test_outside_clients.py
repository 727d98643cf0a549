"""Operators' tools on the embedded broker: a current librdkafka client (confluent-kafka).

Debian's ``kcat`` (1.7.1, librdkafka 2.0.2) cannot talk to tansu 0.6.0 at all: its
ApiVersionRequest fails ("Read underflow"), with or without ``api.version.request=false``.
librdkafka 2.16 (confluent-kafka from PyPI, pinned in the dev extra) can: admin calls,
produce, consume in a group and commit work; its end offsets (``get_watermark_offsets``,
a ListOffsets request) undercount, as aiokafka's do, so tools count by reading.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.harness import read_all
from pipeline.settings import Settings

# Checks the embedded broker itself (on Apache Kafka, librdkafka is at home).
pytestmark = pytest.mark.embedded_only

PARTITIONS = 4
COUNT = 200


def make_topic(bootstrap: str) -> str:
    """A new topic of this test, created with librdkafka's admin client."""
    topic = f"outside-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(timeout=15)
    metadata = admin.list_topics(topic, timeout=15)
    assert len(metadata.topics[topic].partitions) == PARTITIONS
    return topic


def produce(bootstrap: str, topic: str) -> list[Any]:
    """COUNT keyed messages with a header; the delivery errors (none expected)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    errors: list[Any] = []

    def delivered(error: Any, _message: Message) -> None:
        if error is not None:
            errors.append(error)

    for i in range(COUNT):
        producer.produce(
            topic, value=b"v%d" % i, key=b"k%d" % i, headers=[("h", b"x")], on_delivery=delivered
        )
    assert producer.flush(30) == 0
    return errors


def consume(bootstrap: str, topic: str, group: str) -> tuple[list[Message], Consumer]:
    """Every message of ``topic``, read in consumer group ``group`` (the consumer, open)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + 60
    while len(messages) < COUNT and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        assert message.error() is None, message.error()
        messages.append(message)
    return messages, consumer


def test_librdkafka_creates_produces_consumes_in_a_group_and_commits(settings: Settings) -> None:
    bootstrap = settings.bootstrap_servers
    topic = make_topic(bootstrap)

    assert produce(bootstrap, topic) == []
    messages, consumer = consume(bootstrap, topic, f"outside-{topic}")
    try:
        assert sorted(m.value() for m in messages) == sorted(b"v%d" % i for i in range(COUNT))
        assert {tuple(m.headers() or []) for m in messages} == {(("h", b"x"),)}
        consumer.commit(asynchronous=False)
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = consumer.committed(parts, timeout=15)
        assert sum(tp.offset for tp in committed) == COUNT
    finally:
        consumer.close()


def test_what_librdkafka_writes_the_pipeline_reads(settings: Settings) -> None:
    bootstrap = settings.bootstrap_servers
    topic = make_topic(bootstrap)
    produce(bootstrap, topic)

    messages = asyncio.run(read_all(settings, [topic]))

    assert sorted(m.key for m in messages) == sorted(b"k%d" % i for i in range(COUNT))


def test_librdkafka_end_offsets_undercount_on_the_embedded_broker(settings: Settings) -> None:
    """Known and documented (README): a lag or count from end offsets is wrong here; if this
    starts failing, tansu answers ListOffsets right and the README can say so."""
    bootstrap = settings.bootstrap_servers
    topic = make_topic(bootstrap)
    produce(bootstrap, topic)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"outside-{topic}"})
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = [consumer.get_watermark_offsets(tp, timeout=15)[1] for tp in parts]
    finally:
        consumer.close()
    read = asyncio.run(read_all(settings, [topic]))

    assert len(read) == COUNT
    assert sum(ends) < COUNT
