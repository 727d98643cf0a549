"""The ingest's counts as Prometheus metrics, in a file for node_exporter's textfile collector.

``cdrveil ingest`` is a command, not a server: like other batch jobs it writes its metrics to
a file (``--metrics-file``, conventionally ``*.prom`` in node_exporter's
``--collector.textfile.directory``), rewritten atomically after every file, so a watcher's
counts are current and a one-shot run leaves its totals behind. The counts are those of the
run's report (acknowledged messages only), since the process started.

| metric | type | labels |
|---|---|---|
| ``cdrveil_ingest_files_total`` | counter | outcome (done, already_done, interrupted, failed) |
| ``cdrveil_ingest_empty_files_total`` | counter | |
| ``cdrveil_ingest_records_total`` | counter | record_type |
| ``cdrveil_ingest_dead_letters_total`` | counter | reason |

Labels carry outcome names, record types and reason codes only, never a file name (it may
hold a node name or a date) or anything read from a record.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from pipeline.ingest.report import FileOutcome, IngestReport

__all__ = ["render_metrics", "write_metrics"]


class _ReportCollector(Collector):
    """Counters read from one report when scraped."""

    def __init__(self, report: IngestReport) -> None:
        self._report = report

    def collect(self) -> Iterator[Metric]:
        report = self._report
        files = CounterMetricFamily(
            "cdrveil_ingest_files", "Files this ingest ended, by outcome", labels=["outcome"]
        )
        for outcome in FileOutcome:
            count = sum(1 for f in report.files if f.outcome is outcome)
            files.add_metric([outcome.name.lower()], count)
        yield files
        yield CounterMetricFamily(
            "cdrveil_ingest_empty_files",
            "Empty files done (no octets: nothing published, no dead letter)",
            value=report.empty,
        )
        records = CounterMetricFamily(
            "cdrveil_ingest_records",
            "Records published and acknowledged, by record type",
            labels=["record_type"],
        )
        for record_type, count in sorted(report.records.items()):
            records.add_metric([record_type], count)
        yield records
        dead = CounterMetricFamily(
            "cdrveil_ingest_dead_letters",
            "Dead letters published and acknowledged, by reason code",
            labels=["reason"],
        )
        for reason, count in sorted(report.rejected.items()):
            dead.add_metric([reason], count)
        yield dead


def render_metrics(report: IngestReport) -> bytes:
    """The Prometheus text exposition of ``report``'s counts."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ReportCollector(report))
    return generate_latest(registry)


def write_metrics(report: IngestReport, path: Path) -> None:
    """Write ``render_metrics(report)`` to ``path`` atomically (a reader never sees half)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_bytes(render_metrics(report))
    partial.replace(path)
