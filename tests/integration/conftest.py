"""Integration fixtures: one embedded broker per session, unique topics and group per test,
and worker processes that are always stopped, whatever happens to the test.

Every test of this folder is marked ``integration`` here, once (``-m "not integration"``
runs the rest). Helpers that are not fixtures are in ``tests/support``.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.core.keys import Keyring
from pipeline.harness import WorkerProcess, Workers, isolated_settings, start_embedded_broker
from pipeline.settings import Settings
from pipeline.shell.broker import EmbeddedBroker
from pipeline.shell.topics import create_topics
from tests.support.kafka import ON_APACHE_KAFKA, POLICY, ROOT

HERE = Path(__file__).resolve().parent

Spawn = Callable[..., WorkerProcess]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``integration``. On Apache Kafka, run the demo's tests
    first: ``cdrveil demo --apache-kafka`` starts three nodes of its own, and the session's
    cluster (started by the first test that needs it) must not run beside them."""
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)
    if ON_APACHE_KAFKA:
        items.sort(key=lambda item: Path(item.path).name != "test_demo.py")


@pytest.fixture(scope="session")
def broker() -> Iterator[Any]:
    """The embedded broker on a free loopback port (or the Apache Kafka cluster), for the
    whole session."""
    if ON_APACHE_KAFKA:
        from pipeline.shell.kafka_cluster import KafkaCluster

        with KafkaCluster(3) as cluster:
            yield cluster
        assert not cluster.nodes
        return
    running = start_embedded_broker()
    try:
        yield running
    finally:
        running.stop()
    assert running.pid is None


@pytest.fixture
def settings(broker: Any) -> Settings:
    """Settings with a topic prefix and group of this test only (on Apache Kafka with its
    3 replicas: a write needs 2 in sync)."""
    replicas = getattr(broker, "replication_factor", 1)
    return isolated_settings(broker.bootstrap_servers, "t", replication_factor=replicas)


@pytest.fixture
async def topics(settings: Settings) -> Settings:
    """The test's topics, created."""
    await create_topics(settings, POLICY)
    return settings


def _spawner(workers: Workers) -> Iterator[Spawn]:
    """``spawn(settings, **env)`` for a test; any worker still running at the end is killed."""
    try:
        yield workers.spawn
    finally:
        workers.close()


@pytest.fixture
def spawn_worker() -> Iterator[Spawn]:
    """Start fake-engine worker processes (``tests.support.fake_worker``)."""
    argv = [sys.executable, "-m", "tests.support.fake_worker"]
    yield from _spawner(Workers(None, None, None, argv, ROOT, {"PYTHONPATH": str(ROOT)}))


@pytest.fixture
def keyring(tmp_path: Path) -> Path:
    """A fresh keyring for a real worker (and for an engine run offline beside it)."""
    path = tmp_path / "worker.keyring.json"
    Keyring.init(path)
    return path


@pytest.fixture
def real_worker(keyring: Path) -> Iterator[Spawn]:
    """Start `python -m pipeline worker` processes with the test's keyring."""
    yield from _spawner(Workers(None, keyring, None, None, ROOT, {"PYTHONPATH": str(ROOT)}))


@pytest.fixture
async def producer(broker: EmbeddedBroker) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer for test inputs."""
    # acks=all as the pipeline's own producers: on Apache Kafka the log end a reader sees
    # (the high-water mark) passes a write only once every in-sync replica has it.
    client = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=2, acks="all")
    await client.start()
    yield client
    await client.stop()


@pytest.fixture
def ingest_settings(broker: EmbeddedBroker) -> Settings:
    """Settings with topics of this ingest test only (2 partitions)."""
    return Settings.from_env(
        {},
        bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=f"ingest{uuid.uuid4().hex[:10]}.",
        partitions=2,
        web_port=0,
    )
