"""End-to-end latency from the broker's own timestamps, read back after a run.

An input's latency is the time from its timestamp in the input topic to the timestamp of
each of its outputs, matched by the ``cdrveil.record-id`` header (the input carries its
record id in its JSON; analytics outputs carry it keyed per purpose, mapped back with the
run's keyring). The input's timestamp is its producer's create time (when the publisher
handed it to its client). The embedded broker keeps the producer's create time on the
outputs too (it has no ``LogAppendTime``), so an output's timestamp is when the worker laid
it out in a record batch: the rest of that input batch's processing (up to one batch: ~50 ms
at half load) and the produce round trip (a few ms) are left out. On Apache Kafka the
benchmark creates the output topics with ``message.timestamp.type=LogAppendTime``, so an
output's timestamp is the moment the broker appended it, and nothing is left out;
:attr:`Latency.append_time_outputs` counts the outputs that carried an append time.

Unlike ``pipeline.harness.read_all``, which keeps every message, this streams: a full run has
millions of outputs, and only a record id and a timestamp per input are kept.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.linkage import source_ids
from pipeline.harness import scan
from pipeline.settings import Settings
from pipeline.shell.messages import header_text

READ_TIMEOUT_S = 300.0
#: A consumed message's ``timestamp_type`` when the broker set it (``LogAppendTime``).
LOG_APPEND_TIME = 1


@dataclass(frozen=True)
class Latency:
    """Percentiles of end-to-end latency over every output message, in milliseconds."""

    outputs: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    #: Of ``outputs``, how many carried the broker's append time (``LogAppendTime``).
    append_time_outputs: int = 0
    #: The p99 of the outputs of each second of input (second 0: the first input's), in
    #: milliseconds: shows whether a high p99 is a start-up stall, one pause or the whole run.
    p99_by_second: tuple[float, ...] = ()

    def worst_second(self) -> tuple[int, float] | None:
        """The second of input whose outputs had the highest p99, and that p99."""
        if not self.p99_by_second:
            return None
        worst = max(range(len(self.p99_by_second)), key=self.p99_by_second.__getitem__)
        return worst, self.p99_by_second[worst]

    def as_dict(self) -> dict[str, Any]:
        """The figures for the JSON report."""
        return {
            "matchedOutputs": self.outputs,
            "logAppendTimeOutputs": self.append_time_outputs,
            "p50Ms": self.p50_ms,
            "p99Ms": self.p99_ms,
            "maxMs": self.max_ms,
            "p99MsBySecond": list(self.p99_by_second),
        }


async def latency(
    settings: Settings,
    inputs: list[str],
    outputs: list[str],
    keyring: Path | None = None,
    purposes: Sequence[str] = (),
) -> Latency:
    """Read ``inputs`` then ``outputs`` back and measure input-to-output latency.

    Analytics outputs carry record ids keyed per purpose: with the run's ``keyring`` and
    the analytics ``purposes`` they are mapped back to their inputs and measured too."""
    sent_at: dict[str, int] = {}

    def note_input(message: ConsumerRecord[bytes, bytes]) -> None:
        try:
            record_id = orjson.loads(message.value)["recordId"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            return  # a malformed input has no outputs to match
        if isinstance(record_id, str):
            sent_at[record_id] = message.timestamp

    await scan(settings, inputs, note_input)
    delays = array("q")
    #: The second of each delay's input, counted from the first input.
    seconds = array("l")
    first = min(sent_at.values(), default=0)
    appended = 0
    sources: dict[str, str] = {}
    if keyring is not None and purposes:
        sources = source_ids(Pseudonymizer(Keyring.load(keyring)), purposes, sent_at)

    def note_output(message: ConsumerRecord[bytes, bytes]) -> None:
        nonlocal appended
        record_id = header_text(message, "cdrveil.record-id")
        if record_id is not None:
            record_id = sources.get(record_id, record_id)
            start = sent_at.get(record_id)
            if start is not None:
                delays.append(message.timestamp - start)
                seconds.append((start - first) // 1000)
                appended += message.timestamp_type == LOG_APPEND_TIME

    await scan(settings, outputs, note_output)
    ordered = sorted(delays)
    if not ordered:
        return Latency(0, float("nan"), float("nan"), float("nan"))

    return Latency(
        len(ordered),
        _at(ordered, 0.50),
        _at(ordered, 0.99),
        float(ordered[-1]),
        appended,
        _p99_by_second(delays, seconds),
    )


def _at(ordered: Sequence[int], share: float) -> float:
    return float(ordered[min(len(ordered) - 1, int(share * len(ordered)))])


def _p99_by_second(delays: Sequence[int], seconds: Sequence[int]) -> tuple[float, ...]:
    """The p99 of the delays of each second of input (0 for a second without outputs)."""
    buckets: dict[int, list[int]] = {}
    for delay, second in zip(delays, seconds, strict=True):
        buckets.setdefault(second, []).append(delay)
    last = max(buckets, default=-1)
    return tuple(_at(sorted(buckets[s]), 0.99) if s in buckets else 0.0 for s in range(last + 1))
