"""The naive-faust baseline: what a plain faust application doing the same job would move.

A faust agent over the two input topics, one event at a time (``async for``), running the
same engine with the same policy, consent and warrants, and ``await topic.send(...)`` for
each output (or the dead-letter copy). This is what the faust documentation leads one to
write; the worker is measured against it.

Run as ``python -m benchmarks.naive_faust`` with the worker's ``CDRVEIL_*`` variables
(``python -m benchmarks`` does that). The consent and warrant tables are read into the core's
tables with a plain consumer before faust starts: faust's ``GlobalTable`` did not get past
partition assignment on the embedded broker (see the worker's ``tables.py``), and loading
them is not what this baseline measures. ``/bench`` reports how many events the agent has
handled and when (``time.monotonic``, which is system-wide on Linux) the first arrived.

The client settings are the worker's: acks=all, the same linger and batch size, the same
group session timeout. Offsets are committed every 0.5 s (faust's default is 2.8 s) so the
end of a run is seen promptly.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from faust.web import Request, Response, View

from pipeline.core.consent import ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.warrants import WarrantIndex
from pipeline.factory import build_reference
from pipeline.settings import Settings
from pipeline.shell import clients
from pipeline.shell.deadletter import dead_letter_headers
from pipeline.shell.offsets import high_water_marks, partitions_of
from pipeline.shell.topics import TopicNames

COMMIT_INTERVAL_S = 0.5


async def load_tables(settings: Settings) -> tuple[ConsentTable, WarrantIndex]:
    """Read the consent and warrant topics from the beginning to their current end."""
    msisdn = MsisdnNormalizer(settings.country_code, settings.trunk_prefix)
    consent, warrants = ConsentTable(msisdn), WarrantIndex(msisdn)
    names = TopicNames(settings.topic_prefix)
    tables = {names.consent: consent, names.warrants: warrants}
    consumer: AIOKafkaConsumer = clients.table_consumer(settings)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, list(tables))
        consumer.assign(tps)
        ends = await high_water_marks(consumer, tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
            for tp, messages in batch.items():
                apply = tables[tp.topic].apply
                for message in messages:
                    apply(message.key, message.value)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return consent, warrants


def create_app(settings: Settings, consent: ConsentTable, warrants: WarrantIndex) -> faust.App:
    """The naive faust application: one agent, per-event processing, per-output sends."""
    engine = build_reference(settings)
    names = TopicNames(settings.topic_prefix)
    app = faust.App(
        settings.group_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        web_port=settings.web_port,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(settings.session_timeout_ms / 6000, 0.1),
        broker_commit_interval=COMMIT_INTERVAL_S,
        producer_acks=-1,
        producer_linger=settings.linger_ms / 1000,
        producer_max_batch_size=clients.MAX_BATCH_BYTES,
        producer_max_request_size=8 * clients.MAX_BATCH_BYTES,
    )
    inputs = app.topic(*names.inputs, key_type=bytes, value_type=bytes)
    outputs: dict[str, Any] = {}
    progress: dict[str, Any] = {"events": 0, "firstEventAt": None}

    def topic(name: str) -> Any:
        found = outputs.get(name)
        if found is None:
            found = outputs[name] = app.topic(name, key_type=bytes, value_type=bytes)
        return found

    @app.agent(inputs)
    async def pseudonymize(stream: Any) -> None:
        async for event in stream.events():
            if progress["firstEventAt"] is None:
                progress["firstEventAt"] = time.monotonic()
            result = engine.process(event.value, consent.get, warrants)
            if isinstance(result, Rejection):
                message = event.message
                headers = dead_letter_headers(
                    result, message.topic, message.partition, message.offset, datetime.now(UTC)
                )
                await topic(names.dead_letter(engine.policy)).send(
                    key=event.key, value=event.value, headers=headers
                )
            else:
                for out in result:
                    await topic(out.topic).send(key=out.key, value=out.value, headers=out.headers)
            progress["events"] += 1

    @app.page("/bench")
    async def bench(view: View, request: Request) -> Response:
        """How far the agent has come."""
        return view.json(progress)

    return app


def main() -> None:
    """Load the tables, then run the faust worker until SIGTERM."""
    settings = Settings.from_env()
    consent, warrants = asyncio.run(load_tables(settings))
    app = create_app(settings, consent, warrants)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # the spinner would set the root logger to DEBUG
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
