"""Core benchmark: the engine alone (no Kafka) on the standard seeded workload.

Standard workload: 100,000 subscribers whose calls follow a skewed distribution,
60 % voice / 40 % SMS, 1 % roaming, consent loaded for every subscriber, two
active warrants, the default policy. Records are generated before timing starts;
the timed loop is exactly what a worker runs per record (decode, look up consent
and warrants, apply the policy, pseudonymize, serialize). One Python thread, so
one core.

Both engines run in the same process on the same inputs: the Python engine (the
reference, ``Engine.process`` record by record) and the native engine through the
batch interface the worker uses, ``NativeBatchEngine.process_batch_records`` on batches
of the worker's default size: its outputs come back as finished Kafka record batches
(8 partitions per topic), queued for sending as the worker queues them
(``OutputBatch.add_finished``). Before timing, one pass of each computes a digest of
every output (topic, key, value, headers, in order) and of every rejection: they must
be identical; and the native record batches must be byte for byte the ones aiokafka's
builder makes of the Python engine's outputs (``reference_record_batches``).

    python -m benchmarks.core                 # 200,000 records
    python -m benchmarks.core --quick         # a small smoke run
    python -m benchmarks.core --json out.json
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks.targets import CORE_RECORDS_PER_SECOND
from pipeline.core.batch import Layout
from pipeline.core.consent import ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.engine import Engine, Output
from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.native import NativeBatchEngine
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from pipeline.shell.clients import MAX_BATCH_BYTES
from pipeline.shell.produce import OutputBatch, Partitioner, reference_record_batches
from pipeline.synth import Workload, consent_states, records, warrants

#: The native engine's target (issue 14; one home: :mod:`benchmarks.targets`). The Python
#: engine is the reference: it has no speed target.
NATIVE_TARGET_RECORDS_PER_SECOND = CORE_RECORDS_PER_SECOND
#: Records per process_batch call: the worker's default batch_max_records.
BATCH_RECORDS = 2000
#: Partitions of every output topic (the end-to-end benchmark's count).
PARTITIONS = 8
#: The CreateTime of every record batch the benchmark builds (fixed, so the check compares).
STAMP_MS = 1_764_756_000_000


@dataclass(frozen=True)
class CoreSetup:
    """The engine, its tables and the pre-generated input messages of the standard workload."""

    engine: Engine
    consent: ConsentTable
    warrants: WarrantIndex
    inputs: list[bytes]
    native: NativeBatchEngine


def setup(count: int, subscribers: int, seed: int = 1) -> CoreSetup:
    """Build what the timed loop needs: consent for every subscriber, the two warrants, a
    fresh keyring, the default policy and ``count`` records (generated before any timing)."""
    workload = Workload(subscribers=subscribers, seed=seed)
    normalizer = MsisdnNormalizer(workload.country_code)
    consent = ConsentTable(normalizer)
    for key, value in consent_states(workload):
        consent.apply(key, value)
    index = WarrantIndex(normalizer)
    for warrant in warrants(workload):
        index.apply(warrant.key, warrant.value)
    inputs = [message.value for message in records(workload, count)]
    with tempfile.TemporaryDirectory() as folder:
        keyring = Keyring.init(Path(folder) / "bench.keyring.json")
    policy, pseudonymizer = Policy.load(), Pseudonymizer(keyring)
    engine = Engine.build(policy, pseudonymizer)
    native = NativeBatchEngine.build(policy, pseudonymizer)
    for key, value in consent_states(workload):
        native.consent.apply(key, value)
    for warrant in warrants(workload):
        native.warrants.apply(warrant.key, warrant.value)
    return CoreSetup(engine, consent, index, inputs, native)


def _digest_outputs(digest: Any, outputs: list[Output]) -> None:
    for topic, key, value, headers in outputs:
        digest.update(orjson.dumps([topic, key.hex() if key is not None else None]))
        digest.update(value)
        digest.update(orjson.dumps([[name, data.hex()] for name, data in headers]))


def python_digest(core: CoreSetup) -> str:
    """A digest of every output (in order), then every rejection, of the Python engine."""
    digest, rejections = hashlib.sha256(), []
    for index, raw in enumerate(core.inputs):
        result = core.engine.process(raw, core.consent.get, core.warrants)
        if isinstance(result, Rejection):
            rejections.append([index, *result])
        else:
            _digest_outputs(digest, result)
    digest.update(orjson.dumps(rejections))
    return digest.hexdigest()


def native_digest(core: CoreSetup, batch: int = BATCH_RECORDS) -> str:
    """The same digest from the native engine, batch by batch."""
    digest, rejections = hashlib.sha256(), []
    for start in range(0, len(core.inputs), batch):
        result = core.native.process_batch(core.inputs[start : start + batch])
        _digest_outputs(digest, result.outputs)
        rejections.extend([start + index, *rejection] for index, rejection in result.rejections)
    digest.update(orjson.dumps(rejections))
    return digest.hexdigest()


def _layouts(core: CoreSetup) -> dict[str, int]:
    return {topic: PARTITIONS for topic in core.native.output_topics}


def reference_batches_digest(core: CoreSetup, batch: int = BATCH_RECORDS) -> str:
    """A digest of the record batches aiokafka's builder makes of the Python engine's
    outputs, input batch by input batch, as the worker would lay them out."""
    digest, counts, keyless = hashlib.sha256(), _layouts(core), 0
    for start in range(0, len(core.inputs), batch):
        outputs: list[Output] = []
        for raw in core.inputs[start : start + batch]:
            result = core.engine.process(raw, core.consent.get, core.warrants)
            if not isinstance(result, Rejection):
                outputs += result
        layout = Layout(counts, MAX_BATCH_BYTES, STAMP_MS, keyless)
        finished, keyless = reference_record_batches(outputs, layout)
        for part in finished:
            digest.update(orjson.dumps([part.topic, part.partition]))
            for buffer in part.batches:
                digest.update(buffer)
    return digest.hexdigest()


def native_batches_digest(core: CoreSetup, batch: int = BATCH_RECORDS) -> str:
    """The same digest of the native engine's record batches."""
    digest, counts, keyless = hashlib.sha256(), _layouts(core), 0
    for start in range(0, len(core.inputs), batch):
        layout = Layout(counts, MAX_BATCH_BYTES, STAMP_MS, keyless)
        result = core.native.process_batch_records(core.inputs[start : start + batch], layout)
        keyless = result.round_robin
        for part in result.partitions:
            digest.update(orjson.dumps([part.topic, part.partition]))
            for buffer in part.batches:
                digest.update(buffer)
    return digest.hexdigest()


def _best_pass(repeat: int, one_pass: Callable[[], tuple[int, int]]) -> dict[str, Any]:
    """Time ``one_pass`` (it returns outputs and rejections) ``repeat`` times with the
    long-lived tables frozen out of the collector's way, as the worker does; the figures of
    the pass with the least CPU."""
    gc.collect()
    gc.freeze()
    passes = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        outputs, rejected = one_pass()
        passes.append((time.process_time() - cpu, time.perf_counter() - wall, outputs, rejected))
    cpu, wall, outputs, rejected = min(passes, key=lambda p: p[0])
    return {"cpu": cpu, "wall": wall, "outputs": outputs, "rejected": rejected}


def _figures(count: int, best: dict[str, Any], target: int | None) -> dict[str, Any]:
    """Rates of one timed pass over ``count`` records, against ``target`` records/s if any."""
    rate = count / best["cpu"]
    return {
        "rejected": best["rejected"],
        "recordsPerSecond": round(rate),
        "wallRecordsPerSecond": round(count / best["wall"]),
        "microsecondsPerRecord": round(best["cpu"] / count * 1e6, 2),
        "outputsPerRecord": round(best["outputs"] / count, 3),
        "target": target,
        "meetsTarget": None if target is None else rate >= target,
    }


def native_pass(core: CoreSetup, batch: int = BATCH_RECORDS) -> Callable[[], tuple[int, int]]:
    """One pass of the native engine over the inputs through the batch interface the worker
    drives: one ``process_batch_records`` call per input batch, its record batches queued in
    an ``OutputBatch`` as the worker queues them for the producer. Returns outputs and
    rejections. What ``run_native`` times and ``benchmarks.instructions`` counts."""
    inputs, count = core.inputs, len(core.inputs)
    batches = [inputs[start : start + batch] for start in range(0, count, batch)]
    process = core.native.process_batch_records
    partitioner = Partitioner()
    partitioner.counts = _layouts(core)

    def one_pass() -> tuple[int, int]:
        outputs = rejected = 0
        for values in batches:
            layout = Layout(partitioner.counts, MAX_BATCH_BYTES, STAMP_MS, partitioner.keyless)
            result = process(values, layout)
            partitioner.keyless = result.round_robin
            queued = OutputBatch(partitioner, None)
            for part in result.partitions:
                queued.add_finished(part)
            outputs += queued.size
            rejected += len(result.rejections)
            del result, queued  # the worker sends them; they are freed once acknowledged
        return outputs, rejected

    return one_pass


def python_pass(core: CoreSetup) -> Callable[[], tuple[int, int]]:
    """One pass of the Python engine (the reference) over the inputs, record by record.
    Returns outputs and rejections. What ``run`` times and ``benchmarks.instructions``
    counts."""
    inputs, index = core.inputs, core.warrants
    process, lookup = core.engine.process, core.consent.get

    def one_pass() -> tuple[int, int]:
        outputs = rejected = 0
        for raw in inputs:
            result = process(raw, lookup, index)
            if type(result) is Rejection:
                rejected += 1
            else:
                outputs += len(result)
        return outputs, rejected

    return one_pass


def run_native(core: CoreSetup, repeat: int = 3, batch: int = BATCH_RECORDS) -> dict[str, Any]:
    """Time the native engine through the batch interface the worker drives (best of
    ``repeat`` passes of ``native_pass``)."""
    best = _best_pass(repeat, native_pass(core, batch))
    return {
        "engine": "native",
        "records": len(core.inputs),
        "batchRecords": batch,
        **_figures(len(core.inputs), best, NATIVE_TARGET_RECORDS_PER_SECOND),
    }


def run(
    count: int, subscribers: int, seed: int = 1, repeat: int = 3, core: CoreSetup | None = None
) -> dict[str, Any]:
    """Run the core benchmark of the Python engine and return its figures (best of
    ``repeat`` passes)."""
    core = core or setup(count, subscribers, seed)
    best = _best_pass(repeat, python_pass(core))
    return {
        "benchmark": "core",
        "records": count,
        "subscribers": subscribers,
        "consentStates": len(core.consent),
        "warrants": len(core.warrants),
        **_figures(count, best, None),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--records", type=int, default=200_000, help="records to process (default 200,000)"
    )
    parser.add_argument(
        "--subscribers", type=int, default=100_000, help="subscribers (default 100,000)"
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run (5,000 records)")
    parser.add_argument(
        "--batch",
        type=int,
        default=BATCH_RECORDS,
        help=f"records per native process_batch call (default {BATCH_RECORDS:,})",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    count, subscribers, repeat = args.records, args.subscribers, 3
    if args.quick:
        count, subscribers, repeat = 5_000, 5_000, 1
    core = setup(count, subscribers)
    reference, native_check = python_digest(core), native_digest(core)
    same_batches = reference_batches_digest(core) == native_batches_digest(core)
    identical = reference == native_check and same_batches
    print(
        f"check: {count:,} records through both engines, outputs and rejections "
        f"{'identical' if reference == native_check else 'DIFFER'} (sha256 {reference[:16]}); "
        f"record batches {'identical' if same_batches else 'DIFFER'}"
    )
    native = run_native(core, repeat=repeat, batch=args.batch)
    result = run(count, subscribers, repeat=repeat, core=core)
    for name, figures, target in (
        ("native", native, NATIVE_TARGET_RECORDS_PER_SECOND),
        ("python", result, None),
    ):
        verdict = (
            "the reference, no speed target"
            if target is None
            else f"target {target:,}/s: {'met' if figures['meetsTarget'] else 'NOT met'}"
        )
        print(
            f"{name}: {figures['recordsPerSecond']:,} records/s on one core (CPU time), "
            f"{figures['microsecondsPerRecord']} us/record, "
            f"{figures['outputsPerRecord']} outputs/record, "
            f"{figures['rejected']} rejected; {verdict}"
        )
    print(f"native/python: {native['recordsPerSecond'] / result['recordsPerSecond']:.1f}x")
    if args.json:
        document = {
            **result,
            "native": native,
            "identicalOutputs": reference == native_check,
            "identicalRecordBatches": same_batches,
        }
        args.json.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
