"""Topic provisioning: the full table, idempotent, with compaction and retention."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.core.policy import Policy, RouteKind
from pipeline.settings import Settings
from pipeline.shell.topics import create_topics, topic_specs

on_session_loop = pytest.mark.asyncio(loop_scope="session")

DAY_MS = 86_400_000
POLICY = Policy.load()


def policy_with(purposes: list[str], **retention_days: int) -> Policy:
    """The default policy with only these analytics purposes' routes, and routes'
    retention changed where given (route name -> days)."""
    routes = {
        name: dataclasses.replace(
            route, retention_days=retention_days.get(name, route.retention_days)
        )
        for name, route in POLICY.routes.items()
        if route.kind is not RouteKind.ANALYTICS or route.purpose in purposes
    }
    return dataclasses.replace(POLICY, routes=routes)


async def _describe(settings: Settings, names: list[str]) -> dict[str, dict[str, str]]:
    # Apache Kafka: a broker may not know a topic for a moment after it was created
    # (UNKNOWN_TOPIC_OR_PARTITION, 3); ask again.
    for _ in range(50):
        try:
            return await _describe_once(settings, names)
        except _NotYet:
            await asyncio.sleep(0.2)
    return await _describe_once(settings, names)


class _NotYet(Exception):
    """A broker does not know one of the topics yet."""


async def _describe_once(settings: Settings, names: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        answers = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    configs: dict[str, dict[str, str]] = {}
    for answer in answers:
        for code, message, _type, name, entries in answer.resources:
            if code == 3:
                raise _NotYet(name)
            # A refusal would otherwise read as a topic without the config.
            assert code == 0, f"{name}: {message} ({code})"
            configs[name] = {entry[0]: entry[1] for entry in entries}
    for topic in described:
        configs.setdefault(topic["topic"], {})["partitions"] = str(len(topic["partitions"]))
    return configs


@on_session_loop
async def test_topics_are_created_once_and_then_reported_as_existing(settings: Settings) -> None:
    p = settings.topic_prefix
    first = await create_topics(settings, policy_with(["marketing"]))
    assert first.existing == ()
    assert set(first.created) == {
        p + "cdr.voice",
        p + "cdr.sms",
        p + "consent.state",
        p + "li.warrants",
        p + "traffic.lawful-intercept",
        p + "traffic.billing",
        p + "traffic.analytics.marketing",
        p + "traffic.dead-letter",
    }
    second = await create_topics(settings, policy_with(["marketing", "network_planning"]))
    assert second.created == (p + "traffic.analytics.network_planning",)
    assert set(second.existing) == set(first.created)


@on_session_loop
async def test_state_topics_are_compacted_and_routes_keep_the_policy_retention(
    settings: Settings,
) -> None:
    p = settings.topic_prefix
    policy = dataclasses.replace(
        policy_with(["marketing"], billing=30), dead_letter_retention_days=7
    )
    await create_topics(settings, policy)
    configs = await _describe(
        settings,
        [p + "consent.state", p + "li.warrants", p + "traffic.billing", p + "traffic.dead-letter"],
    )
    assert configs[p + "consent.state"]["cleanup.policy"] == "compact"
    assert configs[p + "li.warrants"]["cleanup.policy"] == "compact"
    assert configs[p + "traffic.billing"]["retention.ms"] == str(30 * DAY_MS)
    assert configs[p + "traffic.dead-letter"]["retention.ms"] == str(7 * DAY_MS)
    assert all(c["partitions"] == str(settings.partitions) for c in configs.values())


def test_state_topics_never_get_a_retention_limit(settings: Settings) -> None:
    p = settings.topic_prefix
    specs = {
        s.name: s
        for s in topic_specs(settings, {"consent.state": 1, "li.warrants": 1, "cdr.sms": 5})
    }
    # Other settings may come with them (min.insync.replicas=2 on a replicated cluster).
    for state in ("consent.state", "li.warrants"):
        configs = specs[p + state].configs
        assert configs["cleanup.policy"] == "compact"
        assert not {"retention.ms", "retention.bytes"} & configs.keys(), configs
    assert specs[p + "cdr.sms"].configs["retention.ms"] == "5"
