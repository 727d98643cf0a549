"""The worker's first lines: a taken web port in one line, and no "Ready" before it is."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.core.keys import Keyring
from pipeline.shell.status import WorkerStatus
from pipeline.shell.telemetry import Metrics


def _env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CDRVEIL_")}
    return {**clean, "CDRVEIL_BOOTSTRAP_SERVERS": "127.0.0.1:9"}  # nothing listens there


def test_a_second_worker_on_a_taken_web_port_is_told_in_one_line(tmp_path: Path) -> None:
    """It was a 60-line traceback from faust's web server."""
    keyring = tmp_path / "keyring.json"
    Keyring.init(keyring)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = ["worker", "--keyring", str(keyring), "--web-port", str(port)]
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", *command],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"cdrveil: error: web port {port} on 127.0.0.1 is already in use (another worker on "
        "this host?): give this one another with --web-port N or CDRVEIL_WEB_PORT=N "
        "(0 turns the endpoints off)"
    ]


def test_a_worker_with_no_broker_never_says_ready(tmp_path: Path) -> None:
    """faust logged "Ready" while /readyz answered 503; now no line says ready before it is."""
    keyring = tmp_path / "keyring.json"
    Keyring.init(keyring)
    worker = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "worker", "--keyring", str(keyring), "--web-port", "0"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        lines: list[str] = []
        assert worker.stdout is not None
        while time.monotonic() < deadline:
            line = worker.stdout.readline()
            lines.append(line)
            if "is unreachable" in line:
                break
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    text = "".join(lines) + out
    assert "is unreachable" in text
    assert "Ready" not in text
    assert "ready:" not in text
    assert "started; not ready until Kafka answers" in text


def test_the_status_logs_ready_once_every_condition_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The one "ready" line comes when Kafka answers, tables are in and partitions assigned."""
    status = WorkerStatus(Metrics())
    with caplog.at_level(logging.INFO, logger="cdrveil.status"):
        status.kafka_reached()
        status.tables_recovered()
        assert caplog.messages == []
        status.assigned(4)
        status.kafka_lost()
    assert caplog.messages == [
        "ready: Kafka answers, tables recovered and partitions assigned (4 input partitions)",
        "not ready: Kafka is not reachable",
    ]
