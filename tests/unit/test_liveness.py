"""The Kafka probe behind readiness: a fake client that answers, fails or hangs."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from pipeline.shell.clients import diagnose, why_unreachable
from pipeline.shell.liveness import kafka_answers, watch_kafka
from pipeline.shell.status import WorkerStatus
from pipeline.shell.telemetry import Metrics


class FakeClient:
    """Answers metadata requests as ``mode`` says: "up", "refused" or "hang"."""

    def __init__(self) -> None:
        self.mode = "up"
        self.calls = 0

    async def fetch_all_metadata(self) -> object:
        self.calls += 1
        if self.mode == "refused":
            raise KafkaConnectionError("connection refused")
        if self.mode == "hang":
            await asyncio.sleep(3600)
        return object()


@pytest.mark.parametrize(("mode", "answers"), [("up", True), ("refused", False), ("hang", False)])
async def test_kafka_answers_only_when_a_metadata_request_comes_back_in_time(
    mode: str, answers: bool
) -> None:
    client = FakeClient()
    client.mode = mode
    assert await kafka_answers(client, within=0.05) is answers


async def test_the_watch_marks_the_worker_not_ready_says_so_once_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = FakeClient()
    status = WorkerStatus(Metrics())
    status.tables_recovered()
    status.assigned(2)
    caplog.set_level(logging.INFO, logger="cdrveil.worker")
    watch = asyncio.create_task(
        watch_kafka(client, status, "broker:9092", interval=0.01, within=0.02)
    )
    try:
        await _until(lambda: status.ready)
        client.mode = "hang"
        await _until(lambda: not status.ready)
        calls = client.calls
        await _until(lambda: client.calls >= calls + 3)  # still probing, still not ready
        assert not status.ready
        client.mode = "up"
        await _until(lambda: status.ready)
    finally:
        watch.cancel()
    lost = [r for r in caplog.records if "unreachable" in r.getMessage()]
    back = [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.ERROR
    assert "broker:9092" in lost[0].getMessage()
    assert len(back) == 1


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize(
    ("error", "says", "points_at"),
    [
        (SaslAuthenticationFailed("bad"), "refused the login", "CDRVEIL_SASL_PASSWORD"),
        (UnsupportedSaslMechanismError("no"), "refused the login", "CDRVEIL_SASL_MECHANISM"),
        (ssl.SSLCertVerificationError("x"), "failed the TLS handshake", "CDRVEIL_SSL_CAFILE"),
        (ConnectionRefusedError(111, "refused"), "is unreachable", "CDRVEIL_BOOTSTRAP_SERVERS"),
        (TimeoutError(), "is unreachable", "CDRVEIL_BOOTSTRAP_SERVERS"),
    ],
)
def test_a_failed_connection_says_what_to_check(
    error: BaseException, says: str, points_at: str
) -> None:
    text = why_unreachable(error)
    assert says in text and points_at in text


async def test_diagnosing_a_closed_port_says_unreachable() -> None:
    from pipeline.settings import Settings
    from pipeline.shell.broker import free_port

    settings = Settings.from_env({}, bootstrap_servers=f"127.0.0.1:{free_port()}")
    assert (await diagnose(settings, within=2)).startswith("is unreachable")
