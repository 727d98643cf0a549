"""Kafka clients for the worker, and starting them patiently when the broker is not up yet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.group import LeaveGroupRequest

from pipeline.settings import Settings

log = logging.getLogger("cdrveil.kafka")

BACKOFF_FIRST_S: Final = 0.5
BACKOFF_MAX_S: Final = 30.0
#: Output batches up to this size; one produce request carries several. Below Apache
#: Kafka's default largest batch (message.max.bytes, 1,048,588 bytes, record batch header
#: included): 1 MiB of records plus the header was refused as MessageSizeTooLarge.
MAX_BATCH_BYTES: Final = 1_000_000
#: A transaction open longer is aborted by the broker, and its producer is fenced: the worker
#: stops. A batch's transaction takes milliseconds, but one whose output partition lost its
#: leader waits until Kafka has moved the leadership: the brokers' 9 s session
#: (``broker.session.timeout.ms``) plus election and the client's metadata refresh. At 10 s
#: (Kafka Streams' default) the exactly-once worker was fenced and exited 11 s after an output
#: partition's leader was killed (``python -m soak.kafka brokers``, 2026-12-03). The price: a
#: killed worker's open transaction holds back read_committed readers of its output
#: partitions until then (aiokafka's default, 60 s, held them a minute).
TRANSACTION_TIMEOUT_MS: Final = 30_000


async def start_with_retry(
    make: Callable[[], Any],
    what: str,
    settings: Settings,
    stop: asyncio.Event,
) -> Any | None:
    """Start a client made by ``make``, retrying with backoff while Kafka is unreachable.

    Returns the started client, or ``None`` if ``stop`` was set while waiting.
    """
    delay = BACKOFF_FIRST_S
    attempt = 1
    while not stop.is_set():
        client = make()
        try:
            await client.start()
        except KafkaConnectionError:
            await _close_quietly(client)
            log.warning(
                "Kafka at %s %s (%s, attempt %d); retrying in %.1f s",
                settings.bootstrap_servers,
                await diagnose(settings),
                what,
                attempt,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
            attempt += 1
            continue
        return client
    return None


#: Errors that mean the broker answered and refused who we are: retrying will not fix them.
_LOGIN_REFUSED: Final = (
    SaslAuthenticationFailed,
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,
)


def why_unreachable(error: BaseException) -> str:
    """What a failed connection attempt means for an operator, and what to check."""
    if isinstance(error, _LOGIN_REFUSED):
        return (
            f"refused the login ({type(error).__name__}): check CDRVEIL_SASL_MECHANISM, "
            "CDRVEIL_SASL_USERNAME and CDRVEIL_SASL_PASSWORD against the broker's users"
        )
    if isinstance(error, ssl.SSLError):
        reason = getattr(error, "reason", None) or type(error).__name__
        return (
            f"failed the TLS handshake ({reason}): check CDRVEIL_SSL_CAFILE (and the client "
            "certificate files) against the broker's certificate"
        )
    return (
        f"is unreachable ({type(error).__name__}): is the broker running and "
        "CDRVEIL_BOOTSTRAP_SERVERS right?"
    )


async def diagnose(settings: Settings, within: float = 10.0) -> str:
    """Connect once to the first bootstrap server the way the clients do, and say why that
    fails (aiokafka's own start-up error says only "Unable to bootstrap")."""
    host, _, port = settings.bootstrap_servers.split(",")[0].strip().rpartition(":")
    kwargs = settings.kafka_client_kwargs("cdrveil-diagnose")
    kwargs.pop("bootstrap_servers")
    try:
        conn = await asyncio.wait_for(
            create_conn(
                host.strip("[]"), int(port), request_timeout_ms=int(within * 1000), **kwargs
            ),
            within,
        )
    except (KafkaError, OSError, TimeoutError) as error:
        return why_unreachable(error)
    conn.close()
    return "answers a connection but its cluster metadata was refused or empty"


async def _close_quietly(client: Any) -> None:
    closer: Callable[[], Awaitable[None]] = getattr(client, "stop", None) or client.close
    try:
        await closer()
    except (KafkaError, OSError) as exc:
        log.debug("closing a client that failed to start: %r", exc)


def table_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A group-less consumer that reads the compacted state topics from the beginning."""
    return AIOKafkaConsumer(
        **settings.kafka_client_kwargs("cdrveil-tables"),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Catching up on a million states is a bulk read: large fetches, short waits.
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_wait_ms=100,
    )


def record_consumer(settings: Settings, topics: tuple[str, ...], listener: Any) -> AIOKafkaConsumer:
    """The record path's consumer: in the group, manual commits, raw bytes."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs("cdrveil-worker"),
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # tansu makes a joining member wait half the session timeout, so a short one
        # starts workers fast; heartbeats run on the loop between batches of milliseconds.
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(settings.session_timeout_ms // 6, 100),
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_partition_fetch_bytes=2 * 1024 * 1024,
        isolation_level=(
            "read_committed"
            if settings.processing_guarantee == "exactly_once"
            else "read_uncommitted"
        ),
    )
    consumer.subscribe(list(topics), listener=listener)
    return consumer


def producer(settings: Settings, transactional_id: str | None = None) -> AIOKafkaProducer:
    """The producer of outputs: every replica acknowledges before an offset is committed."""
    return AIOKafkaProducer(
        **settings.kafka_client_kwargs("cdrveil-worker"),
        acks="all",
        linger_ms=settings.linger_ms,
        max_batch_size=MAX_BATCH_BYTES,
        max_request_size=8 * MAX_BATCH_BYTES,
        transactional_id=transactional_id,
        enable_idempotence=transactional_id is not None,
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
    )


def publisher(settings: Settings, client_id: str = "cdrveil-generate") -> AIOKafkaProducer:
    """A producer of inputs (generate, ingest, replay): acks=all, batched writes."""
    return AIOKafkaProducer(
        **settings.kafka_client_kwargs(client_id),
        acks="all",
        linger_ms=settings.linger_ms,
        max_batch_size=1 << 18,
        max_request_size=max(1 << 20, settings.max_record_bytes * 4),
    )


async def leave_group(consumer: AIOKafkaConsumer) -> None:
    """Leave the group now, so the partitions move to another worker without waiting.

    aiokafka sends LeaveGroup only for generations above 0, and tansu numbers its first
    generation 0; without this a restarted worker waits a session timeout plus a rebalance.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    client = getattr(consumer, "_client", None)
    if coordinator is None or client is None or getattr(coordinator, "generation", None) != 0:
        return
    member_id = getattr(coordinator, "member_id", "")
    node = getattr(coordinator, "coordinator_id", None)
    if not member_id or node is None:
        return
    try:
        await client.send(node, LeaveGroupRequest(coordinator.group_id, member_id))
    except (KafkaError, OSError) as exc:
        log.debug("leaving the group failed: %r", exc)
