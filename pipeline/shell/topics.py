"""Topic names with the deployment's prefix, and provisioning every topic (``topics create``).

Two sources, one home each: the topics the pipeline reads (``cdr.voice``, ``cdr.sms``,
``consent.state``, ``li.warrants``) are :mod:`pipeline.core.topics`; the topics it writes
(each route's and the dead-letter topic) are the policy's. With the default policy:

| topic                         | key                          | value                        |
|-------------------------------|------------------------------|------------------------------|
| cdr.voice, cdr.sms            | served MSISDN or none        | voice / SMS record JSON      |
| consent.state (compacted)     | subscriber MSISDN, E.164     | consent state, or tombstone  |
| li.warrants (compacted)       | LIID                         | warrant, or tombstone        |
| traffic.lawful-intercept      | LIID                         | complete record + LIID       |
| traffic.billing               | served MSISDN, E.164         | billing record               |
| traffic.analytics.<purpose>   | purpose pseudonym            | analytics record             |
| traffic.dead-letter           | the input's key              | the input's bytes, untouched |

Every name may carry a prefix (setting ``topic_prefix``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from pipeline.core.policy import Policy
from pipeline.core.topics import CONSENT, INPUTS, STATE_TOPICS, WARRANTS
from pipeline.errors import BrokerError
from pipeline.settings import Settings

log = logging.getLogger("cdrveil.topics")

# Kafka error codes in a CreateTopics answer.
_TOPIC_ALREADY_EXISTS: Final = 36
#: How long :func:`create_topics` waits until every broker lists every topic, with a leader
#: for each partition. A created topic reaches each broker's metadata a little later; a
#: client that asks a broker that does not know it yet is told it does not exist, or that
#: the broker is not its leader.
VISIBLE_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True)
class TopicNames:
    """Physical topic names for a prefix."""

    prefix: str = ""

    def __call__(self, logical: str) -> str:
        """The physical name of a logical topic name such as ``"cdr.voice"``."""
        return self.prefix + logical

    @property
    def inputs(self) -> tuple[str, ...]:
        """The record topics the worker consumes."""
        return tuple(self(t) for t in INPUTS)

    @property
    def consent(self) -> str:
        """The compacted consent-state topic."""
        return self(CONSENT)

    @property
    def warrants(self) -> str:
        """The compacted warrant topic."""
        return self(WARRANTS)

    def dead_letter(self, policy: Policy) -> str:
        """Where rejected inputs go: the policy's dead-letter topic."""
        return self(policy.dead_letter_topic)


@dataclass(frozen=True)
class TopicSpec:
    """One topic to provision."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicReport:
    """What :func:`create_topics` did: names created, names that were already there."""

    created: tuple[str, ...]
    existing: tuple[str, ...]


def min_insync_replicas(replication_factor: int) -> int:
    """In-sync replicas a write with ``acks=all`` needs: 2 of 3 or more (a write survives one
    broker down and is never on one disk only), else 1. The launcher's brokers
    (:mod:`pipeline.shell.kafka_cluster`) default to the same."""
    return 2 if replication_factor >= 3 else 1


def topic_specs(settings: Settings, outputs: Mapping[str, int]) -> list[TopicSpec]:
    """The full topic table: the topics read, then ``outputs`` with their retention.

    ``outputs`` maps each output topic's logical name to its retention in milliseconds,
    as :meth:`Policy.retention_ms_by_topic` gives them. The two state topics are compacted
    and keep every key's latest value forever: a consent or warrant must never expire out
    of the table by age. With 3 replicas or more, each topic pins ``min.insync.replicas``
    (:func:`min_insync_replicas`) rather than trusting the brokers' default.
    """
    names = TopicNames(settings.topic_prefix)
    specs = []
    for name in dict.fromkeys([*INPUTS, *STATE_TOPICS, *outputs]):
        configs: dict[str, str] = {}
        if settings.replication_factor >= 3:
            configs["min.insync.replicas"] = str(min_insync_replicas(settings.replication_factor))
        if name in STATE_TOPICS:
            configs["cleanup.policy"] = "compact"
        else:
            ms = outputs.get(name)
            if ms is not None:
                configs["retention.ms"] = str(ms)
        specs.append(
            TopicSpec(names(name), settings.partitions, settings.replication_factor, configs)
        )
    return specs


async def create_topics(settings: Settings, policy: Policy) -> TopicReport:
    """Create every topic the pipeline reads and ``policy`` writes that does not exist yet
    (idempotent)."""
    specs = topic_specs(settings, policy.retention_ms_by_topic())
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs("cdrveil-admin"))
    try:
        await admin.start()
    except KafkaConnectionError:
        await admin.close()
        raise BrokerError(
            f"cannot reach Kafka at {settings.bootstrap_servers}; is the broker running? "
            "(`cdrveil broker` starts the embedded one)"
        ) from None
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in specs if s.name not in existing]
        created: list[str] = []
        if wanted:
            response = await admin.create_topics(
                [
                    NewTopic(
                        s.name, s.partitions, s.replication_factor, topic_configs=dict(s.configs)
                    )
                    for s in wanted
                ]
            )
            for name, code, message, *_ in response.topic_errors:
                if code == 0:
                    created.append(name)
                elif code == _TOPIC_ALREADY_EXISTS:
                    existing.add(name)  # another process created it meanwhile
                else:
                    raise BrokerError(f"creating topic {name} failed: {message} (code {code})")
        await wait_until_listed(admin, specs)
    except KafkaError as exc:
        raise BrokerError(f"creating topics failed: {exc}") from None
    finally:
        await admin.close()
    order = [s.name for s in specs]
    for name in created:
        log.info("created topic %s", name)
    return TopicReport(
        created=tuple(n for n in order if n in created),
        existing=tuple(n for n in order if n in existing),
    )


async def wait_until_listed(
    admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec], within: float = VISIBLE_TIMEOUT_S
) -> None:
    """Return once every broker of the cluster lists every topic of ``specs`` with all its
    partitions, each with a leader; a :class:`BrokerError` naming the brokers and topics that
    were still missing after ``within`` seconds."""
    client: Any = admin._client  # aiokafka's admin sends no request to a broker of our choice
    names = [s.name for s in specs]
    deadline = time.monotonic() + within
    while True:
        missing = await _not_listed(client, specs)
        if not missing:
            return
        if time.monotonic() > deadline:
            lines = "; ".join(
                f"broker {node}: {', '.join(topics)}" for node, topics in sorted(missing.items())
            )
            raise BrokerError(
                f"the topics were created, but after {within:.0f} s not every broker lists "
                f"them with a leader for each partition ({lines}); check the brokers' logs "
                f"and run `cdrveil topics create` again ({len(names)} topics, idempotent)"
            )
        await asyncio.sleep(0.1)


async def _not_listed(client: Any, specs: Sequence[TopicSpec]) -> dict[int, list[str]]:
    """For each broker that does not yet list them all: the topics it is missing."""
    cluster = await client.fetch_all_metadata()
    wanted = {s.name: s.partitions for s in specs}
    missing: dict[int, list[str]] = {}
    for broker in sorted(cluster.brokers(), key=lambda b: b.nodeId):
        request = MetadataRequest(list(wanted), allow_auto_topic_creation=False)
        try:
            answer = await client.send(broker.nodeId, request)
        except KafkaError:
            missing[broker.nodeId] = list(wanted)
            continue
        ready = set()
        for error, name, _internal, partitions, *_ in answer.topics:
            if error == 0 and len(partitions) == wanted.get(name) and all(
                p[0] == 0 and p[2] >= 0 for p in partitions  # error code, leader
            ):
                ready.add(name)
        if absent := [n for n in wanted if n not in ready]:
            missing[broker.nodeId] = absent
    return missing
