"""The examples in schemas/ hold only values the decoders really write.

Every valid example that carries a record (inputs, every route's output, the record inside
a lawful-intercept delivery) is checked field by field against the BER decoder: each value
of a field the decoder takes from a table (recordType, systemType, causeForTerm,
basicService, diagnostics, smsResult) is put into a minimal record of its type, encoded to
BER by pycrate and decoded by ``cdrveil ingest``'s decoder, and must come back unchanged.
Number forms and fields the decoder never writes (``mediationBatch``) stay: JSON producers
send those. Every dead-letter example's reason and message must be one the framing, the
BER decoder or the worker's JSON decoder produces, and its timestamp in the writer's form.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycrate_asn1rt.err import ASN1Err

from pipeline.ber import BerRecordDecoder, CdrFileReader, CdrFrame, RejectedCdr, decode_cdr_file
from pipeline.ber.schema import RECORD_SCHEMAS, Kind
from pipeline.core.decode import Decoder, Rejection
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.shell.deadletter import rfc3339
from tests.support.ingest import RECORDS, build_file, encoder
from tests.support.schemas import SCHEMA_DIR, read_json

EXAMPLES = sorted((SCHEMA_DIR / "examples").glob("*.json"))
#: Field kinds whose JSON value the decoder takes from a table (or builds from a code).
TABLE_KINDS = {Kind.RECORD_TYPE, Kind.ENUM, Kind.CAUSE, Kind.BASIC_SERVICE, Kind.DIAGNOSTICS}
TABLE_FIELDS = {
    schema.record_type: {spec.name for spec in schema.fields.values() if spec.kind in TABLE_KINDS}
    for schema in RECORD_SCHEMAS.values()
}
#: The smallest valid record of each type (tests.support.ingest), to put one value into.
MINIMAL = {
    record["recordType"]: record for record in (RECORDS[1], RECORDS[3], RECORDS[5], RECORDS[7])
}


def records_in(node: Any) -> Iterator[dict[str, Any]]:
    """Every object of a document that is a CDR (has a recordType), at any depth."""
    if isinstance(node, dict):
        if isinstance(node.get("recordType"), str):
            yield node
        for value in node.values():
            yield from records_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from records_in(value)


def decoded(record_type: str, field: str, value: Any) -> Any:
    """``value`` of ``field`` as it comes out of BER encoding and ingest decoding."""
    record = {**MINIMAL[record_type], field: value}
    try:
        cdr = encoder()(record)
    except (KeyError, ValueError, ASN1Err) as exc:  # no BER encoding: the decoder cannot write it
        return f"<not encodable: {exc}>"
    result = BerRecordDecoder()(cdr, "F:0")
    return result.get(field, "<absent>") if isinstance(result, dict) else result


CASES = [
    pytest.param(path, id=path.name)
    for path in EXAMPLES
    if any(True for _ in records_in(read_json(path)))
]


def test_the_examples_with_records_are_all_checked() -> None:
    """Each record schema has examples here (the check below is not vacuous)."""
    stems = {Path(case.values[0]).name.split(".")[0] for case in CASES}  # type: ignore[arg-type]
    assert {"voice-cdr", "sms-record", "billing", "analytics", "lawful-intercept"} <= stems


@pytest.mark.parametrize("path", CASES)
def test_every_table_value_of_an_example_is_one_the_decoder_writes(path: Path) -> None:
    for record in records_in(read_json(path)):
        record_type = record["recordType"]
        assert record_type in TABLE_FIELDS, f"{path.name}: no such record type"
        for field in sorted(TABLE_FIELDS[record_type] & record.keys()):
            value = record[field]
            assert decoded(record_type, field, value) == value, f"{path.name}: {field}"


def test_the_check_refuses_values_the_decoder_never_writes() -> None:
    """The values issue 18 found in the examples, and a diagnostics form ingest never uses."""
    assert decoded("mtSMSRecord", "smsResult", "memoryCapacityExceeded") != (
        "memoryCapacityExceeded"
    )
    assert decoded("mtSMSRecord", "systemType", "uTRAN") != "uTRAN"
    assert decoded("moCallRecord", "diagnostics", "gsm0408Cause:16") != "gsm0408Cause:16"
    assert decoded("mtSMSRecord", "smsResult", "gsm0902MapErrorValue:27") == (
        "gsm0902MapErrorValue:27"
    )


# -- dead letters -------------------------------------------------------------------------


def _shape(message: str) -> str:
    """A message with its numbers (octet counts, offsets) left out."""
    return re.sub(r"\d+", "N", message)


@cache
def ingest_messages() -> frozenset[tuple[str, str]]:
    """(code, message shape) of what the framing and the BER decoder write for damaged files."""
    built = build_file()
    data = built.data
    first, second = built.offsets[0], built.offsets[1]
    anonymous = dict(MINIMAL["moCallRecord"])
    del anonymous["servedMSISDN"]
    damaged = [
        data[:-7],  # truncated_cdr
        data[:second] + b"\x00\x00garbage" + data[second:],  # bad_cdr_header
        data[:4] + b"\x00\x00\x00\x03" + data[8:],  # bad_file_header: header length 3
        data[:first] + b"\x00\x09" + data[first + 2 :],  # cdr_length_mismatch
        build_file(replace={0: encoder()(anonymous)}).data,  # missing_field
        data[: second - 1],  # truncated_cdr, a header that runs past the end
    ]
    found = set()
    for file in damaged:
        for item in decode_cdr_file(file, "F.dat", BerRecordDecoder()):
            if isinstance(item, RejectedCdr):
                found.add((item.code, _shape(item.message)))
    assert {code for code, _ in found} >= {
        "truncated_cdr",
        "bad_cdr_header",
        "bad_file_header",
        "cdr_length_mismatch",
        "missing_field",
    }
    assert any(isinstance(i, CdrFrame) for i in CdrFileReader(data).frames())
    return frozenset(found)


@cache
def worker_messages() -> frozenset[tuple[str, str]]:
    """(code, message) of what the worker's JSON decoder writes for some bad inputs."""
    decode = Decoder(MsisdnNormalizer("46", "0"))
    bad = [
        None,
        b"\xff\xfe",
        b'{"recordId": "r1", "recordType": "moCallRecord",',
        b"[1, 2]",
        b'{"recordId": "r1", "recordType": "moSMSRecord", "servedMSISDN": "12ab",'
        b' "originationTime": "2026-11-21T05:00:00Z"}',
        b'{"recordId": "r1", "recordType": "mtSMSRecord", "servedMSISDN": "12ab",'
        b' "deliveryTime": "2026-11-21T05:00:00Z"}',
    ]
    found = set()
    for raw in bad:
        result = decode(raw)
        assert isinstance(result, Rejection)
        found.add((result.code, result.message))
    return frozenset(found)


DEAD_LETTERS = [
    pytest.param(path, id=path.name) for path in EXAMPLES if path.name.startswith("dead-letter.")
]


@pytest.mark.parametrize("path", DEAD_LETTERS)
def test_a_dead_letter_example_says_what_a_decoder_writes_when_the_writer_would(
    path: Path,
) -> None:
    headers = read_json(path)
    code, message = headers["dlq.error.code"], headers["dlq.error.message"]
    if "dlq.source.file" in headers:
        assert (code, _shape(message)) in ingest_messages()
    else:
        assert (code, message) in worker_messages()
    moment = datetime.fromisoformat(headers["dlq.timestamp"].replace("Z", "+00:00"))
    assert rfc3339(moment) == headers["dlq.timestamp"]
