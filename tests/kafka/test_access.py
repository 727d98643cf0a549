"""Access control from the policy, enforced by Apache Kafka (StandardAuthorizer, deny when no
ACL matches), with real SCRAM-SHA-512 users over TLS.

``cdrveil acls --apply`` creates the rules generated from the policy (a second run creates
none); then the worker does its whole job (exactly-once) as its own user, each analytics
team reads its own purpose's topic and nothing else, the worker can neither read what it
writes nor write what it reads, a wrong password is refused and the worker says so, and a
plaintext client gets nowhere on the TLS listener.
"""

from __future__ import annotations

import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from pipeline.core.keys import Keyring
from pipeline.harness import Workers
from pipeline.settings import Secret, Settings
from pipeline.shell.kafka_cluster import KafkaCluster
from pipeline.shell.topics import TopicNames
from soak.harness import Verdict, compare, wait_committed
from tests.support.apache_kafka import POLICY, as_user, cdrveil, kafka_settings, load

pytestmark = pytest.mark.asyncio(loop_scope="session")

WORKER = "cdrveil-worker"
MARKETING = "analytics-marketing"
RECORDS = 600


@dataclass
class Secured:
    """What the module's set-up did and found."""

    admin: Settings
    applied: list[str]
    reapplied: list[str]
    verdict: Verdict
    worker_exit: int
    worker_log: str
    folder: Path


@pytest.fixture(scope="module")
async def secured(kafka: KafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Secured:
    """Topics and inputs of this module, the policy's ACLs applied with the CLI, and one
    exactly-once worker run as ``cdrveil-worker`` over SASL_SSL until all is committed."""
    folder = tmp_path_factory.mktemp("acl")
    keyring = folder / "keyring.json"
    Keyring.init(keyring)
    admin = kafka_settings(kafka, "acl", processing_guarantee="exactly_once", keyring_path=keyring)
    loaded = await load(admin, RECORDS)
    as_admin = as_user(admin, kafka, "admin")
    first = cdrveil(as_admin, "acls", "--apply")
    assert first.returncode == 0, first.stderr
    again = cdrveil(as_admin, "acls", "--apply")
    assert again.returncode == 0, again.stderr
    workers = Workers(as_user(admin, kafka, WORKER), keyring, folder)
    try:
        worker = workers.spawn()
        await wait_committed(
            admin, list(TopicNames(admin.topic_prefix).inputs), RECORDS, 90, alive=worker.running
        )
        code = worker.stop(signal.SIGTERM)
        log = workers.all_logs()
    finally:
        workers.close()
    verdict = await compare(admin, loaded.expectation)
    return Secured(
        admin, first.stdout.splitlines(), again.stdout.splitlines(), verdict, code, log, folder
    )


async def read_as(
    settings: Settings, topic: str, group: str, want: int = 1, within: float = 15.0
) -> int:
    """Read ``topic`` in ``group`` as the settings' user until ``want`` records came; how many."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs("cdrveil-test-team"),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.subscribe([topic])
        seen = 0
        deadline = time.monotonic() + within
        while seen < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            seen += sum(len(messages) for messages in batch.values())
            # A subscription to a topic the broker refuses to describe only logs (aiokafka).
            if topic in consumer._client.cluster.unauthorized_topics:
                assert seen == 0
                raise TopicAuthorizationFailedError(topic)
        await consumer.commit()
        return seen
    finally:
        await consumer.stop()


async def test_acls_apply_creates_the_policys_rules_once(secured: Secured) -> None:
    """A first --apply creates every rule; a second one finds them all and creates none."""
    created = [line for line in secured.applied if line.startswith("created ")]
    assert len(created) >= 40
    assert secured.applied[-1] == f"{len(created)} created, 0 already existed"
    assert secured.reapplied[-1] == f"0 created, {len(created)} already existed"
    prefix = secured.admin.topic_prefix
    assert f"created  ALLOW User:{MARKETING} READ TOPIC {prefix}traffic.analytics.marketing" in (
        secured.applied
    )


async def test_the_worker_does_its_whole_job_as_its_own_user(secured: Secured) -> None:
    """Exactly-once under the generated ACLs: every output once, nothing refused."""
    verdict = secured.verdict
    assert verdict.inputs == RECORDS
    assert verdict.ok, verdict.summary()
    assert verdict.duplicates == 0, verdict.summary()
    assert verdict.by_topic, verdict.summary()
    assert secured.worker_exit == 0, secured.worker_log[-3000:]
    assert "AuthorizationFailed" not in secured.worker_log


async def test_a_team_reads_its_own_purpose_topic(kafka: KafkaCluster, secured: Secured) -> None:
    """analytics-marketing reads all of traffic.analytics.marketing in a group of its own."""
    topic = TopicNames(secured.admin.topic_prefix)(POLICY.routes["marketing"].topic)
    expected = secured.verdict.by_topic[topic]
    assert expected > 0
    team = as_user(secured.admin, kafka, MARKETING)
    group = f"{MARKETING}.{uuid.uuid4().hex[:6]}"
    assert await read_as(team, topic, group, want=expected) == expected


@pytest.mark.parametrize(
    "logical",
    [
        "traffic.lawful-intercept",
        "traffic.billing",
        "traffic.dead-letter",
        "consent.state",
        "li.warrants",
        "cdr.voice",
        "traffic.analytics.fraud_prevention",
        "traffic.analytics.service_improvement",
    ],
)
async def test_a_team_reads_no_other_topic(
    kafka: KafkaCluster, secured: Secured, logical: str
) -> None:
    """LI, billing, dead letters, state, inputs and other purposes are refused to a team."""
    team = as_user(secured.admin, kafka, MARKETING)
    with pytest.raises(TopicAuthorizationFailedError):
        await read_as(team, TopicNames(secured.admin.topic_prefix)(logical), f"{MARKETING}.x")


async def test_a_team_cannot_commit_in_another_teams_group(
    kafka: KafkaCluster, secured: Secured
) -> None:
    """Its own topic, but a group named after another team: refused."""
    team = as_user(secured.admin, kafka, MARKETING)
    topic = TopicNames(secured.admin.topic_prefix)(POLICY.routes["marketing"].topic)
    with pytest.raises(GroupAuthorizationFailedError):
        await read_as(team, topic, "analytics-fraud-prevention.x")


async def test_the_worker_cannot_read_outputs_write_inputs_or_create_topics(
    kafka: KafkaCluster, secured: Secured
) -> None:
    """The worker's user has exactly its job's rights."""
    worker = as_user(secured.admin, kafka, WORKER)
    names = TopicNames(secured.admin.topic_prefix)
    with pytest.raises(TopicAuthorizationFailedError):
        await read_as(worker, names(POLICY.routes["marketing"].topic), secured.admin.group_id)
    producer = AIOKafkaProducer(**worker.kafka_client_kwargs("cdrveil-test"))
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(names.inputs[0], b"{}")
    finally:
        await producer.stop()
    admin = AIOKafkaAdminClient(**worker.kafka_client_kwargs("cdrveil-test"))
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(names("not-allowed"), 1, 3)])
    finally:
        await admin.close()
    ((_, code, *_),) = response.topic_errors
    assert code == TopicAuthorizationFailedError.errno


async def test_a_wrong_password_is_refused_and_the_worker_says_so(
    kafka: KafkaCluster, secured: Secured, tmp_path: Path
) -> None:
    """A worker with a wrong SCRAM password is refused at login and logs why, without
    the password."""
    wrong = "not-the-password-" + uuid.uuid4().hex[:6]
    settings = as_user(secured.admin, kafka, WORKER).replace(sasl_password=Secret(wrong))
    keyring = tmp_path / "keyring.json"
    Keyring.init(keyring)
    workers = Workers(settings, keyring, tmp_path)
    try:
        worker = workers.spawn()
        await worker.wait_for_log("refused the login", within=60)
        log = worker.log()
        assert worker.stop(signal.SIGTERM) == 0
    finally:
        workers.close()
    assert "CDRVEIL_SASL_PASSWORD" in log
    assert wrong not in log


async def test_a_plaintext_client_on_the_tls_listener_is_refused(kafka: KafkaCluster) -> None:
    """No Kafka request is answered on the SASL_SSL port without TLS."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.tls_bootstrap_servers, request_timeout_ms=5000
    )
    with pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()


async def test_a_known_user_without_tls_is_refused(kafka: KafkaCluster) -> None:
    """SASL over plaintext to the TLS port: no login."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.tls_bootstrap_servers,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=WORKER,
        sasl_plain_password=kafka.users[WORKER],
        request_timeout_ms=5000,
    )
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()
