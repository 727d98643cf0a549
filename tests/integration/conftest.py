"""Integration fixtures: one embedded broker per session, unique topics and group per test,
and worker processes that are always stopped, whatever happens to the test."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pipeline.settings import Settings
from pipeline.shell.broker import EmbeddedBroker
from pipeline.shell.messages import header as header  # re-exported to the tests
from pipeline.shell.offsets import log_end_offsets
from pipeline.shell.topics import create_topics
from soak.harness import isolated_settings

ROOT = Path(__file__).resolve().parents[2]
PURPOSES = ("marketing", "fraud_prevention")


#: ``TEST_BROKER=kafka`` (``make test-kafka``) runs the suite on three Apache Kafka nodes.
#: Not a ``CDRVEIL_*`` name: those are settings, and unknown ones are refused.
ON_APACHE_KAFKA = os.environ.get("TEST_BROKER", "embedded") == "kafka"


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
    with EmbeddedBroker() as running:
        yield running
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
    await create_topics(settings, PURPOSES)
    return settings


@dataclass
class WorkerProcess:
    """A ``tests.integration.fake_worker`` process and its log."""

    process: subprocess.Popen[bytes]
    log_file: IO[bytes]
    env: dict[str, str] = field(repr=False)

    def log(self) -> str:
        """Everything the worker has logged so far."""
        self.log_file.flush()
        self.log_file.seek(0)
        return self.log_file.read().decode("utf-8", "replace")

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, wait: float = 20.0) -> int:
        """Send ``sig`` and return the exit status."""
        if self.running():
            self.process.send_signal(sig)
        try:
            return self.process.wait(wait)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"worker ignored signal {sig} for {wait} s:\n{self.log()[-3000:]}")

    async def wait_for_log(self, text: str, within: float = 30.0) -> None:
        """Wait until the log contains ``text``."""
        deadline = time.monotonic() + within
        while text not in self.log():
            if not self.running() and text not in self.log():
                pytest.fail(f"worker exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"worker never logged {text!r}:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.1)


def _spawner(command: Sequence[str], extra: dict[str, str]) -> Iterator[Any]:
    """Start worker processes running ``command``; any still running at the end is killed."""
    started: list[WorkerProcess] = []

    def spawn(settings: Settings, **extra_env: str) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDRVEIL_")}
        env.update(settings_env(settings))
        env.update(extra)
        env.update(extra_env)
        env["PYTHONPATH"] = str(ROOT)
        log_file = tempfile.TemporaryFile()  # noqa: SIM115 - closed at teardown
        process = subprocess.Popen(
            [sys.executable, *command],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        worker = WorkerProcess(process, log_file, env)
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        if worker.running():
            worker.process.kill()
        worker.process.wait()
        worker.log_file.close()


@pytest.fixture
def spawn_worker() -> Iterator[Any]:
    """Start fake-engine worker processes (``tests.integration.fake_worker``)."""
    yield from _spawner(["-m", "tests.integration.fake_worker"], {})


@pytest.fixture
def keyring(tmp_path: Path) -> Path:
    """A fresh keyring for a real worker (and for an engine run offline beside it)."""
    from pipeline.core.keys import Keyring

    path = tmp_path / "worker.keyring.json"
    Keyring.init(path)
    return path


@pytest.fixture
def real_worker(keyring: Path) -> Iterator[Any]:
    """Start `python -m pipeline worker` processes with the test's keyring."""
    yield from _spawner(["-m", "pipeline", "worker"], {"CDRVEIL_KEYRING_PATH": str(keyring)})


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``CDRVEIL_*`` variables that reproduce ``settings`` in a child process."""
    return settings.to_env()


@pytest.fixture
async def producer(broker: EmbeddedBroker) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer for test inputs."""
    # acks=all as the pipeline's own producers: on Apache Kafka the log end a reader sees
    # (the high-water mark) passes a write only once every in-sync replica has it.
    client = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=2, acks="all")
    await client.start()
    yield client
    await client.stop()


async def produce(
    producer: AIOKafkaProducer,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes | None]],
) -> list[Any]:
    """Send ``(key, value)`` pairs and wait for every acknowledgement; their metadata."""
    futures = [await producer.send(topic, value, key=key) for key, value in messages]
    return list(await asyncio.gather(*futures))


async def read_all(settings: Settings, topics: Sequence[str]) -> list[Any]:
    """Every record now in ``topics``, read from the beginning."""
    ends = await log_end_offsets(settings, list(topics))
    wanted = {tp: end for tp, end in ends.items() if end > 0}
    records: list[Any] = []
    if not wanted:
        return records
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        positions: dict[TopicPartition, int] = dict.fromkeys(wanted, 0)
        deadline = time.monotonic() + 30
        while any(positions[tp] < end for tp, end in wanted.items()):
            batch = await consumer.getmany(timeout_ms=200)
            for tp, messages in batch.items():
                records += [m for m in messages if m.offset < wanted[tp]]
                positions[tp] = await consumer.position(tp)
            assert time.monotonic() < deadline, "reading the topics took too long"
    finally:
        await consumer.stop()
    return records
