"""A CDR file decoded in windows of consecutive items, here or in worker processes.

Decoding a BER record costs ~30 µs of pure Python; publishing it ~8 µs. With decoding in
worker processes (``jobs`` > 0) the publishing process only frames the file to find the
window boundaries (~2 µs per CDR) and publishes, so ingest uses every core.

Both ways give the same items: ``decode_cdr_file`` from an item's offset yields exactly
the items a whole-file pass yields from there (the reader's only state is its position),
which is also what makes resuming exact. Windows come back in file order either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Final, NamedTuple

import orjson

from pipeline.ber import BerRecordDecoder, CdrFileReader, DecodedCdr, decode_cdr_file

__all__ = [
    "DecoderPool",
    "DecoderSettings",
    "FileChangedError",
    "Item",
    "Record",
    "Rejected",
    "Window",
    "decode_range",
    "local_windows",
    "window_bounds",
]

#: Windows decoded ahead per worker process: enough to keep them busy, bounded memory.
LOOKAHEAD_PER_JOB: Final = 2


class Record(NamedTuple):
    """A decoded CDR, serialized: its topic (voice or SMS), key and JSON value."""

    voice: bool
    key: bytes | None
    value: bytes
    record_type: str


class Rejected(NamedTuple):
    """A CDR or stretch of the file that is no record, for the dead-letter topic."""

    offset: int
    code: str
    message: str
    data: bytes


Item = Record | Rejected


class Window(NamedTuple):
    """Consecutive items of a file, where the next window starts, and if it is the last."""

    items: list[Item]
    end: int
    last: bool


class FileChangedError(Exception):
    """A worker found the file a different size than the publishing process read."""


@dataclass(frozen=True, slots=True)
class DecoderSettings:
    """What a decoder is configured with (picklable, for worker processes)."""

    trunk_prefix: str
    country_code: str
    default_mcc_mnc: str | None

    def build(self) -> BerRecordDecoder:
        """The decoder."""
        return BerRecordDecoder(
            trunk_prefix=self.trunk_prefix,
            country_code=self.country_code,
            default_mcc_mnc=self.default_mcc_mnc,
        )


def decode_range(
    data: bytes,
    name: str,
    decoder: BerRecordDecoder,
    start: int | None,
    *,
    stop: int | None = None,
    limit: int | None = None,
) -> Window:
    """Items from ``start`` (None: the file's start) until offset ``stop`` or ``limit`` items."""
    items: list[Item] = []
    append = items.append
    dumps = orjson.dumps
    for item in decode_cdr_file(data, name, decoder, start=start):
        if stop is not None and item.offset >= stop:
            # Whether a window is the file's last depends on where it ends, not on how
            # the loop ended (a window ending at the file's end must say so).
            return Window(items, stop, last=stop >= len(data))
        if isinstance(item, DecodedCdr):
            record = item.record
            msisdn = record.get("servedMSISDN")
            key = msisdn.encode() if isinstance(msisdn, str) else None
            append(Record(item.is_voice, key, dumps(record), item.record_type))
        else:
            append(Rejected(item.offset, item.code, item.message, item.data))
        if limit is not None and len(items) >= limit:
            return Window(items, item.end, last=item.end >= len(data))
    # Items tile the file to its end: the last window ends where the file does.
    return Window(items, len(data), last=True)


async def local_windows(
    data: bytes, name: str, decoder: BerRecordDecoder, start: int | None, per_window: int
) -> AsyncGenerator[Window, None]:
    """Windows of ``per_window`` items decoded in this process."""
    while True:
        window = decode_range(data, name, decoder, start, limit=per_window)
        yield window
        if window.last:
            return
        start = window.end


def window_bounds(
    data: bytes, start: int | None, per_window: int
) -> Iterator[tuple[int | None, int]]:
    """(start, stop) offsets of windows of ``per_window`` items, found by framing alone."""
    count = 0
    for item in CdrFileReader(data).frames(start):
        if count == per_window:
            yield start, item.offset
            start, count = item.offset, 0
        count += 1
    yield start, len(data)


# -- worker processes -------------------------------------------------------------------

_decoder: BerRecordDecoder | None = None
_file: tuple[str, bytes] = ("", b"")


def _die_with_parent(parent: int) -> None:
    """Linux: be killed when the ingesting process dies, even of SIGKILL (no orphans).

    ``parent`` is the pid the ingesting process had when it started the pool: reading
    ``getppid()`` here instead would miss a parent that died before this line ran.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _init_worker(settings: DecoderSettings, parent: int) -> None:
    # Ctrl-C in a terminal signals the whole process group; the parent alone decides
    # how to stop (finish the windows in flight), so workers must not die of it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    global _decoder  # one decoder per worker process, built once
    _decoder = settings.build()


def _started() -> None:
    """Nothing: a first task, so that the process starts (see ``DecoderPool``)."""


def _decode_in_worker(path: str, size: int, name: str, start: int | None, stop: int) -> Window:
    global _file  # the file in hand, read once per worker process
    if _file[0] != path or len(_file[1]) != size:
        with open(path, "rb") as source:
            _file = (path, source.read())
    if len(_file[1]) != size:
        raise FileChangedError(f"{name} changed size while being ingested")
    assert _decoder is not None  # noqa: S101 - set by _init_worker
    return decode_range(_file[1], name, _decoder, start, stop=stop)


class DecoderPool:
    """Worker processes decoding windows of files, handed out in file order."""

    def __init__(self, settings: DecoderSettings, jobs: int) -> None:
        """Start ``jobs`` processes (spawned: no inherited event loop or sockets)."""
        self.jobs = jobs
        self._executor = ProcessPoolExecutor(
            jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(settings, os.getpid()),
        )
        # Processes start on demand, and a spawned one takes about half a second to import
        # the decoder: ask for them all now, so they start while the producer connects and
        # the first file is read, not when its first window is due.
        for _ in range(jobs):
            self._executor.submit(_started)

    async def windows(
        self, path: str, data: bytes, name: str, start: int | None, per_window: int
    ) -> AsyncGenerator[Window, None]:
        """Windows of ``per_window`` items of the file at ``path`` (read as ``data``)."""
        loop = asyncio.get_running_loop()
        ahead: deque[asyncio.Future[Window]] = deque()
        try:
            for window_start, stop in window_bounds(data, start, per_window):
                ahead.append(
                    loop.run_in_executor(
                        self._executor, _decode_in_worker, path, len(data), name,
                        window_start, stop,
                    )
                )  # fmt: skip
                if len(ahead) > self.jobs * LOOKAHEAD_PER_JOB:
                    yield await ahead.popleft()
            while ahead:
                yield await ahead.popleft()
        finally:
            for future in ahead:
                future.cancel()

    def close(self) -> None:
        """Stop the worker processes."""
        self._executor.shutdown(wait=True, cancel_futures=True)
