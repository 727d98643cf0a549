"""The consent table at scale: a fresh worker loading a million consent states.

The states (one per subscriber of a workload that large) are published first. Then a
worker is started and its ``/health`` polled every 20 ms: the time until it leaves
``loading-tables`` (both tables caught up) and until it answers 200 (ready: tables loaded
and input partitions assigned), both from the moment the process was started, so Python's
and faust's start-up count. Its RSS is read from /proc at that moment.

The worker runs the run's engine (native where it is built): the states are then held in
the native engine's table (``NativeConsentTable``). The worker logs the engine it runs at
start; the phase reads that line back and fails if it is not the engine it asked for, so a
figure of the Python table never passes for the native one.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.context import Context
from benchmarks.e2e import START_WITHIN_S, WORKER_ARGV, load_state
from benchmarks.harness import child_env, drop_topics, proc_stats, provision
from pipeline.harness import health
from pipeline.settings import Settings
from pipeline.shell.broker import free_port
from pipeline.synth import Workload

PREFIX = "bench-consent."
#: The worker's start-up line naming its engine (``pipeline.shell.app``).
ENGINE_LINE = re.compile(r"engine: (?P<engine>\w+) \(CDRVEIL_ENGINE\)")


@dataclass(frozen=True)
class ConsentLoad:
    """How long a fresh worker took to hold every consent state, and its memory."""

    states: int
    publish_seconds: float
    tables_seconds: float
    ready_seconds: float
    rss_mb: float
    peak_rss_mb: float
    engine: str

    def as_dict(self) -> dict[str, Any]:
        """The figures for the JSON report."""
        return {
            "states": self.states,
            "publishSeconds": round(self.publish_seconds, 2),
            "tablesLoadedSeconds": round(self.tables_seconds, 2),
            "readySeconds": round(self.ready_seconds, 2),
            "rssMb": round(self.rss_mb, 1),
            "peakRssMb": round(self.peak_rss_mb, 1),
            "engine": self.engine,
        }


async def consent_load(ctx: Context) -> ConsentLoad:
    """Publish ``consent_states`` states, start a worker, time it until ready."""
    settings: Settings = ctx.settings(PREFIX, "bench-consent")
    await provision(settings, ctx.policy)
    states = ctx.config.consent_states
    ctx.say(f"consent at scale: publishing {states:,} consent states")
    publish = await load_state(settings, Workload(subscribers=states, seed=ctx.config.seed))
    port = free_port()
    # INFO: the worker's start-up lines say which engine (and so which table) it runs.
    env = child_env(settings, ctx.keyring, port) | {"CDRVEIL_LOG_LEVEL": "INFO"}
    worker = ctx.fleet.spawn("consent-worker", WORKER_ARGV, env, port)
    spawned = time.monotonic()
    tables: float | None = None
    try:
        while True:
            body = health(port)
            now = time.monotonic()
            status = body.get("status")
            if tables is None and status in ("joining-group", "ready"):
                tables = now - spawned
            if status == "ready":
                stats = proc_stats(worker.pid)
                break
            if not worker.running():
                raise RuntimeError(f"the worker exited:\n{worker.log_tail()}")
            if now - spawned > START_WITHIN_S:
                raise RuntimeError(f"the worker was not ready in {START_WITHIN_S:.0f} s")
            await asyncio.sleep(0.02)
        if body.get("consent_states") != states:
            raise RuntimeError(f"the worker holds {body.get('consent_states')} of {states} states")
        said = ENGINE_LINE.search(worker.log())
        if said is None or said["engine"] != settings.engine:
            raise RuntimeError(
                f"the consent worker was to run CDRVEIL_ENGINE={settings.engine}; its log says "
                f"{said[0] if said else 'no engine'}"
            )
    finally:
        ctx.fleet.stop(worker)
    await drop_topics(settings)
    return ConsentLoad(
        states, publish, tables, now - spawned, stats.rss_mb, stats.peak_rss_mb, settings.engine
    )
