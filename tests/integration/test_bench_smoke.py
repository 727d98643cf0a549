"""``python -m benchmarks --quick --no-apache-kafka``: every phase of the embedded broker runs
on a small workload, the table and the JSON report carry every row with positive figures and
a verdict per target, and nothing the benchmark started is left running, also after Ctrl-C.
A smoke test: no timing is asserted. The Apache Kafka phases are left out here (they start a
JVM); the table's Apache Kafka rows are tested in ``tests/unit/test_bench_report.py``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from numbers import Real
from pathlib import Path

import orjson
import pytest

from tests.support.processes import alive, cmdline, descendants

# The bench starts its own embedded broker whichever broker the session has.
pytestmark = pytest.mark.embedded_only

ROOT = Path(__file__).resolve().parents[2]
#: The start of every row's name, in the order of the table.
ROWS = (
    "core: native engine alone",
    "embedded broker: end to end, one worker",
    "latency, preloaded backlog",
    "worker process",
    "worker CPU by phase (py-spy)",
    "engines, one worker each",
    "outputs-only baseline",
    "passthrough baseline",
    "naive faust baseline",
    "latency at 50% load, embedded broker",
    "consent table",
    "workers 1/2/3",
)
#: core, end to end, worker CPU, native over python, outputs-only, consent table.
TARGETS = 6
#: py-spy is not a dependency: without it, the phase row says so and has no figures.
NOT_MEASURED = "not measured: "
OURS = (b"tansu", b"pipeline", b"benchmarks")


def _bench(report: Path) -> list[str]:
    argv = [sys.executable, "-m", "benchmarks", "--quick", "--no-apache-kafka"]
    return [*argv, "--json", str(report)]


def test_quick_bench_prints_every_row_and_writes_them_as_json(tmp_path: Path) -> None:
    """The table and the JSON report have every row, each with positive figures."""
    report = tmp_path / "bench.json"
    done = subprocess.run(_bench(report), cwd=ROOT, capture_output=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    table = done.stdout.decode()
    document = orjson.loads(report.read_bytes())
    names = [row["name"].strip() for row in document["rows"]]
    assert len(names) == len(ROWS)
    for name, start in zip(names, ROWS, strict=True):
        assert name.startswith(start)
        assert name in table
    for row in document["rows"]:
        if row["measured"].startswith(NOT_MEASURED):
            assert row["name"].strip().startswith("worker CPU by phase"), row
            continue
        assert row["figures"], row["name"]
        for figure, value in row["figures"].items():
            assert isinstance(value, Real), (row["name"], figure, value)
            assert value > 0, (row["name"], figure, value)
    targets = document["targets"]
    assert len(targets) == TARGETS
    assert all(isinstance(target["met"], bool) for target in targets)
    verdicts = table.count("| met") + table.count("| MISSED")
    assert verdicts == TARGETS
    assert f"targets met: {sum(t['met'] for t in targets)} of {TARGETS}" in table
    assert "apacheKafka" not in document["results"]
    assert document["results"]["consentAtScale"]["engine"] == document["results"]["engine"]
    for key in ("command", "date", "machine", "config", "results"):
        assert document[key]
    pids = [document["results"]["processes"]["broker"]]
    pids += document["results"]["processes"]["children"]
    assert len(pids) > 1
    assert not [pid for pid in pids if alive(pid, OURS)]


def test_ctrl_c_stops_every_process_the_bench_started(tmp_path: Path) -> None:
    """SIGINT in the middle of a run: exit status 130, broker and workers all gone."""
    log = (tmp_path / "bench.log").open("wb")
    bench = subprocess.Popen(
        _bench(tmp_path / "bench.json"),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        started: set[int] = set()
        deadline = time.monotonic() + 120
        while not any(b"pipeline worker" in cmdline(pid) for pid in started):
            assert bench.poll() is None, (tmp_path / "bench.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no worker started within 120 s"
            time.sleep(0.1)
            started |= descendants(bench.pid)
        started |= descendants(bench.pid)
        bench.send_signal(signal.SIGINT)
        assert bench.wait(90) == 130
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        log.close()
    assert not [pid for pid in started if alive(pid, OURS)]
    assert not (tmp_path / "bench.json").exists()
