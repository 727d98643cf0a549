"""Prometheus metrics of one worker, on a registry of its own, and the paths it serves them on.

Each :class:`Metrics` has its own ``CollectorRegistry`` (never the global one), so tests and
benchmarks can make as many as they like. The worker calls a handful of methods once per batch
or per table change, never per record; :meth:`Metrics.render` gives the body and content type
of a ``/metrics`` answer.

Labels carry only topic names, route names, reason codes, partition numbers and key ids.
Topic labels are the logical names (``cdr.voice``, ``consent.state``), without
``CDRVEIL_TOPIC_PREFIX``: a prefix is per deployment (Prometheus tells instances and jobs
apart) and may hold a date, whose digits the check below would refuse. A label value that
could be an identifier (a run of 8 or more digits, as every MSISDN, IMSI and IMEI has once
normalized; or characters a topic name cannot have) is refused with a ``ValueError``: a bug
must not publish a phone number to every dashboard.

| metric | type | labels |
|---|---|---|
| ``cdrveil_records_in_total`` | counter | topic |
| ``cdrveil_outputs_total`` | counter | route |
| ``cdrveil_outputs_withheld_total`` | counter | route, reason |
| ``cdrveil_dead_letters_total`` | counter | reason |
| ``cdrveil_state_messages_total`` | counter | topic |
| ``cdrveil_state_unknown_fields_total`` | counter | topic, field |
| ``cdrveil_commit_failures_total`` | counter | |
| ``cdrveil_resends_total`` | counter | |
| ``cdrveil_transaction_recoveries_total`` | counter | reason |
| ``cdrveil_record_latency_seconds`` | histogram | |
| ``cdrveil_batch_seconds`` | histogram | |
| ``cdrveil_consent_states``, ``cdrveil_warrants_active`` | gauge | |
| ``cdrveil_consent_last_update_timestamp_seconds`` | gauge | |
| ``cdrveil_warrants_last_update_timestamp_seconds`` | gauge | |
| ``cdrveil_consumer_lag`` | gauge | topic, partition |
| ``cdrveil_key_info`` | gauge (1) | key_id |
| ``cdrveil_ready`` | gauge (0/1) | |
| ``cdrveil_build_info`` | gauge (1) | version |
"""

from __future__ import annotations

import math
import re
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline import __version__

#: Liveness: the process runs and its event loop answers.
HEALTH_PATH: Final = "/healthz"
#: Readiness: Kafka answers, tables recovered and partitions assigned (``cdrveil_ready`` is 1).
READY_PATH: Final = "/readyz"
#: The Prometheus text exposition of :meth:`Metrics.render`.
METRICS_PATH: Final = "/metrics"

#: The classic Prometheus text format, which every Prometheus version scrapes.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: Input broker timestamp to outputs acknowledged: 1 ms to 10 s.
LATENCY_BUCKETS: Final = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
#: One batch, from taking it off the consumer to committing its offsets.
BATCH_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# Topic-name characters (Kafka's own rule); reason codes and route names fit in them too.
_LABEL = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# Every normalized MSISDN (8-15 digits), IMSI (14-15) and IMEI (14-16) has such a run.
_IDENTIFIER_LIKE = re.compile(r"\d{8}")
# The keyring's own key-id rule (pipeline.core.keys).
_KEY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


def _label(value: str, what: str) -> str:
    """``value`` if it is safe as a label value, else a ``ValueError`` naming ``what``."""
    if not _LABEL.match(value) or _IDENTIFIER_LIKE.search(value):
        # The value itself stays out of the message: it may be the identifier we refuse.
        raise ValueError(
            f"{what} label refused: only letters, digits, '.', '_' and '-', "
            "and no run of 8 digits (it could be an identifier)"
        )
    return value


class _BulkHistogram(Collector):
    """A histogram that takes a whole batch of observations in one call.

    ``prometheus_client.Histogram.observe`` takes a lock per value (~0.7 µs); a batch of
    thousands of records is cheaper counted with ``bisect`` under one lock.
    """

    def __init__(self, name: str, documentation: str, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("histogram bounds must be distinct and increasing")
        self._name = name
        self._documentation = documentation
        self._bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self._bounds) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: Iterable[float]) -> None:
        """Count every value; negative ones (clock skew between hosts) count as 0."""
        bounds, counts = self._bounds, self._counts
        total = 0.0
        with self._lock:
            for value in values:
                if not value > 0.0:  # also catches NaN
                    value = 0.0
                elif math.isinf(value):
                    value = bounds[-1] * 2  # +Inf bucket, without an infinite sum
                counts[bisect_left(bounds, value)] += 1
                total += value
            self._sum += total

    def collect(self) -> Iterator[Metric]:
        """The cumulative buckets, sum and count, as Prometheus expects them."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        family = HistogramMetricFamily(self._name, self._documentation)
        cumulative, buckets = 0, []
        for bound, count in zip((*self._bounds, math.inf), counts, strict=True):
            cumulative += count
            buckets.append((_bound_text(bound), float(cumulative)))
        family.add_metric([], buckets, total)
        yield family

    def describe(self) -> Iterator[Metric]:
        """The family without samples, so the registry knows its names up front."""
        yield HistogramMetricFamily(self._name, self._documentation)


class Metrics:
    """Every metric of one worker, on its own registry."""

    def __init__(self, version: str = __version__) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self._records_in = Counter(
            "cdrveil_records_in", "Input records taken, per input topic.", ["topic"], registry=reg
        )
        self._outputs = Counter(
            "cdrveil_outputs",
            "Output records acknowledged by the broker, per route.",
            ["route"],
            registry=reg,
        )
        self._withheld = Counter(
            "cdrveil_outputs_withheld",
            "Records a billing or analytics route published nothing of, per route and reason: "
            "not_billable, no_consent, objection (an objection the route excludes, Art. 21).",
            ["route", "reason"],
            registry=reg,
        )
        self._withheld_seen: dict[tuple[str, str], int] = {}
        self._dead_letters = Counter(
            "cdrveil_dead_letters",
            "Inputs sent to the dead-letter topic, per reason code.",
            ["reason"],
            registry=reg,
        )
        self._party_numbers = Counter(
            "cdrveil_party_numbers",
            "Other parties' numbers in processed records, per class: msisdn, or one that is no "
            "MSISDN (service_code, short_number, alphanumeric, unparseable), which the policy's "
            "[party_numbers] table routes.",
            ["class"],
            registry=reg,
        )
        self._state_messages = Counter(
            "cdrveil_state_messages",
            "Consent and warrant messages applied to the tables, per state topic.",
            ["topic"],
            registry=reg,
        )
        self._unknown_fields = Counter(
            "cdrveil_state_unknown_fields",
            "Consent and warrant messages carrying a field the schema does not define, per "
            "state topic and field name ('(other)' for a name that is not plain or too many).",
            ["topic", "field"],
            registry=reg,
        )
        self._unknown_seen: dict[tuple[str, str], int] = {}
        self._commit_failures = Counter(
            "cdrveil_commit_failures",
            "Offset commits refused (after a rebalance); those records are redelivered.",
            registry=reg,
        )
        self._resends = Counter(
            "cdrveil_resends", "Output batches sent again after a failed delivery.", registry=reg
        )
        self._recoveries = Counter(
            "cdrveil_transaction_recoveries",
            "Exactly-once: failed transactions the worker recovered from (new producer, "
            "rewound to the committed offsets), per reason code.",
            ["reason"],
            registry=reg,
        )
        self._latency = _BulkHistogram(
            "cdrveil_record_latency_seconds",
            "Input broker timestamp to all of the record's outputs acknowledged.",
            LATENCY_BUCKETS,
        )
        self._batch = _BulkHistogram(
            "cdrveil_batch_seconds",
            "One input batch: taken from the consumer to offsets committed.",
            BATCH_BUCKETS,
        )
        reg.register(self._latency)
        reg.register(self._batch)
        self._consent_states = Gauge(
            "cdrveil_consent_states", "Subscribers in the consent table.", registry=reg
        )
        self._warrants = Gauge(
            "cdrveil_warrants_active", "Warrants in the warrant table (not revoked).", registry=reg
        )
        self._consent_updated = Gauge(
            "cdrveil_consent_last_update_timestamp_seconds",
            "Broker timestamp (Unix seconds) of the newest consent message applied.",
            registry=reg,
        )
        self._warrants_updated = Gauge(
            "cdrveil_warrants_last_update_timestamp_seconds",
            "Broker timestamp (Unix seconds) of the newest warrant message applied.",
            registry=reg,
        )
        self._lag = Gauge(
            "cdrveil_consumer_lag",
            "Records between the committed offset (before this worker's first commit on it, "
            "the first offset it took) and the high-water mark of each assigned partition.",
            ["topic", "partition"],
            registry=reg,
        )
        self._key_info = Gauge(
            "cdrveil_key_info",
            "1 for the active pseudonymization key id.",
            ["key_id"],
            registry=reg,
        )
        self._ready = Gauge(
            "cdrveil_ready", "1 when tables are recovered and partitions assigned.", registry=reg
        )
        self._build_info = Gauge(
            "cdrveil_build_info", "1, labelled with the cdrveil version.", ["version"], registry=reg
        )
        self._build_info.labels(version).set(1)
        self._active_key: str | None = None

    # -- the record path (once per batch) ------------------------------------------------------

    def record_batch(
        self,
        topic_counts: Mapping[str, int],
        route_counts: Mapping[str, int],
        dead_letter_counts: Mapping[str, int],
        latencies: Iterable[float],
        batch_seconds: float | None = None,
        party_counts: Mapping[str, int] | None = None,
    ) -> None:
        """Count one committed batch: inputs per topic, outputs per route, dead letters per
        reason code, each record's latency in seconds, the batch's own duration, and the
        other parties' numbers per class (``pipeline.core.party``)."""
        # Every label is checked before anything is counted: a refused batch counts nothing.
        increments = [
            (counter, _label(name, what), count)
            for counter, counts, what in (
                (self._records_in, topic_counts, "topic"),
                (self._outputs, route_counts, "route"),
                (self._dead_letters, dead_letter_counts, "reason"),
                (self._party_numbers, party_counts or {}, "class"),
            )
            for name, count in counts.items()
            if count
        ]
        for counter, label, count in increments:
            counter.labels(label).inc(count)
        self._latency.observe_many(latencies)
        if batch_seconds is not None:
            self._batch.observe_many((batch_seconds,))

    def record_withheld(self, totals: Mapping[tuple[str, str], int]) -> None:
        """The engine's running totals of withheld outputs by (route, reason): counts what
        was added since the last call."""
        for (route, reason), total in totals.items():
            seen = self._withheld_seen.get((route, reason), 0)
            if total > seen:
                self._withheld.labels(_label(route, "route"), _label(reason, "reason")).inc(
                    total - seen
                )
                self._withheld_seen[route, reason] = total

    def record_commit_failure(self) -> None:
        """An offset commit was refused; its records will be processed again."""
        self._commit_failures.inc()

    def record_resends(self, batches: int) -> None:
        """Output batches that had to be sent again."""
        if batches:
            self._resends.inc(batches)

    def record_transaction_recovery(self, reason: str) -> None:
        """A failed transaction recovered from, by reason code."""
        self._recoveries.labels(reason=_label(reason, "reason")).inc()

    # -- the state tables ----------------------------------------------------------------------

    def record_state_messages(self, topic: str, count: int) -> None:
        """Consent or warrant messages applied from ``topic``."""
        if count:
            self._state_messages.labels(_label(topic, "topic")).inc(count)

    def record_unknown_fields(self, topic: str, totals: Mapping[str, int]) -> None:
        """A table's running totals of undefined fields by name: counts what was added."""
        for name, total in totals.items():
            seen = self._unknown_seen.get((topic, name), 0)
            if total > seen:
                label = _label(name, "field") if name != "(other)" else "other"
                self._unknown_fields.labels(_label(topic, "topic"), label).inc(total - seen)
                self._unknown_seen[topic, name] = total

    def set_tables(
        self,
        consent_states: int,
        warrants: int,
        consent_updated_at: float | None = None,
        warrants_updated_at: float | None = None,
    ) -> None:
        """Table sizes, and the broker timestamps (Unix seconds) of the newest messages
        applied; ``None`` leaves a timestamp as it was, and it never goes back in time."""
        self._consent_states.set(consent_states)
        self._warrants.set(warrants)
        for gauge, when in (
            (self._consent_updated, consent_updated_at),
            (self._warrants_updated, warrants_updated_at),
        ):
            if when is not None and when > _value(gauge):
                gauge.set(when)

    # -- the consumer ---------------------------------------------------------------------------

    def set_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        """The lag of every partition assigned now, keyed by (topic, partition).

        Replaces the previous set, so a partition that moved to another worker after a
        rebalance stops being reported here instead of showing a stale value forever.
        """
        series = {
            (_label(topic, "topic"), str(int(partition))): max(0, value)
            for (topic, partition), value in lag.items()
        }
        self._lag.clear()
        for (topic, partition), value in series.items():
            self._lag.labels(topic, partition).set(value)

    def set_active_key(self, key_id: str) -> None:
        """The key id of the active pseudonymization epoch (the only series, value 1)."""
        if not _KEY_ID.match(key_id):
            raise ValueError("key id label refused: not a key id of the keyring's form")
        if key_id != self._active_key:
            self._key_info.clear()
            self._key_info.labels(key_id).set(1)
            self._active_key = key_id

    def set_ready(self, ready: bool) -> None:
        """Whether the worker processes records (tables recovered, partitions assigned)."""
        self._ready.set(1 if ready else 0)

    @property
    def ready(self) -> bool:
        """What the last :meth:`set_ready` said (for the readiness endpoint)."""
        return _value(self._ready) == 1

    # -- exposition -----------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The body and content type of a ``/metrics`` answer."""
        return generate_latest(self.registry), CONTENT_TYPE


def _bound_text(bound: float) -> str:
    """A bucket bound as the exposition format writes it (``0.005``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(bound)


def _value(gauge: Gauge) -> float:
    """The current value of a label-less gauge."""
    for family in gauge.collect():
        for sample in family.samples:
            return float(sample.value)
    return 0.0
