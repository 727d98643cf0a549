"""The Compose stack's Apache Kafka settings agree with what the tests run.

``pipeline.shell.kafka_cluster`` starts the nodes every test on Apache Kafka uses; the
settings that decide durability and access (roles, authorizer and its default, replication,
minimum in-sync replicas, transaction log, unclean election, auto-creation, the SCRAM
mechanism of the client listener) must be the ones ``deploy/compose`` deploys, and the image
must be the version ``kafka/pom.xml`` pins. (deploy/k8s runs no Kafka of its own: it points
the workers at one, with replication 3.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.shell.kafka_cluster import AUTHORIZER, SCRAM_MECHANISM, KafkaCluster, Node

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
POM = ROOT / "kafka" / "pom.xml"

#: Settings where the tested cluster and the deployment must agree.
AGREED = (
    "process.roles",
    "authorizer.class.name",
    "allow.everyone.if.no.acl.found",
    "default.replication.factor",
    "min.insync.replicas",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "unclean.leader.election.enable",
    "auto.create.topics.enable",
)


def launcher_properties() -> dict[str, str]:
    """node 1's server.properties of a three-node TLS cluster with the authorizer."""
    cluster = KafkaCluster(3, tls=True, authorizer=True)
    cluster.nodes = [Node(i, 9000 + i, 9100 + i, 9200 + i, Path(f"/n{i}")) for i in (1, 2, 3)]
    text = cluster.properties(cluster.nodes[0])
    return dict(line.split("=", 1) for line in text.splitlines())


def compose_properties() -> dict[str, str]:
    """The first broker's KAFKA_* environment as server.properties names (the image's
    mapping: KAFKA_A_B__C is a.b_c)."""
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    env = doc["services"]["kafka-1"]["environment"]
    props = {}
    for name, value in env.items():
        if name.startswith("KAFKA_") and name not in ("KAFKA_OPTS",):
            key = name.removeprefix("KAFKA_").lower().replace("__", "\0")
            props[key.replace("_", ".").replace("\0", "_")] = str(value)
    return props


def test_compose_brokers_run_the_durability_and_access_settings_the_tests_run() -> None:
    tested, deployed = launcher_properties(), compose_properties()
    for key in AGREED:
        assert deployed.get(key) == tested[key], key
    assert tested["authorizer.class.name"] == AUTHORIZER
    assert tested["allow.everyone.if.no.acl.found"] == "false"
    assert tested["min.insync.replicas"] == "2"


def test_compose_clients_use_the_tested_sasl_mechanism_over_tls() -> None:
    tested, deployed = launcher_properties(), compose_properties()
    assert tested["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == SCRAM_MECHANISM
    assert deployed["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == SCRAM_MECHANISM
    assert "SASL_SSL:SASL_SSL" in deployed["listener.security.protocol.map"]
    doc = yaml.safe_load(COMPOSE.read_text())
    worker = doc["services"]["worker"]["environment"]
    assert worker["CDRVEIL_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert worker["CDRVEIL_SASL_MECHANISM"] == SCRAM_MECHANISM
    assert worker["CDRVEIL_REPLICATION_FACTOR"] == tested["default.replication.factor"]


def test_compose_runs_the_kafka_version_the_tests_run() -> None:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    assert match is not None
    doc = yaml.safe_load(COMPOSE.read_text())
    images = {svc["image"] for svc in doc["services"].values() if "kafka" in str(svc.get("image"))}
    assert images == {f"apache/kafka:{match.group(1)}"}
