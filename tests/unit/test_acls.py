"""The ACLs generated from the policy (``cdrveil acls``), and the policy's principals."""

from __future__ import annotations

import pytest

from pipeline.core.policy import Policy
from pipeline.errors import PolicyError
from pipeline.settings import DEFAULT_POLICY_PATH, Settings
from pipeline.shell.acls import TOPICS_PRINCIPAL, WORKER_PRINCIPAL, AclRule, acl_rules

POLICY = Policy.load(None)


def rules_of(principal: str, rules: list[AclRule]) -> set[tuple[str, str, str, str]]:
    return {
        (r.operation, r.resource_type, r.name, r.pattern) for r in rules if r.principal == principal
    }


def test_each_team_reads_its_own_topic_and_nothing_else() -> None:
    rules = acl_rules(POLICY, Settings.from_env({}))
    assert rules_of("User:analytics-marketing", rules) == {
        ("READ", "TOPIC", "traffic.analytics.marketing", "LITERAL"),
        ("READ", "GROUP", "analytics-marketing", "PREFIXED"),
    }
    assert rules_of("User:pipeline-operators", rules) == {
        ("READ", "TOPIC", "traffic.dead-letter", "LITERAL"),
        ("READ", "GROUP", "pipeline-operators", "PREFIXED"),
    }
    readers = {r.principal for r in rules if r.operation == "READ" and r.resource_type == "TOPIC"}
    for route in POLICY.routes.values():
        allowed = {r.principal for r in rules if r.name == route.topic and r.operation == "READ"}
        assert allowed == set(route.principals), route.name
    assert WORKER_PRINCIPAL in readers


def test_the_worker_reads_inputs_and_state_writes_outputs_only() -> None:
    settings = Settings.from_env({}, topic_prefix="p.", group_id="grp")
    mine = rules_of(WORKER_PRINCIPAL, acl_rules(POLICY, settings))
    reads = {name for op, kind, name, _ in mine if op == "READ" and kind == "TOPIC"}
    writes = {name for op, kind, name, _ in mine if op == "WRITE" and kind == "TOPIC"}
    assert reads == {"p.cdr.voice", "p.cdr.sms", "p.consent.state", "p.li.warrants"}
    assert writes == {"p." + r.topic for r in POLICY.routes.values()} | {"p.traffic.dead-letter"}
    assert ("READ", "GROUP", "grp", "LITERAL") in mine
    assert not any(kind == "TRANSACTIONAL_ID" for _, kind, _, _ in mine)
    assert len(mine) == len(reads) + len(writes) + 1


def test_exactly_once_adds_the_workers_transactional_ids() -> None:
    settings = Settings.from_env({}, group_id="grp", processing_guarantee="exactly_once")
    mine = rules_of(WORKER_PRINCIPAL, acl_rules(POLICY, settings))
    assert ("WRITE", "TRANSACTIONAL_ID", "grp-", "PREFIXED") in mine


def test_the_topic_job_creates_and_describes_every_topic() -> None:
    job = rules_of(TOPICS_PRINCIPAL, acl_rules(POLICY, Settings.from_env({})))
    assert {op for op, _, _, _ in job} == {"CREATE", "DESCRIBE", "DESCRIBE_CONFIGS"}
    assert len({name for _, _, name, _ in job}) == 6 + len(POLICY.analytics_purposes) + 1


def test_a_rule_reads_like_kafka_acls_prints_it() -> None:
    rule = AclRule("User:billing", "GROUP", "billing", "PREFIXED", "READ")
    assert str(rule) == "ALLOW User:billing READ GROUP billing (prefixed)"
    assert rule.wire() == (3, "billing", 4, "User:billing", "*", 3, 3)


@pytest.mark.parametrize("value", ['"User:x"', '["billing"]', '["User:a b"]', "[1]"])
def test_a_route_principal_must_be_a_list_of_kafka_users(value: str) -> None:
    text = DEFAULT_POLICY_PATH.read_text().replace(
        'principals = ["User:billing"]', f"principals = {value}"
    )
    with pytest.raises(PolicyError, match="principals"):
        Policy.parse(text.encode())


def test_a_route_without_principals_has_no_readers() -> None:
    text = DEFAULT_POLICY_PATH.read_text().replace('principals = ["User:billing"]\n', "")
    policy = Policy.parse(text.encode())
    assert policy.routes["billing"].principals == ()
    rules = acl_rules(policy, Settings.from_env({}))
    assert not [r for r in rules if r.name == "traffic.billing" and r.operation == "READ"]
