"""Compaction enforced on the two state topics, and a fresh worker recovering the latest state.

The topics are made by ``create_topics`` (compacted), then given a small ``segment.ms``,
``min.cleanable.dirty.ratio`` and ``delete.retention.ms`` so the log cleaner runs within
seconds. Every subscriber's consent state is first published in a superseded form (the
opposite answers, an older version), then as it stands; a third warrant is published and
then revoked (a tombstone). Once the cleaner has run, no superseded state and neither the
revoked warrant nor its tombstone is left in the topics, and a worker started afterwards
recovers the latest state: its outputs are the engine's with the latest states only.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.core.keys import Keyring
from pipeline.harness import Workers, scan
from pipeline.settings import Settings
from pipeline.shell.kafka_cluster import KafkaCluster
from pipeline.shell.topics import TopicNames
from pipeline.synth import Workload, consent_states, records, warrants
from soak.harness import (
    Expectation,
    compare,
    create_all_topics,
    publish,
    wait_committed,
)
from tests.support.apache_kafka import POLICY, kafka_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: AlterConfigs replaces a topic's whole dynamic configuration: compaction stays in it.
FAST_CLEANING = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "100",
    "min.compaction.lag.ms": "0",
}


def superseded(value: bytes) -> bytes:
    """The same subscriber's state with every answer reversed and an older version."""
    state = orjson.loads(value)
    state["purposes"] = {p: not given for p, given in state["purposes"].items()}
    state["version"] = 0
    return orjson.dumps(state)


async def fast_cleaning(settings: Settings, topics: list[str]) -> None:
    """Make the log cleaner compact ``topics`` within seconds."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs("cdrveil-test"))
    await admin.start()
    try:
        responses: list[Any] = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, FAST_CLEANING) for t in topics]
        )
    finally:
        await admin.close()
    for response in responses:
        for code, message, *_ in response.resources:
            assert code == 0, message


async def stored(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) in ``topic`` now."""
    found: list[tuple[bytes | None, bytes | None]] = []
    await scan(settings, [topic], lambda m: found.append((m.key, m.value)))
    return found


async def test_compaction_drops_superseded_states_and_a_fresh_worker_recovers_the_latest(
    kafka: KafkaCluster, tmp_path: Path
) -> None:
    """Superseded consent and a revoked warrant are compacted away; the worker still
    recovers every subscriber's latest consent and the live warrants."""
    keyring = tmp_path / "keyring.json"
    Keyring.init(keyring)
    settings = kafka_settings(kafka, "cmp", keyring_path=keyring)
    names = TopicNames(settings.topic_prefix)
    await create_all_topics(settings)
    await fast_cleaning(settings, [names.consent, names.warrants])
    workload = Workload(subscribers=300, seed=9, malformed_share=0.0)
    latest = list(consent_states(workload))
    old = {value for _, value in ((k, superseded(v)) for k, v in latest)}
    three = warrants(workload, 3)
    live = [(w.key, w.value) for w in three[:2]]
    revoked = three[2].key
    await publish(settings, [(names.consent, k, superseded(v)) for k, v in latest])
    await publish(settings, [(names.warrants, k, v) for k, v in [*live, (revoked, three[2].value)]])
    await asyncio.sleep(0.3)
    await publish(settings, [(names.consent, k, v) for k, v in latest])
    await publish(settings, [(names.warrants, revoked, None)])
    deadline = time.monotonic() + 90
    while True:
        # New segments (segment.ms) and new dirty bytes keep the cleaner working.
        await asyncio.sleep(1.0)
        await publish(settings, [(names.consent, k, v) for k, v in latest[:20]])
        await publish(settings, [(names.warrants, k, v) for k, v in live])
        consent_now = await stored(settings, names.consent)
        warrants_now = await stored(settings, names.warrants)
        left_old = sum(value in old for _, value in consent_now)
        left_revoked = sum(key == revoked for key, _ in warrants_now)
        if left_old == 0 and left_revoked == 0:
            break
        assert time.monotonic() < deadline, (
            f"after 90 s: {left_old} superseded states, {left_revoked} records of the "
            "revoked warrant still stored"
        )
    assert {key for key, _ in consent_now} == {key for key, _ in latest}
    inputs = []
    for m in records(workload, 2_000):
        key = m.record_id.encode() if m.key is None and m.value is None else m.key
        inputs.append(({"voice": names.inputs[0], "sms": names.inputs[1]}[m.kind], key, m.value))
    sent = await publish(settings, inputs)
    workers = Workers(settings, keyring, tmp_path)
    try:
        worker = workers.spawn()
        await wait_committed(settings, list(names.inputs), len(sent), 120, alive=worker.running)
        assert worker.stop(signal.SIGTERM) == 0
    finally:
        workers.close()
    expectation = Expectation(settings, latest, live)
    for message in sent:
        expectation.add(message)
    verdict = await compare(settings, expectation)
    assert verdict.ok, verdict.summary()
    assert verdict.by_topic[names(POLICY.routes["marketing"].topic)] > 0, verdict.summary()
