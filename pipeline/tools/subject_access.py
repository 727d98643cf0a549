"""``cdrveil subject access``: read the output topics to their end and keep one person's.

The end of each partition is taken once, at the start (``log_end_offsets``, from fetch
answers: tansu's ``ListOffsets`` answers low), then every message below it is read and
given to :class:`~pipeline.reports.subject.SubjectSelector`. What is selected is written
to the output file as JSON lines (mode 0600: it is personal data), as it is found. The run
is bounded in time: past ``max_seconds`` it stops and says the file is incomplete.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from pipeline.core.policy import Policy, Route, RouteKind
from pipeline.errors import BrokerError, ConfigError
from pipeline.progress import Progress
from pipeline.reports.subject import RouteSummary, SubjectSelector
from pipeline.settings import Settings
from pipeline.shell.offsets import log_end_offsets
from pipeline.shell.topics import TopicNames

#: The kinds read unless lawful intercept is asked for explicitly.
DEFAULT_KINDS = (RouteKind.ANALYTICS, RouteKind.BILLING)


@dataclass
class AccessReport:
    """What was read, what was found, per route; whether every topic was read to its end."""

    output: Path
    summaries: list[RouteSummary]
    scanned: int = 0
    before_since: int = 0
    complete: bool = False
    elapsed_s: float = 0.0
    found: int = field(default=0)


def routes_to_read(policy: Policy, include_lawful_intercept: bool) -> list[Route]:
    """Analytics and billing routes, and lawful intercept only when asked for."""
    kinds = (
        (*DEFAULT_KINDS, RouteKind.LAWFUL_INTERCEPT) if include_lawful_intercept else DEFAULT_KINDS
    )
    return [route for route in policy.routes.values() if route.kind in kinds]


def check_output(path: Path) -> None:
    """Refuse, before reading anything, an output file that exists or has no folder."""
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: the folder {path.parent} does not exist")
    if path.exists():
        raise ConfigError(f"{path} already exists; it may hold someone's data: choose another name")


def open_private(path: Path) -> TextIO:
    """A new file readable by its owner only; an existing one is never overwritten."""
    check_output(path)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{path} already exists; it may hold someone's data: choose another name"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror})") from None
    return os.fdopen(descriptor, "w", encoding="utf-8")


async def subject_access(
    settings: Settings,
    policy: Policy,
    selector: SubjectSelector,
    output: Path,
    *,
    since_ms: int | None = None,
    include_lawful_intercept: bool = False,
    max_seconds: float = 600.0,
    show_progress: bool = True,
    progress_stream: TextIO | None = None,
) -> AccessReport:
    """Read every selected route's topic to its end; write the subject's outputs to ``output``."""
    check_output(output)
    names = TopicNames(settings.topic_prefix)
    routes = {
        names(route.topic): route for route in routes_to_read(policy, include_lawful_intercept)
    }
    summaries = {
        topic: RouteSummary(route.name, topic, route.kind) for topic, route in routes.items()
    }
    report = AccessReport(output, list(summaries.values()))
    started = time.monotonic()
    try:
        ends = await log_end_offsets(settings, list(routes))
    except KafkaConnectionError:
        raise BrokerError(_unreachable(settings)) from None
    remaining = {tp: end for tp, end in ends.items() if end > 0}
    progress = (
        Progress("subject access", sum(remaining.values()), "messages", progress_stream)
        if show_progress
        else None
    )
    with open_private(output) as sink:
        if remaining:
            await _read(
                settings,
                remaining,
                routes,
                summaries,
                selector,
                sink,
                report,
                since_ms,
                started + max_seconds,
                progress,
            )
        else:
            report.complete = True
    report.found = sum(s.found for s in report.summaries)
    report.elapsed_s = time.monotonic() - started
    if progress is not None:
        progress.finish(report.scanned)
    return report


async def _read(
    settings: Settings,
    remaining: dict[TopicPartition, int],
    routes: dict[str, Route],
    summaries: dict[str, RouteSummary],
    selector: SubjectSelector,
    sink: TextIO,
    report: AccessReport,
    since_ms: int | None,
    deadline: float,
    progress: Progress | None,
) -> None:
    ends = dict(remaining)
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs("cdrveil-subject-access"),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=8 << 20,
        # Exactly-once outputs count only once committed; aborted attempts were never outputs.
        isolation_level=(
            "read_committed"
            if settings.processing_guarantee == "exactly_once"
            else "read_uncommitted"
        ),
    )
    try:
        await consumer.start()
        consumer.assign(list(remaining))
        await consumer.seek_to_beginning(*remaining)
        while remaining:
            if time.monotonic() > deadline:
                return  # report.complete stays False
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=20_000)
            for tp, messages in batch.items():
                route, summary = routes[tp.topic], summaries[tp.topic]
                for message in messages:
                    if message.offset >= ends[tp]:
                        break
                    report.scanned += 1
                    summary.scanned += 1
                    if since_ms is not None and message.timestamp < since_ms:
                        report.before_since += 1
                        continue
                    found = selector.select(
                        route, message.key, message.value, list(message.headers), message.timestamp
                    )
                    if found is None:
                        continue
                    summary.add(found)
                    document = {
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "offset": message.offset,
                        **found.document,
                    }
                    sink.write(orjson.dumps(document).decode() + "\n")
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
            if progress is not None:
                progress.update(report.scanned)
        report.complete = True
    except KafkaConnectionError:
        raise BrokerError(_unreachable(settings)) from None
    finally:
        await consumer.stop()


def _unreachable(settings: Settings) -> str:
    return (
        f"cannot reach Kafka at {settings.bootstrap_servers}; is the broker running "
        "and CDRVEIL_BOOTSTRAP_SERVERS right?"
    )


def report_document(report: AccessReport) -> dict[str, object]:
    """The summary as JSON: counts, times and field names; never an identifier."""
    return {
        "output": str(report.output),
        "complete": report.complete,
        "scanned": report.scanned,
        "beforeSince": report.before_since,
        "found": report.found,
        "elapsedSeconds": round(report.elapsed_s, 3),
        "routes": [s.document() for s in report.summaries],
    }
