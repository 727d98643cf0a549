"""Topic configuration enforced: ``cdrveil topics create`` on Apache Kafka, read back.

The two state topics are compacted; each route's topic keeps records for the policy's
``retention_days`` and the dead-letter topic for its own; every topic has the cluster's
3 replicas and inherits ``min.insync.replicas=2``.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.core.topics import CONSENT, WARRANTS
from pipeline.settings import Settings
from pipeline.shell.kafka_cluster import KafkaCluster
from pipeline.shell.topics import TopicNames
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
