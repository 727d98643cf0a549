"""Consent withdrawal under live traffic: how long until the worker applies it.

Subscribers who consented to every purpose (consent version 1) send a record every few
milliseconds; while that traffic flows, each subscriber's withdrawal (version 2, nothing
granted) is published. The delay of one withdrawal is the time from the withdrawal's
timestamp (set by the producer when it was sent) to the timestamp of the first output
the worker produced under version 2 (the ``cdrveil.consent-version`` header), both on this
machine's clock: an upper bound of when the worker applied it, to within one record
interval. Every output under version 2 must carry none of the subscriber's identifiers in
clear, and the marketing route (consent required) must get none.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.linkage import source_ids
from pipeline.harness import Workers, read_all
from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames
from soak.canary import Canary, Scanner, canaries, msisdn_forms
from soak.harness import (
    POLICY,
    Say,
    bulk_producer,
    create_all_topics,
    header,
    percentile,
    publish,
    quiet,
    route_topics,
    wait_committed,
)


@dataclass(frozen=True)
class WithdrawalConfig:
    """Sizes and pace of one withdrawal run."""

    withdrawals: int = 120
    #: Subscribers whose traffic flows at the same time (each its own lane).
    lanes: int = 4
    #: Seconds between two records of one subscriber.
    interval: float = 0.005
    #: Seconds of traffic before and after each withdrawal.
    lead: float = 0.1
    tail: float = 0.6
    within: float = 300.0


@dataclass
class WithdrawalReport:
    """The delays and what was produced after them."""

    config: WithdrawalConfig
    records: int = 0
    delays_ms: list[float] = field(default_factory=list)
    #: From each withdrawal's timestamp until Kafka acknowledged it (every in-sync replica).
    acked_ms: list[float] = field(default_factory=list)
    #: Withdrawals (in publishing order per lane) that took over 500 ms.
    slow: list[tuple[int, float]] = field(default_factory=list)
    #: Withdrawals whose traffic never showed version 2.
    never_applied: int = 0
    #: Subscribers whose outputs went back to version 1 after showing version 2.
    not_monotonic: int = 0
    #: Outputs under version 2 with an identifier of the subscriber in clear.
    clear_after: int = 0
    #: Control: outputs before the withdrawal with the subscriber's number in clear.
    clear_before: int = 0
    marketing_after: int = 0
    outputs_after: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """The figures, for a person."""
        d = self.delays_ms
        return (
            f"{len(d)} withdrawals measured ({self.config.lanes} subscribers' traffic at a time,"
            f" one record each per {self.config.interval * 1000:.0f} ms; {self.records:,} "
            f"records; {self.seconds:.0f} s)\n"
            f"delay until applied: p50 {percentile(d, 0.5):.0f} ms, p90 "
            f"{percentile(d, 0.9):.0f} ms, p99 {percentile(d, 0.99):.0f} ms, max "
            f"{max(d, default=float('nan')):.0f} ms; over 500 ms: {len(self.slow)} (withdrawal "
            f"number, ms: {', '.join(f'{i}: {ms:.0f}' for i, ms in self.slow)})\n"
            f"each withdrawal acknowledged by Kafka after: p50 "
            f"{percentile(self.acked_ms, 0.5):.0f} ms, max "
            f"{max(self.acked_ms, default=float('nan')):.0f} ms\n"
            f"never applied: {self.never_applied}; went back to the old version: "
            f"{self.not_monotonic}\n"
            f"outputs after the withdrawal: {self.outputs_after:,}; with an identifier of the "
            f"subscriber in clear: {self.clear_after}; on the marketing topic: "
            f"{self.marketing_after} (control: outputs before it with the number in clear: "
            f"{self.clear_before:,})"
        )


def _state(msisdn: str, version: int, granted: bool) -> bytes:
    return orjson.dumps(
        {
            "msisdn": msisdn,
            "purposes": dict.fromkeys(POLICY.analytics_purposes, granted),
            "version": version,
            "updatedAt": "2026-11-21T05:00:00Z",
        }
    )


def _sms(record_id: str, bird: Canary, form: str) -> bytes:
    return orjson.dumps(
        {
            "recordId": record_id,
            "recordType": "moSMSRecord",
            "servedMSISDN": form,
            "servedIMSI": bird.imsi,
            "servedIMEI": bird.imei,
            "recordingEntity": "46107001001",
            "location": {"mccMnc": "24001", "locationAreaCode": 1201, "cellId": 30471},
            "originationTime": "2026-11-21T05:00:00Z",
            "destinationNumber": "0046709999999",
        }
    )


async def run_withdrawal(
    settings: Settings, workdir: Path, config: WithdrawalConfig, say: Say = quiet
) -> WithdrawalReport:
    """Run the scenario against the broker in ``settings``; the report."""
    started = time.monotonic()
    report = WithdrawalReport(config)
    keyring = workdir / "keyring.json"
    Keyring.init(keyring)
    settings = settings.replace(keyring_path=keyring)
    names = TopicNames(settings.topic_prefix)
    await create_all_topics(settings)
    people = canaries(config.withdrawals, (), seed=99)
    await publish(
        settings, [(names.consent, p.msisdn.encode(), _state(p.msisdn, 1, True)) for p in people]
    )
    withdrawn_at: dict[int, int] = {}
    workers = Workers(settings, keyring, workdir)
    producer = bulk_producer(settings)
    await producer.start()
    try:
        worker = workers.spawn()
        await worker.wait_for_log("assigned")
        # "assigned" comes before the worker's first fetch and first write; on three Apache
        # Kafka nodes its first output came ~2.4 s later, so every withdrawal of the first
        # rounds "took" that long and no record before it was processed under version 1.
        # One record through the worker first: the delays measure the withdrawals.
        warm_up = people[0]
        await producer.send_and_wait(
            names.inputs[1], _sms("x-warm-up", warm_up, warm_up.msisdn), key=b"warm-up"
        )
        await wait_committed(settings, list(names.inputs), 1, config.within, worker.running)
        counts = [0] * config.lanes
        sent_ids: list[str] = []

        async def lane(number: int) -> None:
            for i in range(number, len(people), config.lanes):
                person = people[i]
                forms = msisdn_forms(person.msisdn)
                begun = time.monotonic()
                seq = 0
                withdrawn = False
                while (elapsed := time.monotonic() - begun) < config.lead + config.tail:
                    if not withdrawn and elapsed >= config.lead:
                        meta = await producer.send_and_wait(
                            names.consent,
                            _state(person.msisdn, 2, False),
                            key=person.msisdn.encode(),
                        )
                        withdrawn_at[i] = meta.timestamp
                        report.acked_ms.append(time.time() * 1000 - meta.timestamp)
                        withdrawn = True
                    sent_ids.append(f"w{i}-{seq}")
                    await producer.send(
                        names.inputs[1],
                        _sms(f"w{i}-{seq}", person, forms[seq % len(forms)]),
                        key=person.msisdn.encode(),
                    )
                    seq += 1
                    await asyncio.sleep(config.interval)
                counts[number] += seq

        say(f"{config.withdrawals} withdrawals, {config.lanes} at a time")
        await asyncio.gather(*(lane(n) for n in range(config.lanes)))
        await producer.flush()
        report.records = sum(counts)
        await wait_committed(
            settings, list(names.inputs), report.records + 1, config.within, worker.running
        )
        worker.stop()
    finally:
        await producer.stop()
        workers.close()

    say("reading the analytics topics back")
    analytics = route_topics(settings, "analytics")
    outputs = await read_all(settings, analytics)
    by_person: dict[int, list[tuple[int, Any]]] = defaultdict(list)
    # Analytics outputs carry record ids keyed per purpose: the keys map them back.
    sources = source_ids(Pseudonymizer(Keyring.load(keyring)), POLICY.analytics_purposes, sent_ids)
    for message in outputs:
        record_id = sources.get((header(message, "cdrveil.record-id") or b"").decode(), "")
        if not record_id.startswith("w"):
            continue
        who, seq = record_id[1:].split("-")
        by_person[int(who)].append((int(seq), message))
    marketing = names("traffic.analytics.marketing")
    for i, person in enumerate(people):
        scanner = Scanner([person])
        messages = sorted(by_person.get(i, []), key=lambda item: (item[0], item[1].timestamp))
        after = [m for _, m in messages if header(m, "cdrveil.consent-version") == b"2"]
        if not after:
            report.never_applied += 1
            continue
        first_seq = min(seq for seq, m in messages if header(m, "cdrveil.consent-version") == b"2")
        if any(
            seq > first_seq and header(m, "cdrveil.consent-version") != b"2" for seq, m in messages
        ):
            report.not_monotonic += 1
        for _, m in messages:
            if header(m, "cdrveil.consent-version") == b"1" and scanner.canaries_in(m.value):
                report.clear_before += 1
        first = min(m.timestamp for m in after)
        report.delays_ms.append(first - withdrawn_at[i])
        if first - withdrawn_at[i] > 500:
            report.slow.append((i, first - withdrawn_at[i]))
        report.outputs_after += len(after)
        for m in after:
            if m.topic == marketing:
                report.marketing_after += 1
            blobs = [m.key, m.value, *(bytes(v) for _, v in m.headers)]
            if any(scanner.canaries_in(blob) for blob in blobs):
                report.clear_after += 1
    report.seconds = time.monotonic() - started
    return report
