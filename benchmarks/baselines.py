"""The baselines, run in the same benchmark on the same broker, data and client settings.

- outputs-only: the worker's output messages produced with nothing else to do
  (:mod:`benchmarks.outputs_only`);
- passthrough: the worker's record path with an engine that copies each input
  (:mod:`benchmarks.passthrough`);
- naive faust: a per-event faust agent with the same engine (:mod:`benchmarks.naive_faust`),
  on its own, usually smaller, set of the same inputs. Its rate is reported for the number
  of records it ran; nothing is extrapolated.
"""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.request
from typing import Any

import orjson

from benchmarks import passthrough
from benchmarks.context import Context
from benchmarks.e2e import (
    START_WITHIN_S,
    ConsumerRun,
    input_messages,
    load_state,
    native_builds_batches,
    run_consumers,
)
from benchmarks.harness import (
    Child,
    bulk_produce,
    child_env,
    drop_topics,
    output_topics,
    proc_stats,
    provision,
)
from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames

NAIVE_PREFIX = "bench-naive."
OUTPUTS_ONLY_PREFIX = "bench-outputs."


async def passthrough_run(ctx: Context, settings: Settings) -> ConsumerRun:
    """The passthrough worker over the preloaded inputs (its own group)."""
    ctx.say(f"passthrough baseline on {ctx.config.records:,} inputs")
    group = settings.replace(group_id="bench-passthrough")
    argv = [sys.executable, "-m", "benchmarks.passthrough"]
    topic = TopicNames(settings.topic_prefix)(passthrough.TOPIC)
    return await run_consumers(ctx, group, "passthrough", argv, 1, [topic])


async def outputs_only_run(ctx: Context, messages: int) -> dict[str, Any]:
    """Produce ``messages`` pre-serialized worker outputs in a process of their own."""
    ctx.say(f"outputs-only baseline: {messages:,} messages")
    settings = ctx.settings(OUTPUTS_ONLY_PREFIX)
    await provision(settings, ctx.policy)
    argv = [
        sys.executable,
        "-m",
        "benchmarks.outputs_only",
        f"--messages={messages}",
        f"--sample={min(ctx.config.records, 50_000)}",
        f"--subscribers={ctx.config.subscribers}",
        f"--seed={ctx.config.seed}",
    ]
    if ctx.base.engine == "native" and native_builds_batches():
        # The worker's write path then starts from finished record batches: so does this.
        argv.append("--finished")
    child = ctx.fleet.spawn("outputs-only", argv, child_env(settings, ctx.keyring, 0))
    try:
        # The process ends by itself once the broker has acknowledged the last message.
        await asyncio.to_thread(child.process.wait)
    finally:
        ctx.fleet.stop(child)
    await drop_topics(settings)
    lines = [line for line in child.log_tail(20_000).splitlines() if line.startswith("{")]
    if child.process.returncode != 0 or not lines:
        raise RuntimeError(f"the outputs-only baseline failed:\n{child.log_tail()}")
    result: dict[str, Any] = orjson.loads(lines[-1])
    return result


def _progress(port: int) -> dict[str, Any]:
    try:
        url = f"http://127.0.0.1:{port}/bench"
        with urllib.request.urlopen(url, timeout=1) as answer:
            body: dict[str, Any] = orjson.loads(answer.read())
            return body
    except (OSError, orjson.JSONDecodeError):
        return {}


async def first_event(children: list[Child]) -> tuple[float, float]:
    """When the faust agent took its first event (its own monotonic clock reading), and
    the CPU seconds it had used by then (start-up and loading the tables)."""
    (child,) = children
    deadline = time.monotonic() + START_WITHIN_S
    while True:
        if not child.running():
            raise RuntimeError(f"the naive faust baseline exited:\n{child.log_tail()}")
        at = _progress(child.web_port).get("firstEventAt")
        if at is not None:
            return float(at), proc_stats(child.pid).cpu_seconds
        if time.monotonic() > deadline:
            raise RuntimeError(f"the naive faust agent got no event:\n{child.log_tail()}")
        await asyncio.sleep(0.02)


async def naive_faust_run(ctx: Context) -> ConsumerRun:
    """The naive faust agent on the first ``naive_records`` inputs of the same workload."""
    settings = ctx.settings(NAIVE_PREFIX, "bench-naive-faust")
    await provision(settings, ctx.policy)
    await load_state(settings, ctx.workload)
    names = TopicNames(settings.topic_prefix)
    count = ctx.config.naive_records
    await bulk_produce(settings, input_messages(names, ctx.workload, count))
    ctx.say(f"naive faust baseline on {count:,} inputs")
    argv = [sys.executable, "-m", "benchmarks.naive_faust"]
    outputs = output_topics(settings, ctx.policy)
    run = await run_consumers(ctx, settings, "naive-faust", argv, 1, outputs, first_event)
    await drop_topics(settings)
    return run
