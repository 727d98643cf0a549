"""The decoder: a validated record or a Rejection with a stable code, never an exception."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.decode import REASONS, CdrRecord, Decoder, Rejection, parse_time
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.party import PartyClass, classify
from tests.support.core import (
    OTHER,
    SERVED,
    SERVED_IMEI14,
    SERVED_IMSI,
    encode,
    mo_call,
    mo_sms,
    mt_call,
    mt_sms,
)
from tests.support.properties import EXAMPLES
from tests.support.strategies import json_values, record_like

PROPERTY = settings(max_examples=EXAMPLES, deadline=None)


def minimal_sms(**fields: Any) -> dict[str, Any]:
    """The smallest valid MO SMS record; keyword arguments replace or add fields."""
    record: dict[str, Any] = {
        "recordId": "r1",
        "recordType": "moSMSRecord",
        "servedMSISDN": SERVED,
        "originationTime": "2026-11-21T05:00:00Z",
    }
    record.update(fields)
    return record


@pytest.mark.parametrize("factory", [mo_call, mt_call, mo_sms, mt_sms])
def test_valid_records_of_every_type_decode(decoder: Decoder, factory: Any) -> None:
    """The four record types decode to a CdrRecord with normalized identities."""
    record = decoder(encode(factory()))
    assert isinstance(record, CdrRecord)
    assert record.served_msisdn == SERVED
    assert record.imsi == SERVED_IMSI
    assert record.imei == SERVED_IMEI14


def test_decoded_record_normalizes_every_number_field(decoder: Decoder) -> None:
    """Other parties' numbers are normalized too, whatever form they arrived in."""
    record = decoder(
        encode(mo_call(calledNumber="0739876543", translatedNumber="+46 73-987 65 43"))
    )
    assert isinstance(record, CdrRecord)
    assert record.numbers["calledNumber"] == OTHER
    assert record.numbers["translatedNumber"] == OTHER


def test_a_minimal_record_decodes(decoder: Decoder) -> None:
    """recordId, recordType, one served identity and the required time are enough."""
    assert isinstance(decoder(encode(minimal_sms())), CdrRecord)


def test_null_fields_count_as_absent(decoder: Decoder) -> None:
    """A null optional field is ignored, not a type error."""
    assert isinstance(decoder(encode(minimal_sms(servedIMEI=None, location=None))), CdrRecord)


def test_unknown_extra_fields_are_allowed(decoder: Decoder) -> None:
    """Mediation adds its own fields; they are not a reason to reject."""
    assert isinstance(decoder(encode(minimal_sms(vendorField={"x": [1, 2]}))), CdrRecord)


# Each reason code, produced by the smallest input that causes it.
REASON_CASES: list[tuple[str, bytes | None, str | None]] = [
    ("null_value", None, None),
    ("oversize", b" " * 4097, None),
    ("invalid_utf8", b'{"recordId": "\xff"}', None),
    ("invalid_json", b'{"recordId": ', None),
    ("not_an_object", b"[]", None),
    ("missing_field", encode({"recordType": "moSMSRecord"}), "recordId"),
    ("wrong_type", encode(minimal_sms(recordId=5)), "recordId"),
    ("unknown_record_type", encode(minimal_sms(recordType="gprsRecord")), "recordType"),
    ("bad_msisdn", encode(minimal_sms(servedMSISDN="12ab")), "servedMSISDN"),
    ("bad_imsi", encode(minimal_sms(servedIMSI="2400112345")), "servedIMSI"),
    ("bad_imei", encode(minimal_sms(servedIMEI=SERVED_IMEI14 + "9")), "servedIMEI"),
    ("bad_timestamp", encode(minimal_sms(originationTime="2026-11-21 05:00")), "originationTime"),
    ("bad_value", encode(minimal_sms(messageReference=-1)), "messageReference"),
]


@pytest.mark.parametrize(("code", "raw", "field"), REASON_CASES, ids=[c[0] for c in REASON_CASES])
def test_each_reason_code_is_produced_by_a_minimal_input(
    decoder: Decoder, code: str, raw: bytes | None, field: str | None
) -> None:
    """Every stable reason code has an input that produces it, naming the field at fault."""
    result = decoder(raw)
    assert isinstance(result, Rejection)
    assert (result.code, result.field) == (code, field)
    assert result.message


def test_every_documented_reason_code_is_covered() -> None:
    """The table above covers exactly the codes the decoder documents."""
    assert {case[0] for case in REASON_CASES} == set(REASONS)


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"servedMSISDN": None}, "missing_field", "servedMSISDN"),
        ({"originationTime": None}, "missing_field", "originationTime"),
        ({"recordType": None}, "missing_field", "recordType"),
        ({"recordId": ""}, "bad_value", "recordId"),
        ({"recordId": "r" * 129}, "bad_value", "recordId"),
        ({"recordType": 1}, "wrong_type", "recordType"),
        ({"servedMSISDN": 46701234567}, "wrong_type", "servedMSISDN"),
        ({"servedIMSI": 240011234567890}, "wrong_type", "servedIMSI"),
        ({"messageReference": True}, "wrong_type", "messageReference"),
        ({"messageReference": 1.5}, "wrong_type", "messageReference"),
        ({"smsResult": [1]}, "wrong_type", "smsResult"),
        ({"location": "24001"}, "wrong_type", "location"),
        ({"location": {"mccMnc": "2400"}}, "bad_value", "location"),
        ({"location": {"mccMnc": "24001", "cellId": 70000}}, "bad_value", "location"),
        ({"location": {"mccMnc": "24001", "cellId": "1"}}, "wrong_type", "location"),
        ({"originationTime": "2026-11-21T05:00:00"}, "bad_timestamp", "originationTime"),
        ({"originationTime": "2026-11-21"}, "bad_timestamp", "originationTime"),
        ({"servedMSISDN": "+46 70-123 45 6\u0663"}, "bad_msisdn", "servedMSISDN"),
        # The SMS centre is a network element: its address must be one.
        ({"serviceCentre": "*100#"}, "bad_msisdn", "serviceCentre"),
    ],
)
def test_field_rules_reject_with_their_code(
    decoder: Decoder, fields: dict[str, Any], code: str, field: str
) -> None:
    """Missing, mistyped and out-of-range fields are rejections with the field named."""
    result = decoder(encode(minimal_sms(**fields)))
    assert isinstance(result, Rejection)
    assert (result.code, result.field) == (code, field)


def test_an_imsi_alone_identifies_the_served_subscriber(decoder: Decoder) -> None:
    """servedMSISDN may be absent when servedIMSI is present."""
    record = decoder(encode(minimal_sms(servedMSISDN=None, servedIMSI=SERVED_IMSI)))
    assert isinstance(record, CdrRecord)
    assert record.served_msisdn is None
    assert record.imsi == SERVED_IMSI


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({"callDuration": None}, "callDuration"),
        ({"seizureTime": None, "answerTime": None}, "seizureTime"),
    ],
)
def test_voice_records_require_a_duration_and_a_start(
    decoder: Decoder, fields: dict[str, Any], missing: str
) -> None:
    """A voice record without callDuration, or without seizureTime and answerTime, is rejected."""
    result = decoder(encode(mo_call(**fields)))
    assert isinstance(result, Rejection)
    assert (result.code, result.field) == ("missing_field", missing)


def test_an_mt_sms_requires_its_delivery_time(decoder: Decoder) -> None:
    """MT SMS: deliveryTime is the required time."""
    result = decoder(encode(mt_sms(deliveryTime=None)))
    assert isinstance(result, Rejection)
    assert (result.code, result.field) == ("missing_field", "deliveryTime")


def test_the_size_limit_is_a_setting(msisdn: MsisdnNormalizer) -> None:
    """A record of exactly max_bytes is decoded; one byte more is oversize."""
    raw = encode(minimal_sms(padding="x" * 300))
    assert isinstance(Decoder(msisdn, max_bytes=len(raw))(raw), CdrRecord)
    result = Decoder(msisdn, max_bytes=len(raw) - 1)(raw)
    assert isinstance(result, Rejection)
    assert result.code == "oversize"


@pytest.mark.parametrize(
    "value",
    ["2026-11-21T05:00:00Z", "2026-11-21T06:00:00+01:00", "2026-11-21T05:00:00.250-03:30"],
)
def test_rfc3339_times_with_an_offset_are_parsed(value: str) -> None:
    """RFC 3339 with Z or a numeric offset, optional fraction."""
    parsed = parse_time(value)
    assert parsed is not None
    assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-21",
        "2026-11-21T05:00:00",
        "20261121T050000Z",
        "yesterday",
        "2026-W47-6T05:00:00Z",  # ISO week date
        "2026-11-21T05:00:00+0100",  # offset without colon
        "2026-11-21T05:00:00+01",  # offset without minutes
        "2026-11-21T05:00:00+01:00:30",  # offset with seconds
        "2026-11-21T05:00:00 Z",  # space before the zone
    ],
)
def test_dates_naive_times_and_iso_variants_are_not_rfc3339(value: str) -> None:
    """A date, a time without offset, ISO week dates and non-RFC 3339 offsets are rejected."""
    assert parse_time(value) is None


def test_a_repeated_timestamp_is_parsed_once_and_gives_the_same_time(decoder: Decoder) -> None:
    """Timestamps recur across records (a second's string in many); the decoder memoizes
    the parse, and a cached time is the one parse_time gives."""
    time = "2026-11-21T06:00:00+01:00"
    first = decoder(encode(minimal_sms(recordId="a", originationTime=time)))
    second = decoder(encode(minimal_sms(recordId="b", originationTime=time)))
    moment = parse_time(time)
    assert moment is not None
    assert isinstance(first, CdrRecord) and isinstance(second, CdrRecord)
    assert first.times == second.times == [moment]
    assert second.times[0] is first.times[0]  # from the cache, not parsed again
    assert second.span == (moment.timestamp(), moment.timestamp())


def test_a_bad_timestamp_is_rejected_every_time_it_comes(decoder: Decoder) -> None:
    """The memo holds the failed parse too, and still rejects it."""
    for record_id in ("a", "b", "c"):
        result = decoder(encode(minimal_sms(recordId=record_id, originationTime="2026-11-21")))
        assert isinstance(result, Rejection)
        assert result.code == "bad_timestamp"


# --- messages never carry the offending value -----------------------------------------------

IDENTIFIER_CASES = [
    ("servedMSISDN", "+46 70-987 65 43 21 09 8"),  # 16 digits: too long
    ("servedMSISDN", "0046 70-987 65 43 2109 88"),
    ("servedMSISDN", "+46 70 98X 65 43"),
    ("servedMSISDN", "4670987654\u0663"),
    ("serviceCentre", "987654"),
    ("servedIMSI", "2400198765432"),
    ("servedIMSI", "24001987654321X"),
    ("servedIMEI", "35987654321098"[:13]),
    ("servedIMEI", "359876543210981"),  # wrong Luhn digit
    ("servedIMSI", 240019876543210),  # wrong type: a number
    ("servedMSISDN", 46709876543),
]


def digit_runs(value: object, length: int = 5) -> set[str]:
    """Every run of ``length`` consecutive digits in the value with separators removed."""
    digits = re.sub(r"\D", "", str(value))
    return {digits[i : i + length] for i in range(len(digits) - length + 1)}


@pytest.mark.parametrize(("field", "value"), IDENTIFIER_CASES)
def test_rejection_messages_never_contain_the_offending_identifier(
    decoder: Decoder, field: str, value: object
) -> None:
    """The message names the field, never its value or any run of its digits."""
    fields = {field: value}
    if field == "servedIMSI":
        fields["servedMSISDN"] = None
    result = decoder(encode(minimal_sms(**fields)))
    assert isinstance(result, Rejection)
    assert result.field == field
    assert field in result.message
    assert str(value) not in result.message
    for run in digit_runs(value):
        assert run not in result.message, run


# --- hypothesis: never an exception ----------------------------------------------------------



def assert_record_or_known_rejection(result: object) -> None:
    """The decoder's whole contract: a record, or a Rejection with a documented code."""
    if isinstance(result, Rejection):
        assert result.code in REASONS
        assert isinstance(result.message, str)
        assert result.message
    else:
        assert isinstance(result, CdrRecord)


@PROPERTY
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(decoder: Decoder, raw: bytes) -> None:
    """Arbitrary bytes give a record or a documented rejection."""
    assert_record_or_known_rejection(decoder(raw))


@PROPERTY
@given(json_values)
def test_random_json_values_never_raise(decoder: Decoder, value: object) -> None:
    """Any JSON value gives a record or a documented rejection."""
    assert_record_or_known_rejection(decoder(json.dumps(value).encode()))


@PROPERTY
@given(record_like)
def test_random_record_shaped_objects_never_raise(decoder: Decoder, value: dict[str, Any]) -> None:
    """Objects with the real field names and random values give a record or a rejection."""
    assert_record_or_known_rejection(decoder(json.dumps(value).encode()))


@PROPERTY
@given(record_like, st.from_regex(r"[0-9]{8,15}", fullmatch=True))
def test_rejection_messages_never_contain_digit_strings_from_the_input(
    decoder: Decoder, value: dict[str, Any], canary: str
) -> None:
    """Whatever field a long digit string sits in, a rejection message does not repeat it."""
    value = {**value, "servedMSISDN": canary + "X"}
    result = decoder(json.dumps(value).encode())
    assert isinstance(result, Rejection)
    assert canary not in result.message
    for text in value.values():
        if isinstance(text, str) and len(re.sub(r"\D", "", text)) >= 8:
            assert re.sub(r"\D", "", text) not in re.sub(r"\D", "", result.message)


# --- other parties' numbers that are no MSISDN ------------------------------------------------

PARTY_CASES = [
    ("*100#", PartyClass.SERVICE_CODE),
    ("#31#", PartyClass.SERVICE_CODE),
    ("*#06#", PartyClass.SERVICE_CODE),
    # A call-forwarding code embeds a person's number: fail closed.
    ("**21*+46701234567#", PartyClass.UNPARSEABLE),
    ("#31#0701234567", PartyClass.UNPARSEABLE),
    ("112", PartyClass.SHORT_NUMBER),
    ("1177", PartyClass.SHORT_NUMBER),
    ("72456", PartyClass.SHORT_NUMBER),
    ("90 000", PartyClass.SHORT_NUMBER),
    ("BankID", PartyClass.ALPHANUMERIC),
    ("+46 70 98X 65 43", PartyClass.ALPHANUMERIC),
    ("", PartyClass.UNPARSEABLE),
    ("+", PartyClass.UNPARSEABLE),
    ("1234567890123456", PartyClass.UNPARSEABLE),
    ("4670987654\u0663", PartyClass.UNPARSEABLE),
]


@pytest.mark.parametrize(("value", "party"), PARTY_CASES)
@pytest.mark.parametrize("field", ["callingNumber", "calledNumber", "destinationNumber"])
def test_a_party_number_that_is_no_msisdn_keeps_the_record(
    decoder: Decoder, field: str, value: str, party: PartyClass
) -> None:
    """Another party's service code, short number or sender name is classified, not refused:
    only an unreadable served identity dead-letters a record."""
    record = decoder(encode(minimal_sms(**{field: value})))
    assert isinstance(record, CdrRecord)
    assert record.parties == {field: party}
    assert field not in record.numbers
    assert classify(value) is party


def test_a_valid_party_msisdn_is_no_party_class(decoder: Decoder) -> None:
    """A party number that normalizes stays an MSISDN (consent, warrants, as before)."""
    record = decoder(encode(minimal_sms(destinationNumber="0739876543")))
    assert isinstance(record, CdrRecord)
    assert record.parties == {}
    assert record.numbers["destinationNumber"] == "46739876543"
