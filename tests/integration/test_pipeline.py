"""The real worker (`python -m pipeline worker`, real engine, default policy) end to end."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.core.consent import ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.warrants import WarrantIndex
from pipeline.harness import read_all
from pipeline.settings import Settings
from pipeline.shell.messages import header
from pipeline.shell.offsets import wait_until_committed
from pipeline.shell.topics import TopicNames
from pipeline.synth import Workload, consent_states, records, warrants
from tests.support.kafka import (
    POLICY,
    all_topics,
    offline_engine,
    output_topics,
    produce,
    wait_ready,
)
from tests.support.schemas import headers_document, load_schema

pytestmark = pytest.mark.asyncio(loop_scope="session")

FORMS = ("+46 70-123 45 67", "0046701234567", "46701234567", "0701234567", "+46701234567")


async def test_end_to_end_outputs_are_exactly_the_engines(
    settings: Settings, producer: AIOKafkaProducer, real_worker: Any, keyring: Path
) -> None:
    """Known consent and warrants: every output (topic, key, value, headers) is the engine's."""
    await all_topics(settings)
    names = TopicNames(settings.topic_prefix)
    workload = Workload(subscribers=300, seed=11, malformed_share=0.05)
    consent_messages = list(consent_states(workload))
    warrant_messages = [(w.key, w.value) for w in warrants(workload, 2)]
    await produce(producer, names.consent, consent_messages)
    await produce(producer, names.warrants, warrant_messages)
    worker = real_worker(settings)
    await wait_ready(worker)
    inputs = list(records(workload, 3000))
    for kind in ("voice", "sms"):
        topic = names.inputs[0] if kind == "voice" else names.inputs[1]
        await produce(
            producer,
            topic,
            [
                (
                    m.key if m.key is not None or m.value is not None else m.record_id.encode(),
                    m.value,
                )
                for m in inputs
                if m.kind == kind
            ],
        )
    await wait_until_committed(settings, settings.group_id, list(names.inputs), 90)
    assert worker.running(), worker.log()[-3000:]

    normalizer = MsisdnNormalizer()
    table, index = ConsentTable(normalizer), WarrantIndex(normalizer)
    for key, value in consent_messages:
        table.apply(key, value)
    for key, value in warrant_messages:
        index.apply(key, value)
    engine = offline_engine(settings, keyring)
    expected: Counter[tuple[Any, ...]] = Counter()
    rejected: Counter[tuple[bytes | None, str]] = Counter()
    for message in inputs:
        result = engine.process(message.value, table.get, index)
        if isinstance(result, Rejection):
            rejected[(message.value, result.code)] += 1
            assert result.code == message.expected_reason
            continue
        for out in result:
            expected[(out.topic, out.key, out.value, tuple(out.headers))] += 1

    consumed = await read_all(settings, output_topics(settings))
    actual: Counter[tuple[Any, ...]] = Counter()
    dead: Counter[tuple[bytes | None, str]] = Counter()
    for message in consumed:
        if message.topic == names.dead_letter(POLICY):
            code = header(message, "dlq.error.code")
            assert code is not None
            dead[(message.value, code.decode())] += 1
            continue
        actual[(message.topic, message.key, message.value, tuple(message.headers))] += 1
    assert actual == expected
    assert dead == rejected
    assert sum(rejected.values()) == sum(1 for m in inputs if m.expected_reason is not None)
    # and the worker's outputs keep the contract of schemas/
    validators = {
        "lawful_intercept": load_schema("lawful-intercept"),
        "billing": load_schema("billing"),
    }
    analytics = load_schema("analytics")
    headers_schema = load_schema("output-headers")
    for message in consumed:
        if message.topic == names.dead_letter(POLICY):
            continue
        route = header(message, "cdrveil.route")
        assert route is not None
        validator = validators.get(route.decode(), analytics)
        validator.validate(orjson.loads(message.value))
        headers_schema.validate(headers_document(message.headers))
    assert worker.stop() == 0


async def test_dead_letters_keep_the_bytes_and_the_reason_and_the_worker_runs_on(
    settings: Settings, producer: AIOKafkaProducer, real_worker: Any
) -> None:
    """One input of each reason code: each is dead-lettered once, untouched, with headers."""
    await all_topics(settings)
    names = TopicNames(settings.topic_prefix)
    worker = real_worker(settings)
    await wait_ready(worker)
    good = orjson.dumps(
        {
            "recordId": "ok-1",
            "recordType": "moSMSRecord",
            "servedMSISDN": "0701234567",
            "originationTime": "2026-11-21T05:00:00Z",
        }
    )
    bad = {
        "null_value": None,
        "oversize": b'{"recordId":"' + b"x" * 70_000 + b'"}',
        "invalid_utf8": b'{"recordId":"\xff\xfe"}',
        "invalid_json": b'{"recordId": ',
        "not_an_object": b"[1, 2, 3]",
        "missing_field": b'{"recordType":"moSMSRecord"}',
        "wrong_type": b'{"recordId": 7, "recordType":"moSMSRecord"}',
        "unknown_record_type": b'{"recordId":"u","recordType":"sgsnPDPRecord"}',
        "bad_msisdn": good.replace(b"0701234567", b"07012ABC"),
        "bad_imsi": good[:-1] + b',"servedIMSI":"1234"}',
        "bad_imei": good[:-1] + b',"servedIMEI":"490154203237519"}',
        "bad_timestamp": good.replace(b"2026-11-21T05:00:00Z", b"2026-11-21 05:00"),
        "bad_value": b'{"recordId":"","recordType":"moSMSRecord"}',
    }
    messages = [(f"k-{code}".encode(), value) for code, value in bad.items()]
    metadata = await produce(producer, names.inputs[1], [*messages, (b"k-ok", good)])
    await wait_until_committed(settings, settings.group_id, list(names.inputs), 60)
    assert worker.running()
    dead = await read_all(settings, [names.dead_letter(POLICY)])
    assert len(dead) == len(bad)
    by_key = {m.key: m for m in dead}
    for (key, value), meta in zip(messages, metadata, strict=False):
        message = by_key[key]
        code = key.decode()[2:]
        assert message.value == value
        assert header(message, "dlq.error.code") == code.encode()
        assert header(message, "dlq.source.topic") == names.inputs[1].encode()
        assert header(message, "dlq.source.partition") == str(meta.partition).encode()
        assert header(message, "dlq.source.offset") == str(meta.offset).encode()
        assert header(message, "dlq.timestamp") is not None
        text = header(message, "dlq.error.message")
        assert text is not None
        assert b"0701234567" not in text
        assert b"07012ABC" not in text
    outputs = await read_all(settings, [TopicNames(settings.topic_prefix)("traffic.billing")])
    assert [header(m, "cdrveil.record-id") for m in outputs] == [b"ok-1"]
    assert worker.stop() == 0


def sms(record_id: str, served: str, other: str) -> bytes:
    """A minimal MO SMS from ``served`` to ``other``."""
    return orjson.dumps(
        {
            "recordId": record_id,
            "recordType": "moSMSRecord",
            "servedMSISDN": served,
            "servedIMSI": "240011234567890",
            "originationTime": "2026-11-21T05:00:00Z",
            "destinationNumber": other,
        }
    )


def state(version: int, granted: bool) -> bytes:
    """The subscriber's consent state, granting or withdrawing everything."""
    return orjson.dumps(
        {
            "msisdn": "46701234567",
            "purposes": dict.fromkeys(POLICY.analytics_purposes, granted),
            "version": version,
            "updatedAt": "2026-11-21T05:00:00Z",
        }
    )


def keyed(keyring: Path, purpose: str, record_id: str) -> bytes:
    """The record id ``purpose``'s outputs of input ``record_id`` carry (keyed per purpose)."""
    return Pseudonymizer(Keyring.load(keyring)).record_id(purpose, record_id).encode()


async def consent_version_seen(
    settings: Settings, producer: AIOKafkaProducer, wanted: bytes, start: int, keyring: Path
) -> tuple[int, list[Any]]:
    """Send records until one is processed under consent version ``wanted``; its number.

    Watched on fraud prevention (legitimate interest): it gets every record, whatever the
    consent, and carries the consent version applied."""
    names = TopicNames(settings.topic_prefix)
    topic = names("traffic.analytics.fraud_prevention")
    deadline = time.monotonic() + 30
    n = start
    while True:
        n += 1
        await produce(
            producer, names.inputs[1], [(b"46701234567", sms(f"c{n}", FORMS[n % 5], "0709999999"))]
        )
        await wait_until_committed(settings, settings.group_id, list(names.inputs), 30)
        outputs = await read_all(settings, [topic])
        mine = keyed(keyring, "fraud_prevention", f"c{n}")
        latest = [m for m in outputs if header(m, "cdrveil.record-id") == mine]
        if latest and header(latest[0], "cdrveil.consent-version") == wanted:
            return n, outputs
        assert time.monotonic() < deadline, f"consent version {wanted!r} never applied"
        await asyncio.sleep(0.1)


async def test_service_codes_and_sender_names_are_billed_not_dead_lettered(
    settings: Settings, producer: AIOKafkaProducer, real_worker: Any
) -> None:
    """The real worker: an SMS to *100#, to a short number and to a sender name are billed
    (the code and the short number as received, the name pseudonymized, the empty number
    dropped), none dead-lettered."""
    await all_topics(settings)
    names = TopicNames(settings.topic_prefix)
    worker = real_worker(settings)
    await wait_ready(worker)
    parties = {"p-code": "*100#", "p-short": "112", "p-name": "BankID", "p-empty": ""}
    messages = [(b"46701234567", sms(rid, "0701234567", other)) for rid, other in parties.items()]
    await produce(producer, names.inputs[1], messages)
    await wait_until_committed(settings, settings.group_id, list(names.inputs), 60)
    assert await read_all(settings, [names.dead_letter(POLICY)]) == []
    billing = await read_all(settings, [names("traffic.billing")])
    got = {
        header(m, "cdrveil.record-id"): orjson.loads(m.value).get("destinationNumber")
        for m in billing
    }
    assert got[b"p-code"] == "*100#"
    assert got[b"p-short"] == "112"
    assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9_-]{22}", got[b"p-name"])
    assert got[b"p-empty"] is None
    assert worker.stop() == 0


async def test_consent_changes_take_effect_for_records_processed_after_them(
    settings: Settings, producer: AIOKafkaProducer, real_worker: Any, keyring: Path
) -> None:
    """Grant, then withdraw, then tombstone, while traffic flows."""
    await all_topics(settings)
    names = TopicNames(settings.topic_prefix)
    worker = real_worker(settings)
    await wait_ready(worker)
    consent_based = [
        names("traffic.analytics.marketing"),
        names("traffic.analytics.service_improvement"),
    ]

    async def consent_based_outputs(n: int) -> list[Any]:
        """Record c{n}'s outputs on the routes that require consent."""
        found = await read_all(settings, consent_based)
        mine = {keyed(keyring, p, f"c{n}") for p in ("marketing", "service_improvement")}
        return [m for m in found if header(m, "cdrveil.record-id") in mine]

    await produce(producer, names.consent, [(b"46701234567", state(1, True))])
    n, outputs = await consent_version_seen(settings, producer, b"1", 0, keyring)
    granted = await consent_based_outputs(n)
    assert sorted(m.topic for m in granted) == consent_based
    assert all(orjson.loads(m.value)["servedMSISDN"] == "46701234567" for m in granted)

    await produce(producer, names.consent, [(b"46701234567", state(2, False))])
    n, outputs = await consent_version_seen(settings, producer, b"2", n, keyring)
    assert await consent_based_outputs(n) == []
    fraud = orjson.loads(
        next(
            m
            for m in outputs
            if header(m, "cdrveil.record-id") == keyed(keyring, "fraud_prevention", f"c{n}")
        ).value
    )
    assert fraud["servedMSISDN"].startswith("k1:")

    await produce(producer, names.consent, [(b"46701234567", None)])
    n, outputs = await consent_version_seen(settings, producer, b"none", n, keyring)
    assert await consent_based_outputs(n) == []
    assert worker.stop() == 0


async def test_a_restarted_worker_resumes_and_rebuilds_its_tables(
    settings: Settings, producer: AIOKafkaProducer, real_worker: Any, keyring: Path
) -> None:
    """Killed mid-stream and started again: every input has its outputs, consent still applied."""
    await all_topics(settings)
    names = TopicNames(settings.topic_prefix)
    await produce(producer, names.consent, [(b"46701234567", state(5, True))])
    worker = real_worker(settings)
    await wait_ready(worker)
    first = [(b"46701234567", sms(f"a{i}", FORMS[i % 5], "0709999999")) for i in range(3000)]
    await produce(producer, names.inputs[1], first)
    await asyncio.sleep(0.3)
    worker.stop(signal.SIGKILL)
    second = [(b"46701234567", sms(f"b{i}", FORMS[i % 5], "0709999999")) for i in range(1000)]
    await produce(producer, names.inputs[1], second)
    worker = real_worker(settings)
    await wait_until_committed(settings, settings.group_id, list(names.inputs), 90)
    billing = await read_all(settings, [names("traffic.billing")])
    ids = {header(m, "cdrveil.record-id") for m in billing}
    assert ids == {f"a{i}".encode() for i in range(3000)} | {f"b{i}".encode() for i in range(1000)}
    # the tables were rebuilt: records after the restart still see the consent (version 5)
    marketing = await read_all(settings, [names("traffic.analytics.marketing")])
    pseudonymizer = Pseudonymizer(Keyring.load(keyring))
    wanted = {pseudonymizer.record_id("marketing", f"b{i}").encode() for i in range(1000)}
    after = [m for m in marketing if header(m, "cdrveil.record-id") in wanted]
    assert len({header(m, "cdrveil.record-id") for m in after}) == 1000
    assert all(header(m, "cdrveil.consent-version") == b"5" for m in after)
    assert worker.stop() == 0


async def test_no_identifier_in_clear_on_any_analytics_topic(
    settings: Settings, producer: AIOKafkaProducer, real_worker: Any
) -> None:
    """Nobody consented: no input identifier, in any form, in any analytics key/value/header."""
    await all_topics(settings)
    names = TopicNames(settings.topic_prefix)
    workload = Workload(subscribers=200, seed=5)
    worker = real_worker(settings)
    await wait_ready(worker)
    inputs = [m for m in records(workload, 1500) if m.expected_reason is None]
    await produce(
        producer, names.inputs[0], [(m.key, m.value) for m in inputs if m.kind == "voice"]
    )
    await produce(producer, names.inputs[1], [(m.key, m.value) for m in inputs if m.kind == "sms"])
    await wait_until_committed(settings, settings.group_id, list(names.inputs), 90)
    normalizer = MsisdnNormalizer()
    needles: set[bytes] = set()
    for message in inputs:
        obj = orjson.loads(message.value)
        for name in (
            "servedMSISDN",
            "callingNumber",
            "calledNumber",
            "connectedNumber",
            "translatedNumber",
            "destinationNumber",
            "originationNumber",
        ):
            if obj.get(name):
                number = normalizer(obj[name])
                assert number is not None
                needles |= {number.encode(), number[2:].encode(), obj[name].encode()}
        for name in ("servedIMSI", "servedIMEI"):
            if obj.get(name):
                needles.add(obj[name][:14].encode())
    analytics = [names(r.topic) for r in POLICY.routes.values() if r.kind == "analytics"]
    consumed = await read_all(settings, analytics)
    assert consumed
    # The same test as `needle in blob` for every needle and blob, without the loop over
    # ~2,000 needles per blob that took ~40 s of this test: an occurrence of a needle lies
    # within a maximal run of the characters needles are made of, so only the windows of
    # such runs are looked up in the set of needles.
    alphabet = sorted({bytes([c]) for needle in needles for c in needle})
    runs = re.compile(b"[" + b"".join(re.escape(c) for c in alphabet) + b"]+")
    lengths = sorted({len(needle) for needle in needles})
    assert lengths[0] > 0

    def holds_a_needle(blob: bytes) -> bool:
        for run in runs.findall(blob):
            for size in lengths:
                if size > len(run):
                    break
                if any(run[i : i + size] in needles for i in range(len(run) - size + 1)):
                    return True
        return False

    for message in consumed:
        blobs = [message.key or b"", message.value or b""]
        blobs += [bytes(v) for _k, v in message.headers]
        for blob in blobs:
            assert not holds_a_needle(blob), f"identifier in clear on {message.topic}"
    assert worker.stop() == 0


async def test_a_ber_file_through_ingest_and_worker_gives_the_json_paths_outputs(
    settings: Settings, real_worker: Any, keyring: Path, tmp_path: Path
) -> None:
    """TS 32.297 file -> `ingest` -> worker: the outputs the engine gives for that JSON."""
    from pipeline.ingest.run import ingest_files
    from tests.support.ingest import build_file

    await all_topics(settings)
    names = TopicNames(settings.topic_prefix)
    built = build_file(16)
    path = tmp_path / "MSC01_20261121T0600+0100_0001.dat"
    path.write_bytes(built.data)
    worker = real_worker(settings)
    await wait_ready(worker)
    report = await ingest_files(settings, [path], show_progress=False)
    assert report.exit_code == 0, report.summary()
    await wait_until_committed(settings, settings.group_id, list(names.inputs), 60)

    inputs = await read_all(settings, list(names.inputs))
    assert len(inputs) == len(built.records)
    normalizer = MsisdnNormalizer()
    engine = offline_engine(settings, keyring)
    expected: Counter[tuple[Any, ...]] = Counter()
    for message in inputs:
        result = engine.process(
            message.value, ConsentTable(normalizer).get, WarrantIndex(normalizer)
        )
        assert not isinstance(result, Rejection), result
        expected.update((o.topic, o.key, o.value, tuple(o.headers)) for o in result)
    consumed = await read_all(settings, output_topics(settings))
    assert not [m for m in consumed if m.topic == names.dead_letter(POLICY)]
    actual = Counter((m.topic, m.key, m.value, tuple(m.headers)) for m in consumed)
    assert actual == expected
    assert worker.stop() == 0


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has installed a handler for ``sig`` (SigCgt in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_during_start_up_exits_0_and_says_so(
    settings: Settings, real_worker: Any, sig: int
) -> None:
    """A signal before faust has installed its handlers (imports take ~0.4 s) used to kill
    the worker with status -15. It is a clean stop: nothing was consumed yet."""
    worker = real_worker(settings)
    deadline = time.monotonic() + 10
    # SIGTERM is caught from the moment `cdrveil worker` runs (Python itself catches only
    # SIGINT), so this waits until the worker's own start-up handler is in place.
    while not _catches(worker.process.pid, signal.SIGTERM):
        assert worker.running() and time.monotonic() < deadline, worker.log()
        await asyncio.sleep(0.002)
    assert worker.stop(sig, wait=10) == 0, worker.log()
    assert f"stopped by {signal.Signals(sig).name} during start-up" in worker.log()
