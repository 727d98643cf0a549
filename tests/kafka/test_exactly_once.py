"""Exactly-once on Apache Kafka: a worker killed with SIGKILL again and again.

``processing_guarantee=exactly_once``: each batch's outputs and its input offsets are one
transaction. After every kill (each once the group has committed a further 20 % of the
inputs) a new worker takes over; a ``read_committed`` reader of every output topic and the
dead-letter topic must then see each input's outputs exactly once: none missing, no
duplicate, nothing else (compared with the engine run offline, ``soak.harness``).
``make soak-kafka`` runs the 200,000-record version.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pipeline.shell.kafka_cluster import KafkaCluster
from soak.crash import CrashConfig, run_crash
from tests.support.apache_kafka import kafka_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_sigkilled_worker_loses_nothing_and_duplicates_nothing(
    kafka: KafkaCluster, tmp_path: Path
) -> None:
    """3 x SIGKILL, each after >= 20 % further progress: 0 lost, 0 duplicates."""
    settings = kafka_settings(kafka, "eos", processing_guarantee="exactly_once")
    config = CrashConfig(records=12_000, subscribers=2_000, stops=3, step=0.2, within=120.0)
    report = await run_crash(settings, tmp_path, config)
    verdict = report.verdict
    assert len(report.stops) == 3, report.summary()
    assert all(stop.exit_code == -signal.SIGKILL for stop in report.stops), report.summary()
    assert verdict.inputs == config.records, report.summary()
    assert verdict.inputs_missing_outputs == 0, report.summary()
    assert verdict.unexpected == 0, report.summary()
    assert verdict.duplicates == 0, report.summary()
    assert verdict.messages_read == verdict.expected_outputs + verdict.expected_dead_letters
    assert report.final_exit_code == 0, report.summary()
