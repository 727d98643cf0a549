"""The sizes of a benchmark run and what its phases share (broker, keyring, processes)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.harness import Fleet
from pipeline.core.policy import Policy
from pipeline.settings import Settings
from pipeline.synth import Workload


@dataclass(frozen=True)
class Config:
    """How big each phase is. The defaults are the full run of ``python -m benchmarks``."""

    records: int = 500_000
    subscribers: int = 100_000
    naive_records: int = 50_000
    load_seconds: float = 60.0
    load_share: float = 0.5
    consent_states: int = 1_000_000
    core_records: int = 200_000
    core_repeat: int = 3
    workers: tuple[int, ...] = (1, 2, 3)
    partitions: int = 8
    batch_max_records: int = 2000
    linger_ms: int = 5
    #: The embedded broker makes a joining member wait half of this.
    session_timeout_ms: int = 2000
    seed: int = 1
    quick: bool = False
    #: The embedded broker's phases (core and every baseline included).
    embedded: bool = True
    #: The Apache Kafka phases (:mod:`benchmarks.apache_kafka`), on this many nodes.
    apache_kafka: bool = True
    apache_kafka_nodes: int = 1
    #: The worker's CPU by phase (py-spy, where it is installed: ``make bench`` does).
    phases: bool = True

    @classmethod
    def quick_run(cls, **changes: Any) -> Config:
        """A smoke run of every phase in well under a minute of work."""
        small = cls(
            records=5_000,
            subscribers=5_000,
            naive_records=1_000,
            load_seconds=3.0,
            consent_states=20_000,
            core_records=5_000,
            core_repeat=1,
            quick=True,
        )
        return replace(small, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The sizes, for the JSON report."""
        return {
            "records": self.records,
            "subscribers": self.subscribers,
            "naiveFaustRecords": self.naive_records,
            "loadSeconds": self.load_seconds,
            "loadShare": self.load_share,
            "consentStates": self.consent_states,
            "coreRecords": self.core_records,
            "workers": list(self.workers),
            "partitions": self.partitions,
            "batchMaxRecords": self.batch_max_records,
            "lingerMs": self.linger_ms,
            "sessionTimeoutMs": self.session_timeout_ms,
            "seed": self.seed,
            "quick": self.quick,
            "embedded": self.embedded,
            "apacheKafka": self.apache_kafka,
            "apacheKafkaNodes": self.apache_kafka_nodes,
            "phases": self.phases,
        }


@dataclass
class Context:
    """What the phases of one run share."""

    config: Config
    base: Settings
    policy: Policy
    keyring: Path
    fleet: Fleet
    started: float = field(default_factory=time.monotonic)
    #: Added to every output topic's configs when a phase creates it (Apache Kafka:
    #: ``LogAppendTime``, see :data:`benchmarks.harness.LOG_APPEND_TIME`).
    output_configs: dict[str, str] = field(default_factory=dict)
    #: Which broker the phases run on, for the progress lines.
    broker: str = "embedded"

    @property
    def workload(self) -> Workload:
        """The standard seeded workload (no malformed records)."""
        return Workload(subscribers=self.config.subscribers, seed=self.config.seed)

    def settings(self, prefix: str, group: str = "cdrveil") -> Settings:
        """The run's settings for one phase's topics and consumer group."""
        return self.base.replace(topic_prefix=prefix, group_id=group)

    def say(self, text: str) -> None:
        """A progress line on stderr (the table goes to stdout)."""
        elapsed = time.monotonic() - self.started
        where = "" if self.broker == "embedded" else f" {self.broker}"
        print(f"[bench {elapsed:6.1f}s{where}] {text}", file=sys.stderr, flush=True)
