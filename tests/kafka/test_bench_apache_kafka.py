"""``python -m benchmarks --quick --apache-kafka-only``: the Apache Kafka phases of the benchmark
run on their own one-node cluster, measure the latency from the broker's append times, and
leave nothing running, also after Ctrl-C. A smoke test: no timing is asserted.

The benchmark starts its own node (the session's cluster is not used): what is under test
is that it starts and stops it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from tests.support.processes import alive, cmdline, descendants

ROOT = Path(__file__).resolve().parents[2]
OURS = (b"java", b"pipeline", b"benchmarks")


def _bench(report: Path) -> list[str]:
    argv = [sys.executable, "-m", "benchmarks", "--quick", "--apache-kafka-only"]
    return [*argv, "--json", str(report)]


def test_the_apache_kafka_phases_measure_append_times_and_stop_the_node(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    done = subprocess.run(_bench(report), cwd=ROOT, capture_output=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    document = orjson.loads(report.read_bytes())
    kafka = document["results"]["apacheKafka"]
    assert "core" not in document["results"]
    names = [row["name"].strip() for row in document["rows"]]
    assert names[0].startswith("Apache Kafka ")
    assert names[1] == "latency at 50% load, LogAppendTime outputs"
    load = kafka["latencyUnderLoad"]
    assert load["matchedOutputs"] > 0
    assert load["logAppendTimeOutputs"] == load["matchedOutputs"]
    assert kafka["worker"]["records"] == document["config"]["records"]
    [target] = document["targets"]
    assert isinstance(target["met"], bool)
    pids = [*kafka["processes"]["nodes"], *kafka["processes"]["children"]]
    assert len(pids) >= 3  # the node, the end-to-end worker, the load worker
    assert not [pid for pid in pids if alive(pid, OURS)]


def test_ctrl_c_stops_the_node_and_the_workers(tmp_path: Path) -> None:
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
        deadline = time.monotonic() + 180
        while not (
            any(b"kafka.Kafka" in cmdline(pid) for pid in started)
            and any(b"pipeline worker" in cmdline(pid) for pid in started)
        ):
            assert bench.poll() is None, (tmp_path / "bench.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no Kafka node and worker within 180 s"
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
