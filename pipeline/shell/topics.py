"""The topic table (names are the contract consumers code against) and its provisioning.

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

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from pipeline.errors import BrokerError
from pipeline.settings import Settings

log = logging.getLogger("cdrveil.topics")

VOICE: Final = "cdr.voice"
SMS: Final = "cdr.sms"
CONSENT: Final = "consent.state"
WARRANTS: Final = "li.warrants"
LAWFUL_INTERCEPT: Final = "traffic.lawful-intercept"
BILLING: Final = "traffic.billing"
ANALYTICS_PREFIX: Final = "traffic.analytics."
DEAD_LETTER: Final = "traffic.dead-letter"

INPUTS: Final = (VOICE, SMS)
STATE_TOPICS: Final = (CONSENT, WARRANTS)

# Kafka error codes in a CreateTopics answer.
_TOPIC_ALREADY_EXISTS: Final = 36


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

    @property
    def dead_letter(self) -> str:
        """Where rejected inputs go."""
        return self(DEAD_LETTER)

    def analytics(self, purpose: str) -> str:
        """The analytics topic of one purpose."""
        return self(ANALYTICS_PREFIX + purpose)


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


def topic_specs(
    settings: Settings,
    purposes: Iterable[str],
    retention_ms_by_topic: Mapping[str, int] | None = None,
) -> list[TopicSpec]:
    """The full topic table for these analytics purposes.

    ``retention_ms_by_topic`` (from the policy) is keyed by logical or physical name.
    The two state topics are compacted and keep every key's latest value forever: a
    consent or warrant must never expire out of the table by age.
    """
    names = TopicNames(settings.topic_prefix)
    retention = dict(retention_ms_by_topic or {})
    logical = [VOICE, SMS, CONSENT, WARRANTS, LAWFUL_INTERCEPT, BILLING]
    logical += [ANALYTICS_PREFIX + p for p in purposes]
    logical.append(DEAD_LETTER)
    specs = []
    for name in dict.fromkeys(logical):
        configs: dict[str, str] = {}
        if name in STATE_TOPICS:
            configs["cleanup.policy"] = "compact"
        else:
            ms = retention.get(name, retention.get(names(name)))
            if ms is not None:
                configs["retention.ms"] = str(ms)
        specs.append(
            TopicSpec(names(name), settings.partitions, settings.replication_factor, configs)
        )
    return specs


async def create_topics(
    settings: Settings,
    purposes: Iterable[str],
    retention_ms_by_topic: Mapping[str, int] | None = None,
) -> TopicReport:
    """Create every topic that does not exist yet (idempotent)."""
    specs = topic_specs(settings, purposes, retention_ms_by_topic)
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
