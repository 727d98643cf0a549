"""The native engine's finished record batches are the ones the worker's own path builds.

``NativeBatchEngine.process_batch_records`` must give, byte for byte, what
``reference_record_batches`` (aiokafka's ``BatchBuilder`` and the worker's
``Partitioner``) builds from the reference engine's outputs for the same layout: the same
partitions in the same order, the same record batches (v2, CRC-32C), the same keyless
counter after them. Its murmur2 and CRC-32C are checked against aiokafka's own.
"""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import murmur2 as kafka_murmur2
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.record.util import calc_crc32c
from hypothesis import given
from hypothesis import strategies as st

from pipeline import _engine
from pipeline.core.batch import Layout, RecordBatchEngine
from pipeline.core.keys import Pseudonymizer
from pipeline.core.policy import Policy
from pipeline.shell.clients import MAX_BATCH_BYTES
from pipeline.shell.produce import murmur2, reference_record_batches
from tests.support.core import (
    OTHER,
    SERVED,
    consent_value,
    encode,
    mo_call,
    mt_sms,
    records,
    warrant_value,
)
from tests.unit.test_native_engine import (
    PROPERTY,
    Message,
    Pair,
    consent_messages,
    policies,
    warrant_messages,
)

STAMP = 1_764_756_000_000


@st.composite
def layouts(draw: st.DrawFn, topics: list[str]) -> Layout:
    """Partition counts per topic, a batch size from tiny (a batch per record) to the
    worker's, any CreateTime, any keyless counter."""
    partitions = {topic: draw(st.integers(1, 12)) for topic in topics}
    batch_bytes = draw(st.sampled_from([1, 300, 900, 2048, 16384, MAX_BATCH_BYTES]))
    stamp = draw(st.sampled_from([STAMP, 0, 2**41 + 7]))
    return Layout(partitions, batch_bytes, stamp, draw(st.integers(0, 2**48)))


def check(pair: Pair, values: list[bytes | None], layout: Layout) -> Any:
    """The native record batches equal the reference ones built from the reference outputs."""
    native = pair.native
    assert isinstance(native, RecordBatchEngine)
    expected = pair.reference(values)
    got = native.process_batch_records(values, layout)
    assert got.rejections == expected.rejections
    want, after = reference_record_batches(expected.outputs, layout)
    assert got.round_robin == after
    assert [(p.topic, p.partition, len(p.batches)) for p in got.partitions] == [
        (p.topic, p.partition, len(p.batches)) for p in want
    ]
    for mine, theirs in zip(got.partitions, want, strict=True):
        assert mine == theirs
        for buffer in mine.batches:
            assert type(buffer) is bytes
            assert DefaultRecordBatch(buffer).validate_crc()
    return got


@PROPERTY
@given(
    st.lists(records(), min_size=1, max_size=8),
    consent_messages(),
    warrant_messages(),
    st.data(),
)
def test_record_batches_equal_the_reference_builders(
    policy: Policy,
    pseudonymizer: Pseudonymizer,
    batch: list[dict[str, Any]],
    consent: list[Message],
    warrants: list[Message],
    data: st.DataObject,
) -> None:
    """The default policy, any records, consent and warrants, any layout: the same bytes."""
    pair = Pair(policy, pseudonymizer)
    pair.feed(consent, warrants)
    layout = data.draw(layouts(list(pair.native.output_topics)))
    check(pair, [encode(record) for record in batch], layout)


@PROPERTY
@given(
    policies(),
    st.lists(records(), min_size=1, max_size=6),
    consent_messages(),
    warrant_messages(),
    st.data(),
)
def test_generated_policies_give_the_reference_record_batches(
    pseudonymizer: Pseudonymizer,
    generated: Policy,
    batch: list[dict[str, Any]],
    consent: list[Message],
    warrants: list[Message],
    data: st.DataObject,
) -> None:
    """Any valid policy and a topic prefix: every route's records where the reference puts them."""
    pair = Pair(generated, pseudonymizer, topic_prefix="test.")
    pair.feed(consent, warrants)
    layout = data.draw(layouts(list(pair.native.output_topics)))
    check(pair, [encode(record) for record in batch] + [None, b"{"], layout)


def test_the_keyless_counter_comes_back_as_given(
    policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    """Every engine output has a key today (the served number or IMSI, or the LIID; a record
    with neither is rejected), so the counter passes through; the builder's round robin for
    keyless messages is tested in the crate (``batches::tests``)."""
    pair = Pair(policy, pseudonymizer)
    record = mo_call()
    del record["servedMSISDN"], record["servedIMSI"]
    values = [encode(record), encode(mo_call()), encode(mt_sms())]
    layout = Layout({topic: 3 for topic in pair.native.output_topics}, MAX_BATCH_BYTES, STAMP, 7)
    got = check(pair, values, layout)
    assert got.round_robin == 7
    assert [index for index, _ in got.rejections] == [0]
    assert got.partitions


def test_intercepts_and_consent_versions_travel_in_the_headers(
    policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    """A lawful-intercept output (with its LIID header) and a consented analytics one."""
    pair = Pair(policy, pseudonymizer)
    pair.feed(
        [(SERVED.encode(), consent_value(SERVED, {"marketing": True}, 2**64 - 1))],
        [(b"LI-1", warrant_value("LI-1", [("msisdn", OTHER)]))],
    )
    values = [encode(mo_call()), encode(mt_sms()), None, b"[]"]
    layout = Layout({topic: 5 for topic in pair.native.output_topics}, 2048, STAMP, 0)
    got = check(pair, values, layout)
    headers = [
        dict(record.headers)
        for part in got.partitions
        for buffer in part.batches
        for record in DefaultRecordBatch(buffer)
    ]
    assert any("cdrveil.liid" in h for h in headers)
    assert any(h.get("cdrveil.consent-version") == str(2**64 - 1).encode() for h in headers)
    assert len(got.rejections) == 2


def test_an_output_topic_without_a_partition_count_is_refused(
    policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    pair = Pair(policy, pseudonymizer)
    topics = list(pair.native.output_topics)
    for partitions in ({t: 2 for t in topics[1:]}, {**{t: 2 for t in topics}, topics[0]: 0}):
        try:
            pair.native.process_batch_records([encode(mo_call())], Layout(partitions, 1, 0, 0))
        except ValueError as exc:
            assert topics[0] in str(exc)
        else:
            raise AssertionError("a missing or empty partition count was taken")


def test_the_output_topics_are_every_routes_topic_once(
    policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    pair = Pair(policy, pseudonymizer, topic_prefix="p.")
    topics = pair.native.output_topics
    assert sorted(topics) == sorted({"p." + route.topic for route in policy.routes.values()})


@PROPERTY
@given(st.binary(max_size=300))
def test_murmur2_is_kafkas(data: bytes) -> None:
    """The native partitioner's hash is aiokafka's (the Java client's) and the shell's."""
    assert _engine.murmur2(data) & 0x7FFFFFFF == kafka_murmur2(data) & 0x7FFFFFFF
    assert _engine.murmur2(data) == murmur2(data)


@PROPERTY
@given(st.binary(max_size=3000))
def test_crc32c_is_aiokafkas(data: bytes) -> None:
    assert _engine.crc32c(data) == calc_crc32c(data)
