"""``cdrveil demo`` end to end (small): its summary says what happened, and only that.

With ``TEST_BROKER=kafka`` (``make test-kafka``) the same run is ``cdrveil demo
--apache-kafka`` (``make demo-kafka``): three Apache Kafka nodes, the worker exactly-once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.kafka import ON_APACHE_KAFKA

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    """One small demo run, as a user starts it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CDRVEIL_")}
    broker = ["--apache-kafka"] if ON_APACHE_KAFKA else []
    small = ["--records", "3000", "--subscribers", "400"]
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "demo", *small, *broker],
        env=clean,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_the_demo_exits_0_and_stops_its_worker(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert demo.stdout.splitlines()[-1] == "worker stopped with exit status 0; broker stopped"


def test_the_demo_says_which_broker_it_ran_on(demo: subprocess.CompletedProcess[str]) -> None:
    first = demo.stdout.splitlines()[0]
    if ON_APACHE_KAFKA:
        assert re.match(r"Apache Kafka [\d.]+, 3 nodes \(KRaft\) on ", first), first
        assert first.endswith("replication factor 3, the worker exactly-once"), first
    else:
        assert first.startswith("embedded broker on 127.0.0.1:"), first


def test_the_published_counts_are_the_ones_published(
    demo: subprocess.CompletedProcess[str],
) -> None:
    """It said `published 0 consent states, 0 warrants` under a bar of 400 states."""
    lines = demo.stdout.splitlines()
    assert "published 400 consent states and 2 warrants" in lines
    assert any(
        re.match(r"published 3,000 records \(sms [\d,]+, voice [\d,]+\) in ", x) for x in lines
    )
    assert not any(re.search(r"\b0 consent states", line) for line in lines)


def test_no_progress_line_for_nothing(demo: subprocess.CompletedProcess[str]) -> None:
    """A stray `records [ ] 0/1 records` line came from publishing the tables first."""
    progress = demo.stderr.replace("\r", "\n")
    assert "0/1 records" not in progress
    assert "3,000/3,000 records" in progress


def test_every_route_sample_has_its_before_and_whole_after(
    demo: subprocess.CompletedProcess[str],
) -> None:
    """The lawful-intercept sample had no "before"; service_improvement's was cut off."""
    lines = demo.stdout.splitlines()
    samples = [i for i, line in enumerate(lines) if re.match(r"  \[\w+\] -> ", line)]
    assert len(samples) == 6
    for i in samples:
        assert lines[i + 1].startswith("    before: {"), lines[i]
        assert lines[i + 2].startswith("    after:  {"), lines[i]
        assert lines[i + 2].endswith("}"), lines[i]


def test_the_summary_shows_what_objections_did(demo: subprocess.CompletedProcess[str]) -> None:
    """About 3% of the demo's subscribers object (Art. 21): network planning publishes none
    of their records, fraud prevention all, on the policy's stated ground."""
    lines = demo.stdout.splitlines()
    assert "objections (GDPR Art. 21), read back per route:" in lines
    planning = next(x for x in lines if x.startswith("  network_planning ") and "objectors" in x)
    assert re.search(
        r" [1-9][\d,]* objectors, 0 of their records published \(excluded\)$", planning
    )
    fraud = next(x for x in lines if x.startswith("  fraud_prevention ") and "objectors" in x)
    assert re.search(r" [1-9][\d,]* objectors, [1-9][\d,]* of their records published", fraud)
    assert "overridden on the policy's ground: Detecting" in fraud


def test_no_path_that_is_gone_when_read(demo: subprocess.CompletedProcess[str]) -> None:
    """The worker's log path was printed, in a folder deleted by the end of the run."""
    assert "cdrveil-demo-" not in demo.stdout
    assert "worker.log" not in demo.stdout


def test_the_latency_figure_says_what_it_measures(
    demo: subprocess.CompletedProcess[str],
) -> None:
    """A p99 over 5 s is the backlog the demo makes itself, not the alert's latency."""
    text = " ".join(line.strip() for line in demo.stdout.splitlines())
    assert "What it means: the demo published all 3,000 records in " in text
    assert "mostly time spent waiting in that queue, not the worker's latency" in text
    assert "CdrveilRecordLatencyHigh" in text


def test_the_demo_refuses_to_report_inputs_it_did_not_read_back() -> None:
    """Counts come from reading: fewer inputs read than published is an error, not a figure."""
    from collections import Counter

    from pipeline.errors import CdrveilError
    from pipeline.shell.topics import TopicNames
    from pipeline.tools.demo import Readback, _check_read_back

    names = TopicNames("")
    back = Readback({topic: [] for topic in names.inputs})
    back.messages[names.inputs[0]] = [object()] * 108  # type: ignore[list-item]

    _check_read_back(names, back, Counter(voice=108))
    with pytest.raises(CdrveilError, match="read back 108 input records, but 200"):
        _check_read_back(names, back, Counter(voice=108, sms=92))
