"""What every soak run shares beyond :mod:`pipeline.harness` (worker processes, reading
topics back): bulk publishing, commit waits, and the comparison of what the worker wrote
with what the engine computes offline.

The comparison identifies each expected message by what it is for (topic, record id and
LIID for a route's output; source topic, partition and offset for a dead letter) and checks
its bytes (key, value and every header; for a dead letter every header but
``dlq.timestamp``, which says when it was rejected and so differs on a replay).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka import AIOKafkaProducer

from pipeline.core.consent import ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from pipeline.factory import build_reference
from pipeline.harness import scan
from pipeline.settings import Settings
from pipeline.shell import deadletter
from pipeline.shell.messages import header
from pipeline.shell.offsets import committed_offsets
from pipeline.shell.topics import TopicNames, create_topics
from pipeline.synth import Workload, consent_states, records, warrants

POLICY: Final = Policy.load()
DLQ_HEADERS: Final = (
    deadletter.ERROR_CODE,
    deadletter.ERROR_MESSAGE,
    deadletter.SOURCE_TOPIC,
    deadletter.SOURCE_PARTITION,
    deadletter.SOURCE_OFFSET,
    deadletter.TIMESTAMP,
    deadletter.VERSION,
)
#: Any time: the expected dead-letter headers leave the timestamp out.
NO_TIME: Final = datetime.fromtimestamp(0, UTC)
DLQ_TIMESTAMP: Final = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
#: Publishing acknowledgements awaited together.
WINDOW: Final = 5000

Say = Callable[[str], None]
#: A message to publish: topic, key, value.
Message = tuple[str, bytes | None, bytes | None]


def quiet(_text: str) -> None:
    """A ``say`` that says nothing (tests)."""


# -- worker processes ---------------------------------------------------------------------


# -- topics -------------------------------------------------------------------------------


async def create_all_topics(settings: Settings) -> None:
    """Every topic of the default policy, with the settings' prefix."""
    await create_topics(settings, POLICY)


def route_topics(settings: Settings, kind: str | None = None) -> list[str]:
    """The topics of the policy's routes (of one kind, e.g. ``"analytics"``)."""
    names = TopicNames(settings.topic_prefix)
    return [names(r.topic) for r in POLICY.routes.values() if kind is None or r.kind == kind]


def output_topics(settings: Settings) -> list[str]:
    """Every route's topic and the dead-letter topic."""
    return [*route_topics(settings), TopicNames(settings.topic_prefix).dead_letter(POLICY)]


@dataclass(frozen=True, slots=True)
class Input:
    """One input message as the broker stored it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


def bulk_producer(settings: Settings) -> AIOKafkaProducer:
    """A producer for test inputs: large batches, every message acknowledged."""
    return AIOKafkaProducer(
        **settings.kafka_client_kwargs("cdrveil-soak"),
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 18,
        max_request_size=4 << 20,
    )


async def publish(
    settings: Settings,
    messages: Iterable[tuple[str, bytes | None, bytes | None]],
    rate: float | None = None,
    producer: AIOKafkaProducer | None = None,
) -> list[Input]:
    """Publish ``(topic, key, value)`` messages, optionally at ``rate`` per second; return
    each as stored (partition, offset, broker timestamp), in publishing order."""
    own = producer is None
    client = bulk_producer(settings) if producer is None else producer
    if own:
        await client.start()
    sent: list[Input] = []
    pending: list[tuple[tuple[str, bytes | None, bytes | None], asyncio.Future[Any]]] = []

    async def settle() -> None:
        results = await asyncio.gather(*(future for _, future in pending))
        for ((topic, key, value), _), meta in zip(pending, results, strict=True):
            sent.append(Input(topic, meta.partition, meta.offset, key, value, meta.timestamp))
        pending.clear()

    started = time.monotonic()
    try:
        for n, (topic, key, value) in enumerate(messages, start=1):
            future = await client.send(topic, value, key=key)
            pending.append(((topic, key, value), future))
            if rate is not None:
                ahead = n / rate - (time.monotonic() - started)
                if ahead > 0.002:
                    await asyncio.sleep(ahead)
            if len(pending) >= (WINDOW if rate is None else max(1, int(rate / 50))):
                await settle()
        await settle()
    finally:
        if own:
            await client.stop()
    return sent


async def publish_tables(
    settings: Settings, workload: Workload
) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """Publish the workload's consent states and two warrants; both, as (key, value) pairs."""
    names = TopicNames(settings.topic_prefix)
    consent = list(consent_states(workload))
    warrant_messages = [(w.key, w.value) for w in warrants(workload, 2)]
    await publish(settings, [(names.consent, k, v) for k, v in consent])
    await publish(settings, [(names.warrants, k, v) for k, v in warrant_messages])
    return consent, warrant_messages


def record_messages(
    settings: Settings, workload: Workload, count: int
) -> list[tuple[str, bytes | None, bytes | None]]:
    """``count`` of the workload's records as ``(topic, key, value)`` for :func:`publish`.

    A record with neither key nor value is keyed by its record id, so it still has a place.
    """
    names = TopicNames(settings.topic_prefix)
    topic_of = {"voice": names.inputs[0], "sms": names.inputs[1]}
    messages: list[tuple[str, bytes | None, bytes | None]] = []
    for m in records(workload, count):
        key = m.record_id.encode() if m.key is None and m.value is None else m.key
        messages.append((topic_of[m.kind], key, m.value))
    return messages


async def committed_total(settings: Settings, topics: Sequence[str]) -> int:
    """How many input records the worker group has committed, over all partitions."""
    return sum((await committed_offsets(settings, settings.group_id, list(topics))).values())


async def wait_committed(
    settings: Settings,
    topics: Sequence[str],
    target: int,
    within: float,
    alive: Callable[[], bool] | None = None,
    poll: float = 0.1,
) -> int:
    """Until the group has committed ``target`` records; the total reached.

    Raises if ``alive`` says the worker died, or after ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        done = await committed_total(settings, topics)
        if done >= target:
            return done
        if alive is not None and not alive():
            raise RuntimeError(f"the worker exited with {done:,}/{target:,} records committed")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done:,}/{target:,} records committed after {within} s")
        await asyncio.sleep(poll)


# -- the comparison with the engine run offline ---------------------------------------------


def _digest(*parts: bytes | None) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        if part is None:
            h.update(b"\xff\x00")
        else:
            h.update(len(part).to_bytes(4, "big"))
            h.update(part)
    return h.digest()


def _headers_digest(headers: Iterable[tuple[str, bytes]], skip: str | None = None) -> bytes:
    flat: list[bytes] = []
    for name, value in headers:
        if name != skip:
            flat += [name.encode(), bytes(value)]
    return _digest(*flat)


def _output_ident(topic: str, record_id: bytes | None, liid: bytes | None) -> bytes:
    return _digest(b"out", topic.encode(), record_id, liid)


def _dead_ident(topic: bytes | None, partition: bytes | None, offset: bytes | None) -> bytes:
    return _digest(b"dlq", topic, partition, offset)


@dataclass
class Verdict:
    """The worker's outputs against the engine's, over every input."""

    inputs: int = 0
    expected_outputs: int = 0
    expected_dead_letters: int = 0
    messages_read: int = 0
    #: Inputs with at least one expected message missing (or present only with other bytes).
    inputs_missing_outputs: int = 0
    #: Messages no input accounts for.
    unexpected: int = 0
    #: Copies beyond the first of one message.
    duplicates: int = 0
    #: Messages with copies whose bytes differ from the first copy.
    differing_duplicates: int = 0
    #: Copies beyond the first of dead letters, and how many of those carry another
    #: ``dlq.timestamp`` than the first (by design: it says when the input was rejected).
    dead_letter_duplicates: int = 0
    dead_letter_new_timestamps: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)
    dead_letters_by_code: Counter[str] = field(default_factory=Counter)
    incomplete_dead_letters: int = 0
    missing_examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every input has every output, nothing else was written, duplicates identical."""
        return (
            self.inputs_missing_outputs == 0
            and self.unexpected == 0
            and self.differing_duplicates == 0
            and self.incomplete_dead_letters == 0
        )

    def summary(self) -> str:
        """A few lines with the figures."""
        return (
            f"inputs {self.inputs:,}: expected {self.expected_outputs:,} outputs and "
            f"{self.expected_dead_letters:,} dead letters; read {self.messages_read:,} messages\n"
            f"inputs without their full set of outputs: {self.inputs_missing_outputs}\n"
            f"unexpected messages: {self.unexpected}\n"
            f"duplicates: {self.duplicates:,} (not byte-identical to the first copy: "
            f"{self.differing_duplicates}; dead letters among them: "
            f"{self.dead_letter_duplicates}, identical but for a new dlq.timestamp: "
            f"{self.dead_letter_new_timestamps})\n"
            f"dead letters with incomplete headers: {self.incomplete_dead_letters}\n"
            f"dead letters by reason: {dict(sorted(self.dead_letters_by_code.items()))}"
        )


class Expectation:
    """What the worker must write for each input: the engine run offline, with the same
    policy, keyring, consent states and warrants (static during the run)."""

    def __init__(
        self,
        settings: Settings,
        consent: Iterable[tuple[bytes | None, bytes | None]],
        warrants: Iterable[tuple[bytes | None, bytes | None]],
    ) -> None:
        self.settings = settings
        self.names = TopicNames(settings.topic_prefix)
        self.engine = build_reference(settings)
        msisdn = MsisdnNormalizer(settings.country_code, settings.trunk_prefix)
        self.consent = ConsentTable(msisdn)
        self.warrants = WarrantIndex(msisdn)
        for key, value in consent:
            self.consent.apply(key, value)
        for key, value in warrants:
            self.warrants.apply(key, value)
        #: ident -> (content digest, input number)
        self.expected: dict[bytes, tuple[bytes, int]] = {}
        self.inputs = 0
        self.outputs = 0
        self.dead_letters = 0
        self.codes: list[str | None] = []

    def add(self, message: Input) -> Rejection | list[Any]:
        """Run the engine over one input; remember what the worker must write for it."""
        n = self.inputs
        self.inputs += 1
        result = self.engine.process(message.value, self.consent.get, self.warrants)
        if isinstance(result, Rejection):
            source = (
                message.topic.encode(),
                str(message.partition).encode(),
                str(message.offset).encode(),
            )
            # What the worker writes, but for the time it writes it (compared without).
            headers = [
                (name, value)
                for name, value in deadletter.dead_letter_headers(
                    result, message.topic, message.partition, message.offset, NO_TIME
                )
                if name != deadletter.TIMESTAMP
            ]
            content = _digest(
                self.names.dead_letter(POLICY).encode(),
                message.key,
                message.value,
                _headers_digest(sorted(headers)),
            )
            self.expected[_dead_ident(*source)] = (content, n)
            self.dead_letters += 1
            self.codes.append(result.code)
            return result
        for out in result:
            record_id = liid = None
            for name, value in out.headers:
                if name == "cdrveil.record-id":
                    record_id = value
                elif name == "cdrveil.liid":
                    liid = value
            content = _digest(out.topic.encode(), out.key, out.value, _headers_digest(out.headers))
            self.expected[_output_ident(out.topic, record_id, liid)] = (content, n)
        self.outputs += len(result)
        self.codes.append(None)
        return result


class Tally:
    """What the worker wrote, fed message by message from the output topics."""

    def __init__(self, settings: Settings) -> None:
        self.dead_letter = TopicNames(settings.topic_prefix).dead_letter(POLICY)
        #: ident -> content digests of its copies, in the order read
        self.copies: dict[bytes, list[bytes]] = {}
        self.dead_stamps: dict[bytes, set[bytes]] = {}
        self.by_topic: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.incomplete_dead_letters = 0
        self.read = 0

    def __call__(self, message: Any) -> None:
        """Account for one message of an output topic."""
        self.read += 1
        self.by_topic[message.topic] += 1
        headers = [(k, bytes(v)) for k, v in message.headers or ()]
        if message.topic == self.dead_letter:
            found = dict(headers)
            if any(name not in found for name in DLQ_HEADERS) or not DLQ_TIMESTAMP.match(
                found.get(deadletter.TIMESTAMP, b"")
            ):
                self.incomplete_dead_letters += 1
            self.codes[found.get(deadletter.ERROR_CODE, b"?").decode()] += 1
            ident = _dead_ident(
                found.get(deadletter.SOURCE_TOPIC),
                found.get(deadletter.SOURCE_PARTITION),
                found.get(deadletter.SOURCE_OFFSET),
            )
            content = _digest(
                message.topic.encode(),
                message.key,
                message.value,
                _headers_digest(sorted(headers), skip=deadletter.TIMESTAMP),
            )
            self.dead_stamps.setdefault(ident, set()).add(found.get(deadletter.TIMESTAMP, b""))
        else:
            ident = _output_ident(
                message.topic, header(message, "cdrveil.record-id"), header(message, "cdrveil.liid")
            )
            content = _digest(
                message.topic.encode(), message.key, message.value, _headers_digest(headers)
            )
        self.copies.setdefault(ident, []).append(content)

    def verdict(self, expectation: Expectation) -> Verdict:
        """Compare with the engine's expectation."""
        verdict = Verdict(
            inputs=expectation.inputs,
            expected_outputs=expectation.outputs,
            expected_dead_letters=expectation.dead_letters,
            messages_read=self.read,
            by_topic=self.by_topic,
            dead_letters_by_code=self.codes,
            incomplete_dead_letters=self.incomplete_dead_letters,
        )
        missing: set[int] = set()
        for ident, (content, n) in expectation.expected.items():
            copies = self.copies.get(ident)
            if copies is None or content not in copies:
                missing.add(n)
        verdict.inputs_missing_outputs = len(missing)
        verdict.missing_examples = [str(n) for n in sorted(missing)[:10]]
        for ident, copies in self.copies.items():
            wanted = expectation.expected.get(ident)
            if wanted is None:
                verdict.unexpected += len(copies)
                continue
            verdict.duplicates += len(copies) - 1
            if any(c != copies[0] for c in copies):
                verdict.differing_duplicates += 1
            if len(copies) > 1 and ident in self.dead_stamps:
                verdict.dead_letter_duplicates += len(copies) - 1
                verdict.dead_letter_new_timestamps += len(self.dead_stamps[ident]) - 1
        return verdict


async def compare(settings: Settings, expectation: Expectation) -> Verdict:
    """Read every output topic and the dead-letter topic; compare with the expectation."""
    tally = Tally(settings)
    await scan(settings, output_topics(settings), tally)
    return tally.verdict(expectation)


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` quantile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return ordered[index]
