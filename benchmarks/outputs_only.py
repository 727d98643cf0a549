"""The outputs-only baseline: the cost of the writes alone, no consuming and no transform.

Before the clock starts, the engine runs over the first ``--sample`` records of the standard
workload (with the workload's consent and warrants) to get real output messages: their
topics, keys, values and headers. Then ``--messages`` of them (the sample repeated) are
produced with the worker's producer (``clients.producer``: acks=all, linger, 1 MiB
batches), partitioned and batched by the worker's ``OutputBatch`` in the share of one input
batch, with as many batches in flight as the worker allows. The clock stops when the broker
has acknowledged the last message.

With ``--finished`` the record batches are built before the clock starts
(:func:`~pipeline.shell.produce.reference_record_batches`, one input batch's share at a
time, over one cycle of the sample) and the clock covers handing them to the producer and
awaiting them: the write path of an engine that builds the record batches itself
(``RecordBatchEngine``), where the worker never appends a message.

Run as ``python -m benchmarks.outputs_only --messages M`` with the worker's ``CDRVEIL_*``
variables; the result is one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import time
from collections import deque
from typing import Any

import orjson

from benchmarks.harness import Message, bulk_produce
from pipeline.core.batch import Layout, PartitionBatches
from pipeline.core.consent import ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.engine import Output
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.warrants import WarrantIndex
from pipeline.factory import build_reference
from pipeline.settings import Settings
from pipeline.shell import clients
from pipeline.shell.produce import (
    OutputBatch,
    Partitioner,
    Send,
    await_delivery,
    reference_record_batches,
)
from pipeline.shell.recordpath import MAX_IN_FLIGHT
from pipeline.synth import Workload, consent_states, records, warrants


def sample_outputs(settings: Settings, workload: Workload, count: int) -> list[Message]:
    """The worker's outputs for the first ``count`` records of ``workload``."""
    msisdn = MsisdnNormalizer(settings.country_code, settings.trunk_prefix)
    consent, index = ConsentTable(msisdn), WarrantIndex(msisdn)
    for key, value in consent_states(workload):
        consent.apply(key, value)
    for warrant in warrants(workload):
        index.apply(warrant.key, warrant.value)
    engine = build_reference(settings)
    messages: list[Message] = []
    for generated in records(workload, count):
        result = engine.process(generated.value, consent.get, index)
        if not isinstance(result, Rejection):
            messages += [(o.topic, o.key, o.value, o.headers) for o in result]
    return messages


def repeated(sample: list[Message], total: int) -> Any:
    """``total`` messages, cycling through ``sample``."""
    for i in range(total):
        yield sample[i % len(sample)]


async def produce(
    settings: Settings, sample: list[Message], total: int, chunk: int
) -> tuple[float, float | None]:
    """Produce ``total`` messages; seconds from the first send to the last acknowledgement
    (and ``None``: the caller's CPU time covers the run)."""
    _, seconds = await bulk_produce(settings, repeated(sample, total), chunk=chunk)
    return seconds, None


async def produce_finished(
    settings: Settings, sample: list[Message], total: int, chunk: int
) -> tuple[float, float | None]:
    """Like :func:`produce`, the record batches built before the clock starts; and the CPU
    seconds of the timed part alone."""
    producer = clients.producer(settings)
    await producer.start()
    try:
        partitioner = Partitioner()
        for topic in sorted({message[0] for message in sample}):
            await partitioner.learn(producer, topic)
        stamp = int(time.time() * 1000)
        layout = Layout(partitioner.counts, clients.MAX_BATCH_BYTES, stamp, 0)
        shares: list[tuple[list[PartitionBatches], int]] = []
        for start in range(0, len(sample), chunk):
            part = [Output(*message) for message in sample[start : start + chunk]]
            shares.append((reference_record_batches(part, layout)[0], len(part)))
        in_flight: deque[list[Send]] = deque()
        sent = turn = 0
        started, cpu = time.perf_counter(), time.process_time()
        while sent < total:
            finished, count = shares[turn % len(shares)]
            turn += 1
            batch = OutputBatch(partitioner, producer)
            for partition in finished:
                batch.add_finished(partition)
            in_flight.append(await batch.send(producer))
            sent += count
            if len(in_flight) > MAX_IN_FLIGHT:
                await await_delivery(producer, in_flight.popleft())
        while in_flight:
            await await_delivery(producer, in_flight.popleft())
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point: prepare the sample, time the writes, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, required=True, help="messages to produce")
    parser.add_argument("--sample", type=int, default=50_000, help="input records to sample")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--finished", action="store_true", help="build the record batches before the clock"
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    workload = Workload(subscribers=args.subscribers, seed=args.seed)
    sample = sample_outputs(settings, workload, args.sample)
    # As many messages per produced batch as one input batch gives the worker.
    chunk = max(1, round(settings.batch_max_records * len(sample) / args.sample))
    gc.collect()
    gc.freeze()  # as the worker does once its tables are loaded
    cpu = time.process_time()
    run = produce_finished if args.finished else produce
    seconds, timed_cpu = asyncio.run(run(settings, sample, args.messages, chunk))
    cpu = time.process_time() - cpu if timed_cpu is None else timed_cpu
    result = {
        "messages": args.messages,
        "seconds": round(seconds, 3),
        "messagesPerSecond": round(args.messages / seconds),
        "cpuSeconds": round(cpu, 2),
        "peakRssMb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "messagesPerBatch": chunk,
        "finishedBatches": args.finished,
    }
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
