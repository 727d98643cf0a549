"""The outputs-only baseline: the cost of the writes alone, no consuming and no transform.

Before the clock starts, the engine runs over the first ``--sample`` records of the standard
workload (with the workload's consent and warrants) to get real output messages: their
topics, keys, values and headers. Then ``--messages`` of them (the sample repeated) are
produced with the worker's producer (``clients.producer``: acks=all, linger, 1 MiB
batches), partitioned and batched by the worker's ``OutputBatch`` in the share of one input
batch, with as many batches in flight as the worker allows. The clock stops when the broker
has acknowledged the last message.

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
from typing import Any

import orjson

from benchmarks.harness import Message, bulk_produce
from pipeline.core.consent import ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.warrants import WarrantIndex
from pipeline.factory import build_reference
from pipeline.settings import Settings
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


async def produce(settings: Settings, sample: list[Message], total: int, chunk: int) -> float:
    """Produce ``total`` messages; seconds from the first send to the last acknowledgement."""
    _, seconds = await bulk_produce(settings, repeated(sample, total), chunk=chunk)
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Entry point: prepare the sample, time the writes, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, required=True, help="messages to produce")
    parser.add_argument("--sample", type=int, default=50_000, help="input records to sample")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    workload = Workload(subscribers=args.subscribers, seed=args.seed)
    sample = sample_outputs(settings, workload, args.sample)
    # As many messages per produced batch as one input batch gives the worker.
    chunk = max(1, round(settings.batch_max_records * len(sample) / args.sample))
    gc.collect()
    gc.freeze()  # as the worker does once its tables are loaded
    cpu = time.process_time()
    seconds = asyncio.run(produce(settings, sample, args.messages, chunk))
    result = {
        "messages": args.messages,
        "seconds": round(seconds, 3),
        "messagesPerSecond": round(args.messages / seconds),
        "cpuSeconds": round(time.process_time() - cpu, 2),
        "peakRssMb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "messagesPerBatch": chunk,
    }
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
