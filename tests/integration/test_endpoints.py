"""A real worker's /healthz, /readyz and /metrics: start-up states, and what a known input
makes of the counters."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.core.keys import Keyring
from pipeline.harness import read_all
from pipeline.settings import Settings
from pipeline.shell.broker import free_port
from pipeline.shell.messages import header
from pipeline.shell.offsets import wait_until_committed
from pipeline.shell.topics import TopicNames
from pipeline.synth import Workload, consent_states, records, warrants
from tests.support.kafka import POLICY, all_topics, output_topics, produce
from tests.support.scrape import by_label, get, scrape, value, wait_until_ready

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_live_at_once_but_not_ready_while_kafka_is_unreachable(
    settings: Settings, real_worker: Any, keyring: Path
) -> None:
    """/healthz 200, /readyz and /health 503 with the reason, cdrveil_ready 0."""
    port = free_port()
    worker = real_worker(
        settings.replace(bootstrap_servers=f"127.0.0.1:{free_port()}", web_port=port)
    )
    deadline = time.monotonic() + 30
    while get(port, "/healthz")[0] != 200:
        assert worker.running() and time.monotonic() < deadline, worker.log()[-3000:]
        await asyncio.sleep(0.1)
    await worker.wait_for_log("is unreachable")
    assert get(port, "/readyz") == (503, b"not ready: Kafka is not reachable\n")
    status, body = get(port, "/health")
    assert (status, orjson.loads(body)["status"]) == (503, "waiting-for-kafka")
    samples = scrape(port)
    assert value(samples, "cdrveil_ready") == 0
    assert value(samples, "cdrveil_key_info", key_id=Keyring.load(keyring).active) == 1
    assert worker.stop() == 0


async def test_metrics_count_exactly_what_a_known_input_produced(
    settings: Settings, producer: AIOKafkaProducer, real_worker: Any
) -> None:
    """Inputs per topic, outputs per route and dead letters per reason equal what is in
    Kafka; one latency per record; tables, lag and readiness as they are."""
    settings = settings.replace(web_port=free_port())
    await all_topics(settings)
    names = TopicNames(settings.topic_prefix)
    workload = Workload(subscribers=300, seed=23, malformed_share=0.05)
    consent_messages = list(consent_states(workload))
    before = time.time()
    await produce(producer, names.consent, consent_messages)
    await produce(producer, names.warrants, [(w.key, w.value) for w in warrants(workload, 2)])
    after = time.time()
    worker = real_worker(settings)
    port = settings.web_port
    await wait_until_ready(worker, port)
    assert get(port, "/readyz") == (200, b"ready\n")
    assert get(port, "/healthz") == (200, b"ok\n")

    inputs = list(records(workload, 2000))
    sent: Counter[str] = Counter()
    for kind, topic in (("voice", names.inputs[0]), ("sms", names.inputs[1])):
        batch = [
            (m.key if m.key is not None or m.value is not None else m.record_id.encode(), m.value)
            for m in inputs
            if m.kind == kind
        ]
        await produce(producer, topic, batch)
        sent[topic.removeprefix(settings.topic_prefix)] = len(batch)
    await wait_until_committed(settings, settings.group_id, list(names.inputs), 60)

    consumed = await read_all(settings, output_topics(settings))
    routes = Counter(
        (header(m, "cdrveil.route") or b"").decode()
        for m in consumed
        if m.topic != names.dead_letter(POLICY)
    )
    reasons = Counter(
        (header(m, "dlq.error.code") or b"").decode()
        for m in consumed
        if m.topic == names.dead_letter(POLICY)
    )
    assert routes["billing"] > 0 and routes["lawful_intercept"] > 0 and len(reasons) > 1

    # The last batch's counts land once its offsets are committed: poll briefly.
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(port)
        lag = [v for (name, _), v in samples.items() if name == "cdrveil_consumer_lag"]
        counted = by_label(samples, "cdrveil_records_in_total", "topic")
        if counted == sent and len(lag) == 2 * settings.partitions and not any(lag):
            break
        assert time.monotonic() < deadline, (counted, sent, lag)
        await asyncio.sleep(0.2)
    assert by_label(samples, "cdrveil_outputs_total", "route") == routes
    assert by_label(samples, "cdrveil_dead_letters_total", "reason") == reasons
    assert value(samples, "cdrveil_record_latency_seconds_count") == len(inputs)
    assert 0 < value(samples, "cdrveil_record_latency_seconds_sum") < 60 * len(inputs)
    assert value(samples, "cdrveil_batch_seconds_count") >= 1
    assert len(by_label(samples, "cdrveil_consumer_lag", "topic")) == 2  # cdr.voice, cdr.sms
    assert value(samples, "cdrveil_consent_states") == len(consent_messages)
    assert value(samples, "cdrveil_warrants_active") == 2
    assert value(samples, "cdrveil_state_messages_total", topic="consent.state") == len(
        consent_messages
    )
    updated = value(samples, "cdrveil_consent_last_update_timestamp_seconds")
    assert before - 1 <= updated <= after + 1
    assert value(samples, "cdrveil_warrants_last_update_timestamp_seconds") >= before - 1
    assert value(samples, "cdrveil_ready") == 1
    assert worker.stop() == 0
