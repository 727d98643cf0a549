"""Producing the outputs of one input batch as whole record batches, and awaiting them.

Why not ``producer.send`` per message: it costs ~13 µs of CPU per message here (a
coroutine, a future and the pure-Python murmur2 partitioner each time), which at five to
six outputs per input would cap a worker near 15,000 inputs/s. Filling a ``BatchBuilder``
per partition and handing it over with ``send_batch`` costs ~3 µs per message (measured
~200,000 messages/s against the embedded broker). Partitions follow Kafka's default
partitioner (murmur2 of the key), so a key lands where any other Kafka client puts it.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder

from pipeline.core.batch import Layout, PartitionBatches
from pipeline.core.engine import Output
from pipeline.errors import BrokerError

log = logging.getLogger("cdrveil.produce")

Message = tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]]]

#: Hashes kept per cache generation. Keys are subscribers and their per-purpose pseudonyms,
#: which repeat on a skewed distribution; a hit costs a dict lookup, a miss ~1-2 µs.
HASH_CACHE_SIZE: Final = 1 << 17
SEND_ATTEMPTS: Final = 5

_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of a key (the Java client's ``Utils.murmur2``), unsigned.

    Same values as ``aiokafka.partitioner.murmur2`` (after ``& 0x7fffffff``) at about half
    the cost: the 4-byte words are unpacked in one call instead of byte by byte.
    """
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    if words:
        for k in struct.unpack_from(f"<{words}I", data):
            k = (k * _M) & _MASK
            k ^= k >> 24
            h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & 3
    if tail:
        i = words << 2
        if tail == 3:
            h ^= data[i + 2] << 16
        if tail >= 2:
            h ^= data[i + 1] << 8
        h = ((h ^ data[i]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


class Partitioner:
    """Kafka's default partitioner for keyed messages (so a key lands where any Kafka
    client would put it), round-robin for keyless ones."""

    __slots__ = ("_old", "counts", "keyless", "young")

    def __init__(self) -> None:
        #: Partition count per topic, learnt from the producer's metadata.
        self.counts: dict[str, int] = {}
        # Two cache generations: a full young one becomes the old one, so hot keys survive.
        self.young: dict[bytes, int] = {}
        self._old: dict[bytes, int] = {}
        #: The keyless messages placed so far, all topics together: the next goes to this
        #: counter modulo its topic's partition count.
        self.keyless = 0

    async def learn(self, producer: AIOKafkaProducer, topic: str) -> None:
        """Fetch the partition count of ``topic`` (a missing topic is a clear error)."""
        try:
            partitions = await asyncio.wait_for(producer.partitions_for(topic), 30)
        except (KafkaError, TimeoutError):
            raise BrokerError(
                f"topic {topic} does not exist; create the topics with `cdrveil topics create`"
            ) from None
        self.counts[topic] = len(partitions)

    def partition(self, key: bytes | None, n: int) -> int:
        """The partition of ``key`` among ``n``."""
        if key is None:
            self.keyless = placed = self.keyless + 1
            return (placed - 1) % n
        h = self.young.get(key)
        if h is None:
            h = self._old.get(key)
            if h is None:
                h = murmur2(key) & 0x7FFFFFFF
            if len(self.young) >= HASH_CACHE_SIZE:
                self._old = self.young
                self.young = {}
            self.young[key] = h
        return h % n


def _no_batches() -> BatchBuilder:
    raise RuntimeError("a dry-run OutputBatch has no producer to make record batches")


class FinishedBatch:
    """A record batch built elsewhere (by the native engine), in the shape aiokafka's producer
    takes from a ``BatchBuilder``: ``send_batch`` queues it, the sender sends its bytes, and a
    resend sends the same bytes again. It is closed: it takes no more messages."""

    __slots__ = ("_buffer",)

    #: Where a Kafka v2 record batch holds its record count (int32, big-endian).
    _RECORDS_AT: Final = slice(57, 61)

    def __init__(self, buffer: bytes) -> None:
        self._buffer = buffer

    def append(self, **_message: Any) -> None:
        """Closed: a message always goes to a new batch (``None``, as a full builder says)."""

    def close(self) -> None:
        """Already closed."""

    def closed(self) -> bool:
        """Always."""
        return True

    def size(self) -> int:
        """Its size in bytes."""
        return len(self._buffer)

    def record_count(self) -> int:
        """How many messages it holds (read from its header)."""
        return int.from_bytes(self._buffer[self._RECORDS_AT], "big")

    def _build(self) -> bytes:
        return self._buffer

    def _set_producer_state(self, producer_id: int, epoch: int, base_sequence: int) -> None:
        # The producer id, epoch and sequence are inside the CRC: a finished batch cannot
        # take them, so a transactional (exactly_once) worker builds its own batches.
        raise RuntimeError(
            "a finished record batch cannot join an idempotent or transactional send"
        )


@dataclass
class Send:
    """One partition's share of an output batch: its record batches, how many messages they
    hold, and the delivery futures of their latest submission."""

    topic: str
    partition: int
    builders: list[BatchBuilder | FinishedBatch]
    count: int
    futures: list[asyncio.Future[Any]] = field(default_factory=list)


class OutputBatch:
    """Outputs gathered while processing one input batch, appended to a record batch of
    their partition as they come.

    Appending at once, rather than keeping each message until the input batch is done and
    then copying it into a record batch, lets the message's objects go while they are
    still in the CPU cache (measured ~5 µs less per input record at ~3.8 outputs). The
    built record batches are what is kept for a resend (:func:`await_delivery`).
    """

    __slots__ = ("_buckets", "_create", "_partitioner", "_pending", "size")

    def __init__(self, partitioner: Partitioner, producer: AIOKafkaProducer | None) -> None:
        """``producer`` makes the record batches; ``None`` (a dry run) only counts."""
        self._partitioner = partitioner
        self._create = _no_batches if producer is None else producer.create_batch
        self._buckets: dict[str, list[list[BatchBuilder | FinishedBatch]]] = {}
        # Messages for topics whose partition count is not known yet (first batch only).
        self._pending: list[tuple[str, Message]] = []
        self.size = 0

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> None:
        """Queue one message."""
        self.size += 1
        buckets = self._buckets.get(topic)
        if buckets is None:
            n = self._partitioner.counts.get(topic)
            if n is None or self._create is _no_batches:
                self._pending.append((topic, (key, value, headers)))
                return
            buckets = self._buckets[topic] = [[] for _ in range(n)]
        builders = buckets[self._partitioner.partition(key, len(buckets))]
        if builders and (
            builders[-1].append(key=key, value=value, timestamp=None, headers=headers) is not None
        ):
            return
        # No record batch yet, or the last one is full (append closed it).
        builder = self._create()
        # An empty record batch takes any one message, however large.
        builder.append(key=key, value=value, timestamp=None, headers=headers)
        builders.append(builder)

    def add_finished(self, batches: PartitionBatches) -> None:
        """Queue one partition's finished record batches (its topic's partition count known)."""
        buckets = self._buckets.get(batches.topic)
        if buckets is None:
            n = self._partitioner.counts[batches.topic]
            buckets = self._buckets[batches.topic] = [[] for _ in range(n)]
        finished = [FinishedBatch(buffer) for buffer in batches.batches]
        buckets[batches.partition] += finished
        self.size += sum(batch.record_count() for batch in finished)

    async def send(self, producer: AIOKafkaProducer) -> list[Send]:
        """Hand every record batch to the producer; return what to await."""
        pending, self._pending = self._pending, []
        for topic, (key, value, headers) in pending:
            if topic not in self._partitioner.counts:
                await self._partitioner.learn(producer, topic)
            self.size -= 1
            self.add(topic, key, value, headers)
        sends: list[Send] = []
        for topic, buckets in self._buckets.items():
            for partition, builders in enumerate(buckets):
                if builders:
                    count = sum(builder.record_count() for builder in builders)
                    send = Send(topic, partition, builders, count)
                    await _submit(producer, send)
                    sends.append(send)
        return sends


def reference_record_batches(
    outputs: Sequence[Output], layout: Layout
) -> tuple[list[PartitionBatches], int]:
    """The record batches of ``outputs`` as the worker's own path builds them (aiokafka's
    builder, :class:`Partitioner`), every record stamped ``layout.timestamp_ms``; and the
    keyless counter after them. The specification a native batch builder is tested against.
    """
    partitioner = Partitioner()
    partitioner.counts = dict(layout.partitions)
    partitioner.keyless = layout.round_robin
    buckets: dict[str, list[list[BatchBuilder]]] = {}
    stamp = layout.timestamp_ms
    for topic, key, value, headers in outputs:
        bucket = buckets.get(topic)
        if bucket is None:
            bucket = buckets[topic] = [[] for _ in range(layout.partitions[topic])]
        builders = bucket[partitioner.partition(key, len(bucket))]
        if builders and (
            builders[-1].append(key=key, value=value, timestamp=stamp, headers=headers) is not None
        ):
            continue
        builder = BatchBuilder(layout.batch_bytes, 0)
        builder.append(key=key, value=value, timestamp=stamp, headers=headers)
        builders.append(builder)
    finished = [
        PartitionBatches(topic, partition, [bytes(b._build()) for b in builders])
        for topic, bucket in buckets.items()
        for partition, builders in enumerate(bucket)
        if builders
    ]
    return finished, partitioner.keyless


async def _submit(producer: AIOKafkaProducer, send: Send) -> None:
    """Submit ``send``'s record batches (again, on a resend: a built batch keeps its bytes)."""
    for builder in send.builders:
        builder.close()
        send.futures.append(
            await producer.send_batch(builder, send.topic, partition=send.partition)
        )


async def await_delivery(producer: AIOKafkaProducer, sends: list[Send]) -> int:
    """Wait until the broker has acknowledged every message; resend failed partitions.

    Returns how many partition sends were repeated. After :data:`SEND_ATTEMPTS` failures
    of one partition a :class:`BrokerError` is raised: the offsets stay uncommitted and a
    restarted worker produces the records again (at-least-once).
    """
    resends = 0
    for send in sends:
        for attempt in range(1, SEND_ATTEMPTS + 1):
            results = await asyncio.gather(*send.futures, return_exceptions=True)
            failure = next((r for r in results if isinstance(r, BaseException)), None)
            if failure is None:
                break
            if attempt == SEND_ATTEMPTS or isinstance(failure, asyncio.CancelledError):
                raise BrokerError(
                    f"producing to {send.topic}[{send.partition}] failed {attempt} times: "
                    f"{type(failure).__name__}"
                ) from failure
            log.warning(
                "producing to %s[%d] failed (%s); sending again (attempt %d)",
                send.topic,
                send.partition,
                type(failure).__name__,
                attempt + 1,
            )
            await asyncio.sleep(0.2 * attempt)
            # The whole partition share again: duplicates are allowed, losses are not.
            send.futures.clear()
            await _submit(producer, send)
            resends += 1
    return resends
