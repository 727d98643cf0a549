"""The real worker on the embedded broker: an objection (Art. 21) takes effect, and two
purposes' outputs of the same inputs share no record id."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.core.consent import ConsentTable
from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.warrants import WarrantIndex
from pipeline.harness import read_all
from pipeline.reports.explain import explain
from pipeline.settings import Settings
from pipeline.shell.messages import header
from pipeline.shell.offsets import wait_until_committed
from pipeline.shell.topics import TopicNames
from tests.support.kafka import POLICY, all_topics, offline_engine, produce, wait_ready

pytestmark = pytest.mark.asyncio(loop_scope="session")

SERVED = "46701234567"
PLANNING = "traffic.analytics.network_planning"
FRAUD = "traffic.analytics.fraud_prevention"


def sms(record_id: str, served: str = SERVED) -> bytes:
    return orjson.dumps(
        {
            "recordId": record_id,
            "recordType": "moSMSRecord",
            "servedMSISDN": served,
            "servedIMSI": "240011234567890",
            "originationTime": "2026-11-21T05:00:00Z",
            "destinationNumber": "0709999999",
        }
    )


def state(version: int, objections: dict[str, bool] | None) -> bytes:
    document: dict[str, Any] = {
        "msisdn": SERVED,
        "purposes": {},
        "version": version,
        "updatedAt": "2026-11-21T05:00:00Z",
    }
    if objections is not None:
        document["objections"] = objections
    return orjson.dumps(document)


async def version_applied(
    settings: Settings, producer: AIOKafkaProducer, keys: Pseudonymizer, wanted: bytes, n: int
) -> int:
    """Send records until one is processed under consent version ``wanted`` (watched on
    fraud prevention, which overrides objections and so gets every record); its number."""
    names = TopicNames(settings.topic_prefix)
    deadline = time.monotonic() + 30
    while True:
        n += 1
        await produce(producer, names.inputs[1], [(SERVED.encode(), sms(f"o{n}"))])
        await wait_until_committed(settings, settings.group_id, list(names.inputs), 30)
        mine = keys.record_id("fraud_prevention", f"o{n}").encode()
        found = [
            m
            for m in await read_all(settings, [names(FRAUD)])
            if header(m, "cdrveil.record-id") == mine
        ]
        if found and header(found[0], "cdrveil.consent-version") == wanted:
            return n
        assert time.monotonic() < deadline, f"consent version {wanted!r} never applied"
        await asyncio.sleep(0.1)


async def test_after_an_objection_network_planning_gets_none_of_the_subscribers_records(
    settings: Settings, producer: AIOKafkaProducer, real_worker: Any, keyring: Path
) -> None:
    """Before: both routes get the records. After the objection: network planning none of
    the later ones, fraud prevention all of them, on the ground the explanation names."""
    await all_topics(settings)
    names = TopicNames(settings.topic_prefix)
    keys = Pseudonymizer(Keyring.load(keyring))
    worker = real_worker(settings)
    await wait_ready(worker)
    await produce(producer, names.consent, [(SERVED.encode(), state(1, None))])
    n = await version_applied(settings, producer, keys, b"1", 0)
    planning = await read_all(settings, [names(PLANNING)])
    before = keys.record_id("network_planning", f"o{n}").encode()
    assert [header(m, "cdrveil.record-id") for m in planning].count(before) == 1

    objections = {"network_planning": True, "fraud_prevention": True}
    await produce(producer, names.consent, [(SERVED.encode(), state(2, objections))])
    first = await version_applied(settings, producer, keys, b"2", n)
    later = [f"late{i}" for i in range(50)]
    await produce(producer, names.inputs[1], [(SERVED.encode(), sms(r)) for r in later])
    await wait_until_committed(settings, settings.group_id, list(names.inputs), 60)
    assert worker.running(), worker.log()[-3000:]

    after = [f"o{i}" for i in range(first, first + 1)] + later
    planning_ids = {
        header(m, "cdrveil.record-id") for m in await read_all(settings, [names(PLANNING)])
    }
    fraud_ids = {header(m, "cdrveil.record-id") for m in await read_all(settings, [names(FRAUD)])}
    for record_id in after:
        assert keys.record_id("network_planning", record_id).encode() not in planning_ids
        assert keys.record_id("fraud_prevention", record_id).encode() in fraud_ids

    # The explanation of one of them, from the same state: excluded here, overridden there.
    table = ConsentTable(MsisdnNormalizer())
    table.apply(SERVED.encode(), state(2, objections))
    engine = offline_engine(settings, keyring)
    result = explain(engine, sms(later[0]), table, WarrantIndex(MsisdnNormalizer()))
    routes = {entry["route"]: entry for entry in result["routes"]}
    assert not routes["network_planning"]["delivered"]
    assert "objected (GDPR Art. 21)" in routes["network_planning"]["reason"]
    ground = POLICY.routes["fraud_prevention"].override_ground
    assert routes["fraud_prevention"]["delivered"]
    assert ground in routes["fraud_prevention"]["reason"]
    assert result["servedConsent"]["objections"] == ["fraud_prevention", "network_planning"]
    assert worker.stop() == 0


async def test_two_purposes_outputs_of_the_same_inputs_share_no_record_id(
    settings: Settings, producer: AIOKafkaProducer, real_worker: Any, keyring: Path
) -> None:
    """Everyone consents: every analytics route gets every record, and no record id is on two
    topics, nor is any the source's; the same input again gets the same id (de-duplication)."""
    await all_topics(settings)
    names = TopicNames(settings.topic_prefix)
    everything = dict.fromkeys(POLICY.analytics_purposes, True)
    consent = orjson.dumps(
        {
            "msisdn": SERVED,
            "purposes": everything,
            "version": 3,
            "updatedAt": "2026-11-21T05:00:00Z",
        }
    )
    await produce(producer, names.consent, [(SERVED.encode(), consent)])
    worker = real_worker(settings)
    await wait_ready(worker)
    inputs = [f"r{i}" for i in range(200)]
    messages = [(SERVED.encode(), sms(r)) for r in inputs]
    await produce(producer, names.inputs[1], messages + messages[:10])  # 10 redelivered
    await wait_until_committed(settings, settings.group_id, list(names.inputs), 60)
    ids: dict[str, list[bytes]] = {}
    for purpose in POLICY.analytics_purposes:
        topic = names(f"traffic.analytics.{purpose}")
        ids[purpose] = [
            header(m, "cdrveil.record-id") or b"" for m in await read_all(settings, [topic])
        ]
        assert len(ids[purpose]) == 210, purpose
        assert len(set(ids[purpose])) == 200, purpose  # the redelivered ten: the same ids
    sources = {r.encode() for r in inputs}
    for purpose, mine in ids.items():
        assert sources.isdisjoint(mine)
        for other, theirs in ids.items():
            if other != purpose:
                assert set(mine).isdisjoint(theirs), (purpose, other)
    assert worker.stop() == 0
