"""Brokers dying under a running worker, on a three-node Apache Kafka cluster.

Replication factor 3, ``min.insync.replicas=2``, the worker producing with ``acks=all``.
Inputs are published at a steady rate while one worker runs; as the group's commits pass
given shares of the inputs: the leader of an input partition gets SIGKILL and is restarted,
then the leader of an output partition, then one node is frozen with SIGSTOP for a while and
woken with SIGCONT. The same worker process must run throughout; afterwards every output
topic and the dead-letter topic are compared with the engine run offline (``soak.harness``):
nothing may be missing; duplicates are counted (at-least-once) and must be 0 under
exactly-once.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.core.keys import Keyring
from pipeline.harness import Workers
from pipeline.settings import Settings
from pipeline.shell.kafka_cluster import KafkaCluster
from pipeline.shell.topics import TopicNames
from pipeline.synth import Workload
from soak.harness import (
    POLICY,
    Expectation,
    Input,
    Say,
    Verdict,
    committed_total,
    compare,
    create_all_topics,
    publish,
    publish_tables,
    quiet,
    record_messages,
    wait_committed,
)


@dataclass(frozen=True)
class BrokerFaultConfig:
    """Sizes and timings of one run."""

    records: int = 60_000
    rate: float = 1_000.0
    subscribers: int = 5_000
    #: How long a killed leader stays down before it is restarted.
    down_s: float = 5.0
    #: How long the frozen node stays stopped.
    freeze_s: float = 30.0
    within: float = 600.0


@dataclass
class Fault:
    """One fault: what was done to which node, and the progress at the time."""

    what: str
    node_id: int
    committed_at: int
    seconds: float


@dataclass
class BrokerFaultReport:
    """What a run did and found."""

    config: BrokerFaultConfig
    guarantee: str
    faults: list[Fault] = field(default_factory=list)
    worker_restarts: int = 0
    worker_exit_code: int | None = None
    #: Exactly-once: the worker's log lines on failed transactions it recovered from.
    recoveries: list[str] = field(default_factory=list)
    verdict: Verdict = field(default_factory=Verdict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Nothing lost, the worker never restarted, no duplicates under exactly-once."""
        return (
            self.verdict.ok
            and len(self.faults) == 3
            and self.worker_restarts == 0
            and self.worker_exit_code == 0
            and (self.guarantee != "exactly_once" or self.verdict.duplicates == 0)
        )

    def summary(self) -> str:
        """The figures, for a person."""
        total = self.config.records
        lines = [
            f"{total:,} records at {self.config.rate:,.0f}/s, {self.guarantee}, 3 nodes, "
            f"RF 3, min.insync.replicas 2, acks=all, {self.seconds:.0f} s"
        ]
        lines += [
            f"  {fault.what} (node {fault.node_id}) at {fault.committed_at / total:.0%} "
            f"committed, {fault.seconds:.0f} s"
            for fault in self.faults
        ]
        lines.append(
            f"  worker restarts: {self.worker_restarts}; exit status {self.worker_exit_code} "
            "after SIGTERM"
        )
        if self.guarantee == "exactly_once":
            lines.append(f"  transactions failed and recovered from: {len(self.recoveries)}")
            lines += [f"    {line}" for line in self.recoveries]
        lines.append(self.verdict.summary())
        return "\n".join(lines)


async def _publish_once(
    settings: Settings, messages: list[tuple[str, bytes | None, bytes | None]], rate: float
) -> list[Input]:
    """Publish the inputs with an idempotent producer: the plain one's retries after a
    killed leader wrote some input batches twice (60,015 inputs for 60,000 sent), whose
    outputs then counted as duplicates of the worker's."""
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs("cdrveil-soak"),
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 18,
        max_request_size=4 << 20,
        enable_idempotence=True,
    )
    await producer.start()
    try:
        return await publish(settings, messages, rate=rate, producer=producer)
    finally:
        await producer.stop()


async def leader_of(settings: Settings, topic: str, partition: int = 0) -> int:
    """The node id leading ``topic``'s partition now."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs("cdrveil-soak-meta"))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    for entry in described["partitions"]:
        if entry["partition"] == partition:
            leader: int = entry["leader"]
            return leader
    raise LookupError(f"{topic}[{partition}] has no leader")


async def run_broker_faults(
    cluster: KafkaCluster,
    settings: Settings,
    workdir: Path,
    config: BrokerFaultConfig,
    say: Say = quiet,
) -> BrokerFaultReport:
    """Run the scenario with ``settings`` (replication 3) on ``cluster``; the report."""
    started = time.monotonic()
    report = BrokerFaultReport(config, settings.processing_guarantee)
    keyring = workdir / "keyring.json"
    Keyring.init(keyring)
    settings = settings.replace(keyring_path=keyring)
    names = TopicNames(settings.topic_prefix)
    inputs = list(names.inputs)
    await create_all_topics(settings)
    workload = Workload(subscribers=config.subscribers, seed=11, malformed_share=0.01)
    consent, warrant_messages = await publish_tables(settings, workload)
    messages = record_messages(settings, workload, config.records)
    workers = Workers(settings, keyring, workdir)
    total = config.records
    publishing: asyncio.Task[list[Input]] | None = None
    try:
        worker = workers.spawn()
        await worker.wait_for_log("assigned", within=config.within)
        pid = worker.pid
        say(f"publishing {total:,} records at {config.rate:,.0f}/s")
        publishing = asyncio.create_task(_publish_once(settings, messages, config.rate))

        async def at(share: float) -> int:
            try:
                return await wait_committed(
                    settings, inputs, int(share * total), config.within, alive=worker.running
                )
            except RuntimeError:
                # The log goes with the run's temporary folder: show its end now.
                say(f"the worker's log ends:\n{worker.log()[-6000:]}")
                raise

        async def kill_and_restart(what: str, topic: str, share: float) -> None:
            committed = await at(share)
            node = await leader_of(settings, topic)
            t0 = time.monotonic()
            cluster.kill(node, signal.SIGKILL)
            say(f"SIGKILL node {node}, leader of {topic}[0], at {committed:,} committed")
            await asyncio.sleep(config.down_s)
            await asyncio.to_thread(cluster.restart, node)
            say(f"node {node} restarted after {time.monotonic() - t0:.0f} s")
            report.faults.append(Fault(what, node, committed, time.monotonic() - t0))

        await kill_and_restart("SIGKILL the leader of an input partition", inputs[0], 0.1)
        billing = names(POLICY.routes["billing"].topic)
        await kill_and_restart("SIGKILL the leader of an output partition", billing, 0.4)
        committed = await at(0.7)
        node = await leader_of(settings, inputs[1])
        t0 = time.monotonic()
        cluster.kill(node, signal.SIGSTOP)
        say(f"SIGSTOP node {node} for {config.freeze_s:.0f} s at {committed:,} committed")
        try:
            await asyncio.sleep(config.freeze_s)
        finally:
            cluster.kill(node, signal.SIGCONT)
        report.faults.append(Fault("SIGSTOP one node", node, committed, time.monotonic() - t0))
        sent: list[Input] = await publishing
        await at(1.0)
        say(f"all {await committed_total(settings, inputs):,} inputs committed")
        report.worker_restarts = len(workers.started) - 1 + (0 if worker.pid == pid else 1)
        report.worker_exit_code = worker.stop(signal.SIGTERM)
        report.recoveries = [
            line for line in worker.log().splitlines() if "transaction failed (" in line
        ]
    finally:
        workers.close()
        if publishing is not None and not publishing.done():
            publishing.cancel()
    say("comparing with the engine run offline")
    expectation = Expectation(settings, consent, warrant_messages)
    for message in sent:
        expectation.add(message)
    report.verdict = await compare(settings, expectation)
    report.seconds = time.monotonic() - started
    return report
