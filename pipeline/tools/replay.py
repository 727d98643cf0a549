"""``cdrveil replay``: dead letters back into the topic they came from, after a fix.

The worker dead-letters a record with its original key and bytes and says where it came
from in ``dlq.source.topic``. Once the cause is fixed (a new cdrveil version for
``internal_error``, a larger ``CDRVEIL_MAX_RECORD_BYTES`` for ``oversize``, ...), replay
reads ``traffic.dead-letter`` from the beginning (or from given offsets), keeps the dead
letters selected by reason code, source topic and time, and publishes each one's key and
value, byte for byte, to its source topic, where the workers process it like new input.
The end of the topic is taken when the replay starts, so dead letters that the replayed
records cause again are not read back in the same run.

Only the worker's input topics are ever written to: a dead letter whose source topic is
anything else (another prefix, a forged header) is skipped and counted, so replay cannot
put raw records, identifiers in clear, on an output topic. Dead letters of ``cdrveil
ingest`` name a file (``dlq.source.file``) instead: their bytes are BER, not records, so
they are skipped and counted too (ingest the repaired file again instead).

Output never shows a key or a value, only counts, topic names, reason codes and offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from pipeline.ber.errors import BAD_BER, UNSUPPORTED_FORMAT
from pipeline.ber.file import BAD_CDR_HEADER, BAD_FILE_HEADER, CDR_LENGTH_MISMATCH, TRUNCATED_CDR
from pipeline.core.batch import INTERNAL_ERROR
from pipeline.core.decode import REASONS
from pipeline.core.policy import Policy
from pipeline.errors import BrokerError, ConfigError
from pipeline.progress import Progress
from pipeline.settings import Settings
from pipeline.shell import deadletter
from pipeline.shell.clients import publisher as make_producer
from pipeline.shell.offsets import log_end_offsets, partitions_of
from pipeline.shell.produce import OutputBatch, Partitioner, await_delivery
from pipeline.shell.topics import TopicNames

#: Header each replayed message carries: the dead letter it came from (topic:partition:offset).
REPLAYED_FROM: Final = "cdrveil.replayed-from"

#: Why a dead letter was not replayed (keys of :attr:`ReplayReport.skipped`).
NOT_SELECTED: Final = "not selected (reason code, source topic or time)"
FROM_FILE: Final = "from CDR files (dlq.source.file: BER bytes, not records; ingest the file again)"
NO_SOURCE: Final = "without dlq.source.topic (not a worker's dead letter)"
NOT_AN_INPUT: Final = "source topic is not an input topic of this prefix"

# A reason code as the engine and ingest write them; anything else is shown as "other".
_CODE: Final = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

#: Every reason code a dead letter can carry: the decoder's, the worker's for a bug, and
#: those of `cdrveil ingest` (whose dead letters are counted, never replayed).
KNOWN_CODES: Final = frozenset(
    {*REASONS, INTERNAL_ERROR, BAD_BER, UNSUPPORTED_FORMAT}
    | {BAD_FILE_HEADER, BAD_CDR_HEADER, TRUNCATED_CDR, CDR_LENGTH_MISMATCH}
)


def check_codes(codes: Iterable[str]) -> frozenset[str]:
    """The codes, or a ConfigError for one no dead letter can carry (it would match nothing)."""
    for code in codes:
        if code not in KNOWN_CODES:
            close = difflib.get_close_matches(code, sorted(KNOWN_CODES), n=1, cutoff=0.7)
            hint = (
                f"did you mean {close[0]}?" if close else "known: " + ", ".join(sorted(KNOWN_CODES))
            )
            raise ConfigError(f"--code {code} is not a reason code: {hint}")
    return frozenset(codes)


_CHUNK: Final = 2000


@dataclass(frozen=True)
class Selection:
    """Which dead letters to replay; an empty set means any."""

    codes: frozenset[str] = frozenset()
    source_topics: frozenset[str] = frozenset()
    #: Dead letters written before this time (Unix milliseconds) are not selected.
    since_ms: int | None = None


@dataclass(frozen=True)
class Replay:
    """Publish the dead letter's key and value to ``topic``."""

    topic: str


@dataclass(frozen=True)
class Skip:
    """Leave the dead letter where it is, for ``reason`` (one of the module's constants)."""

    reason: str


def decide(
    headers: Sequence[tuple[str, bytes]],
    timestamp_ms: int,
    selection: Selection,
    inputs: frozenset[str],
) -> Replay | Skip:
    """What to do with one dead letter, from its headers and broker timestamp (pure)."""
    found = dict(headers)
    if selection.since_ms is not None and timestamp_ms < selection.since_ms:
        return Skip(NOT_SELECTED)
    if selection.codes and _text(found.get(deadletter.ERROR_CODE)) not in selection.codes:
        return Skip(NOT_SELECTED)
    if deadletter.SOURCE_FILE in found:
        return Skip(FROM_FILE)
    source = _text(found.get(deadletter.SOURCE_TOPIC))
    if source is None:
        return Skip(NO_SOURCE)
    if selection.source_topics and source not in selection.source_topics:
        return Skip(NOT_SELECTED)
    if source not in inputs:
        return Skip(NOT_AN_INPUT)
    return Replay(source)


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return bytes(raw).decode()
    except UnicodeDecodeError:
        return None


def parse_offsets(text: str) -> dict[int, int]:
    """``"0:120,3:40"`` -> ``{0: 120, 3: 40}`` (dead-letter partition: first offset)."""
    offsets: dict[int, int] = {}
    for part in text.split(","):
        partition, sep, offset = part.strip().partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise ConfigError(
                f"--offsets wants PARTITION:OFFSET[,PARTITION:OFFSET...], e.g. 0:120,3:40; "
                f"got {part.strip()!r}"
            )
        if int(partition) in offsets:
            raise ConfigError(f"--offsets names partition {int(partition)} twice")
        offsets[int(partition)] = int(offset)
    return offsets


def parse_since(text: str) -> int:
    """An RFC 3339 time with its zone (``2026-11-21T05:00:00Z``) as Unix milliseconds."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--since wants an RFC 3339 time such as 2026-11-21T05:00:00Z; got {text!r}"
        ) from None
    if when.tzinfo is None:
        raise ConfigError("--since needs a time zone (e.g. 2026-11-21T05:00:00Z or +01:00)")
    return int(when.timestamp() * 1000)


@dataclass
class ReplayReport:
    """What a replay read, published (or would have, in a dry run) and left alone."""

    topic: str
    dry_run: bool
    scanned: int = 0
    replayed: Counter[str] = field(default_factory=Counter)  # per target topic
    codes: Counter[str] = field(default_factory=Counter)  # replayed, per reason code
    skipped: Counter[str] = field(default_factory=Counter)
    next_offsets: dict[int, int] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    limit_reached: bool = False
    stopped: bool = False

    @property
    def total(self) -> int:
        """Dead letters replayed (or that a dry run would replay)."""
        return sum(self.replayed.values())

    @property
    def complete(self) -> bool:
        """Whether every partition was read to the end seen at the start."""
        return all(self.next_offsets.get(p, 0) >= end for p, end in self.ends.items())

    def summary(self) -> str:
        """Counts, topics, reason codes and offsets; never a key or a value."""
        verb = "would replay" if self.dry_run else "replayed"
        lines = [
            f"{self.topic}: {self.scanned:,} dead letters read",
            f"{verb:<14} {self.total:>9,}",
        ]
        lines += [f"  to {topic:<30} {n:>9,}" for topic, n in sorted(self.replayed.items())]
        if self.codes:
            lines.append(
                "  reason codes: "
                + ", ".join(f"{code} {n:,}" for code, n in sorted(self.codes.items()))
            )
        for reason in (NOT_SELECTED, FROM_FILE, NO_SOURCE, NOT_AN_INPUT):
            if self.skipped[reason]:
                lines.append(f"{'skipped':<14} {self.skipped[reason]:>9,}  {reason}")
        if self.dry_run:
            lines.append("dry run: nothing was published")
        resume = ",".join(f"{p}:{o}" for p, o in sorted(self.next_offsets.items()))
        if self.complete:
            lines.append(f"read to the end; dead letters written later start at --offsets {resume}")
        else:
            why = "stopped" if self.stopped else "limit reached"
            lines.append(f"{why}; to go on from here: --offsets {resume}")
        return "\n".join(lines)


async def replay(
    settings: Settings,
    selection: Selection,
    *,
    start: Mapping[int, int] | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    show_progress: bool = True,
    progress_stream: TextIO | None = None,
    stop: asyncio.Event | None = None,
) -> ReplayReport:
    """Replay the selected dead letters of the dead-letter topic of ``settings``' policy.

    ``start`` maps dead-letter partitions to their first offset (only those partitions
    are read); without it every partition is read from the beginning. The run ends at the
    end of the topic as it was when the replay started, after ``limit`` replayed dead
    letters, or when ``stop`` is set; whatever was published by then is acknowledged.
    """
    if limit is not None and limit < 0:
        raise ConfigError("--limit must be >= 0")
    names = TopicNames(settings.topic_prefix)
    inputs = frozenset(names.inputs)
    dead_letter = names.dead_letter(Policy.load(settings.policy_path))
    report = ReplayReport(dead_letter, dry_run)
    stop = stop if stop is not None else asyncio.Event()
    ends = {tp.partition: end for tp, end in (await _ends(settings, dead_letter)).items()}
    if start is not None:
        unknown = sorted(set(start) - set(ends))
        if unknown:
            raise ConfigError(
                f"{dead_letter} has no partition {unknown[0]} "
                f"(it has {len(ends)}: 0-{len(ends) - 1})"
            )
        ends = {p: end for p, end in ends.items() if p in start}
    first = {p: (start or {}).get(p, 0) for p in ends}
    report.ends = ends
    report.next_offsets = dict(first)
    todo = {p for p in ends if first[p] < ends[p]}
    if not todo or limit == 0:
        report.limit_reached = limit == 0 and bool(todo)
        return report
    progress = (
        Progress("replay", sum(ends[p] - first[p] for p in todo), "dead letters", progress_stream)
        if show_progress
        else None
    )
    async with _clients(settings, dead_letter, dry_run) as (consumer, producer):
        tps = {p: TopicPartition(dead_letter, p) for p in todo}
        consumer.assign(list(tps.values()))
        for p, tp in tps.items():
            consumer.seek(tp, first[p])
        partitioner = Partitioner()
        while todo and not stop.is_set() and not report.limit_reached:
            batch = await consumer.getmany(
                *(tps[p] for p in todo), timeout_ms=200, max_records=_CHUNK
            )
            outputs = OutputBatch(partitioner, producer)
            for tp, messages in batch.items():
                await _take(consumer, tp, messages, report, outputs, selection, inputs, limit)
            for p in sorted(todo):
                if tps[p] not in batch and consumer.highwater(tps[p]) is not None:
                    # Fetched, and nothing left to take (retention may have removed the rest).
                    position = await consumer.position(tps[p])
                    report.next_offsets[p] = max(report.next_offsets[p], min(position, ends[p]))
                if report.next_offsets[p] >= ends[p]:
                    todo.discard(p)
            if producer is not None and outputs.size:
                # Acknowledged before the next chunk, so a stop loses nothing it reported.
                await await_delivery(producer, await outputs.send(producer))
            if progress is not None:
                progress.update(report.scanned)
        report.stopped = stop.is_set() and not report.complete
    if progress is not None:
        progress.finish(report.scanned)
    return report


async def _take(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    messages: list[Any],
    report: ReplayReport,
    outputs: OutputBatch,
    selection: Selection,
    inputs: frozenset[str],
    limit: int | None,
) -> None:
    """Sort one partition's share of a fetch into replayed and skipped dead letters."""
    p, end = tp.partition, report.ends[tp.partition]
    for message in messages:
        if report.limit_reached:
            return
        if message.offset >= end:
            report.next_offsets[p] = end
            return
        report.scanned += 1
        report.next_offsets[p] = message.offset + 1
        action = decide(message.headers, message.timestamp, selection, inputs)
        if isinstance(action, Skip):
            report.skipped[action.reason] += 1
            continue
        report.replayed[action.topic] += 1
        code = _text(dict(message.headers).get(deadletter.ERROR_CODE))
        report.codes[code if code and _CODE.match(code) else "other"] += 1
        origin = f"{tp.topic}:{p}:{message.offset}".encode()
        outputs.add(action.topic, message.key, message.value, [(REPLAYED_FROM, origin)])
        if limit is not None and report.total >= limit:
            report.limit_reached = True
    # Past offsets no record answers for (transaction markers): where the consumer is now.
    if not report.limit_reached:
        report.next_offsets[p] = max(report.next_offsets[p], min(await consumer.position(tp), end))


async def _ends(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    try:
        return await log_end_offsets(settings, [topic])
    except KafkaConnectionError:
        raise BrokerError(_unreachable(settings)) from None


def _unreachable(settings: Settings) -> str:
    return (
        f"cannot reach Kafka at {settings.bootstrap_servers}; is the broker running "
        "and CDRVEIL_BOOTSTRAP_SERVERS right?"
    )


@contextlib.asynccontextmanager
async def _clients(
    settings: Settings, dead_letter: str, dry_run: bool
) -> AsyncIterator[tuple[AIOKafkaConsumer, AIOKafkaProducer | None]]:
    """A group-less consumer of the dead letters and (unless a dry run) a producer."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs("cdrveil-replay"),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = None if dry_run else make_producer(settings, "cdrveil-replay")
    try:
        await consumer.start()
        if producer is not None:
            await producer.start()
        await partitions_of(consumer, [dead_letter])
        yield consumer, producer
    except KafkaConnectionError:
        raise BrokerError(_unreachable(settings)) from None
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM set ``stop``: the chunk in hand is finished first."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
