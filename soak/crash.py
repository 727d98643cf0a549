"""Crash and restart: one worker stopped again and again (kill -9 or SIGTERM), then checked.

All inputs are published (records with unique ids, some malformed on purpose), a worker is
started, and each time the group's committed offsets show a further ``step`` of the inputs
done, the worker gets the signal and a new one is started. After the last one has
committed everything, every output topic and the dead-letter topic are read back and
compared with the engine run offline over the same inputs (see :mod:`soak.harness`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.keys import Keyring
from pipeline.harness import Workers
from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames
from pipeline.synth import Workload, consent_states, records, warrants
from soak.harness import (
    Expectation,
    Input,
    Say,
    Verdict,
    committed_total,
    compare,
    create_all_topics,
    publish,
    quiet,
    wait_committed,
)


@dataclass(frozen=True)
class CrashConfig:
    """Sizes and the signal of one crash run."""

    records: int = 200_000
    subscribers: int = 10_000
    seed: int = 3
    malformed_share: float = 0.01
    warrants: int = 2
    stops: int = 3
    #: Further share of the inputs committed before each stop.
    step: float = 0.2
    sig: int = signal.SIGKILL
    #: Records per second while workers run (``None``: everything published first).
    rate: float | None = None
    within: float = 600.0


@dataclass
class Stop:
    """One stop: progress when the signal went out, and how the worker ended."""

    committed_before: int
    committed_at_signal: int
    committed_after: int
    exit_code: int


@dataclass
class CrashReport:
    """What a crash run did and found."""

    config: CrashConfig
    stops: list[Stop] = field(default_factory=list)
    final_exit_code: int | None = None
    verdict: Verdict = field(default_factory=Verdict)
    seconds: float = 0.0
    tracebacks: int = 0

    def summary(self) -> str:
        """The figures, for a person."""
        name = signal.Signals(self.config.sig).name
        total = self.config.records
        lines = [
            f"{total:,} records, {len(self.stops)} x {name} "
            f"(each after >= {self.config.step:.0%} further progress), {self.seconds:.0f} s"
        ]
        for i, stop in enumerate(self.stops, 1):
            lines.append(
                f"  stop {i}: signal at {stop.committed_at_signal / total:.0%} committed "
                f"(+{(stop.committed_at_signal - stop.committed_before) / total:.0%}), "
                f"exit status {stop.exit_code}"
            )
        lines.append(f"  last worker: exit status {self.final_exit_code} after SIGTERM")
        lines.append(self.verdict.summary())
        return "\n".join(lines)


async def run_crash(
    settings: Settings, workdir: Path, config: CrashConfig, say: Say = quiet
) -> CrashReport:
    """Run the scenario against the broker in ``settings``; the report (asserts nothing)."""
    started = time.monotonic()
    keyring = workdir / "keyring.json"
    Keyring.init(keyring)
    settings = settings.replace(keyring_path=keyring)
    names = TopicNames(settings.topic_prefix)
    inputs_topics = list(names.inputs)
    await create_all_topics(settings)
    workload = Workload(
        subscribers=config.subscribers, seed=config.seed, malformed_share=config.malformed_share
    )
    consent = list(consent_states(workload))
    warrant_messages = [(w.key, w.value) for w in warrants(workload, config.warrants)]
    await publish(settings, [(names.consent, k, v) for k, v in consent])
    await publish(settings, [(names.warrants, k, v) for k, v in warrant_messages])
    topic_of = {"voice": names.inputs[0], "sms": names.inputs[1]}

    def messages() -> list[tuple[str, bytes | None, bytes | None]]:
        out = []
        for m in records(workload, config.records):
            # Kafka needs a key or a value: a keyless tombstone gets its record id.
            key = m.record_id.encode() if m.key is None and m.value is None else m.key
            out.append((topic_of[m.kind], key, m.value))
        return out

    say(f"publishing {config.records:,} records")
    publishing = asyncio.create_task(publish(settings, messages(), rate=config.rate))
    if config.rate is None:
        await publishing
    report = CrashReport(config)
    workers = Workers(settings, keyring, workdir)
    total = config.records
    try:
        done = 0
        for i in range(config.stops):
            worker = workers.spawn()
            target = done + max(1, int(config.step * total))
            reached = await wait_committed(
                settings, inputs_topics, target, config.within, alive=worker.running, poll=0.05
            )
            code = worker.stop(config.sig)
            after = await committed_total(settings, inputs_topics)
            report.stops.append(Stop(done, reached, after, code))
            say(
                f"stop {i + 1}: {signal.Signals(config.sig).name} at {reached:,} committed, "
                f"exit status {code}; {after:,} committed after"
            )
            done = after
            if done >= total:
                break
        sent: list[Input] = await publishing
        last = workers.spawn()
        # Ready before it is stopped: a SIGTERM during start-up is not the scenario.
        await last.wait_for_log("assigned", within=config.within)
        await wait_committed(settings, inputs_topics, total, config.within, alive=last.running)
        report.final_exit_code = last.stop(signal.SIGTERM)
        report.tracebacks = workers.all_logs().count("Traceback")
    finally:
        workers.close()
        if not publishing.done():
            publishing.cancel()
    say("comparing with the engine run offline")
    expectation = Expectation(settings, consent, warrant_messages)
    for message in sent:
        expectation.add(message)
    report.verdict = await compare(settings, expectation)
    report.seconds = time.monotonic() - started
    return report
