"""One CDR file into Kafka: decode, publish in windows, checkpoint each acknowledged window.

A window is a few thousand consecutive items of the file (CDRs and rejected stretches).
Decoded records go to ``cdr.voice`` / ``cdr.sms`` as JSON (key: the served MSISDN as the
record carries it, or none); rejected items to ``traffic.dead-letter`` with their octets
(the file's, from the item's offset: ``pipeline.ber.reader``) as the value. Each window
is handed to the producer as whole record batches (the worker's ``OutputBatch``); once
the broker has acknowledged every message of a window, the state beside the file moves
to the window's end. Two windows may be in flight, so the broker stores one while the
next is decoded; checkpoints still follow file order.

A stop request is honoured between windows: the windows already handed over are
acknowledged and checkpointed, then the file is left for the next run to resume. So a
clean stop neither loses nor repeats a record. A hard kill (SIGKILL, power loss) can
repeat what was sent after the last checkpoint, at most the three windows in flight,
never earlier records; downstream de-duplicates them on ``recordId``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections import Counter, deque
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TextIO

from aiokafka import AIOKafkaProducer

from pipeline.ber import CdrFileReader
from pipeline.ber.file import not_a_cdr_file
from pipeline.core.policy import Policy
from pipeline.core.topics import SMS, VOICE
from pipeline.errors import ConfigError
from pipeline.ingest.decoding import (
    DecoderPool,
    DecoderSettings,
    FileChangedError,
    Record,
    Rejected,
    Window,
    local_windows,
)
from pipeline.ingest.report import FileOutcome, FileResult
from pipeline.ingest.state import IngestState, content_matches, load_state, save_state
from pipeline.progress import Progress
from pipeline.settings import Settings
from pipeline.shell.deadletter import Headers, file_dead_letter_headers, rfc3339
from pipeline.shell.produce import OutputBatch, Partitioner, Send, await_delivery
from pipeline.shell.topics import TopicNames

__all__ = [
    "DEAD_LETTER_CHUNK",
    "DEFAULT_WINDOW",
    "Checkpoint",
    "FileIngester",
    "dead_letter_messages",
]

log = logging.getLogger("cdrveil.ingest")

#: CDRs (items) per acknowledged window.
DEFAULT_WINDOW: Final = 5000
#: Windows left unacknowledged after one is handed over (one more while it is): a hard
#: kill makes the next run repeat at most MAX_IN_FLIGHT + 1 windows.
MAX_IN_FLIGHT: Final = 2
#: Rejected stretches longer than this (garbage, a whole unreadable file) are split into
#: several dead-letter messages, each with its own offset, so none exceeds what a broker
#: accepts. A single CDR is at most 65,535 octets and is never split.
DEAD_LETTER_CHUNK: Final = 65536
#: Records carry no headers (aiokafka's batch builder wants a list; it does not change it).
_NO_HEADERS: Final[list[tuple[str, bytes]]] = []

#: Called after every checkpoint with the file and its new state (progress, tests).
Checkpoint = Callable[[Path, IngestState], None]


def decoder_settings(settings: Settings) -> DecoderSettings:
    """The decoder the settings call for: their numbering, the first home network."""
    return DecoderSettings(settings.trunk_prefix, settings.country_code, settings.home_networks[0])


def dead_letter_messages(
    item: Rejected, file_name: str, now: datetime
) -> Iterator[tuple[bytes, Headers]]:
    """The dead-letter values and headers of one rejected item (split if very long)."""
    data = item.data
    if len(data) <= DEAD_LETTER_CHUNK:
        yield data, file_dead_letter_headers(item.code, item.message, file_name, item.offset, now)
        return
    parts = -(-len(data) // DEAD_LETTER_CHUNK)
    for part in range(parts):
        start = part * DEAD_LETTER_CHUNK
        message = f"{item.message} (part {part + 1} of {parts})"
        yield (
            data[start : start + DEAD_LETTER_CHUNK],
            file_dead_letter_headers(item.code, message, file_name, item.offset + start, now),
        )


@dataclass
class _Sent:
    """A window handed to the producer: where it ends, what to await, what it held."""

    end: int
    sends: list[Send]
    records: Counter[str]
    rejected: Counter[str]


@dataclass
class _FileRun:
    """One file being ingested: its octets, how far it is acknowledged, what is in flight."""

    path: Path
    data: bytes
    acked: int
    hasher: hashlib._Hash
    records: Counter[str]
    rejected: Counter[str]
    result: FileResult
    progress: Progress | None
    pending: deque[_Sent] = field(default_factory=deque)


class FileIngester:
    """Ingests CDR files one at a time through one producer."""

    def __init__(
        self,
        settings: Settings,
        producer: AIOKafkaProducer,
        *,
        window: int = DEFAULT_WINDOW,
        stop: asyncio.Event | None = None,
        show_progress: bool = True,
        progress_stream: TextIO | None = None,
        on_checkpoint: Checkpoint | None = None,
        pool: DecoderPool | None = None,
    ) -> None:
        """Configure the decoder from ``settings``; ``stop`` ends a file between windows.

        Rejected items go to the dead-letter topic of the policy the settings name.

        With a ``pool``, worker processes decode; without, this process does.
        """
        if window < 1:
            raise ConfigError("the window must be at least 1 CDR")
        self.producer = producer
        self.window = window
        self.stop = stop if stop is not None else asyncio.Event()
        self.show_progress = show_progress
        self.progress_stream = progress_stream
        self.on_checkpoint = on_checkpoint
        self.pool = pool
        self.decoder = decoder_settings(settings).build()
        names = TopicNames(settings.topic_prefix)
        self.voice, self.sms = names(VOICE), names(SMS)
        self.dead_letter = names.dead_letter(Policy.load(settings.policy_path))
        self.partitioner = Partitioner()
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def ingest(self, path: Path) -> FileResult:
        """Ingest one file, from where its state says; FAILED results explain themselves.

        Raises BrokerError when the broker cannot take the messages: the state then
        still says how far the file is safely in Kafka.
        """
        started = time.monotonic()
        run = self._open(path)
        if isinstance(run, FileResult):
            return run
        try:
            await self._publish(run)
        except FileChangedError as exc:
            run.result.outcome = FileOutcome.FAILED
            run.result.reason = str(exc)
        finally:
            run.result.seconds = time.monotonic() - started
        return run.result

    def _open(self, path: Path) -> _FileRun | FileResult:
        try:
            data = path.read_bytes()
            state = load_state(path)
        except OSError as exc:
            return FileResult(path, FileOutcome.FAILED, reason=f"cannot be read ({exc.strerror})")
        except ConfigError as exc:
            return FileResult(path, FileOutcome.FAILED, reason=str(exc))
        problem = not_a_cdr_file(data)
        if problem is not None:
            return FileResult(path, FileOutcome.FAILED, reason=problem)
        if not os.access(path.parent, os.W_OK):
            return FileResult(
                path,
                FileOutcome.FAILED,
                reason="its directory is not writable, so the resume state cannot be kept",
            )
        if state is not None and not content_matches(state, data):
            log.warning(
                "%s: its saved ingest state does not match its content; ingesting from the start",
                path.name,
            )
            state = None
        if state is not None and state.done:
            return FileResult(path, FileOutcome.ALREADY_DONE, offset=state.offset)
        offset = 0 if state is None else state.offset
        # An empty file takes the same path (one window, of no items, marked done), so it
        # ends with a done state like any file and is moved away in watch mode.
        result = FileResult(path, FileOutcome.INTERRUPTED, offset=offset, empty=not data)
        progress = None
        if self.show_progress:
            header = CdrFileReader(data).header
            total = header.cdr_count if header is not None else 0
            progress = Progress(path.name, total, "CDRs", stream=self.progress_stream)
        if state is not None:
            result.resumed_from = offset
            log.info("%s: resuming at offset %d", path.name, offset)
        return _FileRun(
            path=path,
            data=data,
            acked=offset,
            hasher=hashlib.sha256(memoryview(data)[:offset]),
            records=Counter(state.records if state else {}),
            rejected=Counter(state.rejected if state else {}),
            result=result,
            progress=progress,
        )

    def _windows(self, run: _FileRun) -> AsyncGenerator[Window, None]:
        start, name = run.result.resumed_from, run.path.name
        if self.pool is None:
            return local_windows(run.data, name, self.decoder, start, self.window)
        return self.pool.windows(str(run.path), run.data, name, start, self.window)

    async def _publish(self, run: _FileRun) -> None:
        name = run.path.name
        voice, sms, dead_letter = self.voice, self.sms, self.dead_letter
        last = False
        async with contextlib.aclosing(self._windows(run)) as windows:
            async for window in windows:
                batch = OutputBatch(self.partitioner, self.producer)
                records: Counter[str] = Counter()
                rejected: Counter[str] = Counter()
                add = batch.add
                for item in window.items:
                    if isinstance(item, Record):
                        add(voice if item.voice else sms, item.key, item.value, _NO_HEADERS)
                        records[item.record_type] += 1
                    else:
                        for value, headers in dead_letter_messages(item, name, self.now()):
                            add(dead_letter, None, value, headers)
                        rejected[item.code] += 1
                await self._submit(run, _Sent(window.end, [], records, rejected), batch)
                last = window.last
                if last or self.stop.is_set():
                    break
        while run.pending:
            sent = run.pending.popleft()
            await self._acknowledge(run, sent, done=last and not run.pending)
        if last:
            run.result.outcome = FileOutcome.DONE
        if run.progress is not None:
            run.progress.finish()

    async def _submit(self, run: _FileRun, sent: _Sent, batch: OutputBatch) -> None:
        sent.sends = await batch.send(self.producer)
        run.pending.append(sent)
        # Let the producer put the window on the wire before the CPU-bound decoding of
        # the next one holds the event loop: the broker stores it meanwhile.
        for _ in range(3):
            await asyncio.sleep(0)
        while len(run.pending) > MAX_IN_FLIGHT:
            await self._acknowledge(run, run.pending.popleft(), done=False)

    async def _acknowledge(self, run: _FileRun, window: _Sent, *, done: bool) -> None:
        resends = await await_delivery(self.producer, window.sends)
        if resends:
            log.warning("%s: %d partition sends were repeated", run.path.name, resends)
        run.hasher.update(memoryview(run.data)[run.acked : window.end])
        run.acked = window.end
        run.records.update(window.records)
        run.rejected.update(window.rejected)
        result = run.result
        result.records.update(window.records)
        result.rejected.update(window.rejected)
        result.offset = window.end
        state = IngestState(
            file=run.path.name,
            offset=window.end,
            digest=run.hasher.hexdigest(),
            done=done,
            records=dict(run.records),
            rejected=dict(run.rejected),
            updated=rfc3339(self.now()),
        )
        save_state(run.path, state)
        if run.progress is not None:
            run.progress.update(state.items)
        if self.on_checkpoint is not None:
            self.on_checkpoint(run.path, state)
