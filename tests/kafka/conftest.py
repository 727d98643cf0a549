"""Apache Kafka fixtures: one three-node cluster (KRaft, SASL_SSL with SCRAM, ACLs enforced)
for the whole session, stopped whatever happens to the tests.

The tests here cover what the embedded broker cannot: transactions, ACLs, TLS, topic
configuration and broker failures. Each test has topics and a group of its own. The
PLAINTEXT listener is the cluster's administration channel (a super user); clients whose
rights are under test connect over SASL_SSL as SCRAM users.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.core.policy import Policy
from pipeline.settings import Settings
from pipeline.shell.acls import TOPICS_PRINCIPAL, WORKER_PRINCIPAL
from pipeline.shell.kafka_cluster import KafkaCluster
from soak.harness import ROOT, isolated_settings

POLICY = Policy.load(None)


def principals() -> list[str]:
    """Every principal the default policy and the deployment name (``User:`` dropped)."""
    named = [p for route in POLICY.routes.values() for p in route.principals]
    named += [*POLICY.dead_letter_principals, WORKER_PRINCIPAL, TOPICS_PRINCIPAL]
    return [p.removeprefix("User:") for p in dict.fromkeys(named)]


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaCluster]:
    """Three Apache Kafka nodes with SCRAM users for every principal, ACLs enforced."""
    users = {name: secrets.token_urlsafe(16) for name in principals()}
    # The log cleaner looks for work every half second (15 s by default): compaction tests.
    config = {"log.cleaner.backoff.ms": "500"}
    with KafkaCluster(3, tls=True, authorizer=True, users=users, config=config) as cluster:
        yield cluster
    assert not cluster.nodes


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
