"""Instructions per record of the engine, counted by valgrind: a figure that does not move.

Timings on a shared two-core machine vary by 30 % from run to run, which hides a 5 %
improvement. ``valgrind --tool=callgrind`` counts executed instructions instead: the same
program and inputs give the same count whatever else the machine does. This runs the core
workload (10,000 subscribers, 4,000 records, default policy) under callgrind twice, with 0
and with ``--passes`` timed passes after a warm-up pass, and divides the difference by the
records processed, so start-up and workload generation cancel out. Both engines are
counted, each through exactly the loop ``benchmarks.core`` times for it: the Python engine
record by record (``Engine.process``), the native one through ``benchmarks.core.native_pass``,
the batch interface the worker uses (``process_batch_records`` in batches of the worker's
default size, building the finished Kafka record batches, 8 partitions per topic, queued in
an ``OutputBatch`` as the worker queues them for the producer).

    python -m benchmarks.instructions            # ~1 minute
    python -m benchmarks.instructions --passes 4
    python -m benchmarks.instructions --cold     # one pass with empty caches

Compare two commits by running it on each; it needs ``valgrind`` on the PATH.

Read the native figure with one caveat: valgrind does not emulate the CPU's SHA extensions
(SHA-NI), so under callgrind ``sha2`` runs its portable code, ~3,300 instructions per
SHA-256 block, and the keyed record ids (one HMAC, two blocks, per analytics output) weigh
~30 % of the native count; the real run uses SHA-NI, where they cost a fraction of that.
"""

from __future__ import annotations

import argparse
import gc
import re
import shutil
import subprocess
import sys

SUBSCRIBERS = 10_000
RECORDS = 4_000
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


ENGINES = ("native", "python")


def workload_passes(passes: int, cold: bool = False, engine: str = "python") -> None:
    """Build the engine and workload, warm every cache once (unless ``cold``), then run
    ``passes`` passes."""
    from benchmarks.core import native_pass, python_pass, setup

    core = setup(RECORDS, SUBSCRIBERS)
    one_pass = native_pass(core) if engine == "native" else python_pass(core)

    if not cold:
        one_pass()
    gc.collect()
    gc.freeze()
    gc.disable()  # a collection would land in one run and not the other
    for _ in range(passes):
        one_pass()


def count(valgrind: str, passes: int, cold: bool, engine: str = "python") -> int:
    """Instructions of a whole child process running ``passes`` passes."""
    result = subprocess.run(  # noqa: S603 - fixed argv
        [
            valgrind,
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--child",
            str(passes),
            "--engine",
            engine,
            *(["--cold"] if cold else []),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = _COLLECTED.search(result.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no instruction count:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    """Print the engine's instructions per record."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--passes", type=int, default=2, help="timed passes (2)")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="one pass with empty caches, as a fresh worker meets its subscribers "
        "(default: warm caches, as the core benchmark)",
    )
    parser.add_argument(
        "--engine", choices=[*ENGINES, "both"], default="both", help="which engine (both)"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        workload_passes(args.child, args.cold, args.engine)
        return 0
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    passes = 1 if args.cold else args.passes
    caches = "empty" if args.cold else "warm"
    print(f"counting under callgrind: {RECORDS:,} records x {passes} passes, {caches} caches")
    for engine in ENGINES if args.engine == "both" else (args.engine,):
        base = count(valgrind, 0, args.cold, engine)
        loaded = count(valgrind, passes, args.cold, engine)
        per_record = (loaded - base) / (RECORDS * passes)
        print(
            f"{engine}: {per_record:,.0f} instructions per record "
            f"(default policy, standard workload, {caches} caches)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
