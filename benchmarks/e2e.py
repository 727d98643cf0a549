"""End to end: real worker processes on preloaded inputs, and latency under a steady load.

Throughput is measured from the moment the first process reports ready (``/health`` 200:
tables loaded, partitions assigned) to the moment the consumer group has committed every
input offset (polled every 0.1 s). Process start-up and table loading are outside the
window; rebalances between several workers are inside it. CPU seconds and peak RSS come
from /proc just before each process is stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks.context import Context
from benchmarks.harness import (
    NO_HEADERS,
    Child,
    Message,
    bulk_produce,
    child_env,
    drop_topics,
    output_topics,
    proc_stats,
    provision,
    unless_one_exits,
    wait_until_ready,
)
from benchmarks.readback import Latency, latency
from pipeline.errors import ConfigError
from pipeline.factory import native_engine_class
from pipeline.harness import scan
from pipeline.settings import ENGINES, Settings
from pipeline.shell.broker import free_port
from pipeline.shell.clients import publisher as input_producer
from pipeline.shell.offsets import wait_until_committed
from pipeline.shell.topics import TopicNames
from pipeline.synth import Workload, consent_states, records, warrants

E2E_PREFIX = "bench-e2e."
LOAD_PREFIX = "bench-load."
WORKER_ARGV = [sys.executable, "-m", "pipeline", "worker"]
#: Longest wait for a phase's processes to start, and for a group to finish its inputs.
START_WITHIN_S = 120.0
FINISH_WITHIN_S = 1800.0

#: The line a run prints, and the JSON report holds, for an engine it could not run.
NATIVE_NOT_BUILT = "native engine not built"

#: Waits until processes start work; returns when, and the CPU seconds used before it.
Started = Callable[[list[Child]], Awaitable[tuple[float, float]]]


async def workers_ready(children: list[Child]) -> tuple[float, float]:
    """When the first of ``children`` reported ready, once all of them have."""
    return await wait_until_ready(children, START_WITHIN_S)


def input_messages(names: TopicNames, workload: Workload, count: int) -> Iterator[Message]:
    """The first ``count`` records of the workload, for their input topics."""
    topics = {"voice": names.inputs[0], "sms": names.inputs[1]}
    for generated in records(workload, count):
        yield topics[generated.kind], generated.key, generated.value, NO_HEADERS


async def load_state(settings: Settings, workload: Workload) -> float:
    """Publish every subscriber's consent state and two warrants; seconds taken."""
    names = TopicNames(settings.topic_prefix)
    states = ((names.consent, key, value, NO_HEADERS) for key, value in consent_states(workload))
    _, seconds = await bulk_produce(settings, states)
    warranted = ((names.warrants, w.key, w.value, NO_HEADERS) for w in warrants(workload))
    await bulk_produce(settings, warranted)
    return seconds


async def preload(ctx: Context, extra_topics: tuple[str, ...] = ()) -> Settings:
    """Topics, consent for every subscriber, two warrants and ``records`` inputs."""
    settings = ctx.settings(E2E_PREFIX)
    await provision(settings, ctx.policy, extra_topics, ctx.output_configs)
    workload = ctx.workload
    ctx.say(f"publishing {workload.subscribers:,} consent states and 2 warrants")
    await load_state(settings, workload)
    ctx.say(f"publishing {ctx.config.records:,} input records")
    names = TopicNames(settings.topic_prefix)
    sent, seconds = await bulk_produce(
        settings, input_messages(names, workload, ctx.config.records)
    )
    ctx.say(f"{sent:,} inputs published in {seconds:.1f} s")
    return settings


@dataclass(frozen=True)
class ConsumerRun:
    """What one group of processes did with the preloaded inputs."""

    processes: int
    records: int
    outputs: int
    seconds: float
    cpu_seconds: float
    total_cpu_seconds: float
    peak_rss_mb: float
    startup_seconds: float

    @property
    def records_per_second(self) -> float:
        """Input records per second of the measured window."""
        return self.records / self.seconds

    def as_dict(self) -> dict[str, Any]:
        """The figures for the JSON report."""
        return {
            "processes": self.processes,
            "records": self.records,
            "outputs": self.outputs,
            "seconds": round(self.seconds, 3),
            "recordsPerSecond": round(self.records_per_second),
            "outputMessagesPerSecond": round(self.outputs / self.seconds),
            "cpuSeconds": round(self.cpu_seconds, 2),
            "cpuMicrosecondsPerRecord": round(self.cpu_seconds / self.records * 1e6, 1),
            "cpuSecondsTotal": round(self.total_cpu_seconds, 2),
            "peakRssMb": round(self.peak_rss_mb, 1),
            "startupSeconds": round(self.startup_seconds, 2),
        }


async def count_messages(settings: Settings, topics: list[str]) -> int:
    """How many messages ``topics`` hold, by reading every one of them."""
    return await scan(settings, topics, lambda _message: None, client_id="cdrveil-bench-count")


async def run_consumers(
    ctx: Context,
    settings: Settings,
    name: str,
    argv: list[str],
    processes: int,
    outputs: list[str],
    started: Started = workers_ready,
) -> ConsumerRun:
    """Start ``processes`` copies of ``argv`` in one group; measure until all is committed.

    ``outputs`` must be empty topics. Both counts come from reading the topics, not from
    their end offsets (on the embedded broker those undercount a consumer's reads): the
    inputs are counted and checked against the offsets the group committed to, the outputs
    are counted.
    """
    names = TopicNames(settings.topic_prefix)
    spawned_at = time.monotonic()
    children = []
    for i in range(processes):
        port = free_port()
        env = child_env(settings, ctx.keyring, port)
        children.append(ctx.fleet.spawn(f"{name}-{i + 1}", argv, env, port))
    try:
        first, before = await started(children)
        committed = wait_until_committed(
            settings, settings.group_id, list(names.inputs), FINISH_WITHIN_S, poll=0.1
        )
        ends = await unless_one_exits(children, committed)
        finished = time.monotonic()
        stats = [proc_stats(c.pid) for c in children]
    finally:
        for child in children:
            ctx.fleet.stop(child)
    consumed = await count_messages(settings, list(names.inputs))
    if consumed != sum(ends.values()):
        raise RuntimeError(
            f"{name}: the inputs' end offsets say {sum(ends.values()):,} records, "
            f"reading them gives {consumed:,}: no figure from this run"
        )
    produced = await count_messages(settings, outputs)
    return ConsumerRun(
        processes=processes,
        records=consumed,
        outputs=produced,
        seconds=finished - first,
        cpu_seconds=sum(s.cpu_seconds for s in stats) - before,
        total_cpu_seconds=sum(s.cpu_seconds for s in stats),
        peak_rss_mb=max(s.peak_rss_mb for s in stats),
        startup_seconds=first - spawned_at,
    )


async def worker_runs(ctx: Context, settings: Settings) -> tuple[dict[int, ConsumerRun], Latency]:
    """The worker on the preloaded inputs with 1, 2, 3 ... processes (a group each).

    The one-worker run is the end-to-end figure; its outputs are read back for latency
    (mostly time spent queued behind the preloaded backlog). Output topics are emptied
    between runs so each run's output count is its own.
    """
    runs: dict[int, ConsumerRun] = {}
    backlog: Latency | None = None
    outputs = output_topics(settings, ctx.policy)
    for count in ctx.config.workers:
        group = settings.replace(group_id=f"bench-workers-{count}")
        ctx.say(
            f"end to end: {count} worker process(es), CDRVEIL_ENGINE={settings.engine}, "
            f"on {ctx.config.records:,} inputs"
        )
        run = await run_consumers(ctx, group, f"worker{count}", WORKER_ARGV, count, outputs)
        runs[count] = run
        ctx.say(
            f"{count} worker(s): {run.records_per_second:,.0f} records/s, "
            f"{run.outputs / run.seconds:,.0f} outputs/s"
        )
        if backlog is None:
            backlog = await latency(
                settings,
                list(TopicNames(settings.topic_prefix).inputs),
                outputs,
                ctx.keyring,
                ctx.policy.analytics_purposes,
            )
        await drop_topics(settings, outputs)
        await provision(settings, ctx.policy, output_configs=ctx.output_configs)
    assert backlog is not None  # noqa: S101 - at least one run
    return runs, backlog


def native_missing() -> str | None:
    """Why the native engine cannot run here, or ``None`` if it is importable."""
    try:
        native_engine_class()
    except ConfigError as exc:
        return str(exc)
    return None


def native_builds_batches() -> bool:
    """Whether the native engine is built and hands over finished record batches."""
    if native_missing() is not None:
        return False
    return hasattr(native_engine_class(), "process_batch_records")


def preferred_engine(ctx_say: Callable[[str], None]) -> str:
    """The engine the worker phases run: the default (native) when it is built.

    Otherwise python, said in one line: a figure measured with the reference engine must
    never pass for the native one.
    """
    why = native_missing()
    if why is None:
        return "native"
    ctx_say(f"{NATIVE_NOT_BUILT}: the worker phases run CDRVEIL_ENGINE=python ({why})")
    return "python"


async def engine_runs(
    ctx: Context, settings: Settings, first: ConsumerRun
) -> dict[str, dict[str, Any]]:
    """One worker with each engine on the same preloaded inputs, in this run.

    ``first`` is the one-worker run just made with ``settings.engine``; each other engine
    gets a run of its own (a fresh group), or a "not built" entry when it cannot be loaded.
    """
    runs: dict[str, dict[str, Any]] = {settings.engine: first.as_dict()}
    outputs = output_topics(settings, ctx.policy)
    for engine in ENGINES:
        if engine in runs:
            continue
        if engine == "native" and (why := native_missing()) is not None:
            ctx.say(f"end to end, native engine: skipped, {NATIVE_NOT_BUILT}")
            runs[engine] = {"skipped": NATIVE_NOT_BUILT, "why": why}
            continue
        group = settings.replace(group_id=f"bench-engine-{engine}", engine=engine)
        ctx.say(f"end to end: 1 worker, CDRVEIL_ENGINE={engine}, {ctx.config.records:,} inputs")
        run = await run_consumers(ctx, group, f"worker-{engine}", WORKER_ARGV, 1, outputs)
        ctx.say(f"{engine} engine: {run.records_per_second:,.0f} records/s")
        runs[engine] = run.as_dict()
        await drop_topics(settings, outputs)
        await provision(settings, ctx.policy)
    return runs


@dataclass(frozen=True)
class LoadRun:
    """Latency with inputs published at a steady rate to a worker that is ready."""

    target_rate: float
    achieved_rate: float
    records: int
    latency: Latency

    def as_dict(self) -> dict[str, Any]:
        """The figures for the JSON report."""
        return {
            "targetRecordsPerSecond": round(self.target_rate),
            "achievedRecordsPerSecond": round(self.achieved_rate),
            "records": self.records,
            **self.latency.as_dict(),
        }


async def paced_publish(settings: Settings, messages: list[Message], rate: float) -> float:
    """Publish ``messages`` one ``send`` at a time at ``rate`` per second; the rate achieved."""
    client = input_producer(settings, "cdrveil-bench-load")
    await client.start()
    try:
        pending = []
        started = time.monotonic()
        for sent, (topic, key, value, _) in enumerate(messages):
            ahead = started + sent / rate - time.monotonic()
            if ahead > 0.002:
                await asyncio.sleep(ahead)
            pending.append(await client.send(topic, value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return len(messages) / (time.monotonic() - started)
    finally:
        await client.stop()


async def latency_under_load(ctx: Context, max_rate: float) -> LoadRun:
    """Inputs at ``load_share`` of ``max_rate`` for ``load_seconds`` into a ready worker."""
    settings = ctx.settings(LOAD_PREFIX, "bench-load")
    await provision(settings, ctx.policy, output_configs=ctx.output_configs)
    await load_state(settings, ctx.workload)
    rate = max(ctx.config.load_share * max_rate, 1.0)
    count = max(int(rate * ctx.config.load_seconds), 1)
    names = TopicNames(settings.topic_prefix)
    messages = list(input_messages(names, ctx.workload, count))
    port = free_port()
    worker = ctx.fleet.spawn(
        "load-worker", WORKER_ARGV, child_env(settings, ctx.keyring, port), port
    )
    try:
        await wait_until_ready([worker], START_WITHIN_S)
        ctx.say(f"latency under load: {rate:,.0f} records/s for {ctx.config.load_seconds:.0f} s")
        achieved = await unless_one_exits([worker], paced_publish(settings, messages, rate))
        committed = wait_until_committed(
            settings, settings.group_id, list(names.inputs), FINISH_WITHIN_S, poll=0.1
        )
        await unless_one_exits([worker], committed)
    finally:
        ctx.fleet.stop(worker)
    measured = await latency(
        settings,
        list(names.inputs),
        output_topics(settings, ctx.policy),
        ctx.keyring,
        ctx.policy.analytics_purposes,
    )
    await drop_topics(settings)
    return LoadRun(rate, achieved, count, measured)
