"""The hot path: input records in batches through the engine, outputs out, offsets committed.

Why not a faust agent: faust's per-event machinery costs ~41 µs (FACTS.md), several times
the engine itself, and faust acks-and-drops an event when an agent raises or its codec
fails. Here an aiokafka consumer in the worker group takes up to ``batch_max_records`` raw
records at a time (``getmany``); the whole batch goes through the engine in one call
(:mod:`pipeline.core.batch`), every outcome becomes messages (the outputs, or one
dead-letter copy per rejected record with the reason in headers), the
messages are produced as whole record batches, and the input offsets are committed only
once the broker has acknowledged every message of the batch. A batch may be in flight
while the next one is processed; commits follow in order. faust still runs the process:
lifecycle, signals, logging and the web endpoints.

At-least-once: a crash between produce and commit replays those records. The engine is
deterministic, so a replay yields byte-identical outputs with the same record ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from mode import Service

from pipeline.core.batch import INTERNAL_ERROR, BatchEngine, Layout, RecordBatchEngine
from pipeline.core.decode import Rejection
from pipeline.core.policy import Policy
from pipeline.core.topics import INPUTS
from pipeline.errors import BrokerError
from pipeline.settings import Settings
from pipeline.shell import clients
from pipeline.shell.deadletter import dead_letter_headers
from pipeline.shell.liveness import watch_kafka
from pipeline.shell.produce import OutputBatch, Partitioner, Send, await_delivery
from pipeline.shell.status import WorkerStatus
from pipeline.shell.tables import StateTables
from pipeline.shell.telemetry import Metrics
from pipeline.shell.topics import TopicNames

log = logging.getLogger("cdrveil.worker")

#: Batches produced but not yet committed; bounds memory and replay after a crash.
MAX_IN_FLIGHT: Final = 3
#: Seconds between lag reports while no records arrive (after every batch otherwise).
IDLE_LAG_INTERVAL_S: Final = 1.0
#: Seconds each step of closing the clients may take (leaving the group, flushing).
CLOSE_STEP_S: Final = 2.0
#: Allocations between young-generation collections (CPython's default is 700).
GC_THRESHOLD_GEN0: Final = 20_000
#: Exactly-once: failed transactions in a row (none committed between them) the worker
#: recovers from by itself (abort, a new producer, rewind); one more and it stops (exit 1).
TRANSACTION_RECOVERIES: Final = 5
#: Seconds a transaction may take before it counts as failed: by then the broker has
#: aborted it (its timeout) and fenced the producer.
TRANSACTION_BOUND_S: Final = clients.TRANSACTION_TIMEOUT_MS / 1000 + 10
#: Seconds the rewind to the committed offsets may take before the recovery counts as failed.
REWIND_BOUND_S: Final = 60.0
#: Seconds to wait before the n-th recovery in a row: n times this.
RECOVERY_BACKOFF_S: Final = 0.5



def settle_heap() -> None:
    """Tune the garbage collector for the record path, once the tables are loaded.

    The engine allocates many short-lived containers, so CPython's default thresholds run a
    full collection every few hundred thousand records, and each one walks every long-lived
    object: tables, caches, faust. Freezing what exists now takes those out of the walk,
    and a larger first-generation threshold makes collections rarer. Measured with the
    real engine: 78 -> 46 µs per record in the worker. Reference counting still frees
    everything promptly; only reference cycles wait for a collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD_GEN0, 20, 20)


class _Work:
    """One input batch: its produced messages, the offsets to commit once acknowledged,
    and what the metrics count once it is committed."""

    __slots__ = (
        "dead_letters",
        "offsets",
        "parties",
        "records",
        "sends",
        "started",
        "timestamps",
        "topics",
    )

    def __init__(
        self,
        offsets: dict[TopicPartition, int],
        records: int,
        topics: dict[str, int],
        dead_letters: dict[str, int],
        timestamps: list[int],
        started: float,
    ) -> None:
        self.offsets = offsets
        self.records = records
        #: Input records per (logical) input topic, dead letters per reason code.
        self.topics = topics
        self.dead_letters = dead_letters
        #: Each input record's broker timestamp (Unix ms), for the latency histogram.
        self.timestamps = timestamps
        #: ``time.monotonic()`` when the batch came off the consumer.
        self.started = started
        self.sends: list[Send] = []
        #: Other parties' numbers per class (``BatchResult.parties``), for the metric.
        self.parties: Mapping[str, int] = {}


class RecordPath(Service):
    """Consume, process, produce, commit: the worker's main loop, as a mode service."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        engine: BatchEngine,
        tables: StateTables,
        metrics: Metrics,
        status: WorkerStatus,
        **kwargs: Any,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.tables = tables
        self.metrics = metrics
        self.status = status
        self.names = TopicNames(settings.topic_prefix)
        self.dead_letter = self.names.dead_letter(policy)
        # Metric labels: logical input topic names (a prefix may hold digits a label must
        # not), and the policy's route names for output topics.
        self._input_labels = {self.names(t): t for t in INPUTS}
        self._routes = {self.names(route.topic): name for name, route in policy.routes.items()}
        # Per assigned partition, the offset lag is measured from: the last one committed,
        # or until then the first one taken (where the group had committed).
        self._lag_base: dict[TopicPartition, int] = {}
        self._lag_reported = 0.0
        self._unlabelled = False
        self._partitioner = Partitioner()
        #: The engine's output topics once their partition counts are known, if it builds
        #: the record batches itself.
        self._batch_topics: list[str] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._in_flight: asyncio.Queue[_Work | None] = asyncio.Queue(MAX_IN_FLIGHT)
        # Held while a batch is between getmany and the in-flight queue, so a rebalance
        # can wait for a consistent point before it commits and gives partitions away.
        self._busy = asyncio.Lock()
        self._stop_requested = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._transactional_id = f"{settings.group_id}-{uuid.uuid4().hex[:12]}"
        #: Exactly-once: transactions failed since the last one committed.
        self._failed_transactions = 0
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        """Begin in the background: wait for the tables, connect, then consume."""
        self._main = asyncio.create_task(self._run(), name="cdrveil-record-path")

    async def on_stop(self) -> None:
        """Finish the batch in hand, wait for its acknowledgements, commit, leave the group.

        At most ``stop_timeout_ms``: with the broker gone nothing is ever acknowledged, and
        a stop that waits for it never ends. Past the deadline the worker gives up what is
        in flight uncommitted (the next worker processes it again) and exits 1.
        """
        self._stop_requested.set()
        main = self._main
        if main is not None:
            timeout = self.settings.stop_timeout_ms / 1000
            done, _ = await asyncio.wait({main}, timeout=timeout)
            if not done:
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await main
                error = BrokerError(
                    "Kafka did not acknowledge the outputs or offsets in flight within "
                    f"{timeout:g} s of the stop; stopped without committing them (the next "
                    "worker processes those records again)"
                )
                log.error("%s", error)
                try:
                    raise error
                except BrokerError as exc:  # raised, so mode logs a traceback, not "None"
                    await self.crash(exc)
        self.status.assigned(0)

    async def _run(self) -> None:
        try:
            if not await self._wait_for_tables():
                return
            settle_heap()
            if not await self._connect():
                return
            await self._learn_batch_topics()
            self._start_watch()
            if self._transactional:
                await self._transactions()
                return
            self._committer = asyncio.create_task(self._commit_loop(), name="cdrveil-commit")
            given_up = False
            try:
                await self._consume_loop(self._enqueue)
            except asyncio.CancelledError:
                given_up = True  # the stop stopped waiting: nothing more gets committed
                raise
            finally:
                if not given_up:
                    await self._drain()
        except asyncio.CancelledError:
            raise
        except (BrokerError, KafkaError) as exc:
            # No traceback: mode logs it when the service crashes.
            log.error("the record path stopped: %s", exc)  # noqa: TRY400
            await self.crash(exc)
        except Exception as exc:
            # A bug here must stop the worker (exit 1), not leave it running idle.
            log.exception("the record path failed")
            await self.crash(exc)
        finally:
            await self._close()

    def _start_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        assert self._producer is not None  # noqa: S101 - set by _connect
        self._watch = asyncio.create_task(
            watch_kafka(self._producer.client, self.status, self.settings.bootstrap_servers),
            name="cdrveil-kafka-watch",
        )

    async def _wait_for_tables(self) -> bool:
        """Wait until the tables are ready; ``False`` if a stop came first.

        The stop must be heard here: the tables stop only after this service (reverse start
        order), so waiting for them alone would hang a SIGTERM while Kafka is unreachable.
        """
        ready = asyncio.ensure_future(self.tables.wait_ready())
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({ready, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (ready, stop):
                task.cancel()
        return ready.done() and not ready.cancelled() and ready.result()

    @property
    def _transactional(self) -> bool:
        return self.settings.processing_guarantee == "exactly_once"

    async def _start_producer(self) -> AIOKafkaProducer | None:
        # A fixed transactional id per group would fence a restarted worker's zombie, but
        # several workers of one group need distinct ids; without KIP-447 group-metadata
        # fencing (aiokafka lacks it) a per-process id is the honest choice. A producer
        # rebuilt after a failed transaction keeps it, which fences the one it replaces.
        transactional_id = self._transactional_id if self._transactional else None
        producer: AIOKafkaProducer | None = await clients.start_with_retry(
            lambda: clients.producer(self.settings, transactional_id),
            "record producer",
            self.settings,
            self._stop_requested,
        )
        return producer

    async def _connect(self) -> bool:
        try:
            self._producer = await self._start_producer()
        except KafkaError as exc:
            if not self._transactional:
                raise
            raise BrokerError(
                "processing_guarantee exactly_once needs a broker with transactions (Apache "
                f"Kafka); this one refused them ({type(exc).__name__}). The embedded broker "
                "supports at_least_once only."
            ) from exc
        if self._producer is None:
            return False
        self._consumer = await clients.start_with_retry(
            lambda: clients.record_consumer(self.settings, self.names.inputs, _Rebalance(self)),
            "record consumer",
            self.settings,
            self._stop_requested,
        )
        return self._consumer is not None

    async def _consume_loop(self, handle: Callable[[_Work, OutputBatch], Awaitable[None]]) -> None:
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - set by _connect
        limit = self.settings.batch_max_records
        while not self._stop_requested.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=limit)
            self.status.assigned(len(consumer.assignment()))
            if not batch:
                self._check_committer()  # idle is no reason to miss a dead commit loop
                if time.monotonic() - self._lag_reported >= IDLE_LAG_INTERVAL_S:
                    await self._report_lag()
                continue
            async with self._busy:
                batch = await _still_ours(consumer, batch)
                if not batch:
                    continue
                work, outputs = self._process(batch, time.monotonic())
                await handle(work, outputs)

    def _check_committer(self) -> None:
        """Raise the commit loop's error if it has ended (outputs refused for good).

        A queue with room would hide a dead commit loop: the worker would go on producing
        batches that are never committed, and say nothing.
        """
        committer = self._committer
        if committer is not None and committer.done():
            committer.result()  # raises the commit loop's error
            raise BrokerError("the commit loop stopped")

    async def _enqueue(self, work: _Work, outputs: OutputBatch) -> None:
        """At-least-once: produce, and let the commit loop commit once acknowledged."""
        self._check_committer()
        committer = self._committer
        assert committer is not None  # noqa: S101 - started before the consume loop
        work.sends = await outputs.send(self._producer)
        put = asyncio.ensure_future(self._in_flight.put(work))
        # If the commit loop has died (outputs refused for good), nobody empties the queue.
        await asyncio.wait({put, committer}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            committer.result()  # raises the commit loop's error
            raise BrokerError("the commit loop stopped")

    async def _transactions(self) -> None:
        """Exactly-once: consume in transactions; recover from a failed one by itself.

        A broker that dies or freezes under an open transaction can abort it (its timeout)
        and fence the producer, or break aiokafka's sender for good. Nothing of a failed
        transaction is visible to ``read_committed`` readers, so the worker aborts it if it
        still can, builds a new producer with the same transactional id (which fences the
        old one and settles its last transaction) and rewinds to the committed offsets: what
        Kafka Streams does with a lost task. :data:`TRANSACTION_RECOVERIES` failures in a row
        stop the worker.
        """
        while True:
            try:
                await self._consume_loop(self._transact)
            except (BrokerError, KafkaError, TimeoutError) as exc:
                self._failed_transactions += 1
                if self._failed_transactions > TRANSACTION_RECOVERIES:
                    raise BrokerError(
                        f"{self._failed_transactions} transactions in a row failed, the last "
                        f"with {type(exc).__name__}"
                    ) from exc
                reason = _reason(exc)
                # The reason code only: an exception's text could name a topic or an id.
                log.warning(
                    "transaction failed (%s); aborting it, renewing the producer and "
                    "rewinding to the committed offsets (recovery %d of %d)",
                    reason,
                    self._failed_transactions,
                    TRANSACTION_RECOVERIES,
                )
                self.metrics.record_transaction_recovery(reason)
                if not await self._recover():
                    return
            else:
                return

    async def _recover(self) -> bool:
        """Abort, replace the producer, rewind the consumer; ``False`` if a stop came first."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await _bounded(_abort(producer), "aborting the transaction")
            await _bounded(producer.stop(), "closing the fenced producer")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._stop_requested.wait(), RECOVERY_BACKOFF_S * self._failed_transactions
            )
        if self._stop_requested.is_set():
            return False
        # The new producer first: its start settles the old one's last transaction (commit
        # sent or not), so the committed offsets read next are final.
        self._producer = await self._start_producer()
        if self._producer is None:
            return False
        self._start_watch()
        await asyncio.wait_for(self._rewind(), REWIND_BOUND_S)
        return True

    async def _rewind(self) -> None:
        """Every assigned partition back to its committed offset (or its start)."""
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - set by _connect
        for tp in consumer.assignment():
            committed = await consumer.committed(tp)
            try:
                if committed is None:
                    await consumer.seek_to_beginning(tp)  # auto_offset_reset=earliest
                    self._lag_base.pop(tp, None)
                else:
                    consumer.seek(tp, committed)
                    self._lag_base[tp] = committed
            except IllegalStateError:
                continue  # revoked meanwhile: its next owner starts from the commit

    async def _transact(self, work: _Work, outputs: OutputBatch) -> None:
        """Exactly-once (Apache Kafka): outputs and input offsets in one transaction."""
        producer = self._producer
        assert producer is not None  # noqa: S101 - set by _connect
        # Not aiokafka's transaction() context: its abort can wait for ever on a dead
        # broker; a failed transaction is aborted by _recover, bounded.
        await producer.begin_transaction()
        await asyncio.wait_for(self._transaction(producer, work, outputs), TRANSACTION_BOUND_S)
        self._failed_transactions = 0
        acknowledged = time.time()
        self._lag_base.update(work.offsets)
        self._count(work, acknowledged)
        await self._report_lag()

    async def _transaction(
        self, producer: AIOKafkaProducer, work: _Work, outputs: OutputBatch
    ) -> None:
        work.sends = await outputs.send(producer)
        await producer.send_offsets_to_transaction(work.offsets, self.settings.group_id)
        await producer.commit_transaction()

    def _process(
        self, batch: dict[TopicPartition, list[Any]], started: float
    ) -> tuple[_Work, OutputBatch]:
        """Run the engine over a batch (CPU only, no awaits): one call for all its records."""
        values: list[bytes | None] = []
        for records in batch.values():
            values += [record.value for record in records]
        outputs = OutputBatch(self._partitioner, self._producer)
        parties: Mapping[str, int] = {}
        if self._builds_batches:
            rejections, parties = self._process_records(values, outputs)
        else:
            result = self.engine.process_batch(values)
            rejections = result.rejections
            parties = result.parties
            add = outputs.add
            for topic, key, value, headers in result.outputs:
                add(topic, key, value, headers)
        dead_letters: dict[str, int] = {}
        if rejections:
            self._dead_letter(batch, rejections, outputs, dead_letters)
        input_labels, lag_base = self._input_labels, self._lag_base
        offsets: dict[TopicPartition, int] = {}
        topics: dict[str, int] = {}
        timestamps: list[int] = []
        for tp, records in batch.items():
            offsets[tp] = records[-1].offset + 1
            if tp not in lag_base:
                lag_base[tp] = records[0].offset
            timestamps += [record.timestamp for record in records]
            label = input_labels.get(tp.topic, tp.topic)
            topics[label] = topics.get(label, 0) + len(records)
        work = _Work(offsets, len(values), topics, dead_letters, timestamps, started)
        work.parties = parties
        return work, outputs

    @property
    def _builds_batches(self) -> bool:
        """Whether the engine hands over finished record batches for this batch: it can, the
        partition counts of its topics are known, and no transaction has to stamp them."""
        return self._batch_topics is not None and not self._transactional

    def _process_records(
        self, values: list[bytes | None], outputs: OutputBatch
    ) -> tuple[list[tuple[int, Rejection]], Mapping[str, int]]:
        engine = self.engine
        assert isinstance(engine, RecordBatchEngine)  # noqa: S101 - _builds_batches
        partitioner = self._partitioner
        layout = Layout(
            partitioner.counts,
            clients.MAX_BATCH_BYTES,
            int(time.time() * 1000),
            partitioner.keyless,
        )
        result = engine.process_batch_records(values, layout)
        partitioner.keyless = result.round_robin
        for batches in result.partitions:
            outputs.add_finished(batches)
        return result.rejections, result.parties

    async def _learn_batch_topics(self) -> None:
        """For an engine that builds record batches: the partition count of every topic it
        writes, before the first batch (it places the messages itself)."""
        engine = self.engine
        producer = self._producer
        if not isinstance(engine, RecordBatchEngine) or producer is None or self._transactional:
            return
        topics = list(engine.output_topics)
        for topic in topics:
            if topic not in self._partitioner.counts:
                await self._partitioner.learn(producer, topic)
        self._batch_topics = topics
        log.info("the engine builds the record batches of %d output topics", len(topics))

    def _dead_letter(
        self,
        batch: dict[TopicPartition, list[Any]],
        rejections: list[tuple[int, Rejection]],
        outputs: OutputBatch,
        counts: dict[str, int],
    ) -> None:
        """One dead-letter copy per rejected input, the reason in its headers.

        After the batch's outputs: each topic still gets its messages in input order (the
        dead-letter topic holds nothing else).
        """
        taken = [(tp, record) for tp, records in batch.items() for record in records]
        dead_letter = self.dead_letter
        for index, rejection in rejections:
            tp, record = taken[index]
            if rejection.code == INTERNAL_ERROR:
                # The location and the reason only: an exception's text could quote a field.
                log.error(
                    "engine failure on %s[%d]@%d: %s",
                    tp.topic,
                    tp.partition,
                    record.offset,
                    rejection.message,
                )
            headers = dead_letter_headers(
                rejection, tp.topic, tp.partition, record.offset, self._now()
            )
            outputs.add(dead_letter, record.key, record.value, headers)
            counts[rejection.code] = counts.get(rejection.code, 0) + 1

    def _count(self, work: _Work, acknowledged: float) -> None:
        """Count a batch whose outputs are all acknowledged: once per batch, never per record."""
        routes: dict[str, int] = {}
        dead_letter = self.dead_letter
        for send in work.sends:
            if send.topic == dead_letter:
                continue  # counted per reason code
            route = self._routes.get(send.topic)
            if route is None:
                # A topic the policy does not name (a stand-in engine's): its logical name.
                route = self._routes[send.topic] = send.topic.removeprefix(self.names.prefix)
            routes[route] = routes.get(route, 0) + send.count
        try:
            self.metrics.record_batch(
                work.topics,
                routes,
                work.dead_letters,
                (acknowledged - ts / 1000 for ts in work.timestamps),
                time.monotonic() - work.started,
                work.parties,
            )
            withheld = getattr(self.engine, "withheld", None)
            if isinstance(withheld, dict):
                self.metrics.record_withheld(withheld)
        except ValueError as exc:
            # A label refused as identifier-like (a policy's route name, say): the records
            # are fine, only the metrics miss them. Said once, not per batch.
            if not self._unlabelled:
                self._unlabelled = True
                log.error("batches are not counted in the metrics: %s", exc)  # noqa: TRY400

    async def _report_lag(self) -> None:
        """Lag per assigned partition, from the high-water marks of the last fetches and the
        offsets committed (or first taken): no request to the broker."""
        consumer = self._consumer
        if consumer is None:
            return
        self._lag_reported = time.monotonic()
        # High-water marks first, with no await between: the assignment cannot change.
        marks = {tp: consumer.highwater(tp) for tp in consumer.assignment()}
        lag: dict[tuple[str, int], int] = {}
        for tp, high in marks.items():
            if high is None:
                continue  # not fetched yet
            base = self._lag_base.get(tp)
            if base is None:
                # Fetched, nothing taken yet: where the consumer stands (a local answer,
                # the fetch proves its position valid).
                try:
                    base = await consumer.position(tp)
                except IllegalStateError:
                    continue  # revoked meanwhile
            label = self._input_labels.get(tp.topic, tp.topic)
            lag[(label, tp.partition)] = high - base
        try:
            self.metrics.set_lag(lag)
        except ValueError as exc:
            log.debug("lag not reported: %s", exc)

    async def _commit_loop(self) -> None:
        producer = self._producer
        while True:
            work = await self._in_flight.get()
            try:
                if work is None:
                    return
                self.metrics.record_resends(await await_delivery(producer, work.sends))
                acknowledged = time.time()
                await self._commit(work.offsets)
                self._count(work, acknowledged)
                await self._report_lag()
            finally:
                self._in_flight.task_done()

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - set by _connect
        owned = consumer.assignment()
        mine = {tp: o for tp, o in offsets.items() if tp in owned}
        if len(mine) < len(offsets):
            # Partitions given away in a rebalance: their new owner replays these records.
            self.metrics.record_commit_failure()
        if not mine:
            return
        try:
            await consumer.commit(mine)
        except (CommitFailedError, IllegalStateError) as exc:
            self.metrics.record_commit_failure()
            log.warning(
                "commit refused (%s); those records will be redelivered", type(exc).__name__
            )
            return
        self._lag_base.update(mine)

    def forget_partition(self, tp: TopicPartition) -> None:
        """A partition given away: its lag is reported by its next owner."""
        self._lag_base.pop(tp, None)

    async def wait_idle(self) -> None:
        """Wait until every processed batch is acknowledged and committed."""
        async with self._busy:
            if self._committer is not None and not self._committer.done():
                await self._in_flight.join()

    async def _drain(self) -> None:
        if self._committer is None:
            return
        if not self._committer.done():
            await self._in_flight.put(None)
        await self._committer  # raises if a delivery failed for good

    async def _close(self) -> None:
        """Leave the group and close the clients, each step bounded: with the broker gone
        the producer would wait for ever to flush."""
        for task in (self._watch, self._committer):
            if task is not None and not task.done():
                task.cancel()  # the committer only if the stop gave up waiting for it
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        if consumer is not None:
            await _bounded(clients.leave_group(consumer), "leaving the group")
            await _bounded(consumer.stop(), "closing the record consumer")
        if producer is not None:
            await _bounded(producer.stop(), "closing the record producer")


async def _still_ours(
    consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[Any]]
) -> dict[TopicPartition, list[Any]]:
    """The part of ``batch`` this worker may still process.

    A rebalance can run between ``getmany`` and the batch lock (it waits for that lock).
    A partition given away is read again by its new owner from the last commit; one given
    back was rewound to the last commit and is read again here. Either way these records
    must not be processed now: that would duplicate them, even under exactly-once.
    """
    owned = consumer.assignment()
    fresh = {}
    for tp, records in batch.items():
        if tp not in owned:
            continue
        try:
            position = await consumer.position(tp)
        except IllegalStateError:
            continue  # revoked meanwhile
        # At or past the batch's end (control records may follow it): not rewound.
        if position >= records[-1].offset + 1:
            fresh[tp] = records
    return fresh


async def _abort(producer: AIOKafkaProducer) -> None:
    """Abort the open transaction, if the producer still can (a fatal error or a fence
    leaves that to the broker's timeout or the next producer's start)."""
    try:
        await producer.abort_transaction()
    except (KafkaError, AssertionError) as exc:  # aiokafka asserts its state transitions
        log.debug("abort not possible: %s", type(exc).__name__)


def _reason(exc: BaseException) -> str:
    """A reason code for a failed transaction: its exception's class, in snake case."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


async def _bounded(step: Awaitable[None], what: str) -> None:
    """Await ``step`` for at most :data:`CLOSE_STEP_S`; a step that overruns is abandoned."""
    try:
        await asyncio.wait_for(step, CLOSE_STEP_S)
    except TimeoutError:
        log.warning("%s took over %.0f s (is Kafka gone?); abandoned", what, CLOSE_STEP_S)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commit everything processed before partitions are given away."""

    def __init__(self, path: RecordPath) -> None:
        self.path = path

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Before a rebalance: wait until every processed record is acknowledged and
        committed, so the partitions' next owner starts exactly where this worker stopped."""
        if revoked:
            await self.path.wait_idle()
            for tp in revoked:
                self.path.forget_partition(tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """After a rebalance: note how many partitions this worker now consumes."""
        log.info("assigned %d input partitions", len(assigned))
