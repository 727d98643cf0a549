"""A broker dies under a running worker: three nodes, replication factor 3,
``min.insync.replicas=2``, ``acks=all``.

While inputs arrive at a steady rate: SIGKILL the leader of an input partition and restart
it, then the leader of an output partition, then freeze a node with SIGSTOP. The worker must
keep running (no restart) and lose nothing; at-least-once may duplicate, and the count is
reported. ``make soak-kafka`` runs the full-size version (30 s freeze, more records).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.shell.kafka_cluster import KafkaCluster
from soak.kafka_faults import BrokerFaultConfig, run_broker_faults
from tests.support.apache_kafka import kafka_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_brokers_killed_and_frozen_lose_no_record(
    kafka: KafkaCluster, tmp_path: Path
) -> None:
    """0 records lost, the same worker process throughout."""
    settings = kafka_settings(kafka, "faults")
    config = BrokerFaultConfig(records=5_000, rate=250, subscribers=1_000, down_s=1, freeze_s=6)
    report = await run_broker_faults(kafka, settings, tmp_path, config)
    assert [f.what.split()[0] for f in report.faults] == ["SIGKILL", "SIGKILL", "SIGSTOP"]
    assert report.verdict.inputs == config.records, report.summary()
    assert report.verdict.inputs_missing_outputs == 0, report.summary()
    assert report.verdict.unexpected == 0, report.summary()
    assert report.verdict.differing_duplicates == 0, report.summary()
    assert report.worker_restarts == 0, report.summary()
    assert report.worker_exit_code == 0, report.summary()
    assert all(node.running() for node in kafka.nodes)
