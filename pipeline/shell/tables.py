"""Consent and warrant tables on every worker, materialized from their compacted topics.

Global, not partitioned: the other party of a call lives on another partition, so each
worker reads every partition of ``consent.state`` and ``li.warrants`` from the beginning
(tombstone = delete) with a group-less consumer, and keeps following them. The tables are
the engine's own (``engine.consent``, ``engine.warrants``): fed here one message at a time,
looked up only inside the engine.

Why not faust's ``GlobalTable``: measured here, faust's per-event path costs ~41 µs, so a
million consent states take ~40 s to load against a 15 s target, and it holds raw bytes per
key; on the embedded broker a GlobalTable on an existing compacted topic did not even get
past faust's partition assignment (left waiting for minutes). A plain consumer feeding the
core's compact tables loads 1,000,000 states in ~6.5 s at ~155 MB RSS.

:attr:`StateTables.ready` is set once both tables have caught up to the end of their topics
as seen when the worker started; the record path waits for it, so no record is processed
against a table that could still be missing a warrant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from pipeline.core.batch import StateTable
from pipeline.core.topics import CONSENT, WARRANTS
from pipeline.errors import BrokerError
from pipeline.settings import Settings
from pipeline.shell import clients
from pipeline.shell.offsets import partitions_of
from pipeline.shell.status import WorkerStatus
from pipeline.shell.telemetry import Metrics
from pipeline.shell.topics import TopicNames

log = logging.getLogger("cdrveil.tables")

#: Records applied per loop turn while loading, and afterwards (when records flow and a
#: long turn would stall them).
LOAD_CHUNK: Final = 20_000
FOLLOW_CHUNK: Final = 2_000


class StateTables(Service):
    """The engine's consent table and warrant index, kept up to date from Kafka."""

    def __init__(
        self,
        settings: Settings,
        consent: StateTable,
        warrants: StateTable,
        metrics: Metrics,
        status: WorkerStatus,
        **kwargs: Any,
    ) -> None:
        self.settings = settings
        self.consent = consent
        self.warrants = warrants
        self.metrics = metrics
        self.status = status
        names = TopicNames(settings.topic_prefix)
        self._tables: dict[str, StateTable] = {names.consent: consent, names.warrants: warrants}
        # Metric labels are the logical names: a prefix may hold digits a label must not.
        self._labels = {names.consent: CONSENT, names.warrants: WARRANTS}
        #: Undefined field names already logged, per table label (each is logged once).
        self._unknown_logged: dict[str, set[str]] = {CONSENT: set(), WARRANTS: set()}
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._stop_requested = asyncio.Event()
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        """Start following the topics in the background."""
        self._task = asyncio.create_task(self._run(), name="cdrveil-tables")

    async def on_stop(self) -> None:
        """Stop following the topics."""
        self._stop_requested.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def wait_ready(self) -> bool:
        """Wait until both tables have caught up; ``False`` if the service stopped first."""
        await self.wait_for_stopped(self.ready.wait())
        return self.ready.is_set()

    async def _run(self) -> None:
        try:
            await self._follow()
        except asyncio.CancelledError:
            raise
        except (BrokerError, KafkaError) as exc:
            # No traceback: mode logs it when the service crashes.
            log.error("the state tables cannot be followed: %s", exc)  # noqa: TRY400
            await self.crash(exc)
        except Exception as exc:
            # A bug here must stop the worker, not leave it waiting for tables forever.
            log.exception("following the state tables failed")
            await self.crash(exc)

    async def _follow(self) -> None:
        consumer = await clients.start_with_retry(
            lambda: clients.table_consumer(self.settings),
            "state tables",
            self.settings,
            self._stop_requested,
        )
        if consumer is None:
            return
        self._consumer = consumer
        self.status.kafka_reached()
        tps = await partitions_of(consumer, list(self._tables))
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        targets: dict[TopicPartition, int] = {}
        while not self.should_stop:
            chunk = FOLLOW_CHUNK if self.ready.is_set() else LOAD_CHUNK
            batch = await consumer.getmany(timeout_ms=200, max_records=chunk)
            if batch:
                self._apply(batch)
            if not self.ready.is_set() and await self._caught_up(consumer, tps, targets):
                self._announce_ready()

    def _apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Apply a fetch to the tables, then count it in the metrics (once per fetch)."""
        counts: dict[str, int] = {}
        newest: dict[str, float] = {}
        for tp, messages in batch.items():
            apply = self._tables[tp.topic].apply
            for message in messages:
                apply(message.key, message.value)
            label = self._labels[tp.topic]
            counts[label] = counts.get(label, 0) + len(messages)
            # A partition's last message is its newest (the gauge ignores an older time).
            when = messages[-1].timestamp / 1000 if messages else 0.0
            newest[label] = max(newest.get(label, 0.0), when)
        for label, count in counts.items():
            self.metrics.record_state_messages(label, count)
        self._note_unknown_fields()
        self.metrics.set_tables(
            len(self.consent),
            len(self.warrants),
            consent_updated_at=newest.get(CONSENT) or None,
            warrants_updated_at=newest.get(WARRANTS) or None,
        )

    def _note_unknown_fields(self) -> None:
        """Count the fields the schemas do not define and log each name once (the name
        only: ``unknown.py`` keeps only plain short names, never a value)."""
        for label, table in ((CONSENT, self.consent), (WARRANTS, self.warrants)):
            counts = getattr(table, "unknown_fields", None)
            if not isinstance(counts, dict):
                continue
            self.metrics.record_unknown_fields(label, counts)
            logged = self._unknown_logged[label]
            for name in counts:
                if name not in logged:
                    logged.add(name)
                    log.warning(
                        "%s messages carry the field %r, which the schema does not define "
                        "and cdrveil does not read (counted in "
                        "cdrveil_state_unknown_fields_total)",
                        label,
                        name,
                    )

    async def _caught_up(
        self,
        consumer: AIOKafkaConsumer,
        tps: list[TopicPartition],
        targets: dict[TopicPartition, int],
    ) -> bool:
        # The target of a partition is its high-water mark in the first fetch answer, i.e.
        # its end when the worker started (ListOffsets is wrong on tansu, see offsets.py).
        for tp in tps:
            if tp not in targets:
                mark = consumer.highwater(tp)
                if mark is None:
                    return False
                targets[tp] = mark
        for tp in tps:
            if await consumer.position(tp) < targets[tp]:
                return False
        return True

    def _announce_ready(self) -> None:
        self.ready.set()
        self.metrics.set_tables(len(self.consent), len(self.warrants))
        self.status.tables_recovered()
        log.info(
            "state tables ready: %d consent states, %d warrants "
            "(rejected consent messages %s, rejected warrant messages %s)",
            len(self.consent),
            len(self.warrants),
            dict(self.consent.rejected) or "none",
            dict(self.warrants.rejected) or "none",
        )
