"""``python -m soak.kafka`` (``make soak-kafka``): the Apache Kafka promises at full size.

    python -m soak.kafka                       every scenario below
    python -m soak.kafka eos --records 20000   one scenario, any size

- ``eos``: exactly-once, 200,000 records, the worker killed with SIGKILL 3 times, each
  after >= 20 % further progress: 0 lost, 0 duplicates (``read_committed`` readers).
- ``rebalance``: exactly-once while a second worker joins and later leaves (SIGTERM),
  then the first is killed: 0 lost, 0 duplicates.
- ``brokers``: the leaders of an input and of an output partition SIGKILLed and restarted,
  a node frozen 30 s with SIGSTOP, under a running worker; at-least-once and exactly-once.

Each scenario runs on a fresh three-node cluster (stopped at the end), prints its figures
and whether the promise held; the exit status is 1 if any did not.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.keys import Keyring
from pipeline.harness import Workers, isolated_settings
from pipeline.settings import Settings
from pipeline.shell.kafka_cluster import KafkaCluster
from pipeline.shell.topics import TopicNames
from pipeline.synth import Workload
from soak.crash import CrashConfig, run_crash
from soak.harness import (
    Expectation,
    Say,
    Verdict,
    compare,
    create_all_topics,
    publish,
    publish_tables,
    record_messages,
    wait_committed,
)
from soak.kafka_faults import BrokerFaultConfig, run_broker_faults

Scenario = Callable[[KafkaCluster, Settings, Path], Awaitable[tuple[str, bool]]]


def say(text: str) -> None:
    """Progress, flushed at once."""
    sys.stdout.write(f"  .. {text}\n")
    sys.stdout.flush()


def eos(records_: int) -> Scenario:
    """Exactly-once through 3 SIGKILLs of the worker."""

    async def run(cluster: KafkaCluster, settings: Settings, folder: Path) -> tuple[str, bool]:
        config = CrashConfig(records=records_, stops=3, step=0.2, within=1200.0)
        report = await run_crash(
            settings.replace(processing_guarantee="exactly_once"), folder, config, say
        )
        v = report.verdict
        ok = (
            v.ok
            and v.duplicates == 0
            and len(report.stops) >= 3
            and report.final_exit_code == 0
            and v.messages_read == v.expected_outputs + v.expected_dead_letters
        )
        return report.summary(), ok

    return run


@dataclass
class RebalanceReport:
    """What the rebalance run saw."""

    records: int
    steps: list[str]
    verdict: Verdict
    seconds: float

    def summary(self) -> str:
        """The figures, for a person."""
        head = f"{self.records:,} records, exactly_once, {self.seconds:.0f} s"
        return "\n".join([head, *(f"  {s}" for s in self.steps), self.verdict.summary()])


async def run_rebalance(
    settings: Settings, folder: Path, total: int, say_: Say = say
) -> RebalanceReport:
    """Worker A; B joins at 20 %; B leaves (SIGTERM) at 50 %; A killed at 70 %; C finishes."""
    started = time.monotonic()
    keyring = folder / "keyring.json"
    Keyring.init(keyring)
    settings = settings.replace(keyring_path=keyring, processing_guarantee="exactly_once")
    names = TopicNames(settings.topic_prefix)
    inputs = list(names.inputs)
    await create_all_topics(settings)
    workload = Workload(subscribers=5_000, seed=5, malformed_share=0.01)
    consent, warrant_messages = await publish_tables(settings, workload)
    messages = record_messages(settings, workload, total)
    say_(f"publishing {total:,} records")
    sent = await publish(settings, messages)
    steps: list[str] = []
    workers = Workers(settings, keyring, folder)
    try:
        first = workers.spawn()
        done = await wait_committed(settings, inputs, total // 5, 600, alive=first.running)
        second = workers.spawn()
        await second.wait_for_log("assigned", within=120)
        steps.append(f"second worker joined at {done:,} committed")
        done = await wait_committed(settings, inputs, total // 2, 600, alive=first.running)
        code = second.stop(signal.SIGTERM)
        steps.append(f"second worker left (SIGTERM, exit {code}) at {done:,} committed")
        done = await wait_committed(settings, inputs, total * 7 // 10, 600, alive=first.running)
        code = first.stop(signal.SIGKILL)
        steps.append(f"first worker SIGKILLed (exit {code}) at {done:,} committed")
        last = workers.spawn()
        # Ready before it is stopped: a SIGTERM during start-up is not the scenario.
        await last.wait_for_log("assigned", within=120)
        await wait_committed(settings, inputs, total, 600, alive=last.running)
        steps.append(f"third worker finished, exit {last.stop(signal.SIGTERM)} after SIGTERM")
    except RuntimeError as exc:  # a worker died: say what it said
        raise RuntimeError(f"{exc}\n{workers.all_logs()[-4000:]}") from None
    finally:
        workers.close()
    for step in steps:
        say_(step)
    expectation = Expectation(settings, consent, warrant_messages)
    for message in sent:
        expectation.add(message)
    verdict = await compare(settings, expectation)
    return RebalanceReport(total, steps, verdict, time.monotonic() - started)


def rebalance(records_: int) -> Scenario:
    """Exactly-once through a join, a leave and a kill."""

    async def run(cluster: KafkaCluster, settings: Settings, folder: Path) -> tuple[str, bool]:
        report = await run_rebalance(settings, folder, records_)
        v = report.verdict
        return report.summary(), v.ok and v.duplicates == 0 and len(report.steps) == 4

    return run


def brokers(records_: int, guarantee: str, freeze_s: float) -> Scenario:
    """Leaders killed, a node frozen, under one running worker."""

    async def run(cluster: KafkaCluster, settings: Settings, folder: Path) -> tuple[str, bool]:
        config = BrokerFaultConfig(records=records_, rate=1_000, freeze_s=freeze_s)
        report = await run_broker_faults(
            cluster, settings.replace(processing_guarantee=guarantee), folder, config, say
        )
        return report.summary(), report.ok

    return run


async def on_own_cluster(scenario: Scenario) -> tuple[str, bool]:
    """Run ``scenario`` on a fresh three-node cluster and work folder."""
    with tempfile.TemporaryDirectory(prefix="cdrveil-soak-kafka-") as folder:
        cluster = await asyncio.to_thread(KafkaCluster(3).start)
        try:
            settings = isolated_settings(
                cluster.bootstrap_servers, "soak", replication_factor=3, partitions=4
            )
            return await scenario(cluster, settings, Path(folder))
        finally:
            await asyncio.to_thread(cluster.stop)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios asked for; 0 if every promise held."""
    parser = argparse.ArgumentParser(prog="python -m soak.kafka", description=__doc__)
    parser.add_argument(
        "what", nargs="?", default="all", choices=("all", "eos", "rebalance", "brokers")
    )
    parser.add_argument("--records", type=int, help="records per scenario")
    parser.add_argument("--freeze", type=float, default=30.0, help="SIGSTOP seconds (30)")
    parser.add_argument(
        "--guarantee",
        choices=("at_least_once", "exactly_once"),
        help="brokers: only this processing guarantee (default: both)",
    )
    args = parser.parse_args(argv)
    steps: list[tuple[str, Scenario]] = []
    if args.what in ("all", "eos"):
        n = args.records or 200_000
        steps.append((f"exactly-once, {n:,} records, 3 x SIGKILL", eos(n)))
    if args.what in ("all", "rebalance"):
        n = args.records or 100_000
        steps.append((f"exactly-once, {n:,} records, a worker joins and leaves", rebalance(n)))
    if args.what in ("all", "brokers"):
        n = args.records or 60_000
        steps += [
            (
                f"brokers killed and frozen, {n:,} records, {guarantee}",
                brokers(n, guarantee, args.freeze),
            )
            for guarantee in ("at_least_once", "exactly_once")
            if args.guarantee in (None, guarantee)
        ]
    failed = 0
    for title, scenario in steps:
        sys.stdout.write(f"\n== {title} ==\n")
        sys.stdout.flush()
        text, ok = asyncio.run(on_own_cluster(scenario))
        sys.stdout.write(f"{text}\n{'HELD' if ok else 'BROKEN'}\n")
        failed += not ok
    sys.stdout.write(f"\n{len(steps) - failed} held, {failed} broken\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
