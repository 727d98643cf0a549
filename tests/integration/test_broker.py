"""The embedded broker: answers Kafka requests, stops cleanly, never outlives its owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.shell.broker import EmbeddedBroker, free_port, kafka_answers

# Tests of the embedded broker itself.
pytestmark = pytest.mark.embedded_only

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _wait_until(condition: object, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_the_session_broker_answers_kafka_requests(broker: EmbeddedBroker) -> None:
    assert kafka_answers(broker.host, broker.port)


def test_a_stopped_broker_no_longer_answers_and_its_process_is_gone() -> None:
    with EmbeddedBroker() as b:
        pid = b.pid
        assert pid is not None
        assert kafka_answers(b.host, b.port)
    assert not kafka_answers(b.host, b.port)
    assert not _alive(pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_foreground_broker_exits_0_on_a_signal_and_takes_the_broker_with_it(sig: int) -> None:
    port = free_port()
    code = f"import sys; from pipeline.shell.broker import run_broker; sys.exit(run_broker({port}))"
    runner = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        assert _wait_until(lambda: kafka_answers("127.0.0.1", port))
        children = _children(runner.pid)
        assert children, "the broker should run as a child of the command"
        runner.send_signal(sig)
        assert runner.wait(10) == 0
        assert not kafka_answers("127.0.0.1", port)
        assert not any(_alive(pid) for pid in children)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_the_broker_dies_with_the_process_that_started_it() -> None:
    port = free_port()
    code = (
        "import time; from pipeline.shell.broker import EmbeddedBroker; "
        f"b = EmbeddedBroker({port}).start(); print(b.pid, flush=True); time.sleep(60)"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE)
    assert owner.stdout is not None
    broker_pid = int(owner.stdout.readline())
    assert _alive(broker_pid)
    os.kill(owner.pid, signal.SIGKILL)  # no chance to clean up
    owner.wait()
    owner.stdout.close()
    assert _wait_until(lambda: not _alive(broker_pid))
    assert not kafka_answers("127.0.0.1", port)
