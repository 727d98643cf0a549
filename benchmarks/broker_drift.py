"""How the embedded broker's CPU grows with what it stores: why latency drifts in long runs.

Writes ``--rate`` messages a second for ``--seconds`` into one 8-partition topic of a fresh
embedded broker, ``--batch`` messages per record batch, optionally with a consumer tailing
the topic (``--tail``), and prints the broker's CPU share every 10 s. Nothing of cdrveil's
record path runs: only the broker, one producer and one consumer.

    python -m benchmarks.broker_drift --tail              # small batches, tailed: CPU grows
    python -m benchmarks.broker_drift                     # the same, not tailed: flat
    python -m benchmarks.broker_drift --tail --batch 4000 # big batches, tailed: flat

In the latency-under-load phase the inputs arrive one ``send`` at a time, so they are stored
in batches of a few messages, and the worker tails them. Measured here (2026-11-21): 2,000
messages/s in 3-message batches, tailed, took the broker from 20 % to 58 % of a core in 60 s;
not tailed it stayed at 7 %; 30,000 messages/s in full batches, tailed, stayed at 6-10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.harness import proc_stats
from pipeline.core.policy import Policy
from pipeline.settings import Settings
from pipeline.shell.broker import EmbeddedBroker
from pipeline.shell.topics import TopicNames, create_topics

REPORT_EVERY_S = 10


async def _tail(consumer: AIOKafkaConsumer) -> None:
    while True:
        await consumer.getmany(timeout_ms=100, max_records=5000)


async def run(rate: int, batch: int, seconds: int, tail: bool) -> None:
    """Produce at ``rate`` in ``batch``-message record batches; print the broker's CPU."""
    async with EmbeddedBroker() as broker:
        assert broker.pid is not None  # noqa: S101 - started
        settings = Settings.from_env(
            {}, bootstrap_servers=broker.bootstrap_servers, topic_prefix="drift."
        )
        policy = Policy.load()
        await create_topics(settings, policy)
        topic = TopicNames(settings.topic_prefix)(policy.routes["billing"].topic)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)
        await producer.start()
        consumer = None
        tailing = None
        if tail:
            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=broker.bootstrap_servers,
                group_id="drift",
                auto_offset_reset="latest",
                fetch_max_wait_ms=100,
            )
            await consumer.start()
            tailing = asyncio.create_task(_tail(consumer))
        value = b"x" * 350
        stored = 0
        started, last = time.monotonic(), proc_stats(broker.pid).cpu_seconds
        try:
            for second in range(1, seconds + 1):
                futures = []
                builder = producer.create_batch()
                for _ in range(rate):
                    if builder.record_count() >= batch:
                        sent = await producer.send_batch(builder, topic, partition=stored % 8)
                        futures.append(sent)
                        builder = producer.create_batch()
                    builder.append(key=None, value=value, timestamp=None)
                    stored += 1
                futures.append(await producer.send_batch(builder, topic, partition=stored % 8))
                await asyncio.gather(*futures)
                ahead = started + second - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
                if second % REPORT_EVERY_S == 0:
                    now = proc_stats(broker.pid).cpu_seconds
                    share = 100 * (now - last) / REPORT_EVERY_S
                    print(f"t={second:3d}s stored={stored:,} broker {share:.0f}% of a core")
                    last = now
        finally:
            if tailing is not None:
                tailing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tailing
            if consumer is not None:
                await consumer.stop()
            await producer.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.broker_drift", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rate", type=int, default=2000, help="messages a second (2000)")
    parser.add_argument("--batch", type=int, default=3, help="messages per record batch (3)")
    parser.add_argument("--seconds", type=int, default=60, help="how long (60)")
    parser.add_argument("--tail", action="store_true", help="a consumer tails the topic")
    args = parser.parse_args(argv)
    print(
        f"{args.rate:,} messages/s in {args.batch}-message batches for {args.seconds} s, "
        f"{'tailed by a consumer' if args.tail else 'not consumed'}"
    )
    asyncio.run(run(args.rate, args.batch, args.seconds, args.tail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
