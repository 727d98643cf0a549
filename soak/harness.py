"""What every run shares: worker processes, bulk publishing, reading topics back, and the
comparison of what the worker wrote with what the engine computes offline.

The comparison identifies each expected message by what it is for (topic, record id and
LIID for a route's output; source topic, partition and offset for a dead letter) and checks
its bytes (key, value and every header; for a dead letter every header but
``dlq.timestamp``, which says when it was rejected and so differs on a replay).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

import pipeline
from pipeline.core.consent import ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from pipeline.factory import build_engine
from pipeline.settings import Settings
from pipeline.shell.messages import header
from pipeline.shell.offsets import committed_offsets, log_end_offsets
from pipeline.shell.topics import TopicNames, create_topics

ROOT: Final = Path(__file__).resolve().parents[1]
POLICY: Final = Policy.load()
DLQ_HEADERS: Final = (
    "dlq.error.code",
    "dlq.error.message",
    "dlq.source.topic",
    "dlq.source.partition",
    "dlq.source.offset",
    "dlq.timestamp",
    "cdrveil.version",
)
DLQ_TIMESTAMP: Final = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
#: Publishing acknowledgements awaited together.
WINDOW: Final = 5000

Say = Callable[[str], None]
#: A message to publish: topic, key, value.
Message = tuple[str, bytes | None, bytes | None]


def quiet(_text: str) -> None:
    """A ``say`` that says nothing (tests)."""


# -- worker processes ---------------------------------------------------------------------


def isolated_settings(bootstrap_servers: str, tag: str, **changes: Any) -> Settings:
    """Settings of one run on a test broker: topics and group of its own (``tag`` plus a
    random suffix), 4 partitions, a 2 s session timeout (the embedded broker makes a joining
    member wait half of it) and no web port unless ``changes`` say otherwise."""
    unique = f"{tag}{uuid.uuid4().hex[:10]}"
    values: dict[str, Any] = {
        "topic_prefix": f"{unique}.",
        "group_id": unique,
        "partitions": 4,
        "session_timeout_ms": 2000,
        "web_port": 0,
    }
    return Settings.from_env({}, bootstrap_servers=bootstrap_servers, **(values | changes))


def worker_env(settings: Settings, keyring: Path | None, **extra: str) -> dict[str, str]:
    """The environment of a worker process for ``settings`` (no other ``CDRVEIL_*``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDRVEIL_")}
    env.update(settings.to_env())
    if keyring is not None:
        env["CDRVEIL_KEYRING_PATH"] = str(keyring)
    env.update(extra)
    return env


@dataclass
class Worker:
    """A ``python -m pipeline worker`` process and the file its output goes to."""

    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)

    @classmethod
    def start(
        cls,
        env: dict[str, str],
        log_path: Path,
        preexec: Callable[[], None] | None = None,
    ) -> Worker:
        """Start a worker with this environment; its stdout and stderr go to ``log_path``."""
        log = log_path.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "worker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
        )
        return cls(process, log_path, log)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def log(self) -> str:
        """Everything the worker has written so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, wait: float = 30.0) -> int:
        """Send ``sig`` (if alive) and return the exit status; SIGKILL after ``wait`` s."""
        if self.running():
            self.process.send_signal(sig)
        try:
            code = self.process.wait(wait)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(
                f"worker {self.pid} ignored signal {sig} for {wait} s:\n{self.log()[-3000:]}"
            ) from None
        finally:
            self._log.close()
        return code

    async def wait_for_log(self, text: str, within: float = 60.0) -> None:
        """Until the log contains ``text``; a worker that exits first is an error."""
        deadline = time.monotonic() + within
        while text not in self.log():
            if not self.running():
                raise RuntimeError(
                    f"worker exited ({self.process.returncode}) before logging {text!r}:\n"
                    + self.log()[-3000:]
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker never logged {text!r}:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.05)

    async def wait_exit(self, within: float) -> int | None:
        """The exit status if the process ends within ``within`` s, else ``None``."""
        deadline = time.monotonic() + within
        while self.running() and time.monotonic() < deadline:  # noqa: ASYNC110 - a child process
            await asyncio.sleep(0.05)
        return self.process.poll()


class Workers:
    """Every worker a run starts; :meth:`close` kills any still running."""

    def __init__(self, settings: Settings, keyring: Path | None, logs: Path) -> None:
        self.settings = settings
        self.keyring = keyring
        self.logs = logs
        self.started: list[Worker] = []

    def spawn(self, **extra_env: str) -> Worker:
        """Start one more worker."""
        path = self.logs / f"worker-{len(self.started) + 1}.log"
        worker = Worker.start(worker_env(self.settings, self.keyring, **extra_env), path)
        self.started.append(worker)
        return worker

    def all_logs(self) -> str:
        """The output of every worker started, in order."""
        return "".join(w.log_path.read_text(errors="replace") for w in self.started)

    def close(self) -> None:
        """Kill and reap every worker still running."""
        for worker in self.started:
            if worker.running():
                worker.process.kill()
            worker.process.wait()
            with contextlib.suppress(OSError):
                worker._log.close()


# -- topics -------------------------------------------------------------------------------


async def create_all_topics(settings: Settings) -> None:
    """Every topic of the default policy, with the settings' prefix."""
    await create_topics(settings, POLICY.analytics_purposes, POLICY.retention_ms_by_topic())


def route_topics(settings: Settings, kind: str | None = None) -> list[str]:
    """The topics of the policy's routes (of one kind, e.g. ``"analytics"``)."""
    names = TopicNames(settings.topic_prefix)
    return [names(r.topic) for r in POLICY.routes.values() if kind is None or r.kind == kind]


def output_topics(settings: Settings) -> list[str]:
    """Every route's topic and the dead-letter topic."""
    return [*route_topics(settings), TopicNames(settings.topic_prefix).dead_letter]


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


async def scan(
    settings: Settings,
    topics: Sequence[str],
    handle: Callable[[Any], None],
    max_wait: float = 300.0,
) -> int:
    """Call ``handle`` on every message now in ``topics``, from the beginning; the count."""
    ends = await log_end_offsets(settings, list(topics))
    wanted = {tp: end for tp, end in ends.items() if end > 0}
    if not wanted:
        return 0
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs("cdrveil-soak-reader"),
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=8 << 20,
        # Exactly-once outputs count only as committed; aborted attempts are not outputs.
        isolation_level=(
            "read_committed"
            if settings.processing_guarantee == "exactly_once"
            else "read_uncommitted"
        ),
    )
    await consumer.start()
    seen = 0
    try:
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        remaining = dict(wanted)
        deadline = time.monotonic() + max_wait
        while remaining:
            batch = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for tp, messages in batch.items():
                end = wanted[tp]
                for message in messages:
                    if message.offset < end:
                        handle(message)
                        seen += 1
                if messages and messages[-1].offset + 1 >= end:
                    remaining.pop(tp, None)
            for tp in list(remaining):
                # Past the last record without one to show: transaction markers at the end.
                if await consumer.position(tp) >= wanted[tp]:
                    remaining.pop(tp)
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {len(topics)} topics took over {max_wait} s")
    finally:
        await consumer.stop()
    return seen


async def read(settings: Settings, topics: Sequence[str]) -> list[Any]:
    """Every message now in ``topics``."""
    messages: list[Any] = []
    await scan(settings, topics, messages.append)
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
        self.engine = build_engine(settings)
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
        self.version = pipeline.__version__.encode()

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
            headers = [
                ("dlq.error.code", result.code.encode()),
                ("dlq.error.message", result.message.encode()),
                ("dlq.source.topic", source[0]),
                ("dlq.source.partition", source[1]),
                ("dlq.source.offset", source[2]),
                ("cdrveil.version", self.version),
            ]
            content = _digest(
                self.names.dead_letter.encode(),
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
        self.dead_letter = TopicNames(settings.topic_prefix).dead_letter
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
                found.get("dlq.timestamp", b"")
            ):
                self.incomplete_dead_letters += 1
            self.codes[found.get("dlq.error.code", b"?").decode()] += 1
            ident = _dead_ident(
                found.get("dlq.source.topic"),
                found.get("dlq.source.partition"),
                found.get("dlq.source.offset"),
            )
            content = _digest(
                message.topic.encode(),
                message.key,
                message.value,
                _headers_digest(sorted(headers), skip="dlq.timestamp"),
            )
            self.dead_stamps.setdefault(ident, set()).add(found.get("dlq.timestamp", b""))
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
