"""The worker process on the embedded broker, with a stand-in engine (fake_worker.py)."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import urllib.request
from collections import Counter
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from pipeline.harness import read_all
from pipeline.settings import Settings
from pipeline.shell.broker import EmbeddedBroker, free_port
from pipeline.shell.messages import header
from pipeline.shell.offsets import committed_offsets, log_end_offsets, wait_until_committed
from pipeline.shell.produce import OutputBatch, Partitioner, await_delivery
from pipeline.shell.topics import create_topics
from tests.support.kafka import POLICY, produce

pytestmark = pytest.mark.asyncio(loop_scope="session")

SUBSCRIBER = "46701234567"
TIMESTAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def record(i: int, msisdn: str = SUBSCRIBER) -> bytes:
    """A JSON input the fake engine accepts."""
    return orjson.dumps({"recordId": f"r{i}", "servedMSISDN": msisdn})


def consent(msisdn: str, version: int) -> bytes:
    """A consent state in the portal's format."""
    return orjson.dumps(
        {
            "msisdn": msisdn,
            "purposes": {"marketing": True},
            "version": version,
            "updatedAt": "2026-11-21T05:00:00Z",
        }
    )


async def produce_many(
    producer: AIOKafkaProducer, topic: str, messages: list[tuple[bytes | None, bytes | None]]
) -> None:
    """Bulk-produce with whole record batches (per-message sends are slow for 100k)."""
    batch = OutputBatch(Partitioner(), producer)
    for key, value in messages:
        batch.add(topic, key, value, [])
    await await_delivery(producer, await batch.send(producer))


async def produce_to_partition(
    producer: AIOKafkaProducer, topic: str, partition: int, messages: list[tuple[bytes, bytes]]
) -> None:
    """Bulk-produce ``(key, value)`` pairs into one partition."""
    futures = []
    builder = producer.create_batch()
    for key, value in messages:
        if builder.append(key=key, value=value, timestamp=None) is None:
            futures.append(await producer.send_batch(builder, topic, partition=partition))
            builder = producer.create_batch()
            builder.append(key=key, value=value, timestamp=None)
    futures.append(await producer.send_batch(builder, topic, partition=partition))
    await asyncio.gather(*futures)


def get(url: str) -> tuple[int, bytes]:
    """Status and body of an HTTP GET (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback only
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def ids(records: list[Any]) -> Counter[bytes]:
    """How many outputs each record id has."""
    return Counter(header(r, "cdrveil.record-id") or b"" for r in records)


async def test_outputs_are_produced_bad_input_is_dead_lettered_and_offsets_committed(
    topics: Settings, producer: AIOKafkaProducer, spawn_worker: Any
) -> None:
    settings = topics.replace(web_port=free_port())
    names = settings.topic_prefix
    voice, sms = names + "cdr.voice", names + "cdr.sms"
    await produce(
        producer, names + "consent.state", [(SUBSCRIBER.encode(), consent(SUBSCRIBER, 7))]
    )
    good = [(b"k%d" % i, record(i)) for i in range(20)]
    bad = [
        (b"bad-json", b"{not json"),
        (None, b"\xff\xfe not utf-8"),
        (b"boom", orjson.dumps({"boom": True, "servedMSISDN": SUBSCRIBER})),
        (b"tombstone", None),
    ]
    sent = await produce(producer, voice, good[:10] + bad[:3] + good[10:])
    sent += await produce(producer, sms, bad[3:])
    origin = {
        (m.topic, m.partition, m.offset): msg
        for m, msg in zip(sent, good[:10] + bad[:3] + good[10:] + bad[3:], strict=True)
    }

    worker = spawn_worker(settings)
    await wait_until_committed(settings, settings.group_id, [voice, sms], max_wait=30)

    outputs = await read_all(settings, [names + "traffic.billing"])
    assert ids(outputs) == Counter({b"r%d" % i: 1 for i in range(20)})
    assert {header(r, "cdrveil.consent-version") for r in outputs} == {b"7"}
    assert sorted(r.value for r in outputs) == sorted(v for _, v in good)

    dead = await read_all(settings, [names + "traffic.dead-letter"])
    assert len(dead) == len(bad)
    codes = {}
    for letter in dead:
        source = (
            header(letter, "dlq.source.topic").decode(),  # type: ignore[union-attr]
            int(header(letter, "dlq.source.partition")),  # type: ignore[arg-type]
            int(header(letter, "dlq.source.offset")),  # type: ignore[arg-type]
        )
        key, value = origin[source]
        assert (letter.key, letter.value) == (key, value), "the original bytes, untouched"
        assert TIMESTAMP.match(header(letter, "dlq.timestamp") or b"")
        assert header(letter, "cdrveil.version")
        message = header(letter, "dlq.error.message") or b""
        assert SUBSCRIBER.encode() not in message
        codes[key] = header(letter, "dlq.error.code")
    assert codes == {
        b"bad-json": b"invalid_json",
        None: b"invalid_json",
        b"boom": b"internal_error",
        b"tombstone": b"null_value",
    }

    # Still running after an engine failure, and still processing.
    assert worker.running()
    await produce(producer, voice, [(b"late", record(99))])
    await wait_until_committed(settings, settings.group_id, [voice, sms], max_wait=30)
    assert b"r99" in ids(await read_all(settings, [names + "traffic.billing"]))

    status, body = get(f"http://127.0.0.1:{settings.web_port}/health")
    assert status == 200
    assert orjson.loads(body)["status"] == "ready"
    status, text = get(f"http://127.0.0.1:{settings.web_port}/metrics")
    assert b'cdrveil_dead_letters_total{reason="internal_error"} 1.0' in text
    assert b'cdrveil_records_in_total{topic="cdr.voice"} 24.0' in text

    assert worker.stop(signal.SIGINT) == 0  # Ctrl-C: as clean as SIGTERM
    assert "Traceback" not in worker.log()


async def test_no_record_is_processed_before_the_consent_table_has_caught_up(
    topics: Settings, producer: AIOKafkaProducer, spawn_worker: Any
) -> None:
    settings = topics.replace(session_timeout_ms=1000)  # joins the group in 0.5 s
    names = settings.topic_prefix
    # Loading takes longer than joining the group: 400,000 states in the partition of the
    # subscriber's key, the subscriber's own state last. Keys need not match partitions
    # for a global table.
    key = SUBSCRIBER.encode()
    partition = (murmur2(key) & 0x7FFFFFFF) % settings.partitions
    template = consent("4670000000", 1).replace(b"4670000000", b"%s")
    filler = [(b"4670%07d" % i, template % (b"4670%07d" % i)) for i in range(400_000)]
    await produce_to_partition(producer, names + "consent.state", partition, filler)
    await produce(producer, names + "consent.state", [(key, consent(SUBSCRIBER, 42))])
    await produce(producer, names + "cdr.voice", [(None, record(i)) for i in range(50)])

    worker = spawn_worker(settings)
    await wait_until_committed(settings, settings.group_id, [names + "cdr.voice"], max_wait=60)
    outputs = await read_all(settings, [names + "traffic.billing"])
    assert len(outputs) == 50
    assert {header(r, "cdrveil.consent-version") for r in outputs} == {b"42"}
    assert worker.stop() == 0


async def _mid_stream(
    settings: Settings, producer: AIOKafkaProducer, spawn_worker: Any, sig: int
) -> None:
    names = settings.topic_prefix
    voice, billing = names + "cdr.voice", names + "traffic.billing"
    total = 4000
    await produce_many(producer, voice, [(b"k%d" % i, record(i)) for i in range(total)])
    # ~2,000 records/s: the stop lands in the middle of the stream.
    slow = {"FAKE_ENGINE_DELAY_US": "500"}
    first = spawn_worker(settings, **slow)
    deadline = time.monotonic() + 30
    while sum((await log_end_offsets(settings, [billing])).values()) < 800:
        assert time.monotonic() < deadline and first.running(), first.log()[-3000:]
        await asyncio.sleep(0.1)
    code = first.stop(sig)

    committed = await committed_offsets(settings, settings.group_id, [voice])
    done = sum(committed.values())
    assert 0 < done < total, "the stop should land mid-stream"
    inputs = await read_all(settings, [voice])
    before = {
        orjson.loads(r.value)["recordId"].encode()
        for r in inputs
        if r.offset < committed[TopicPartition(r.topic, r.partition)]
    }
    seen = ids(await read_all(settings, [billing]))
    assert before <= set(seen), "a committed input without its output"

    second = spawn_worker(settings)
    await wait_until_committed(settings, settings.group_id, [voice], max_wait=60)
    seen = ids(await read_all(settings, [billing]))
    assert set(seen) == {b"r%d" % i for i in range(total)}, "an input without its output"
    assert second.stop() == 0
    if sig == signal.SIGTERM:
        assert code == 0
        # A clean stop commits all it produced: nothing is processed twice.
        assert max(seen.values()) == 1
    else:
        assert code == -signal.SIGKILL


async def test_a_worker_stopped_mid_stream_commits_what_it_produced_and_resumes(
    topics: Settings, producer: AIOKafkaProducer, spawn_worker: Any
) -> None:
    await _mid_stream(topics.replace(batch_max_records=100), producer, spawn_worker, signal.SIGTERM)


async def test_a_worker_killed_mid_stream_loses_no_record(
    topics: Settings, producer: AIOKafkaProducer, spawn_worker: Any
) -> None:
    await _mid_stream(topics.replace(batch_max_records=100), producer, spawn_worker, signal.SIGKILL)


@pytest.mark.embedded_only  # starts an embedded broker of its own, late
async def test_an_unreachable_broker_is_retried_until_it_is_there(
    settings: Settings, spawn_worker: Any
) -> None:
    port = free_port()
    late = settings.replace(bootstrap_servers=f"127.0.0.1:{port}")
    worker = spawn_worker(late)
    await worker.wait_for_log("is unreachable")
    assert "retrying in" in worker.log()
    async with EmbeddedBroker(port) as broker:
        await create_topics(late, POLICY)
        client = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await client.start()
        try:
            await produce(client, late.topic_prefix + "cdr.sms", [(None, record(1))])
        finally:
            await client.stop()
        await wait_until_committed(
            late, late.group_id, [late.topic_prefix + "cdr.sms"], max_wait=60
        )
        assert worker.stop() == 0


@pytest.mark.embedded_only  # Apache Kafka has transactions: tests/kafka covers exactly-once
async def test_exactly_once_is_refused_by_the_embedded_broker_with_a_clear_message(
    topics: Settings, spawn_worker: Any
) -> None:
    worker = spawn_worker(topics.replace(processing_guarantee="exactly_once"))
    await worker.wait_for_log("exactly_once needs a broker with transactions")
    assert worker.process.wait(20) != 0


async def test_a_second_worker_joining_mid_stream_takes_over_partitions_without_loss(
    topics: Settings, producer: AIOKafkaProducer, spawn_worker: Any
) -> None:
    settings = topics.replace(batch_max_records=100)
    names = settings.topic_prefix
    voice, billing = names + "cdr.voice", names + "traffic.billing"
    total = 4000
    await produce_many(producer, voice, [(b"k%d" % i, record(i)) for i in range(total)])
    slow = {"FAKE_ENGINE_DELAY_US": "1000"}
    first = spawn_worker(settings, **slow)
    deadline = time.monotonic() + 30
    while sum((await log_end_offsets(settings, [billing])).values()) < 400:
        assert time.monotonic() < deadline and first.running(), first.log()[-3000:]
        await asyncio.sleep(0.1)
    second = spawn_worker(settings, **slow)
    await wait_until_committed(settings, settings.group_id, [voice], max_wait=60)
    seen = ids(await read_all(settings, [billing]))
    assert set(seen) == {b"r%d" % i for i in range(total)}, "an input without its output"
    assert first.running() and second.running()
    # Both took part: partitions moved from the first worker to the second.
    assert "assigned" in second.log()
    assert first.log().count("assigned") >= 2
    assert first.stop() == 0
    assert second.stop() == 0
