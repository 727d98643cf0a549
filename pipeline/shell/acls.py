"""Kafka ACLs generated from the policy: who may read which route, and what the worker may do.

Brokers that enforce ACLs with ``allow.everyone.if.no.acl.found=false`` (the deployment's
``StandardAuthorizer``) refuse whatever no rule allows, so the rules below are the whole of
each principal's rights:

- each route's ``principals`` (from the policy) may read the route's topic, and commit in
  consumer groups named after themselves (``<user>``, ``<user>.*``, ``<user>-*``: a prefix);
  the dead-letter topic likewise for ``[dead_letter] principals``;
- the worker may read the two inputs and the two state topics, write every route's topic
  and the dead-letter topic, and commit in its group; with ``exactly_once`` also use
  transactional ids that start with its group id (what :mod:`pipeline.shell.recordpath`
  uses); nothing else (READ and WRITE imply DESCRIBE in Kafka);
- the topic job (``cdrveil topics create``) may create the topics and read them and their
  configuration back.

Producers of the inputs and of the state topics are not in the policy; their rules stay
with the deployment (deploy/compose/kafka/init.sh).

:func:`apply_acls` creates the rules that are missing (idempotent) with the admin API
(CreateAcls v1, DescribeAcls v1: Kafka 2.0 and later); it removes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request

from pipeline.core.policy import Policy
from pipeline.core.topics import INPUTS, STATE_TOPICS
from pipeline.errors import BrokerError
from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames

log = logging.getLogger("cdrveil.acls")

#: The worker's and the topic job's principals when not given (deploy/compose uses these).
WORKER_PRINCIPAL: Final = "User:cdrveil-worker"
TOPICS_PRINCIPAL: Final = "User:cdrveil-topics"

# Kafka's wire codes (org.apache.kafka.common.acl / resource).
RESOURCE_TYPES: Final = {"TOPIC": 2, "GROUP": 3, "CLUSTER": 4, "TRANSACTIONAL_ID": 5}
PATTERNS: Final = {"LITERAL": 3, "PREFIXED": 4}
OPERATIONS: Final = {
    "READ": 3,
    "WRITE": 4,
    "CREATE": 5,
    "DESCRIBE": 8,
    "DESCRIBE_CONFIGS": 10,
    "ALTER_CONFIGS": 11,
    "IDEMPOTENT_WRITE": 12,
}
_ALLOW: Final = 3
_ANY: Final = 1
_ANY_HOST: Final = "*"


@dataclass(frozen=True, order=True)
class AclRule:
    """One ALLOW rule: ``principal`` may ``operation`` on a resource (from any host)."""

    principal: str
    resource_type: str
    name: str
    pattern: str
    operation: str

    def __str__(self) -> str:
        pattern = "" if self.pattern == "LITERAL" else f" ({self.pattern.lower()})"
        return f"ALLOW {self.principal} {self.operation} {self.resource_type} {self.name}{pattern}"

    def wire(self) -> tuple[int, str, int, str, str, int, int]:
        """The rule as one CreateAcls v1 creation."""
        return (
            RESOURCE_TYPES[self.resource_type],
            self.name,
            PATTERNS[self.pattern],
            self.principal,
            _ANY_HOST,
            OPERATIONS[self.operation],
            _ALLOW,
        )


def _user(principal: str) -> str:
    return principal.removeprefix("User:")


def acl_rules(
    policy: Policy,
    settings: Settings,
    worker: str = WORKER_PRINCIPAL,
    topic_job: str = TOPICS_PRINCIPAL,
) -> list[AclRule]:
    """Every ACL the policy and the settings (topic prefix, group, guarantee) call for."""
    names = TopicNames(settings.topic_prefix)
    rules: list[AclRule] = []

    def allow(principal: str, operation: str, kind: str, name: str, prefixed: bool = False) -> None:
        rules.append(
            AclRule(principal, kind, name, "PREFIXED" if prefixed else "LITERAL", operation)
        )

    outputs = [names(route.topic) for route in policy.routes.values()]
    dead_letter = names(policy.dead_letter_topic)
    readers = [(names(r.topic), r.principals) for r in policy.routes.values()]
    readers.append((dead_letter, policy.dead_letter_principals))
    for topic, principals in readers:
        for principal in principals:
            allow(principal, "READ", "TOPIC", topic)
            allow(principal, "READ", "GROUP", _user(principal), prefixed=True)
    for topic in [*names.inputs, names.consent, names.warrants]:
        allow(worker, "READ", "TOPIC", topic)
    for topic in [*outputs, dead_letter]:
        allow(worker, "WRITE", "TOPIC", topic)
    allow(worker, "READ", "GROUP", settings.group_id)
    if settings.processing_guarantee == "exactly_once":
        allow(worker, "WRITE", "TRANSACTIONAL_ID", f"{settings.group_id}-", prefixed=True)
    every_topic = [names(t) for t in (*INPUTS, *STATE_TOPICS)] + outputs + [dead_letter]
    for topic in dict.fromkeys(every_topic):
        for operation in ("CREATE", "DESCRIBE", "DESCRIBE_CONFIGS"):
            allow(topic_job, operation, "TOPIC", topic)
    return sorted(dict.fromkeys(rules))


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc] # aiokafka is untyped
    API_KEY = 30

    def __init__(self, creations: list[tuple[int, str, int, str, str, int, int]]) -> None:
        self._creations = creations

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self._creations)


class _DescribeAllAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc] # untyped
    API_KEY = 29

    def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> DescribeAclsRequest_v1:
        # Any resource, name, pattern, principal, host and operation; ALLOW only.
        return request_struct_class(_ANY, None, _ANY, None, None, _ANY, _ALLOW)


_NAMES_OF: Final = {
    "resource": {v: k for k, v in RESOURCE_TYPES.items()},
    "pattern": {v: k for k, v in PATTERNS.items()},
    "operation": {v: k for k, v in OPERATIONS.items()},
}


async def _admin(settings: Settings) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs("cdrveil-acls"))
    try:
        await admin.start()
    except KafkaConnectionError:
        await admin.close()
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap_servers}") from None
    return admin


async def describe_acls(settings: Settings) -> set[AclRule]:
    """The ALLOW rules the cluster has now (of the kinds :class:`AclRule` knows)."""
    admin = await _admin(settings)
    try:
        response: Any = await admin._send_request(_DescribeAllAcls())
    except KafkaError as exc:
        raise BrokerError(f"listing the ACLs failed: {exc}") from None
    finally:
        await admin.close()
    if response.error_code:
        raise BrokerError(
            f"listing the ACLs was refused: {response.error_message} "
            f"(code {response.error_code}; is an authorizer configured?)"
        )
    found: set[AclRule] = set()
    for kind, name, pattern, acls in response.resources:
        for principal, _host, operation, _permission in acls:
            try:
                found.add(
                    AclRule(
                        principal,
                        _NAMES_OF["resource"][kind],
                        name,
                        _NAMES_OF["pattern"][pattern],
                        _NAMES_OF["operation"][operation],
                    )
                )
            except KeyError:
                continue  # a kind of rule we never make
    return found


@dataclass(frozen=True)
class AclReport:
    """What :func:`apply_acls` did."""

    created: tuple[AclRule, ...]
    existing: tuple[AclRule, ...]


async def apply_acls(settings: Settings, rules: Iterable[AclRule]) -> AclReport:
    """Create the rules the cluster does not have yet; the ones already there stay."""
    wanted = list(dict.fromkeys(rules))
    present = await describe_acls(settings)
    missing = [r for r in wanted if r not in present]
    if missing:
        admin = await _admin(settings)
        try:
            response: Any = await admin._send_request(_CreateAcls([r.wire() for r in missing]))
        except KafkaError as exc:
            raise BrokerError(f"creating the ACLs failed: {exc}") from None
        finally:
            await admin.close()
        for rule, (code, message) in zip(missing, response.creation_responses, strict=True):
            if code:
                raise BrokerError(f"creating the ACL '{rule}' was refused: {message} ({code})")
        for rule in missing:
            log.info("created ACL %s", rule)
    return AclReport(created=tuple(missing), existing=tuple(r for r in wanted if r in present))
