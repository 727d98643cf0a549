"""The record path's use of the batch interface, without a broker (a dry-run OutputBatch)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition

from pipeline.core.batch import PythonBatchEngine
from pipeline.core.keys import Pseudonymizer
from pipeline.core.policy import Policy
from pipeline.settings import Settings
from pipeline.shell.recordpath import RecordPath
from pipeline.shell.status import WorkerStatus
from pipeline.shell.telemetry import Metrics
from tests.support.core import encode, mo_call, mo_sms
from tests.support.recordpath import ConsumedRecord, EchoEngine

SUBSCRIBER = "46701234567"


def _path() -> RecordPath:
    metrics = Metrics()
    tables: Any = None  # not used by _process
    path = RecordPath(
        Settings.from_env({}, engine="python"),
        Policy.load(),
        PythonBatchEngine.around(
            EchoEngine(
                "out", keyed=True, headers=[("h", b"1")], boom=lambda: ValueError(SUBSCRIBER)
            )
        ),
        tables,
        metrics,
        WorkerStatus(metrics),
    )
    path._now = lambda: datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    return path


def test_one_engine_call_gives_the_outputs_then_each_rejection_at_its_source(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Outputs in input order across partitions, then one dead letter per rejected input
    with the topic, partition and offset it came from; the failure logged without text."""
    first, second = TopicPartition("cdr.voice", 3), TopicPartition("cdr.sms", 1)
    batch = {
        first: [ConsumedRecord(b"k1", b"a", 10, 1000), ConsumedRecord(b"k2", b"bad", 11, 1001)],
        second: [ConsumedRecord(b"k3", b"boom", 20, 1002), ConsumedRecord(None, b"c", 21, 1003)],
    }
    with caplog.at_level(logging.ERROR, logger="cdrveil.worker"):
        work, outputs = _path()._process(batch, 5.0)
    pending = outputs._pending
    assert [(topic, key, value) for topic, (key, value, _) in pending] == [
        ("out", b"a", b"a"),
        ("out", b"c", b"c"),
        ("traffic.dead-letter", b"k2", b"bad"),
        ("traffic.dead-letter", b"k3", b"boom"),
    ]
    bad, boom = (dict(headers) for _, (_, _, headers) in pending[2:])
    assert (bad["dlq.source.topic"], bad["dlq.source.partition"]) == (b"cdr.voice", b"3")
    assert (bad["dlq.source.offset"], bad["dlq.error.code"]) == (b"11", b"invalid_json")
    assert (boom["dlq.source.topic"], boom["dlq.source.offset"]) == (b"cdr.sms", b"20")
    assert boom["dlq.error.code"] == b"internal_error"
    assert boom["dlq.timestamp"] == b"2026-12-03T10:00:00.000Z"
    assert work.offsets == {first: 12, second: 22}
    assert work.records == 4
    assert work.dead_letters == {"invalid_json": 1, "internal_error": 1}
    assert work.topics == {"cdr.voice": 2, "cdr.sms": 2}
    assert work.timestamps == [1000, 1001, 1002, 1003]
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("engine failure on cdr.sms[1]@20: the engine raised ValueError at ")
    assert SUBSCRIBER not in caplog.text


def test_the_batch_counts_its_party_numbers_into_the_metric(
    pseudonymizer: Pseudonymizer,
) -> None:
    """The engine's per-batch counts by class reach cdrveil_party_numbers_total once the
    batch is counted (one call per batch, none per record)."""
    metrics = Metrics()
    policy = Policy.load()
    path = RecordPath(
        Settings.from_env({}, engine="python"),
        policy,
        PythonBatchEngine.build(policy, pseudonymizer),
        None,
        metrics,
        WorkerStatus(metrics),
    )
    tp = TopicPartition("cdr.voice", 0)
    values = [encode(mo_call(calledNumber="*100#")), encode(mo_sms(destinationNumber="BankID"))]
    batch = {tp: [ConsumedRecord(None, v, i, 1000) for i, v in enumerate(values)]}
    work, _ = path._process(batch, 5.0)
    assert dict(work.parties) == {"msisdn": 1, "service_code": 1, "alphanumeric": 1}
    path._count(work, 2.0)
    body, _ = metrics.render()
    assert b'cdrveil_party_numbers_total{class="service_code"} 1.0' in body
    assert b'cdrveil_party_numbers_total{class="alphanumeric"} 1.0' in body
