"""Topic configuration enforced: ``cdrveil topics create`` on Apache Kafka, read back; and it
returns only once every broker lists the topics.

The two state topics are compacted; each route's topic keeps records for the policy's
``retention_days`` and the dead-letter topic for its own; every topic has the cluster's
3 replicas and inherits ``min.insync.replicas=2``.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataRequest

from pipeline.core.topics import CONSENT, WARRANTS
from pipeline.errors import BrokerError
from pipeline.settings import Settings
from pipeline.shell.kafka_cluster import KafkaCluster, Node
from pipeline.shell.topics import (
    TopicNames,
    TopicSpec,
    create_topics,
    topic_specs,
    wait_until_listed,
)
from tests.support.apache_kafka import POLICY, cdrveil, kafka_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
DAY_MS = 86_400_000


async def topic_configs(settings: Settings, topics: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's effective configuration, as the brokers report it."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs("cdrveil-test"))
    await admin.start()
    try:
        responses: list[Any] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        )
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for _code, _message, _kind, name, entries in response.resources:
            configs[name] = {entry[0]: entry[1] for entry in entries}
    for topic in described:
        replicas = {len(p["replicas"]) for p in topic["partitions"]}
        configs[topic["topic"]]["cdrveil.replicas"] = ",".join(map(str, sorted(replicas)))
    return configs


async def test_topics_create_sets_compaction_and_the_policys_retention(
    kafka: KafkaCluster,
) -> None:
    """State topics compacted; route and dead-letter retention from the policy."""
    settings = kafka_settings(kafka, "cfg")
    done = cdrveil(settings, "topics", "create")
    assert done.returncode == 0, done.stderr
    names = TopicNames(settings.topic_prefix)
    routes = {names(r.topic): r.retention_days for r in POLICY.routes.values()}
    routes[names(POLICY.dead_letter_topic)] = POLICY.dead_letter_retention_days
    state = [names.consent, names.warrants]
    configs = await topic_configs(settings, [*state, *routes, *names.inputs])
    assert len(configs) == len(state) + len(routes) + 2
    for topic in state:
        assert configs[topic]["cleanup.policy"] == "compact", topic
    for topic, days in routes.items():
        assert configs[topic]["cleanup.policy"] == "delete", topic
        assert configs[topic]["retention.ms"] == str(days * DAY_MS), topic
    for topic, config in configs.items():
        assert config["cdrveil.replicas"] == "3", topic
        assert config["min.insync.replicas"] == "2", topic
    assert {names(CONSENT), names(WARRANTS)} == set(state)


async def listed_by(node: Node, topics: list[str]) -> set[str]:
    """The topics this one node's own metadata lists with a leader for every partition."""
    client = AIOKafkaClient(bootstrap_servers=f"127.0.0.1:{node.port}")
    await client.bootstrap()
    try:
        request = MetadataRequest(topics, allow_auto_topic_creation=False)
        answer: Any = await client.send(node.node_id, request)
    finally:
        await client.close()
    return {
        name
        for error, name, _internal, partitions, *_ in answer.topics
        if error == 0 and partitions and all(p[0] == 0 and p[2] >= 0 for p in partitions)
    }


async def test_topics_create_returns_once_every_broker_lists_the_topics(
    kafka: KafkaCluster,
) -> None:
    """It returned when the controller had them: a client that asked another broker first was
    told NotLeaderForPartition (seen by `cdrveil demo --apache-kafka` publishing consent)."""
    for attempt in range(5):  # a propagation race: several tries, each must hold
        settings = kafka_settings(kafka, f"seen{attempt}")
        await create_topics(settings, POLICY)
        names = [s.name for s in topic_specs(settings, POLICY.retention_ms_by_topic())]
        for node in kafka.nodes:
            assert await listed_by(node, names) == set(names), (attempt, node.node_id)


async def test_topics_not_on_every_broker_in_time_are_a_clear_error(
    kafka: KafkaCluster,
) -> None:
    settings = kafka_settings(kafka, "unseen")
    specs = [TopicSpec(settings.topic_prefix + "never.created", 2, 3)]
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs("cdrveil-test"))
    await admin.start()
    try:
        with pytest.raises(BrokerError) as refusal:
            await wait_until_listed(admin, specs, within=1.0)
    finally:
        await admin.close()
    message = str(refusal.value)
    assert "after 1 s not every broker lists them" in message
    for node in kafka.nodes:
        assert f"broker {node.node_id}: {specs[0].name}" in message
    assert "run `cdrveil topics create` again" in message
