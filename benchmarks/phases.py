"""Where one worker's CPU goes, per input record: fetch, engine, produce, commit (py-spy).

Run as ``python -m benchmarks.phases [--records N] [--engine python|native]`` (``make
bench-phases``, which installs py-spy first). On the embedded broker: the standard
workload's first N inputs preloaded, one real worker (``python -m pipeline worker``) on
them, and once it is ready, ``py-spy record`` samples it (on-CPU samples only, every thread)
until the group has committed every input. Each sample goes to the phase of the innermost
frame that names one (:data:`PHASES`); the worker's measured CPU per record is shared out
in proportion. py-spy reads the process from outside, so the worker runs unmodified and
nothing in the record path is timed by itself.

Phases: *fetch* is aiokafka's fetcher and ``getmany`` (records decoded into Python
objects); *engine* is ``process_batch``; *produce* is building the output record batches
(``OutputBatch``, aiokafka's builders), handing them to the producer and its sender task
(encoding the produce requests), and awaiting their acknowledgement; *commit* is the offset
commit, the group coordinator (heartbeats) and counting the batch in the metrics; *other*
is the rest (the event loop, reading answers off the sockets, faust, the web endpoints).
Each phase is also split into parts (``produce/append``: the outputs into record batches,
partitioner included; ``produce/send``: handing them over, encoding the requests, awaiting
the acknowledgements), printed as ``parts``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson

from benchmarks import e2e
from benchmarks.context import Config, Context
from benchmarks.harness import Child, Fleet, drop_topics, output_topics, provision
from pipeline.core.keys import Keyring
from pipeline.core.policy import Policy
from pipeline.settings import ENGINES, Settings
from pipeline.shell.broker import EmbeddedBroker

#: (phase/part, file path part, function names or None for any): the innermost frame that
#: matches decides. The phase is the name before the slash; the part says where inside it.
PHASES: Final[tuple[tuple[str, str, frozenset[str] | None], ...]] = (
    ("engine/decide", "pipeline/core/", None),
    ("produce/append", "pipeline/shell/produce.py", frozenset({"add", "partition", "murmur2"})),
    ("produce/append", "pipeline/shell/recordpath.py", frozenset({"_process", "_dead_letter"})),
    ("produce/append", "aiokafka/producer/message_accumulator.py", frozenset({"append"})),
    ("produce/send", "pipeline/shell/produce.py", None),
    ("produce/send", "pipeline/shell/recordpath.py", frozenset({"_enqueue"})),
    ("produce/send", "aiokafka/producer/", None),
    ("fetch/fetch", "aiokafka/consumer/fetcher.py", None),
    ("fetch/fetch", "aiokafka/consumer/consumer.py", frozenset({"getmany"})),
    ("commit/commit", "aiokafka/consumer/group_coordinator.py", None),
    ("commit/commit", "aiokafka/consumer/consumer.py", frozenset({"commit"})),
    (
        "commit/count",
        "pipeline/shell/recordpath.py",
        frozenset({"_commit", "_count", "_report_lag"}),
    ),
    ("commit/count", "pipeline/shell/telemetry.py", None),
    ("commit/count", "prometheus_client/", None),
    ("other/network", "aiokafka/conn.py", None),
    ("other/network", "aiokafka/client.py", None),
    ("other/loop", "asyncio/", None),
)
_PHASE_RULES: Final = tuple(rule for rule in PHASES if not rule[0].startswith("other/"))
_OTHER_RULES: Final = tuple(rule for rule in PHASES if rule[0].startswith("other/"))
ORDER: Final = ("fetch", "engine", "produce", "commit", "other")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*):\d+\)$")


def phase_of(stack: str) -> str:
    """The phase/part of one collapsed py-spy stack (``frame;frame;...``, root first).

    The innermost frame that names a phase decides; only a stack with none falls to an
    ``other`` part (so a produce request's encoding, deep in the connection's code, still
    counts as produce).
    """
    frames = []
    for frame in reversed(stack.split(";")):
        match = _FRAME.match(frame)
        if match is not None:
            # py-spy names methods Class.method.
            frames.append((match["function"].rsplit(".", 1)[-1], match["file"]))
    for wanted in (_PHASE_RULES, _OTHER_RULES):
        for function, file in frames:
            for phase, part, functions in wanted:
                if part in file and (functions is None or function in functions):
                    return phase
    return "other/rest"


def tally(raw: str) -> Counter[str]:
    """Samples per phase/part in py-spy's ``--format raw`` output."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit() and stack.strip():
            counts[phase_of(stack)] += int(count)
    return counts


#: Why the profile cannot run, when py-spy is missing.
NO_PY_SPY: Final = "py-spy is not installed (`make bench` and `make bench-phases` install it)"


def py_spy() -> str | None:
    """The py-spy executable (on PATH or next to this Python), or ``None``."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return spy if Path(spy).exists() else None


def spy_on(pid: int, output: Path, rate: int) -> subprocess.Popen[bytes]:
    """``py-spy record`` on ``pid`` until it exits or gets SIGINT."""
    spy = py_spy()
    if spy is None:
        raise SystemExit(NO_PY_SPY)
    argv = [spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
    argv += ["--output", str(output), "--nonblocking"]
    return subprocess.Popen(  # noqa: S603 - our own tool on our own child
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


async def profile(
    ctx: Context, preloaded: Settings, engine: str, rate: int, workdir: Path
) -> dict[str, Any]:
    """One worker with ``engine`` on the preloaded inputs, sampled from ready to committed."""
    settings = preloaded.replace(group_id=f"bench-phases-{engine}", engine=engine)
    outputs = output_topics(settings, ctx.policy)
    samples = workdir / f"{engine}.spy.txt"
    spies: list[subprocess.Popen[bytes]] = []

    async def started(children: list[Child]) -> tuple[float, float]:
        first, before = await e2e.workers_ready(children)
        spies.append(spy_on(children[0].pid, samples, rate))
        return first, before

    try:
        run = await e2e.run_consumers(
            ctx, settings, f"phases-{engine}", e2e.WORKER_ARGV, 1, outputs, started
        )
    finally:
        for spy in spies:
            if spy.poll() is None:
                spy.send_signal(signal.SIGINT)
            spy.wait(30)
    # Empty outputs for the next engine's run.
    await drop_topics(settings, outputs)
    await provision(settings, ctx.policy)
    parts = tally(samples.read_text() if samples.exists() else "")
    counts: Counter[str] = Counter()
    for part, count in parts.items():
        counts[part.split("/")[0]] += count
    total = sum(counts.values())
    if not total:
        raise SystemExit("py-spy took no samples (is ptrace allowed here?)")
    per_record = run.cpu_seconds / run.records * 1e6
    return {
        "engine": engine,
        "records": run.records,
        "recordsPerSecond": round(run.records_per_second),
        "cpuMicrosecondsPerRecord": round(per_record, 1),
        "samples": total,
        "microsecondsPerRecord": {p: round(per_record * counts[p] / total, 2) for p in ORDER},
        "share": {p: round(counts[p] / total, 3) for p in ORDER},
        "parts": {p: round(per_record * n / total, 2) for p, n in sorted(parts.items())},
    }


async def main_async(
    config: Config,
    engines: list[str],
    rate: int,
    say: Callable[..., Any],
    keep: Path | None = None,
) -> int:
    """Broker up, one profile per engine, broker down; one JSON line per engine."""
    with tempfile.TemporaryDirectory(prefix="cdrveil-phases-") as folder:
        workdir = Path(folder)
        keyring = workdir / "bench.keyring.json"
        Keyring.init(keyring)
        fleet = Fleet(workdir)
        try:
            async with EmbeddedBroker() as broker:
                base = Settings.from_env(
                    {},
                    bootstrap_servers=broker.bootstrap_servers,
                    partitions=config.partitions,
                    batch_max_records=config.batch_max_records,
                    linger_ms=config.linger_ms,
                    session_timeout_ms=config.session_timeout_ms,
                )
                ctx = Context(config, base, Policy.load(), keyring, fleet)
                preloaded = await e2e.preload(ctx)
                for engine in engines:
                    if engine == "native" and e2e.native_missing() is not None:
                        say(f"native: skipped, {e2e.NATIVE_NOT_BUILT}")
                        continue
                    result = await profile(ctx, preloaded, engine, rate, workdir)
                    say(orjson.dumps(result).decode())
                    if keep is not None:
                        keep.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, tiny
                        shutil.copy(workdir / f"{engine}.spy.txt", keep)
        finally:
            fleet.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--records", type=int, default=300_000, help="inputs (300,000)")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument(
        "--engine", choices=ENGINES, action="append", help="engine(s) to profile (both)"
    )
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--keep", type=Path, help="copy py-spy's raw samples into this folder")
    args = parser.parse_args(argv)
    config = Config(records=args.records, subscribers=args.subscribers, workers=(1,))
    engines = args.engine or ["python", "native"]
    return asyncio.run(main_async(config, engines, args.rate, print, args.keep))


if __name__ == "__main__":
    sys.exit(main())
