"""Core benchmark: the engine alone (no Kafka) on the standard seeded workload.

Standard workload: 100,000 subscribers whose calls follow a skewed distribution,
60 % voice / 40 % SMS, 1 % roaming, consent loaded for every subscriber, two
active warrants, the default policy. Records are generated before timing starts;
the timed loop is exactly what a worker runs per record (decode, look up consent
and warrants, apply the policy, pseudonymize, serialize). One Python thread, so
one core.

    python -m benchmarks.core                 # 200,000 records
    python -m benchmarks.core --quick         # a small smoke run
    python -m benchmarks.core --json out.json
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pipeline.core.consent import ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.engine import Engine
from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from pipeline.synth import Workload, consent_states, records, warrants

TARGET_RECORDS_PER_SECOND = 100_000


@dataclass(frozen=True)
class CoreSetup:
    """The engine, its tables and the pre-generated input messages of the standard workload."""

    engine: Engine
    consent: ConsentTable
    warrants: WarrantIndex
    inputs: list[bytes]


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
    engine = Engine.build(Policy.load(), Pseudonymizer(keyring))
    return CoreSetup(engine, consent, index, inputs)


def run(count: int, subscribers: int, seed: int = 1, repeat: int = 3) -> dict[str, Any]:
    """Run the core benchmark and return its figures (best of ``repeat`` passes)."""
    core = setup(count, subscribers, seed)
    inputs, index = core.inputs, core.warrants
    process, lookup = core.engine.process, core.consent.get
    # The worker freezes long-lived tables out of the collector's way; so do we.
    gc.collect()
    gc.freeze()
    passes = []
    outputs = rejected = 0
    for _ in range(repeat):
        outputs = rejected = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for raw in inputs:
            result = process(raw, lookup, index)
            if type(result) is Rejection:
                rejected += 1
            else:
                outputs += len(result)
        passes.append((time.perf_counter() - wall, time.process_time() - cpu))
    wall, cpu = min(passes, key=lambda p: p[1])
    rate = count / cpu
    return {
        "benchmark": "core",
        "records": count,
        "subscribers": subscribers,
        "consentStates": len(core.consent),
        "warrants": len(index),
        "rejected": rejected,
        "recordsPerSecond": round(rate),
        "wallRecordsPerSecond": round(count / wall),
        "microsecondsPerRecord": round(cpu / count * 1e6, 2),
        "outputsPerRecord": round(outputs / count, 3),
        "target": TARGET_RECORDS_PER_SECOND,
        "meetsTarget": rate >= TARGET_RECORDS_PER_SECOND,
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
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    count, subscribers, repeat = args.records, args.subscribers, 3
    if args.quick:
        count, subscribers, repeat = 5_000, 5_000, 1
    result = run(count, subscribers, repeat=repeat)
    print(
        f"core: {result['recordsPerSecond']:,} records/s on one core (CPU time), "
        f"{result['microsecondsPerRecord']} us/record, "
        f"{result['outputsPerRecord']} outputs/record, "
        f"{result['rejected']} rejected; target {TARGET_RECORDS_PER_SECOND:,}/s: "
        f"{'met' if result['meetsTarget'] else 'NOT met'}"
    )
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
