"""``cdrveil generate``: publish seeded synthetic traffic to Kafka, or write it to a file.

Consent states go to ``consent.state``, warrants to ``li.warrants`` and voice and SMS
records to ``cdr.voice`` / ``cdr.sms``, at a target rate or as fast as the broker takes them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.progress import Progress
from pipeline.settings import Settings
from pipeline.shell.clients import publisher as producer
from pipeline.shell.topics import TopicNames
from pipeline.synth import Workload, consent_states, records, warrants, write_jsonl

# Delivery futures awaited together; bounds memory and keeps the producer's batches full.
_WINDOW = 5000


@dataclass
class GenerateReport:
    """What was published."""

    consent_states: int = 0
    warrants: int = 0
    records: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def records_line(self) -> str:
        """The records published, per kind, with the time and rate."""
        total = sum(self.records.values())
        rate = total / self.seconds if self.seconds else 0.0
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.records.items()))
        return f"{total:,} records ({kinds}) in {self.seconds:.1f} s ({rate:,.0f} records/s)"

    def summary(self) -> str:
        """A few lines a person can read."""
        lines = [
            f"published {self.consent_states:,} consent states, {self.warrants} warrants, "
            + self.records_line(),
        ]
        if self.malformed:
            bad = ", ".join(f"{code} {n}" for code, n in sorted(self.malformed.items()))
            lines.append(f"malformed on purpose: {sum(self.malformed.values()):,} ({bad})")
        return "\n".join(lines)


async def publish(
    settings: Settings,
    workload: Workload,
    count: int,
    *,
    warrant_count: int = 2,
    with_consent: bool = True,
    rate: float | None = None,
    show_progress: bool = True,
) -> GenerateReport:
    """Publish consent, warrants and ``count`` records; return what was published."""
    names = TopicNames(settings.topic_prefix)
    report = GenerateReport()
    started = time.monotonic()
    client = producer(settings)
    await client.start()
    try:
        if with_consent:
            pending = []
            progress = Progress("consent states", workload.subscribers, "states")
            for subscriber, state in consent_states(workload):
                pending.append(await client.send(names.consent, state, key=subscriber))
                report.consent_states += 1
                if len(pending) >= _WINDOW:
                    await asyncio.gather(*pending)
                    pending.clear()
                    if show_progress:
                        progress.update(report.consent_states)
            await asyncio.gather(*pending)
            if show_progress:
                progress.finish(report.consent_states)
        for warrant in warrants(workload, warrant_count):
            await (await client.send(names.warrants, warrant.value, key=warrant.key))
            report.warrants += 1
        topics = {"voice": names.inputs[0], "sms": names.inputs[1]}
        show_progress = show_progress and count > 0  # no "0/1 records" line for none
        progress = Progress("records", count)
        pending = []
        for sent, message in enumerate(records(workload, count), start=1):
            key: bytes | None = message.key
            if key is None and message.value is None:
                # Kafka needs a key or a value; a keyless tombstone gets its record id.
                key = message.record_id.encode()
            pending.append(await client.send(topics[message.kind], message.value, key=key))
            report.records[message.kind] += 1
            if message.expected_reason is not None:
                report.malformed[message.expected_reason] += 1
            if rate is not None:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0.005:
                    await asyncio.sleep(ahead)
            if len(pending) >= _WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
                if show_progress:
                    progress.update(sent)
        await asyncio.gather(*pending)
        if show_progress:
            progress.finish(count)
    finally:
        await client.stop()
    report.seconds = time.monotonic() - started
    return report


def write_file(path: Path, workload: Workload, count: int) -> int:
    """Write ``count`` records as JSON lines (values only) to ``path``; return lines written."""
    return write_jsonl(path, records(workload, count))
