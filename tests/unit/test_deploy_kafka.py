"""The Compose stack's Apache Kafka settings agree with what the tests run.

``pipeline.shell.kafka_cluster`` starts the nodes every test on Apache Kafka uses; the
settings that decide durability and access (roles, authorizer and its default, replication,
minimum in-sync replicas, transaction log, unclean election, auto-creation, the SCRAM
mechanism of the client listener) must be the ones ``deploy/compose`` deploys, and the image
must be the version ``kafka/pom.xml`` pins. deploy/k8s runs no Kafka of its own: it points
the topic job and the workers at one, so what it pins is checked on the client side: the
topic job creates every topic with the tested replication factor and ``min.insync.replicas``
(a topic config, not left to the brokers' default), every Kafka client of the manifests
speaks SASL_SSL with the tested SCRAM mechanism and verifies a CA, and the worker's producer
writes with ``acks=all``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.settings import Settings
from pipeline.shell import clients
from pipeline.shell.kafka_cluster import AUTHORIZER, SCRAM_MECHANISM, KafkaCluster, Node
from pipeline.shell.topics import topic_specs

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
POM = ROOT / "kafka" / "pom.xml"
K8S = ROOT / "deploy" / "k8s"

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


def k8s_kafka_clients() -> dict[str, dict[str, Any]]:
    """Each container of deploy/k8s that talks to Kafka: its name -> env (name -> value, or
    the valueFrom mapping)."""
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in ("Deployment", "Job"):
                continue
            spec = doc["spec"]["template"]["spec"]
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                listed = container.get("env", [])
                env = {e["name"]: e.get("value", e.get("valueFrom")) for e in listed}
                if "CDRVEIL_BOOTSTRAP_SERVERS" in env:
                    found[f"{doc['metadata']['name']}/{container['name']}"] = env
    return found


def test_k8s_topic_job_pins_the_tested_replication_and_min_insync_replicas() -> None:
    tested = launcher_properties()
    jobs = {n: e for n, e in k8s_kafka_clients().items() if n == "cdrveil-topics/topics"}
    assert list(jobs) == ["cdrveil-topics/topics"]
    env = jobs["cdrveil-topics/topics"]
    assert env["CDRVEIL_REPLICATION_FACTOR"] == tested["default.replication.factor"]
    # The job's own settings; the secrets and files it mounts are not here.
    plain = {k: v for k, v in env.items() if isinstance(v, str) and "SASL" not in k}
    plain |= {"CDRVEIL_SECURITY_PROTOCOL": "PLAINTEXT"}
    plain.pop("CDRVEIL_SSL_CAFILE", None)
    plain.pop("CDRVEIL_POLICY_PATH", None)
    specs = topic_specs(Settings.from_env(plain), {"traffic.billing": 1})
    assert specs
    for spec in specs:
        assert spec.replication_factor == int(tested["default.replication.factor"]), spec.name
        assert spec.configs["min.insync.replicas"] == tested["min.insync.replicas"], spec.name


def test_k8s_kafka_clients_use_the_tested_sasl_mechanism_over_tls() -> None:
    found = k8s_kafka_clients()
    assert {"cdrveil-topics/topics", "cdrveil-worker/worker"} <= set(found)
    for name, env in found.items():
        assert env["CDRVEIL_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["CDRVEIL_SASL_MECHANISM"] == SCRAM_MECHANISM, name
        assert env["CDRVEIL_SSL_CAFILE"], name
        assert "secretKeyRef" in env["CDRVEIL_SASL_PASSWORD"], name


def test_the_workers_producers_wait_for_every_in_sync_replica(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """acks=all with min.insync.replicas=2: an acknowledged output is on two brokers."""
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(clients, "AIOKafkaProducer", lambda **kwargs: made.append(kwargs))
    settings = Settings.from_env({})
    clients.producer(settings)
    clients.producer(settings, "cdrveil-t-1")
    clients.publisher(settings)
    assert [m["acks"] for m in made] == ["all", "all", "all"]
