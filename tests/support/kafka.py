"""Helpers of the integration tests that run workers: test inputs, topics, the engine offline.

The broker, settings, producer and worker fixtures are in ``tests/integration/conftest.py``;
starting workers and reading topics back is :mod:`pipeline.harness`.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from pipeline.core.consent import ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.engine import Engine
from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from pipeline.harness import WorkerProcess
from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames, create_topics
from pipeline.synth import Generated, Workload, consent_states, warrants

#: ``TEST_BROKER=kafka`` (``make test-kafka``) runs the integration suite on three Apache Kafka
#: nodes. Not a ``CDRVEIL_*`` name: those are settings, and unknown ones are refused.
ON_APACHE_KAFKA = os.environ.get("TEST_BROKER", "embedded") == "kafka"

#: The checkout (the fake worker runs from it as ``python -m tests.support.fake_worker``).
ROOT = Path(__file__).resolve().parents[2]
#: The analytics purposes of the fake worker's topics.
PURPOSES = ("marketing", "fraud_prevention")
POLICY = Policy.load()

#: (topic without prefix, key, value, headers) of an output.
Output = tuple[str, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]


async def produce(
    producer: AIOKafkaProducer,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes | None]],
) -> list[Any]:
    """Send ``(key, value)`` pairs and wait for every acknowledgement; their metadata."""
    futures = [await producer.send(topic, value, key=key) for key, value in messages]
    return list(await asyncio.gather(*futures))


async def all_topics(settings: Settings) -> Settings:
    """Every topic of the default policy, with this test's prefix."""
    await create_topics(settings, POLICY)
    return settings


def offline_engine(settings: Settings, keyring: Path) -> Engine:
    """The engine exactly as the worker builds it."""
    return Engine.build(
        POLICY,
        Pseudonymizer(Keyring.load(keyring)),
        topic_prefix=settings.topic_prefix,
        home_networks=frozenset(settings.home_networks),
    )


def output_topics(settings: Settings) -> list[str]:
    """Every route's topic and the dead-letter topic."""
    names = TopicNames(settings.topic_prefix)
    return [names(route.topic) for route in POLICY.routes.values()] + [names.dead_letter(POLICY)]


async def wait_ready(worker: WorkerProcess) -> None:
    """Until the worker says its record path consumes."""
    await worker.wait_for_log("assigned", within=60)


async def publish_state(producer: AIOKafkaProducer, settings: Settings, workload: Workload) -> None:
    """The workload's consent states and two warrants."""
    names = TopicNames(settings.topic_prefix)
    await produce(producer, names.consent, list(consent_states(workload)))
    await produce(producer, names.warrants, [(w.key, w.value) for w in warrants(workload, 2)])


def expected_outputs(
    settings: Settings, keyring: Path, workload: Workload, inputs: Iterable[Generated]
) -> tuple[Counter[Output], dict[int, str]]:
    """What the engine makes of ``inputs`` offline: the outputs, and the reason code of
    each rejected input by its position."""
    normalizer = MsisdnNormalizer()
    table, index = ConsentTable(normalizer), WarrantIndex(normalizer)
    for key, value in consent_states(workload):
        table.apply(key, value)
    for w in warrants(workload, 2):
        index.apply(w.key, w.value)
    engine = offline_engine(settings, keyring)
    expected: Counter[Output] = Counter()
    rejected: dict[int, str] = {}
    for i, generated in enumerate(inputs):
        result = engine.process(generated.value, table.get, index)
        if isinstance(result, Rejection):
            rejected[i] = result.code
            continue
        for out in result:
            topic = out.topic.removeprefix(settings.topic_prefix)
            expected[(topic, out.key, out.value, tuple(out.headers))] += 1
    return expected, rejected
