"""Counters of one worker, rendered in the Prometheus text format for ``/metrics``.

Labels are topic names and reason codes, never identifiers.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Metrics:
    """What a worker has done so far."""

    started_at: float = field(default_factory=time.time)
    records_in: Counter[str] = field(default_factory=Counter)
    outputs: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    commits: int = 0
    commit_failures: int = 0
    resends: int = 0
    state_messages: Counter[str] = field(default_factory=Counter)
    consent_states: int = 0
    warrants: int = 0
    tables_ready: bool = False
    consuming: bool = False
    kafka_reachable: bool = False

    @property
    def ready(self) -> bool:
        """Whether the worker is processing records (tables loaded, partitions consumed)."""
        return self.tables_ready and self.consuming

    def status(self) -> str:
        """One word for ``/health``."""
        if not self.kafka_reachable:
            return "waiting-for-kafka"
        if not self.tables_ready:
            return "loading-tables"
        if not self.consuming:
            return "joining-group"
        return "ready"

    def render(self) -> str:
        """The Prometheus text exposition of every counter."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: dict[str, float]) -> None:
            lines.append(f"# HELP cdrveil_{name} {help_text}")
            lines.append(f"# TYPE cdrveil_{name} {kind}")
            for labels, value in samples.items():
                lines.append(f"cdrveil_{name}{labels} {value:g}")

        def by(label: str, counts: Counter[str]) -> dict[str, float]:
            return {f'{{{label}="{key}"}}': float(n) for key, n in sorted(counts.items())}

        metric(
            "records_in_total", "counter", "Input records processed.", by("topic", self.records_in)
        )
        metric(
            "outputs_total", "counter", "Output messages acknowledged.", by("topic", self.outputs)
        )
        metric(
            "dead_letters_total", "counter", "Inputs dead-lettered.", by("code", self.dead_letters)
        )
        metric(
            "state_messages_total",
            "counter",
            "Consent and warrant messages applied.",
            by("topic", self.state_messages),
        )
        metric("batches_total", "counter", "Input batches processed.", {"": self.batches})
        metric("commits_total", "counter", "Offset commits.", {"": self.commits})
        metric(
            "commit_failures_total",
            "counter",
            "Commits refused (after a rebalance); those records are redelivered.",
            {"": self.commit_failures},
        )
        metric("resends_total", "counter", "Output batches sent again.", {"": self.resends})
        metric(
            "consent_states",
            "gauge",
            "Subscribers with a consent state.",
            {"": self.consent_states},
        )
        metric("warrants", "gauge", "Registered warrants.", {"": self.warrants})
        metric("ready", "gauge", "1 when the worker processes records.", {"": float(self.ready)})
        metric("start_time_seconds", "gauge", "Start time (Unix).", {"": self.started_at})
        return "\n".join(lines) + "\n"
