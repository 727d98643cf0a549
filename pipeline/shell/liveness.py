"""Whether Kafka still answers, asked once a second: what keeps ``/readyz`` honest when the
broker goes away under a running worker.

Why a probe of our own: when the broker dies, aiokafka keeps the consumer's assignment and
retries pending produce requests for ever, without telling its caller. The record path then
simply stops moving, and nothing in it could tell an outage from a quiet topic. A metadata
request answered (or not) within :data:`PROBE_TIMEOUT_S` can.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from aiokafka.errors import KafkaError

from pipeline.shell.status import WorkerStatus

log = logging.getLogger("cdrveil.worker")

#: Seconds between probes while Kafka answers.
PROBE_INTERVAL_S: Final = 1.0
#: Seconds a metadata request may take before Kafka counts as unreachable.
PROBE_TIMEOUT_S: Final = 2.0


async def kafka_answers(client: Any, within: float = PROBE_TIMEOUT_S) -> bool:
    """Whether some broker answers a metadata request from ``client`` within ``within`` s."""
    try:
        await asyncio.wait_for(client.fetch_all_metadata(), within)
    except (KafkaError, OSError, TimeoutError):
        return False
    return True


async def watch_kafka(
    client: Any,
    status: WorkerStatus,
    bootstrap_servers: str,
    interval: float = PROBE_INTERVAL_S,
    within: float = PROBE_TIMEOUT_S,
) -> None:
    """Probe Kafka until cancelled; mark the worker not ready while it does not answer.

    Says so once when Kafka goes away and once when it is back, with how long it was gone.
    Nothing is committed meanwhile: the record path commits only acknowledged outputs.
    """
    lost_at: float | None = None
    while True:
        if await kafka_answers(client, within):
            if lost_at is not None:
                log.warning(
                    "Kafka is reachable again after %.1f s; processing resumes",
                    time.monotonic() - lost_at,
                )
                lost_at = None
            status.kafka_reached()
        elif lost_at is None:
            lost_at = time.monotonic()
            status.kafka_lost()
            log.error(
                "Kafka at %s is unreachable (no metadata answer within %.0f s): not ready, "
                "nothing is committed until it answers again",
                bootstrap_servers,
                within,
            )
        await asyncio.sleep(interval)
