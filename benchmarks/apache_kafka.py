"""The Apache Kafka phases of ``python -m benchmarks``: the same worker on a real Kafka broker.

After the embedded broker's phases (and with it stopped), the run starts Apache Kafka with
the project's one launcher (:class:`pipeline.shell.kafka_cluster.KafkaCluster`, as tests,
soak runs and ``cdrveil broker --apache-kafka`` do): one node by default, replication
factor 1 (``--apache-kafka-nodes 3`` gives three nodes and replication factor 3, on the same
two cores). Then, in this order:

- **end to end**: the standard workload preloaded (consent for every subscriber, two
  warrants, ``records`` inputs), one real ``python -m pipeline worker`` with the run's
  engine, measured from ready to every input offset committed, exactly as on the embedded
  broker (:func:`benchmarks.e2e.run_consumers`);
- **latency at 50 % load**: a fresh worker, ready and idle, then inputs published one
  ``send`` at a time at ``load_share`` of the rate just measured on Apache Kafka, for
  ``load_seconds``. Every output topic is created with
  ``message.timestamp.type=LogAppendTime``, so each output's timestamp is the moment the
  broker appended it; the inputs keep their producer's create time (when the publisher
  handed them to its client). The figure thus runs from an input's send to its output's
  write on the broker, and the report counts how many outputs carried an append time.

The cluster is stopped when the phases end, also on Ctrl-C or SIGTERM, and if it cannot be
started the run says why in the table instead of a figure.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from benchmarks import e2e
from benchmarks.context import Config, Context
from benchmarks.harness import LOG_APPEND_TIME, Fleet, drop_topics, output_topics
from pipeline.core.policy import Policy
from pipeline.errors import BrokerError
from pipeline.settings import Settings
from pipeline.shell.kafka_cluster import KafkaCluster, kafka_version

GROUP = "bench-kafka-worker"


async def run_phases(ctx: Context, results: dict[str, Any]) -> None:
    """End to end with one worker, then latency at ``load_share`` of its rate."""
    results["engine"] = ctx.base.engine
    results["loadShare"] = ctx.config.load_share
    results["loadSeconds"] = ctx.config.load_seconds
    settings = await e2e.preload(ctx)
    outputs = output_topics(settings, ctx.policy)
    group = settings.replace(group_id=GROUP)
    ctx.say(
        f"end to end: 1 worker process, CDRVEIL_ENGINE={settings.engine}, "
        f"on {ctx.config.records:,} inputs"
    )
    run = await e2e.run_consumers(ctx, group, "kafka-worker", e2e.WORKER_ARGV, 1, outputs)
    ctx.say(
        f"1 worker: {run.records_per_second:,.0f} records/s, "
        f"{run.outputs / run.seconds:,.0f} outputs/s"
    )
    results["worker"] = run.as_dict()
    # The end-to-end topics are deleted only after the load phase: Kafka deletes a topic's
    # logs in the background, and on the same two cores that work would land in the
    # latency figure (the next phase's topics have names of their own).
    try:
        load = await e2e.latency_under_load(ctx, run.records_per_second)
    finally:
        await drop_topics(settings)
    results["latencyUnderLoad"] = load.as_dict()
    worst = load.latency.worst_second()
    ctx.say(
        f"latency at {ctx.config.load_share:.0%} load: p99 {load.latency.p99_ms:,.0f} ms, "
        f"{load.latency.append_time_outputs:,} of {load.latency.outputs:,} outputs "
        "with the broker's append time"
        + ("" if worst is None else f"; worst second +{worst[0]} s, p99 {worst[1]:,.0f} ms")
    )


async def with_apache_kafka(
    config: Config, workdir: Path, keyring: Path, engine: str, results: dict[str, Any]
) -> None:
    """Start Apache Kafka, run its phases, stop every process started (also when cancelled).

    ``results`` gets the cluster's description and the phases' figures, or ``skipped``
    with the reason when the cluster cannot be started (no jars, no Java).
    """
    nodes = config.apache_kafka_nodes
    cluster = KafkaCluster(nodes)
    fleet = Fleet(workdir)
    results["nodes"] = nodes
    results["replicationFactor"] = cluster.replication_factor
    # The launcher blocks while the JVMs start: in a thread, awaited to its end even when
    # this task is cancelled, so the cluster it started is always stopped below.
    starting = asyncio.ensure_future(asyncio.to_thread(cluster.start))
    try:
        try:
            await asyncio.shield(starting)
        except BrokerError as exc:
            results["skipped"] = str(exc)
            print(f"[bench] Apache Kafka: not run: {exc}", flush=True)
            return
        assert cluster.libs is not None  # noqa: S101 - set by start
        results["version"] = kafka_version(cluster.libs)
        results["processes"] = {"nodes": [n.pid for n in cluster.nodes]}
        base = Settings.from_env(
            {},
            bootstrap_servers=cluster.bootstrap_servers,
            partitions=config.partitions,
            replication_factor=cluster.replication_factor,
            batch_max_records=config.batch_max_records,
            linger_ms=config.linger_ms,
            session_timeout_ms=config.session_timeout_ms,
            engine=engine,
        )
        ctx = Context(
            config,
            base,
            Policy.load(),
            keyring,
            fleet,
            output_configs=dict(LOG_APPEND_TIME),
            broker="apache-kafka",
        )
        ctx.say(
            f"Apache Kafka {results['version']}: {nodes} node(s) on "
            f"{cluster.bootstrap_servers}, replication factor {cluster.replication_factor}"
        )
        await run_phases(ctx, results)
        ctx.say("done; stopping Apache Kafka")
    finally:
        fleet.close()
        results.setdefault("processes", {})["children"] = [c.pid for c in fleet.children]
        if not starting.done():
            with contextlib.suppress(BaseException):
                await asyncio.wait({starting})
        cluster.stop()
