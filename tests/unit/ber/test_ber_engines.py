"""The fast walker and pycrate agree, on generated records and on damaged ones.

Generated JSON records are encoded by pycrate (``pipeline.ber.synth``), decoded by both
engines, and must come back unchanged; random damage must never make either engine raise.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ber import BerRecordDecoder, CdrRejection
from pipeline.ber.schema import BASIC_SERVICE_NAMES, CAUSE_FOR_TERM_NAMES, TELESERVICE_TAG
from pipeline.ber.synth import BerRecordEncoder
from tests.support import ber_samples  # fails the module with an explanation if pycrate is missing

ENCODER = BerRecordEncoder()
FAST = BerRecordDecoder()
PYCRATE = BerRecordDecoder(engine="pycrate")
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def digits(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=min_size, max_size=max_size)


def _joined(first: str, rest: str) -> str:
    return first + rest


international = st.builds(_joined, st.sampled_from("123456789"), digits(7, 14))
national = st.builds(lambda d, rest: "0" + d + rest, st.sampled_from("123456789"), digits(6, 10))
number = st.one_of(international, national)


# hypothesis wants naive bounds for datetimes(); the offset is attached below.
FIRST_LOCAL = datetime(2000, 1, 1)  # noqa: DTZ001
LAST_LOCAL = datetime(2099, 12, 31, 23, 59, 59)  # noqa: DTZ001


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    local = draw(st.datetimes(FIRST_LOCAL, LAST_LOCAL))
    offset = draw(st.integers(-(14 * 60), 14 * 60))
    text = local.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=offset))).isoformat()
    return text.replace("+00:00", "Z")


location = st.fixed_dictionaries(
    {"locationAreaCode": st.integers(0, 0xFFFF), "cellId": st.integers(0, 0xFFFF)},
    optional={"mccMnc": st.builds(_joined, digits(3, 3), digits(2, 3))},
)
change_of_location = st.lists(
    st.fixed_dictionaries({"location": location, "changeTime": rfc3339()}), max_size=3
)
unnamed_teleservice = st.integers(0, 255).filter(
    lambda c: (TELESERVICE_TAG, c) not in BASIC_SERVICE_NAMES
)
basic_service = st.one_of(
    st.sampled_from(sorted(BASIC_SERVICE_NAMES.values())),
    unnamed_teleservice.map(lambda c: f"teleservice:{c:02X}"),
)
cause = st.one_of(
    st.sampled_from(sorted(CAUSE_FOR_TERM_NAMES.values())),
    st.integers(6, 51).map(str),
)
diagnostics = st.one_of(
    st.integers(0, 127),
    st.integers(0, 2**31).map(lambda n: f"gsm0902MapErrorValue:{n}"),
    st.integers(0, 127).map(lambda n: f"itu-tQ767Cause:{n}"),
    st.integers(0, 8).map(lambda n: f"positionMethodFailureCause:{n}"),
    st.integers(0, 7).map(lambda n: f"unauthorizedLCSClientCause:{n}"),
    st.integers(0, 5999).map(lambda n: f"diameterResultCodeAndExperimentalResult:{n}"),
)
common_optional = {
    "servedIMEI": digits(14, 16),
    "servedMSISDN": number,
    "location": location,
    "systemType": st.sampled_from(["unknown", "iuUTRAN", "gERAN"]),
}
call_optional = {
    **common_optional,
    "callingNumber": number,
    "connectedNumber": number,
    "changeOfLocation": change_of_location,
    "basicService": basic_service,
    "releaseTime": rfc3339(),
    "diagnostics": diagnostics,
    "sequenceNumber": st.integers(0, 2**31),
}
call_mandatory = {
    "recordingEntity": international,
    "callDuration": st.integers(0, 2**31),
    "causeForTerm": cause,
    "callReference": st.binary(min_size=1, max_size=8).map(bytes.hex),
}


@st.composite
def call_record(draw: st.DrawFn, record_type: str) -> dict[str, Any]:
    mandatory = {**call_mandatory, "servedIMSI": digits(14, 15)}
    optional = {**call_optional, "seizureTime": rfc3339(), "answerTime": rfc3339()}
    if record_type == "moCallRecord":
        optional.update(
            servedIMSI=digits(14, 15),
            calledNumber=number,
            translatedNumber=number,
            roamingNumber=number,
        )
        del mandatory["servedIMSI"]
    record = draw(st.fixed_dictionaries(mandatory, optional=optional))
    # The JSON contract: a served identity and a start time.
    if "servedIMSI" not in record and "servedMSISDN" not in record:
        record["servedMSISDN"] = draw(number)
    if "seizureTime" not in record and "answerTime" not in record:
        record["seizureTime"] = draw(rfc3339())
    return {"recordType": record_type, **record}


@st.composite
def sms_record(draw: st.DrawFn, record_type: str) -> dict[str, Any]:
    mandatory = {
        "servedIMSI": digits(14, 15),
        "serviceCentre": number,
        "recordingEntity": international,
    }
    optional = {**common_optional, "smsResult": diagnostics}
    if record_type == "moSMSRecord":
        mandatory.update(messageReference=st.integers(0, 255), originationTime=rfc3339())
        optional["destinationNumber"] = number
    else:
        mandatory["deliveryTime"] = rfc3339()
    return {"recordType": record_type, **draw(st.fixed_dictionaries(mandatory, optional=optional))}


records = st.one_of(
    call_record("moCallRecord"),
    call_record("mtCallRecord"),
    sms_record("moSMSRecord"),
    sms_record("mtSMSRecord"),
)


@SETTINGS
@given(records)
def test_generated_records_come_back_unchanged_from_both_engines(record: dict[str, Any]) -> None:
    ber = ENCODER(record)
    expected = {"recordId": "f:7", **record}
    assert FAST(ber, "f:7") == expected
    assert PYCRATE(ber, "f:7") == expected


@SETTINGS
@given(records, st.data())
def test_damaged_records_never_raise_and_engines_agree_when_both_decode(
    record: dict[str, Any], data: st.DataObject
) -> None:
    ber = bytearray(ENCODER(record))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(ber) - 1)) if ber else 0
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and ber:
            ber[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del ber[at : at + data.draw(st.integers(1, 4))]
        else:
            ber[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    fast, strict = FAST(bytes(ber), "f:1"), PYCRATE(bytes(ber), "f:1")
    assert isinstance(fast, dict | CdrRejection)
    assert isinstance(strict, dict | CdrRejection)
    if isinstance(fast, dict) and isinstance(strict, dict):
        assert fast == strict


@pytest.mark.parametrize("sample", ber_samples.SAMPLES, ids=lambda s: s.name)
def test_synth_encoder_reproduces_the_hand_written_samples(sample: ber_samples.Sample) -> None:
    """The package's encoder agrees with the octets written by hand in ber_samples."""
    decoded = FAST(sample.ber, "f:1")
    assert isinstance(decoded, dict)
    assert FAST(ENCODER(decoded), "f:1") == decoded
