"""``python -m benchmarks`` (``make bench``): every benchmark in one run, one table, one JSON file.

On the embedded broker, in this order: the engine alone (core, native and python); the
preloaded inputs through one real worker (end to end), 2, 3 ... workers, one worker with
each other engine (``CDRVEIL_ENGINE``; native is skipped, and says so, where it is not
built), the passthrough baseline on the same inputs, and one more worker sampled by py-spy
for its CPU by phase (where py-spy is installed: ``make bench`` installs it); the
outputs-only baseline; the naive faust baseline; latency under a steady load at half the
measured end-to-end rate; a fresh worker loading a million consent states into the
engine's table. Then, with the embedded broker stopped, on Apache Kafka (one node; the
project's launcher, :mod:`benchmarks.apache_kafka`): one worker end to end and latency at
half its rate, with ``LogAppendTime`` output topics. ``--no-apache-kafka`` leaves those out
(the smoke run of ``make test``), ``--apache-kafka-only`` runs only them. Each phase uses
its own topics and deletes them when done. Every process it starts is stopped at the end,
also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks import apache_kafka, baselines, core, e2e, phases
from benchmarks.consent_scale import consent_load
from benchmarks.context import Config, Context
from benchmarks.harness import ROOT, Fleet, drop_topics, machine
from benchmarks.report import build
from pipeline.core.keys import Keyring
from pipeline.core.policy import Policy
from pipeline.settings import Settings
from pipeline.shell.broker import EmbeddedBroker

DEFAULT_JSON = ROOT / "benchmarks" / "out" / "bench.json"


async def run_phases(ctx: Context, results: dict[str, Any]) -> None:
    """Run every phase on the broker, filling ``results``."""
    config = ctx.config
    settings = await e2e.preload(ctx, extra_topics=(baselines.passthrough.TOPIC,))
    runs, backlog = await e2e.worker_runs(ctx, settings)
    results["workers"] = {str(n): run.as_dict() for n, run in runs.items()}
    results["engine"] = settings.engine
    results["engines"] = await e2e.engine_runs(ctx, settings, runs[min(runs)])
    results["backlogLatency"] = backlog.as_dict()
    results["passthrough"] = (await baselines.passthrough_run(ctx, settings)).as_dict()
    results["cpuByPhase"] = await cpu_by_phase(ctx, settings)
    await drop_topics(settings)
    first = runs[min(runs)]
    results["outputsOnly"] = await baselines.outputs_only_run(ctx, first.outputs)
    results["naiveFaust"] = (await baselines.naive_faust_run(ctx)).as_dict()
    load = await e2e.latency_under_load(ctx, first.records_per_second)
    results["latencyUnderLoad"] = load.as_dict()
    results["loadShare"] = config.load_share
    results["loadSeconds"] = config.load_seconds
    results["consentAtScale"] = (await consent_load(ctx)).as_dict()


async def cpu_by_phase(ctx: Context, settings: Settings) -> dict[str, Any]:
    """One more worker with the run's engine on the preloaded inputs, sampled by py-spy:
    its CPU per input record split into fetch, engine, produce, commit and the rest
    (:mod:`benchmarks.phases`). A run of its own: the sampling costs the worker some CPU,
    so the end-to-end figures come from the unsampled run."""
    if not ctx.config.phases:
        return {"skipped": "--no-phases"}
    if phases.py_spy() is None:
        ctx.say(f"worker CPU by phase: skipped, {phases.NO_PY_SPY}")
        return {"skipped": phases.NO_PY_SPY}
    ctx.say(f"worker CPU by phase (py-spy), CDRVEIL_ENGINE={settings.engine}")
    return await phases.profile(ctx, settings, settings.engine, 250, ctx.fleet.workdir)


def cancel_on_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C does: the phases unwind and stop what they started."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def with_broker(
    config: Config, workdir: Path, keyring: Path, engine: str, results: dict[str, Any]
) -> None:
    """Start the broker, run the phases, stop every process started (also when cancelled)."""
    cancel_on_sigterm()
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
            # Every worker phase runs the default engine, or says it cannot.
            ctx.base = base.replace(engine=engine)
            ctx.say(f"embedded broker on {broker.bootstrap_servers} (pid {broker.pid})")
            results["processes"] = {"broker": broker.pid}
            await run_phases(ctx, results)
            results["brokerPeakRssMb"] = _peak_rss(broker.pid)
            ctx.say("done; stopping the broker")
    finally:
        fleet.close()
        results.setdefault("processes", {})["children"] = [c.pid for c in fleet.children]


def _peak_rss(pid: int | None) -> float:
    with contextlib.suppress(OSError, StopIteration, TypeError):
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        line = next(line for line in status if line.startswith("VmHWM"))
        return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def report(
    config: Config, host: dict[str, Any], results: dict[str, Any], argv: list[str]
) -> dict[str, Any]:
    """The whole JSON report: command, machine, date, sizes, results, table and targets."""
    table = build(results, config.records, config.naive_records)
    return {
        "command": shlex.join(argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": host,
        "config": config.as_dict(),
        "results": results,
        "rows": [row.as_dict() for row in table.rows],
        "targets": table.targets(),
        "table": table.render(),
    }


def config_from(args: argparse.Namespace) -> tuple[Config, Path]:
    """The run's sizes from parsed flags (``--quick`` first, then explicit sizes)."""
    changes = {
        name: value
        for name, value in (
            ("records", args.records),
            ("naive_records", args.naive_records),
            ("load_seconds", args.load_seconds),
            ("consent_states", args.consent_states),
            ("batch_max_records", args.batch_max_records),
            ("linger_ms", args.linger_ms),
            ("partitions", args.partitions),
        )
        if value is not None
    }
    if args.apache_kafka_nodes is not None:
        changes["apache_kafka_nodes"] = args.apache_kafka_nodes
    if args.no_apache_kafka and args.apache_kafka_only:
        raise SystemExit("--no-apache-kafka and --apache-kafka-only exclude each other")
    changes["apache_kafka"] = not args.no_apache_kafka
    changes["embedded"] = not args.apache_kafka_only
    changes["phases"] = not args.no_phases
    config = Config.quick_run(**changes) if args.quick else Config(**changes)
    return config, args.json or DEFAULT_JSON


async def with_apache_kafka(
    config: Config, workdir: Path, keyring: Path, engine: str, results: dict[str, Any]
) -> None:
    """The Apache Kafka phases (:mod:`benchmarks.apache_kafka`), stopped on SIGTERM too."""
    cancel_on_sigterm()
    await apache_kafka.with_apache_kafka(config, workdir, keyring, engine, results)


def say(text: str) -> None:
    """A progress line of the run itself (the phases' lines carry their elapsed time)."""
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def run(config: Config, json_path: Path, argv: list[str]) -> int:
    """Run the benchmark, print the table, write the JSON file; the exit status."""
    host = machine()  # the load average before the run
    results: dict[str, Any] = {}
    started = time.monotonic()
    try:
        # Every worker phase runs the default engine, or says it cannot.
        engine = e2e.preferred_engine(say)
        with tempfile.TemporaryDirectory(prefix="cdrveil-bench-") as folder:
            keyring = Path(folder) / "bench.keyring.json"
            Keyring.init(keyring)
            if config.embedded:
                say("core: the engine alone")
                setup = core.setup(config.core_records, config.subscribers, config.seed)
                results["core"] = {
                    **core.run_native(setup, repeat=config.core_repeat),
                    "python": core.run(
                        config.core_records,
                        config.subscribers,
                        repeat=config.core_repeat,
                        core=setup,
                    ),
                }
                embedded = Path(folder) / "embedded"
                embedded.mkdir()
                asyncio.run(with_broker(config, embedded, keyring, engine, results))
            if config.apache_kafka:
                on_kafka: dict[str, Any] = {}
                results["apacheKafka"] = on_kafka
                kafka = Path(folder) / "apache-kafka"
                kafka.mkdir()
                asyncio.run(with_apache_kafka(config, kafka, keyring, engine, on_kafka))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\nbench interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    results["seconds"] = round(time.monotonic() - started, 1)
    document = report(config, host, results, argv)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    print(document["table"])
    missed = [t["name"].strip() for t in document["targets"] if not t["met"]]
    met = len(document["targets"]) - len(missed)
    print(f"\ntargets met: {met} of {len(document['targets'])}", end="")
    print(f"; missed: {'; '.join(missed)}" if missed else "")
    print(f"run took {results['seconds']:,.0f} s; JSON report: {json_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``python -m benchmarks``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Every benchmark of cdrveil, from a source checkout. On the embedded "
        "broker: the engine alone (native and python); preloaded inputs through one real "
        "worker until every offset is committed (records/s, messages/s, latency, CPU, RSS), "
        "with each engine; its CPU by phase (py-spy); the outputs-only, passthrough and "
        "naive-faust baselines on the same data and client settings; latency at half the "
        "measured rate; a fresh worker loading a million consent states; 1, 2 and 3 workers. "
        "Then on Apache Kafka (make kafka-libs): one worker end to end, and latency at half "
        "its rate with LogAppendTime output topics. "
        "Prints each target and whether it was met, writes the figures as JSON, and stops "
        "everything it started (also on Ctrl-C). The single benchmarks run alone as "
        "python -m benchmarks.core, .ingest, .instructions, .phases, .broker_drift, ...",
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run of every phase")
    parser.add_argument(
        "--records", type=int, metavar="N", help="end-to-end input records (500,000)"
    )
    parser.add_argument(
        "--naive-records",
        type=int,
        metavar="N",
        help="input records of the naive faust baseline (50,000)",
    )
    parser.add_argument(
        "--load-seconds", type=float, metavar="S", help="latency-under-load duration (60)"
    )
    parser.add_argument(
        "--consent-states", type=int, metavar="N", help="consent states at scale (1,000,000)"
    )
    parser.add_argument(
        "--batch-max-records", type=int, metavar="N", help="records per worker batch (2000)"
    )
    parser.add_argument("--linger-ms", type=int, metavar="MS", help="producer linger (5)")
    parser.add_argument("--partitions", type=int, metavar="N", help="partitions per topic (8)")
    parser.add_argument(
        "--no-apache-kafka",
        action="store_true",
        help="skip the Apache Kafka phases (the smoke run of make test)",
    )
    parser.add_argument(
        "--apache-kafka-only",
        action="store_true",
        help="only the Apache Kafka phases (end to end, latency at 50%% load)",
    )
    parser.add_argument(
        "--apache-kafka-nodes",
        type=int,
        choices=(1, 3),
        metavar="N",
        help="Apache Kafka nodes: 1 (replication factor 1, the default) or 3 (factor 3)",
    )
    parser.add_argument(
        "--no-phases",
        action="store_true",
        help="skip the worker's CPU by phase (the py-spy profile)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="JSON report (benchmarks/out/bench.json)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks [FLAGS]``: the exit status."""
    args = build_parser().parse_args(argv)
    flags = sys.argv[1:] if argv is None else argv
    config, json_path = config_from(args)
    # Ctrl-C stops the run even when it was started with SIGINT ignored (a background job
    # of a script, or a pytest-xdist worker under one, passes SIG_IGN on): Python then
    # installs no handler and asyncio.run none either, and the run would go on to the end.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return run(config, json_path, ["python", "-m", "benchmarks", *flags])
