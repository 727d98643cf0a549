"""Exactly-once: the record path recovers from a failed transaction by itself, without a broker.

A broker that dies under an open transaction fences the producer or breaks aiokafka's sender
(``KafkaError: Unexpected error during batch delivery``). The worker must then abort, build a
new producer with the same transactional id and rewind its consumer to the committed offsets,
and stop only after :data:`TRANSACTION_RECOVERIES` failures in a row.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from pipeline.core.batch import PythonBatchEngine
from pipeline.core.policy import Policy
from pipeline.errors import BrokerError
from pipeline.settings import Settings
from pipeline.shell import recordpath
from pipeline.shell.recordpath import TRANSACTION_RECOVERIES, RecordPath
from pipeline.shell.status import WorkerStatus
from pipeline.shell.telemetry import Metrics
from tests.support.recordpath import EchoEngine

VOICE, SMS = TopicPartition("cdr.voice", 0), TopicPartition("cdr.sms", 1)


class FakeConsumer:
    """Two assigned partitions: one with a committed offset, one with none yet."""

    def __init__(self) -> None:
        self.seeks: dict[TopicPartition, int | str] = {}

    def assignment(self) -> set[TopicPartition]:
        return {VOICE, SMS}

    async def committed(self, tp: TopicPartition) -> int | None:
        return 40 if tp == VOICE else None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.seeks[tp] = "beginning"


class FakeProducer:
    def __init__(self, abortable: bool = True) -> None:
        self.abortable = abortable
        self.aborted = self.stopped = False

    async def abort_transaction(self) -> None:
        if not self.abortable:
            # aiokafka after a fatal error: its state machine refuses the abort.
            raise AssertionError("Invalid state transition FATAL_ERROR -> ABORTING")
        self.aborted = True

    async def stop(self) -> None:
        self.stopped = True


def _path(monkeypatch: pytest.MonkeyPatch, failures: list[Exception]) -> tuple[RecordPath, Any]:
    monkeypatch.setattr(recordpath, "RECOVERY_BACKOFF_S", 0.0)
    metrics = Metrics()
    path = RecordPath(
        Settings.from_env({}, engine="python", processing_guarantee="exactly_once"),
        Policy.load(),
        PythonBatchEngine.around(EchoEngine("out")),
        None,
        metrics,
        WorkerStatus(metrics),
    )
    consumer = FakeConsumer()
    path._consumer = consumer  # type: ignore[assignment]
    path._producer = FakeProducer(abortable=False)  # type: ignore[assignment]
    made: list[FakeProducer] = []

    async def start_producer() -> Any:
        made.append(FakeProducer())
        return made[-1]

    async def consume(_handle: Any) -> None:
        if failures:
            raise failures.pop(0)

    path._start_producer = start_producer  # type: ignore[method-assign]
    path._start_watch = lambda: None  # type: ignore[method-assign]
    path._consume_loop = consume  # type: ignore[method-assign]
    return path, (consumer, made, metrics)


async def test_a_broken_producer_is_replaced_and_the_consumer_rewound(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The sender's fatal error, then a fenced producer: two recoveries, then it carries on."""
    failures: list[Exception] = [
        KafkaError("Unexpected error during batch delivery"),
        ProducerFenced(),
    ]
    path, (consumer, made, metrics) = _path(monkeypatch, failures)
    broken = path._producer
    with caplog.at_level(logging.WARNING, logger="cdrveil.worker"):
        await path._transactions()
    assert broken.stopped  # type: ignore[union-attr]
    assert len(made) == 2
    assert made[0].aborted and made[0].stopped  # the second failure aborted what it could
    assert path._producer is made[1]
    assert consumer.seeks == {VOICE: 40, SMS: "beginning"}
    assert path._lag_base == {VOICE: 40}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("transaction failed (kafka_error); ")
    assert lines[1].startswith("transaction failed (producer_fenced); ")
    body = metrics.render()[0].decode()
    assert 'cdrveil_transaction_recoveries_total{reason="kafka_error"} 1.0' in body
    assert 'cdrveil_transaction_recoveries_total{reason="producer_fenced"} 1.0' in body


async def test_too_many_failures_in_a_row_stop_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One failure more than TRANSACTION_RECOVERIES, none committed between: a BrokerError."""
    failures: list[Exception] = [ProducerFenced() for _ in range(TRANSACTION_RECOVERIES + 1)]
    path, (_consumer, made, _metrics) = _path(monkeypatch, failures)
    with pytest.raises(BrokerError, match=f"{TRANSACTION_RECOVERIES + 1} transactions in a row"):
        await path._transactions()
    assert len(made) == TRANSACTION_RECOVERIES
