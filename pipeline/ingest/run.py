"""Running an ingest: a list of files or a watched directory, one producer, clean stops.

The first SIGINT or SIGTERM asks for a stop: the file in hand stops at its next window
boundary, the windows in flight are acknowledged and checkpointed, and the run ends. A
second signal stops at once (the state is still consistent: it only ever moves after an
acknowledgement, so at most the windows in flight are repeated by the next run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Final, TextIO

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from pipeline.ber.file import not_a_cdr_file, parse_file_header
from pipeline.errors import BrokerError, ConfigError
from pipeline.ingest.decoding import DecoderPool
from pipeline.ingest.metrics import write_metrics
from pipeline.ingest.publish import DEFAULT_WINDOW, Checkpoint, FileIngester, decoder_settings
from pipeline.ingest.report import FileOutcome, FileResult, IngestReport
from pipeline.ingest.selection import SettleTracker, is_candidate, move_to_done
from pipeline.ingest.state import remove_state
from pipeline.settings import Settings
from pipeline.shell.clients import publisher as make_producer

__all__ = [
    "DEFAULT_JOBS",
    "DEFAULT_SETTLE_S",
    "DEFAULT_WINDOW",
    "ingest_files",
    "run_ingest",
    "stop_on_signals",
    "watch_directory",
]

#: Octets read to check a file's header before connecting (a header is far smaller).
_HEADER_PROBE: Final = 1 << 16

log = logging.getLogger("cdrveil.ingest")

#: A file in a watched directory is closed once unchanged for this long.
DEFAULT_SETTLE_S: Final = 10.0
_CORES: Final = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
#: Decoding processes of the command. Decoding is ~80 % of the CPU work, so on two cores
#: two workers decode while this process publishes (measured: ~25 % more CDRs/s than
#: decoding here, with the broker on the same machine); on one core, decode here.
DEFAULT_JOBS: Final = min(2, _CORES) if _CORES > 1 else 0


@contextlib.asynccontextmanager
async def _started_producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    client = make_producer(settings, "cdrveil-ingest")
    try:
        await client.start()
    except KafkaConnectionError:
        await client.stop()
        raise BrokerError(
            f"cannot reach Kafka at {settings.bootstrap_servers}; is the broker running? "
            "(`cdrveil broker` starts the embedded one)"
        ) from None
    try:
        yield client
    finally:
        await client.stop()


@contextlib.contextmanager
def _decoder_pool(settings: Settings, jobs: int) -> Iterator[DecoderPool | None]:
    """``jobs`` decoding processes, stopped on exit; None (decode here) for 0."""
    if jobs < 0:
        raise ConfigError("jobs must be >= 0")
    if jobs == 0:
        yield None
        return
    pool = DecoderPool(decoder_settings(settings), jobs)
    try:
        yield pool
    finally:
        pool.close()


@contextlib.asynccontextmanager
async def _ingester(
    settings: Settings,
    jobs: int,
    window: int,
    stop: asyncio.Event,
    show_progress: bool,
    progress_stream: TextIO | None,
    on_checkpoint: Checkpoint | None,
) -> AsyncIterator[FileIngester]:
    """A file ingester with its producer and decoding processes, all stopped on exit.

    The processes first: they start while the producer connects.
    """
    with _decoder_pool(settings, jobs) as pool:
        async with _started_producer(settings) as producer:
            yield FileIngester(
                settings,
                producer,
                window=window,
                stop=stop,
                show_progress=show_progress,
                progress_stream=progress_stream,
                on_checkpoint=on_checkpoint,
                pool=pool,
            )


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM set ``stop``; a second one cancels the current task."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set():
            if task is not None:
                task.cancel()
            return
        log.warning("stopping: acknowledging the messages in flight (signal again to stop now)")
        stop.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def _log_result(result: FileResult) -> None:
    if result.outcome is FileOutcome.FAILED:
        log.error("%s: not ingested: %s", result.path, result.reason)
    elif result.outcome is FileOutcome.ALREADY_DONE:
        log.info("%s: already ingested (its state says done); skipped", result.path)


def _recorder(report: IngestReport, metrics_file: Path | None) -> Callable[[FileResult], None]:
    """Adds a result to ``report`` and rewrites the metrics file (if any) with the new counts."""

    def write() -> None:
        if metrics_file is None:
            return
        try:
            write_metrics(report, metrics_file)
        except OSError as exc:  # the metrics are a view of the work, not the work
            log.warning("cannot write the metrics file %s (%s)", metrics_file, exc.strerror)

    def add(result: FileResult) -> None:
        report.add(result)
        write()

    write()  # from the start, so a scrape finds the file (with zero counts) at once
    return add


def check_input(path: Path) -> FileResult | None:
    """A FAILED result for a file that is missing or is no CDR file at all, else None.

    Asked before connecting, so the user hears about the file, not about a broker that
    happens to be down as well; and a wrong file (JSON lines, say) is refused whole, not
    cut into dead letters.
    """
    try:
        with path.open("rb") as file:
            head = file.read(_HEADER_PROBE)
            if isinstance(parse_file_header(head), str):
                problem = not_a_cdr_file(head + file.read())
                if problem is not None:
                    return FileResult(path, FileOutcome.FAILED, reason=problem)
    except OSError as exc:
        return FileResult(path, FileOutcome.FAILED, reason=f"cannot be read ({exc.strerror})")
    return None


async def ingest_files(
    settings: Settings,
    paths: Sequence[Path],
    *,
    window: int = DEFAULT_WINDOW,
    stop: asyncio.Event | None = None,
    show_progress: bool = True,
    progress_stream: TextIO | None = None,
    on_checkpoint: Checkpoint | None = None,
    jobs: int = 0,
    metrics_file: Path | None = None,
) -> IngestReport:
    """Ingest each file in turn; files whose state says done are skipped.

    ``jobs`` > 0 decodes in that many worker processes, 0 in this one. ``metrics_file``
    is rewritten after every file (``pipeline.ingest.metrics``).
    """
    stop = stop if stop is not None else asyncio.Event()
    report = IngestReport()
    add = _recorder(report, metrics_file)
    wanted: dict[Path, Path] = {}
    for path in paths:
        if not is_candidate(path.name):
            log.warning("%s: skipped: hidden, partial (.tmp, .part) or an ingest state", path)
            continue
        wanted.setdefault(path.resolve(), path)
    for key, path in list(wanted.items()):
        if (refused := check_input(path)) is not None:
            _log_result(refused)
            add(refused)
            del wanted[key]
    if not wanted:
        return report  # nothing to publish: no connection, no Kafka error to hide the cause
    async with _ingester(
        settings, jobs, window, stop, show_progress, progress_stream, on_checkpoint
    ) as ingester:
        for path in wanted.values():
            if stop.is_set():
                add(FileResult(path, FileOutcome.INTERRUPTED, reason="not started"))
                continue
            result = await ingester.ingest(path)
            _log_result(result)
            add(result)
    report.stopped = stop.is_set()
    return report


async def watch_directory(
    settings: Settings,
    directory: Path,
    *,
    done_dir: Path | None = None,
    settle_s: float = DEFAULT_SETTLE_S,
    poll_s: float | None = None,
    window: int = DEFAULT_WINDOW,
    stop: asyncio.Event | None = None,
    show_progress: bool = True,
    progress_stream: TextIO | None = None,
    on_checkpoint: Checkpoint | None = None,
    jobs: int = 0,
    metrics_file: Path | None = None,
) -> IngestReport:
    """Ingest files of ``directory`` as they close, and move each done one to ``done_dir``.

    Runs until ``stop`` is set. ``done_dir`` defaults to ``directory/done``. A file that
    fails is not tried again until it changes.
    """
    done_dir = _check_folders(directory, done_dir)
    stop = stop if stop is not None else asyncio.Event()
    poll = poll_s if poll_s is not None else min(max(settle_s / 4, 0.05), 1.0)
    tracker = SettleTracker(settle_s)
    failed: dict[str, tuple[int, int]] = {}
    report = IngestReport()
    add = _recorder(report, metrics_file)
    async with _ingester(
        settings, jobs, window, stop, show_progress, progress_stream, on_checkpoint
    ) as ingester:
        log.info("watching %s; done files go to %s", directory, done_dir)
        while not stop.is_set():
            for path in tracker.closed(directory, time.monotonic()):
                if stop.is_set():
                    break
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # taken away since the scan
                signature = (stat.st_size, stat.st_mtime_ns)
                if failed.get(path.name) == signature:
                    continue
                failed.pop(path.name, None)
                result = await ingester.ingest(path)
                if result.outcome in (FileOutcome.DONE, FileOutcome.ALREADY_DONE):
                    _finish(result, done_dir)
                    tracker.forget(path.name)
                _log_result(result)
                if result.outcome is FileOutcome.FAILED:
                    failed[path.name] = signature
                add(result)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll)
    report.stopped = True
    return report


def _check_folders(directory: Path, done_dir: Path | None) -> Path:
    """The done folder (default ``directory/done``), once both folders make sense."""
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory")
    done_dir = done_dir if done_dir is not None else directory / "done"
    if done_dir.resolve() == directory.resolve():
        raise ConfigError("the done folder must not be the watched directory")
    return done_dir


def _finish(result: FileResult, done_dir: Path) -> None:
    """Move a done file away, then drop its state (a crash in between is repaired next scan)."""
    try:
        result.moved_to = move_to_done(result.path, done_dir)
        remove_state(result.path)
    except OSError as exc:
        result.outcome = FileOutcome.FAILED
        result.reason = f"ingested, but not moved to {done_dir} ({exc.strerror})"
        return
    log.info(
        "%s: %d records, %d rejected; moved to %s",
        result.path.name,
        sum(result.records.values()),
        sum(result.rejected.values()),
        result.moved_to,
    )


async def run_ingest(
    settings: Settings,
    files: Sequence[Path],
    *,
    watch: Path | None = None,
    done_dir: Path | None = None,
    settle_s: float = DEFAULT_SETTLE_S,
    window: int = DEFAULT_WINDOW,
    show_progress: bool = True,
    jobs: int = DEFAULT_JOBS,
    metrics_file: Path | None = None,
) -> IngestReport:
    """The ``cdrveil ingest`` command: files or a watched directory, stopped by a signal."""
    stop = asyncio.Event()
    with stop_on_signals(stop):
        if watch is not None:
            return await watch_directory(
                settings,
                watch,
                done_dir=done_dir,
                settle_s=settle_s,
                window=window,
                stop=stop,
                show_progress=show_progress,
                jobs=jobs,
                metrics_file=metrics_file,
            )
        return await ingest_files(
            settings,
            files,
            window=window,
            stop=stop,
            show_progress=show_progress,
            jobs=jobs,
            metrics_file=metrics_file,
        )
