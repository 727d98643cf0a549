"""Apache Kafka fixtures: one three-node cluster (KRaft, SASL_SSL with SCRAM, ACLs enforced)
for the whole session, stopped whatever happens to the tests.

The tests here cover what the embedded broker cannot: transactions, ACLs, TLS, topic
configuration and broker failures. Each test has topics and a group of its own. The
PLAINTEXT listener is the cluster's administration channel (a super user); clients whose
rights are under test connect over SASL_SSL as SCRAM users.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from pipeline.shell.kafka_cluster import KafkaCluster
from tests.support.apache_kafka import principals


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaCluster]:
    """Three Apache Kafka nodes with SCRAM users for every principal, ACLs enforced."""
    users = {name: secrets.token_urlsafe(16) for name in principals()}
    # The log cleaner looks for work every half second (15 s by default): compaction tests.
    config = {"log.cleaner.backoff.ms": "500"}
    with KafkaCluster(3, tls=True, authorizer=True, users=users, config=config) as cluster:
        yield cluster
    assert not cluster.nodes
