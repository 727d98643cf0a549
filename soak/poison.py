"""Poison input: malformed records of every reason class mixed into valid ones.

Each malformed record must land exactly once in the dead-letter topic with its original key
and bytes and complete headers (its reason code the one the generator planted, its source
topic, partition and offset), every valid record must have its outputs, valid + dead letters
must equal the inputs, and the worker must still be running at the end.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.linkage import source_ids
from pipeline.harness import Workers, read_all, scan
from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames
from pipeline.synth import Workload, consent_states, records, warrants
from soak.harness import (
    DLQ_HEADERS,
    DLQ_TIMESTAMP,
    POLICY,
    Expectation,
    Say,
    Verdict,
    compare,
    create_all_topics,
    header,
    publish,
    quiet,
    route_topics,
    wait_committed,
)

_LONG_DIGITS = 7


@dataclass(frozen=True)
class PoisonConfig:
    """Sizes of one poison run."""

    valid: int = 100_000
    malformed: int = 2_000
    subscribers: int = 10_000
    seed: int = 5
    within: float = 600.0


@dataclass
class PoisonReport:
    """What a poison run found."""

    config: PoisonConfig
    inputs: int = 0
    planted: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0
    dead_letter_inputs: int = 0
    #: Malformed inputs found in the dead-letter topic more or less often than once.
    not_exactly_once: int = 0
    #: Dead letters whose key or value differ from the input's.
    altered: int = 0
    #: Dead letters with a missing header, a wrong code, source or timestamp.
    bad_headers: int = 0
    #: Dead-letter messages that quote a long digit string of their input.
    quoting: int = 0
    #: Valid inputs with at least one output, and valid inputs dead-lettered.
    valid_with_outputs: int = 0
    valid_dead_lettered: int = 0
    worker_running: bool = False
    exit_code: int | None = None
    verdict: Verdict = field(default_factory=Verdict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """The promise held."""
        return (
            self.dead_letter_inputs == self.config.malformed
            and self.dead_letters == self.config.malformed
            and self.not_exactly_once == 0
            and self.altered == 0
            and self.bad_headers == 0
            and self.quoting == 0
            and self.valid_with_outputs == self.config.valid
            and self.valid_dead_lettered == 0
            and self.valid_with_outputs + self.dead_letter_inputs == self.inputs
            and self.worker_running
            and self.verdict.ok
        )

    def summary(self) -> str:
        """The figures, for a person."""
        classes = ", ".join(f"{code} {n}" for code, n in sorted(self.planted.items()))
        return (
            f"{self.inputs:,} inputs: {self.config.valid:,} valid + {sum(self.planted.values()):,}"
            f" malformed over {len(self.planted)} reason classes ({classes}); "
            f"{self.seconds:.0f} s\n"
            f"dead letters: {self.dead_letters:,} messages for {self.dead_letter_inputs:,} inputs;"
            f" not exactly once: {self.not_exactly_once}; altered bytes: {self.altered}; "
            f"incomplete or wrong headers: {self.bad_headers}; messages quoting input digits: "
            f"{self.quoting}\n"
            f"valid inputs with outputs: {self.valid_with_outputs:,}; valid inputs dead-lettered:"
            f" {self.valid_dead_lettered}; valid + dead letters = "
            f"{self.valid_with_outputs + self.dead_letter_inputs:,} of {self.inputs:,} inputs\n"
            f"worker still running at the end: {self.worker_running}; exit status after SIGTERM:"
            f" {self.exit_code}\n" + self.verdict.summary()
        )


def _digit_runs(data: bytes | None) -> set[bytes]:
    runs: set[bytes] = set()
    run = bytearray()
    for byte in data or b"":
        if 48 <= byte <= 57:
            run.append(byte)
            continue
        if len(run) >= _LONG_DIGITS:
            runs.add(bytes(run))
        run.clear()
    if len(run) >= _LONG_DIGITS:
        runs.add(bytes(run))
    return runs


async def run_poison(
    settings: Settings, workdir: Path, config: PoisonConfig, say: Say = quiet
) -> PoisonReport:
    """Run the scenario against the broker in ``settings``; the report (asserts nothing)."""
    started = time.monotonic()
    report = PoisonReport(config)
    keyring = workdir / "keyring.json"
    Keyring.init(keyring)
    settings = settings.replace(keyring_path=keyring)
    names = TopicNames(settings.topic_prefix)
    await create_all_topics(settings)
    share = config.malformed / (config.valid + config.malformed)
    workload = Workload(subscribers=config.subscribers, seed=config.seed, malformed_share=share)
    consent = list(consent_states(workload))
    warrant_messages = [(w.key, w.value) for w in warrants(workload, 2)]
    await publish(settings, [(names.consent, k, v) for k, v in consent])
    await publish(settings, [(names.warrants, k, v) for k, v in warrant_messages])

    # Exactly `valid` and `malformed` records: draw at the planted share, skip the surplus.
    chosen = []
    valid = malformed = 0
    for m in records(workload, 10 * (config.valid + config.malformed)):
        if m.expected_reason is None:
            if valid == config.valid:
                continue
            valid += 1
        else:
            if malformed == config.malformed:
                continue
            malformed += 1
        chosen.append(m)
        if valid == config.valid and malformed == config.malformed:
            break
    topic_of = {"voice": names.inputs[0], "sms": names.inputs[1]}
    workers = Workers(settings, keyring, workdir)
    try:
        worker = workers.spawn()
        await worker.wait_for_log("assigned")
        say(f"publishing {len(chosen):,} records ({malformed:,} malformed)")
        sent = await publish(
            settings,
            [
                (
                    topic_of[m.kind],
                    m.record_id.encode() if m.key is None and m.value is None else m.key,
                    m.value,
                )
                for m in chosen
            ],
        )
        await wait_committed(
            settings, list(names.inputs), len(sent), config.within, alive=worker.running
        )
        report.worker_running = worker.running()
        report.exit_code = worker.stop()
    finally:
        workers.close()
    report.inputs = len(sent)
    reasons = {}
    for message, generated in zip(sent, chosen, strict=True):
        if generated.expected_reason is not None:
            report.planted[generated.expected_reason] += 1
            reasons[(message.topic, message.partition, message.offset)] = (
                message,
                generated.expected_reason,
            )

    say("reading the dead-letter topic back")
    dead = await read_all(settings, [names.dead_letter(POLICY)])
    report.dead_letters = len(dead)
    found: Counter[tuple[str, int, int]] = Counter()
    for letter in dead:
        headers = {k: bytes(v) for k, v in letter.headers}
        try:
            source = (
                headers["dlq.source.topic"].decode(),
                int(headers["dlq.source.partition"]),
                int(headers["dlq.source.offset"]),
            )
        except (KeyError, ValueError):
            report.bad_headers += 1
            continue
        found[source] += 1
        planted = reasons.get(source)
        if planted is None:
            report.valid_dead_lettered += 1
            continue
        original, code = planted
        if (letter.key, letter.value) != (original.key, original.value):
            report.altered += 1
        if (
            any(name not in headers for name in DLQ_HEADERS)
            or headers["dlq.error.code"] != code.encode()
            or not headers["dlq.error.message"]
            or not DLQ_TIMESTAMP.match(headers["dlq.timestamp"])
        ):
            report.bad_headers += 1
        if _digit_runs(original.value) & _digit_runs(headers.get("dlq.error.message")):
            report.quoting += 1
    report.dead_letter_inputs = sum(1 for source in found if source in reasons)
    report.not_exactly_once = sum(1 for source in reasons if found[source] != 1)

    say("reading every route's topic back")
    with_outputs: set[bytes] = set()
    await scan(
        settings,
        route_topics(settings),
        lambda m: with_outputs.add(header(m, "cdrveil.record-id") or b""),
    )
    valid_ids = {m.record_id.encode() for m in chosen if m.expected_reason is None}
    # Analytics outputs carry record ids keyed per purpose: the keys map them back.
    keyed = source_ids(
        Pseudonymizer(Keyring.load(keyring)),
        POLICY.analytics_purposes,
        [m.record_id for m in chosen if m.expected_reason is None],
    )
    with_outputs = {keyed.get(i.decode(), i.decode()).encode() for i in with_outputs}
    report.valid_with_outputs = len(with_outputs & valid_ids)

    say("comparing with the engine run offline")
    expectation = Expectation(settings, consent, warrant_messages)
    for message in sent:
        expectation.add(message)
    report.verdict = await compare(settings, expectation)
    report.seconds = time.monotonic() - started
    return report
