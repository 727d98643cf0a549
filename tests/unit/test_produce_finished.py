"""Finished record batches: the reference builder a native one must equal, and the shell's
path for them (no broker: a recording producer)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2 as kafka_murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from pipeline.core.batch import (
    BatchResult,
    Layout,
    PythonBatchEngine,
    RecordBatchEngine,
    RecordBatches,
)
from pipeline.core.engine import Output
from pipeline.core.policy import Policy
from pipeline.settings import Settings
from pipeline.shell.clients import MAX_BATCH_BYTES
from pipeline.shell.produce import (
    FinishedBatch,
    OutputBatch,
    Partitioner,
    reference_record_batches,
)
from pipeline.shell.recordpath import RecordPath
from pipeline.shell.status import WorkerStatus
from pipeline.shell.telemetry import Metrics
from tests.support.recordpath import ConsumedRecord, EchoEngine

STAMP = 1_764_756_000_000
COUNTS = {"a": 4, "b": 3}


def _outputs(n: int) -> list[Output]:
    """Keyed and keyless messages on two topics, with headers (one of them empty)."""
    outputs = []
    for i in range(n):
        key = None if i % 5 == 0 else f"subscriber-{i % 7}".encode()
        headers = [("cdrveil.record-id", f"r{i}".encode()), ("empty", b"")]
        outputs.append(Output("ab"[i % 2], key, b'{"n":%d}' % i, headers))
    return outputs


def _records(buffer: bytes) -> list[tuple[bytes | None, bytes | None, list[Any], int]]:
    batch = DefaultRecordBatch(buffer)
    assert batch.validate_crc()
    assert batch.magic == 2
    return [(r.key, r.value, list(r.headers), r.timestamp) for r in batch]


def _placed(outputs: list[Output], start: int) -> dict[tuple[str, int], list[Output]]:
    """Where Kafka's default partitioner and the round-robin counter put each output."""
    placed: dict[tuple[str, int], list[Output]] = {}
    keyless = start
    for out in outputs:
        n = COUNTS[out.topic]
        if out.key is None:
            partition, keyless = keyless % n, keyless + 1
        else:
            partition = (kafka_murmur2(out.key) & 0x7FFFFFFF) % n
        placed.setdefault((out.topic, partition), []).append(out)
    return placed


def test_the_reference_batches_hold_each_partitions_outputs_in_order() -> None:
    """murmur2 for keys, round-robin from the given counter for keyless, CRC-32C valid."""
    outputs = _outputs(60)
    layout = Layout(COUNTS, MAX_BATCH_BYTES, STAMP, 3)
    finished, after = reference_record_batches(outputs, layout)
    assert after == 3 + sum(out.key is None for out in outputs)
    expected = _placed(outputs, 3)
    assert {(p.topic, p.partition) for p in finished} == set(expected)
    for part in finished:
        (buffer,) = part.batches
        want = [
            (o.key, o.value, [(k, v) for k, v in o.headers], STAMP)
            for o in expected[(part.topic, part.partition)]
        ]
        assert _records(buffer) == want


def test_a_full_record_batch_closes_and_the_next_one_starts() -> None:
    """The size limit splits a partition's records over batches, in order, none lost."""
    outputs = [Output("a", b"same-key", bytes(300), []) for _ in range(20)]
    (part,), _ = reference_record_batches(outputs, Layout(COUNTS, 2048, STAMP, 0))
    assert len(part.batches) > 1
    assert all(len(buffer) <= 2048 for buffer in part.batches)
    assert sum(len(_records(buffer)) for buffer in part.batches) == 20


class _Factory:
    """Makes record batches as the worker's producer does (no compression)."""

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(MAX_BATCH_BYTES, 0)


def test_the_reference_is_what_the_worker_path_builds_but_for_the_time() -> None:
    """OutputBatch.add (the python engine's path) makes the same records in each partition."""

    outputs = _outputs(40)
    partitioner = Partitioner()
    partitioner.counts = dict(COUNTS)
    live = OutputBatch(partitioner, _Factory())  # type: ignore[arg-type]
    for out in outputs:
        live.add(*out)
    finished, after = reference_record_batches(outputs, Layout(COUNTS, MAX_BATCH_BYTES, STAMP, 0))
    assert after == partitioner.keyless
    reference = {(p.topic, p.partition): _records(p.batches[0]) for p in finished}
    for topic, buckets in live._buckets.items():
        for partition, builders in enumerate(buckets):
            if builders:
                (builder,) = builders
                got = [r[:3] for r in _records(bytes(builder._build()))]
                assert got == [r[:3] for r in reference[(topic, partition)]]


class _Recorder:
    """A producer that records what it is given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, bytes]] = []

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        self.sent.append((topic, partition, batch._build()))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_finished_batches_are_sent_as_they_are() -> None:
    """Their bytes go to the producer unchanged, counted from their headers."""
    finished, _ = reference_record_batches(_outputs(30), Layout(COUNTS, MAX_BATCH_BYTES, STAMP, 0))
    partitioner = Partitioner()
    partitioner.counts = dict(COUNTS)
    batch = OutputBatch(partitioner, None)
    for part in finished:
        batch.add_finished(part)
    assert batch.size == 30
    recorder = _Recorder()
    sends = await batch.send(recorder)  # type: ignore[arg-type]
    assert sorted(recorder.sent) == sorted((p.topic, p.partition, p.batches[0]) for p in finished)
    assert sum(send.count for send in sends) == 30
    assert FinishedBatch(finished[0].batches[0]).append(key=b"k", value=b"v") is None


# --- the record path with an engine that builds the batches ----------------------------------


class _Builder:
    """A record-batch engine made of the reference engine and the reference builder."""

    def __init__(self) -> None:
        self.inner = PythonBatchEngine.around(EchoEngine("a"))
        self.name = "native"
        self.consent, self.warrants = self.inner.consent, self.inner.warrants
        self.output_topics = ["a"]
        self.layouts: list[Layout] = []

    def process_batch(self, values: Any) -> BatchResult:
        return self.inner.process_batch(values)

    def process_batch_records(self, values: Any, layout: Layout) -> RecordBatches:
        self.layouts.append(layout)
        result = self.inner.process_batch(values)
        finished, after = reference_record_batches(result.outputs, layout)
        return RecordBatches(finished, result.rejections, after)


def test_the_record_path_takes_finished_batches_and_continues_the_keyless_count() -> None:
    engine = _Builder()
    assert isinstance(engine, RecordBatchEngine)
    assert not isinstance(PythonBatchEngine.around(EchoEngine("a")), RecordBatchEngine)
    metrics = Metrics()
    tables: Any = None
    path = RecordPath(
        Settings.from_env({}, engine="python"),
        Policy.load(),
        engine,
        tables,
        metrics,
        WorkerStatus(metrics),
    )
    path._partitioner.counts.update({"a": 4, "traffic.dead-letter": 2})
    path._producer = _Factory()  # type: ignore[assignment]
    path._batch_topics = ["a"]
    path._now = lambda: datetime(2026, 12, 3, tzinfo=UTC)
    tp = TopicPartition("cdr.voice", 0)
    records = [
        ConsumedRecord(None, b"x", 1, 0),
        ConsumedRecord(None, b"bad", 2, 0),
        ConsumedRecord(None, b"y", 3, 0),
    ]
    work, outputs = path._process({tp: records}, 0.0)
    (layout,) = engine.layouts
    assert (layout.round_robin, layout.partitions["a"]) == (0, 4)
    assert outputs.size == 3  # two finished outputs and the dead letter
    finished = outputs._buckets["a"]
    assert [len(builders) for builders in finished] == [1, 1, 0, 0]
    # The dead letter (keyless) took the third place of the round robin.
    assert path._partitioner.keyless == 3
    assert work.dead_letters == {"invalid_json": 1}
    assert isinstance(finished[0][0], FinishedBatch)
    assert finished[0][0].record_count() == 1
    (dead,) = [b for builders in outputs._buckets["traffic.dead-letter"] for b in builders]
    assert dead.record_count() == 1
