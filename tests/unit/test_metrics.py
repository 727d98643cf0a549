"""Worker metrics: counted per label, rendered in the Prometheus text format, no identifiers;
and the start-up status that readiness follows."""

from __future__ import annotations

import math
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline import __version__
from pipeline.shell.status import WorkerStatus
from pipeline.shell.telemetry import LATENCY_BUCKETS, Metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    """Render, parse as Prometheus would, and index every sample by name and labels."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; a KeyError says the series is missing."""
    return samples[(name, frozenset(labels.items()))]


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    """The label sets of every series of ``name``."""
    return [dict(labels) for (n, labels) in samples if n == name]


def test_batches_are_counted_per_topic_route_and_reason_and_add_up() -> None:
    m = Metrics()
    m.record_batch({"cdr.voice": 3, "cdr.sms": 2}, {"billing": 2, "marketing": 4}, {}, [])
    m.record_batch({"cdr.voice": 1}, {"billing": 1}, {"bad_msisdn": 1, "invalid_json": 2}, [])
    s = scrape(m)
    assert value(s, "cdrveil_records_in_total", topic="cdr.voice") == 4
    assert value(s, "cdrveil_records_in_total", topic="cdr.sms") == 2
    assert value(s, "cdrveil_outputs_total", route="billing") == 3
    assert value(s, "cdrveil_outputs_total", route="marketing") == 4
    assert value(s, "cdrveil_dead_letters_total", reason="bad_msisdn") == 1
    assert value(s, "cdrveil_dead_letters_total", reason="invalid_json") == 2


def test_a_zero_count_makes_no_series() -> None:
    m = Metrics()
    m.record_batch({"cdr.voice": 0}, {"billing": 0}, {"oversize": 0}, [])
    s = scrape(m)
    assert series(s, "cdrveil_records_in_total") == []
    assert series(s, "cdrveil_outputs_total") == []
    assert series(s, "cdrveil_dead_letters_total") == []


def test_latencies_land_in_cumulative_buckets_with_inclusive_upper_bounds() -> None:
    m = Metrics()
    m.record_batch({}, {}, {}, [0.001, 0.0015, 0.3, 12.0])
    s = scrape(m)
    bucket = "cdrveil_record_latency_seconds_bucket"
    assert value(s, bucket, le="0.001") == 1  # a value on a bound counts in that bucket
    assert value(s, bucket, le="0.002") == 2
    assert value(s, bucket, le="0.2") == 2
    assert value(s, bucket, le="0.5") == 3
    assert value(s, bucket, le="10.0") == 3
    assert value(s, bucket, le="+Inf") == 4
    assert value(s, "cdrveil_record_latency_seconds_count") == 4
    assert value(s, "cdrveil_record_latency_seconds_sum") == pytest.approx(12.3025)


def test_latency_buckets_span_one_millisecond_to_ten_seconds() -> None:
    s = scrape(Metrics())
    bounds = {dict(labels)["le"] for (name, labels) in s if name.endswith("latency_seconds_bucket")}
    assert min(LATENCY_BUCKETS) == 0.001
    assert max(LATENCY_BUCKETS) == 10.0
    assert bounds == {repr(b) for b in LATENCY_BUCKETS} | {"+Inf"}


def test_negative_or_nan_latencies_from_clock_skew_count_as_zero() -> None:
    m = Metrics()
    m.record_batch({}, {}, {}, [-0.5, math.nan, math.inf])
    s = scrape(m)
    assert value(s, "cdrveil_record_latency_seconds_bucket", le="0.001") == 2
    assert value(s, "cdrveil_record_latency_seconds_bucket", le="+Inf") == 3
    assert math.isfinite(value(s, "cdrveil_record_latency_seconds_sum"))


def test_batch_duration_is_one_observation_per_batch() -> None:
    m = Metrics()
    m.record_batch({"cdr.voice": 5}, {}, {}, [0.01] * 5, batch_seconds=0.04)
    m.record_batch({"cdr.voice": 5}, {}, {}, [0.01] * 5)  # duration not measured
    s = scrape(m)
    assert value(s, "cdrveil_batch_seconds_count") == 1
    assert value(s, "cdrveil_batch_seconds_bucket", le="0.025") == 0
    assert value(s, "cdrveil_batch_seconds_bucket", le="0.05") == 1
    assert value(s, "cdrveil_record_latency_seconds_count") == 10


def test_table_sizes_and_update_times_are_gauges_that_never_go_back_in_time() -> None:
    m = Metrics()
    m.set_tables(10_000, 2, consent_updated_at=1_800_000_000.5, warrants_updated_at=1_700_000_000)
    m.set_tables(10_001, 1, consent_updated_at=1_799_999_000)  # an older message, replayed
    s = scrape(m)
    assert value(s, "cdrveil_consent_states") == 10_001
    assert value(s, "cdrveil_warrants_active") == 1
    assert value(s, "cdrveil_consent_last_update_timestamp_seconds") == 1_800_000_000.5
    assert value(s, "cdrveil_warrants_last_update_timestamp_seconds") == 1_700_000_000


def test_state_messages_commit_failures_and_resends_are_counted() -> None:
    m = Metrics()
    m.record_state_messages("consent.state", 7)
    m.record_state_messages("li.warrants", 0)
    m.record_commit_failure()
    m.record_resends(2)
    s = scrape(m)
    assert value(s, "cdrveil_state_messages_total", topic="consent.state") == 7
    assert series(s, "cdrveil_state_messages_total") == [{"topic": "consent.state"}]
    assert value(s, "cdrveil_commit_failures_total") == 1
    assert value(s, "cdrveil_resends_total") == 2


def test_lag_is_replaced_so_a_revoked_partition_disappears() -> None:
    m = Metrics()
    m.set_lag({("cdr.voice", 0): 120, ("cdr.voice", 1): 5, ("cdr.sms", 0): -3})
    m.set_lag({("cdr.voice", 1): 7, ("cdr.sms", 0): 0})  # partition 0 moved to another worker
    s = scrape(m)
    assert value(s, "cdrveil_consumer_lag", topic="cdr.voice", partition="1") == 7
    assert value(s, "cdrveil_consumer_lag", topic="cdr.sms", partition="0") == 0
    assert len(series(s, "cdrveil_consumer_lag")) == 2


def test_negative_lag_is_reported_as_zero() -> None:
    m = Metrics()
    m.set_lag({("cdr.sms", 3): -3})
    assert value(scrape(m), "cdrveil_consumer_lag", topic="cdr.sms", partition="3") == 0


def test_only_the_active_key_id_is_reported_after_a_rotation() -> None:
    m = Metrics()
    m.set_active_key("k1")
    m.set_active_key("k2")
    s = scrape(m)
    assert series(s, "cdrveil_key_info") == [{"key_id": "k2"}]
    assert value(s, "cdrveil_key_info", key_id="k2") == 1


def test_a_key_id_that_is_not_of_the_keyrings_form_is_refused() -> None:
    m = Metrics()
    with pytest.raises(ValueError, match="key id"):
        m.set_active_key("K 1")
    assert series(scrape(m), "cdrveil_key_info") == []


def test_ready_follows_set_ready() -> None:
    m = Metrics()
    assert value(scrape(m), "cdrveil_ready") == 0
    assert not m.ready
    m.set_ready(True)
    assert value(scrape(m), "cdrveil_ready") == 1
    assert m.ready
    m.set_ready(False)
    assert value(scrape(m), "cdrveil_ready") == 0


def test_build_info_carries_the_version() -> None:
    assert value(scrape(Metrics()), "cdrveil_build_info", version=__version__) == 1
    assert value(scrape(Metrics("9.9.9")), "cdrveil_build_info", version="9.9.9") == 1


@pytest.mark.parametrize(
    "bad",
    ["46701234567", "+46 70-123 45 67", "240011234567890", "reason/46701234567", ""],
)
def test_a_label_that_could_be_an_identifier_is_refused_and_nothing_is_counted(bad: str) -> None:
    m = Metrics()
    with pytest.raises(ValueError, match="label refused") as caught:
        m.record_batch({"cdr.voice": 1}, {"billing": 1}, {bad: 1}, [0.1])
    if bad:
        assert bad not in str(caught.value)  # the message does not repeat the value
    s = scrape(m)
    assert series(s, "cdrveil_records_in_total") == []
    assert series(s, "cdrveil_outputs_total") == []
    assert series(s, "cdrveil_dead_letters_total") == []


def test_an_identifier_as_a_lag_topic_or_state_topic_is_refused() -> None:
    m = Metrics()
    with pytest.raises(ValueError):
        m.set_lag({("46701234567", 0): 1})
    with pytest.raises(ValueError):
        m.record_state_messages("46701234567", 1)
    s = scrape(m)
    assert series(s, "cdrveil_consumer_lag") == []
    assert series(s, "cdrveil_state_messages_total") == []


def test_no_rendered_label_value_holds_a_digit_run_an_identifier_could_have() -> None:
    m = Metrics()
    m.record_batch(
        {"staging.cdr.voice": 3},
        {"lawful_intercept": 1, "network_planning": 2},
        {"bad_imei": 1},
        [0.01],
        0.02,
    )
    m.set_lag({("staging.cdr.voice", 7): 1})
    m.set_active_key("k2026-11")
    body, _ = m.render()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            for name, label_value in sample.labels.items():
                if name != "le":
                    assert not re.search(r"\d{8}", label_value), (sample.name, name)


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.record_batch({"cdr.voice": 5}, {}, {}, [])
    assert value(scrape(a), "cdrveil_records_in_total", topic="cdr.voice") == 5
    assert series(scrape(b), "cdrveil_records_in_total") == []


def test_every_family_has_help_and_a_cdrveil_name() -> None:
    body, _ = Metrics().render()
    families = list(text_string_to_metric_families(body.decode()))
    assert len(families) >= 15
    for family in families:
        assert family.name.startswith("cdrveil_")
        assert family.documentation


def test_worker_status_is_ready_with_tables_and_partitions_and_drives_the_gauge() -> None:
    """The start-up states /health names, in order; ready needs tables and partitions."""
    m = Metrics()
    status = WorkerStatus(m)
    seen = [status.status()]
    status.kafka_reached()
    seen.append(status.status())
    status.assigned(3)  # partitions before the tables: still not ready
    assert not status.ready and value(scrape(m), "cdrveil_ready") == 0
    status.assigned(0)
    status.tables_recovered()
    seen.append(status.status())
    status.assigned(2)
    seen.append(status.status())
    assert seen == ["waiting-for-kafka", "loading-tables", "joining-group", "ready"]
    assert status.ready and value(scrape(m), "cdrveil_ready") == 1
    status.assigned(0)  # a rebalance took every partition, or the worker stops
    assert status.reason().startswith("no input partition is assigned")
    assert value(scrape(m), "cdrveil_ready") == 0


def test_a_worker_whose_kafka_stops_answering_is_not_ready_until_it_answers_again() -> None:
    """Tables and partitions are kept while the broker is away; readiness is not."""
    m = Metrics()
    status = WorkerStatus(m)
    status.kafka_reached()
    status.tables_recovered()
    status.assigned(4)
    assert status.ready and value(scrape(m), "cdrveil_ready") == 1
    status.kafka_lost()
    assert not status.ready and value(scrape(m), "cdrveil_ready") == 0
    assert status.status() == "waiting-for-kafka"
    assert status.reason() == "Kafka is not reachable"
    status.kafka_reached()
    assert status.ready and value(scrape(m), "cdrveil_ready") == 1


def test_withheld_outputs_are_counted_per_route_and_reason_from_running_totals() -> None:
    """The engine keeps running totals; the metric counts what each call adds."""
    m = Metrics()
    m.record_withheld({("network_planning", "objection"): 2, ("marketing", "no_consent"): 5})
    m.record_withheld({("network_planning", "objection"): 3, ("marketing", "no_consent"): 5})
    s = scrape(m)
    withheld = "cdrveil_outputs_withheld_total"
    assert value(s, withheld, route="network_planning", reason="objection") == 3
    assert value(s, withheld, route="marketing", reason="no_consent") == 5


def test_unknown_state_fields_are_counted_per_topic_and_name() -> None:
    m = Metrics()
    m.record_unknown_fields("consent.state", {"objection": 1, "(other)": 2})
    m.record_unknown_fields("consent.state", {"objection": 4, "(other)": 2})
    s = scrape(m)
    name = "cdrveil_state_unknown_fields_total"
    assert value(s, name, topic="consent.state", field="objection") == 4
    assert value(s, name, topic="consent.state", field="other") == 2


def test_party_numbers_are_counted_per_class() -> None:
    """Other parties' numbers per class, from the batch interface's counts."""
    m = Metrics()
    m.record_batch({"cdr.voice": 2}, {}, {}, [], None, {"msisdn": 1, "service_code": 1})
    m.record_batch({"cdr.sms": 1}, {}, {}, [], None, {"alphanumeric": 1, "service_code": 2})
    s = scrape(m)
    assert value(s, "cdrveil_party_numbers_total", **{"class": "service_code"}) == 3
    assert value(s, "cdrveil_party_numbers_total", **{"class": "alphanumeric"}) == 1
    assert value(s, "cdrveil_party_numbers_total", **{"class": "msisdn"}) == 1
