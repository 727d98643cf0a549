"""What the Apache Kafka tests (tests/kafka) share that is not a fixture: settings of one
test on the session's cluster, SCRAM users, the CLI, and a loaded workload."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from pipeline.core.policy import Policy
from pipeline.harness import isolated_settings
from pipeline.settings import Settings
from pipeline.shell.acls import TOPICS_PRINCIPAL, WORKER_PRINCIPAL
from pipeline.shell.kafka_cluster import KafkaCluster
from pipeline.synth import Workload
from soak.harness import (
    Expectation,
    Input,
    create_all_topics,
    publish,
    publish_tables,
    record_messages,
)
from tests.support.kafka import ROOT

POLICY = Policy.load(None)


def principals() -> list[str]:
    """Every principal the default policy and the deployment name (``User:`` dropped)."""
    named = [p for route in POLICY.routes.values() for p in route.principals]
    named += [*POLICY.dead_letter_principals, WORKER_PRINCIPAL, TOPICS_PRINCIPAL]
    return [p.removeprefix("User:") for p in dict.fromkeys(named)]


def kafka_settings(cluster: KafkaCluster, tag: str, **changes: Any) -> Settings:
    """Settings of one test (topics and group of its own) on the admin channel, with the
    cluster's replication (3: a write needs 2 in-sync replicas)."""
    values: dict[str, Any] = {"replication_factor": cluster.replication_factor}
    return isolated_settings(cluster.bootstrap_servers, tag, **(values | changes))


def as_user(settings: Settings, cluster: KafkaCluster, user: str) -> Settings:
    """The same settings, connecting as SCRAM ``user`` over TLS."""
    return settings.replace(**cluster.sasl_settings(user))


def cdrveil(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``settings`` (and no other ``CDRVEIL_*``) in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDRVEIL_")}
    env.update(settings.to_env())
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class Loaded:
    """The inputs published, and the engine's expectation for them."""

    inputs: list[Input]
    expectation: Expectation


async def load(settings: Settings, count: int, subscribers: int = 500, seed: int = 7) -> Loaded:
    """Create every topic, publish consent, warrants and ``count`` records (some malformed)."""
    await create_all_topics(settings)
    workload = Workload(subscribers=subscribers, seed=seed, malformed_share=0.02)
    consent, warrant_messages = await publish_tables(settings, workload)
    messages = record_messages(settings, workload, count)
    sent = await publish(settings, messages)
    expectation = Expectation(settings, consent, warrant_messages)
    for message in sent:
        expectation.add(message)
    return Loaded(sent, expectation)
