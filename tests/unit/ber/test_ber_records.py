"""One BER CDR, encoded by pycrate's own 3GPP definitions, to its JSON record, field by field."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from pipeline.ber import BerRecordDecoder, BerSupportMissing, CdrRejection, record_id_for
from pipeline.ber.errors import (
    BAD_BER,
    BAD_IMEI,
    BAD_IMSI,
    BAD_MSISDN,
    BAD_TIMESTAMP,
    BAD_VALUE,
    MISSING_FIELD,
    UNKNOWN_RECORD_TYPE,
)
from pipeline.ber.records import Engine
from pipeline.core.decode import Rejection as CoreRejection
from pipeline.core.engine import Engine as CoreEngine
from pipeline.core.party import PartyClass
from pipeline.core.warrants import WarrantIndex
from tests.support.ber_samples import (
    IDENTIFIER_VALUES,
    IMSI,
    MO_CALL_FULL,
    MO_CALL_MINIMAL,
    MO_SMS_FULL,
    MO_SMS_MINIMAL,
    MSC,
    MSISDN_INTL,
    MSISDN_NATIONAL,
    SAMPLES,
    T_PLUS1,
    Sample,
    context,
    encode,
)

ENGINES: list[Engine] = ["fast", "pycrate"]


@pytest.fixture(scope="module", params=ENGINES)
def decoder(request: pytest.FixtureRequest) -> BerRecordDecoder:
    return BerRecordDecoder(engine=request.param)


@pytest.fixture(scope="module")
def fast() -> BerRecordDecoder:
    return BerRecordDecoder()


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_each_field_decodes_to_what_was_encoded(decoder: BerRecordDecoder, sample: Sample) -> None:
    decoded = decoder(sample.ber, "MSC01_20261121.dat:54")
    assert not isinstance(decoded, CdrRejection), decoded
    expected = sample.expected_with_id("MSC01_20261121.dat:54")
    for name, value in expected.items():
        assert decoded.get(name) == value, name
    assert set(decoded) == set(expected)


def test_absent_optional_fields_are_absent_from_the_json(fast: BerRecordDecoder) -> None:
    decoded = fast(MO_CALL_MINIMAL.ber, "f:1")
    assert isinstance(decoded, dict)
    for name in ("servedIMSI", "servedIMEI", "calledNumber", "location", "answerTime"):
        assert name not in decoded


def test_national_numbers_take_the_configured_trunk_prefix() -> None:
    decoded = BerRecordDecoder(trunk_prefix="8")(MO_CALL_MINIMAL.ber, "f:1")
    assert isinstance(decoded, dict)
    assert decoded["servedMSISDN"] == "8" + MSISDN_NATIONAL[1][1:]


def test_without_a_trunk_prefix_national_numbers_become_e164() -> None:
    decoded = BerRecordDecoder(trunk_prefix="", country_code="47")(MO_CALL_MINIMAL.ber, "f:1")
    assert isinstance(decoded, dict)
    assert decoded["servedMSISDN"] == "47" + MSISDN_NATIONAL[1][1:]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_location_without_mcc_mnc_gets_the_configured_network(engine: Engine) -> None:
    """MCC-MNC is optional in TS 32.298; the worker's decoder requires location.mccMnc."""
    as_is = BerRecordDecoder(engine=engine)(MO_SMS_FULL.ber, "f:1")  # no mCC-MNC in it
    assert isinstance(as_is, dict)
    assert as_is["location"] == {"locationAreaCode": 42, "cellId": 4660}
    filling = BerRecordDecoder(default_mcc_mnc="24001", engine=engine)
    filled = filling(MO_SMS_FULL.ber, "f:1")
    assert isinstance(filled, dict)
    assert filled["location"] == {"mccMnc": "24001", "locationAreaCode": 42, "cellId": 4660}
    call = filling(MO_CALL_FULL.ber, "f:1")
    assert isinstance(call, dict)
    assert call["location"] == MO_CALL_FULL.expected["location"]  # present: kept
    changes = call["changeOfLocation"]
    assert isinstance(changes, list)
    assert [c["location"]["mccMnc"] for c in changes] == ["24001", "310260"]


@pytest.mark.parametrize(
    "options",
    [
        {"trunk_prefix": "x"},
        {"country_code": "4a"},
        {"default_mcc_mnc": "2400"},
        {"engine": "asn1c"},
    ],
)
def test_invalid_settings_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must"):
        BerRecordDecoder(**options)


def test_vendor_extension_tags_are_skipped_by_the_fast_engine() -> None:
    """A proprietary tag inside the record SET: fast decodes, pycrate (strict) refuses."""
    ber = MO_CALL_MINIMAL.ber
    extension = context(101, b"\x01\x02")
    assert ber[1] < 0x80
    # Re-wrapped with a long-form length, which BER allows for any value.
    extended = ber[:1] + bytes([0x81, ber[1] + len(extension)]) + ber[2:] + extension
    fast_result = BerRecordDecoder()(extended, "f:1")
    assert fast_result == MO_CALL_MINIMAL.expected_with_id("f:1")
    strict = BerRecordDecoder(engine="pycrate")(extended, "f:1")
    assert isinstance(strict, CdrRejection)
    assert strict.code == BAD_BER


# --- rejections -----------------------------------------------------------------------


def _call(**changes: Any) -> bytes:
    value = {**MO_CALL_MINIMAL.value, **changes}
    return encode("moCallRecord", {k: v for k, v in value.items() if v is not None})


def _sms(**changes: Any) -> bytes:
    value = {**MO_SMS_MINIMAL.value, **changes}
    return encode("moSMSRecord", {k: v for k, v in value.items() if v is not None})


BAD_LOCATION = {"locationAreaCode": b"\0\1", "cellId": b"\0\1", "mCC-MNC": b"\x4a\xf0\x10"}
BAD_IMEI_OCTETS = bytes.fromhex("53029900711684af")
MONTH_13 = bytes.fromhex("2613210600002b0100")
BAD_SIGN = bytes.fromhex("261121060000200100")
ALPHANUMERIC = bytes.fromhex("05d0c4f23c")

REJECTED = [
    ("imsi with a non-digit nibble", _sms(servedIMSI=b"\x42\x0a\x11"), BAD_IMSI, "servedIMSI"),
    ("imei with a non-digit nibble", _call(servedIMEI=BAD_IMEI_OCTETS), BAD_IMEI, "servedIMEI"),
    ("msisdn without digits", _call(servedMSISDN=b"\x91"), BAD_MSISDN, "servedMSISDN"),
    ("service centre with '*'", _sms(serviceCentre=b"\x91\xa1\x21"), BAD_MSISDN, "serviceCentre"),
    ("month 13", _call(seizureTime=MONTH_13), BAD_TIMESTAMP, "seizureTime"),
    ("bad sign octet", _sms(originationTime=BAD_SIGN), BAD_TIMESTAMP, "originationTime"),
    ("negative duration", _call(callDuration=-1), BAD_VALUE, "callDuration"),
    ("bad mcc-mnc", _call(location=BAD_LOCATION), BAD_VALUE, "location"),
    ("no served msisdn or imsi", _call(servedMSISDN=None), MISSING_FIELD, "servedMSISDN"),
    ("call without a start time", _call(seizureTime=None), MISSING_FIELD, "seizureTime"),
    ("recordType against the CHOICE", _call(recordType=1), BAD_VALUE, "recordType"),
]


@pytest.mark.parametrize(
    ("ber", "code", "field"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED]
)
def test_bad_fields_are_rejected_with_code_and_field(
    decoder: BerRecordDecoder, ber: bytes, code: str, field: str
) -> None:
    result = decoder(ber, "f:1")
    assert isinstance(result, CdrRejection)
    assert (result.code, result.field) == (code, field)


# TBCD of "*100#": nibbles *=A 1 | 0 0 | #=B filler (low nibble first), international.
USSD_100 = b"\x91\x1a\x00\xfb"
# "BankID" in GSM 7-bit packing, as a TS 23.040 alphanumeric address (11 semi-octets).
BANKID = bytes([11, 0xD0]) + bytes.fromhex("c2b07b9d2402")

PARTY_VALUES = [
    ("called number with '*'", _call(calledNumber=b"\x91\xa1\x21"), "calledNumber", "1*12"),
    ("ussd code", _call(calledNumber=USSD_100), "calledNumber", "*100#"),
    ("alphanumeric destination", _sms(destinationNumber=ALPHANUMERIC), "destinationNumber", "De"),
    ("sender name", _sms(destinationNumber=BANKID), "destinationNumber", "BankID"),
    ("number without digits", _call(calledNumber=b"\x91"), "calledNumber", ""),
]


@pytest.mark.parametrize(
    ("ber", "field", "value"), [r[1:] for r in PARTY_VALUES], ids=[r[0] for r in PARTY_VALUES]
)
def test_another_partys_code_or_name_keeps_the_record(
    decoder: BerRecordDecoder, ber: bytes, field: str, value: str
) -> None:
    """TBCD *, # and a-c, alphanumeric senders and unreadable addresses of another party
    are written as the record decoder classifies them; only a served identity rejects."""
    result = decoder(ber, "f:1")
    assert not isinstance(result, CdrRejection), result
    assert result[field] == value


def test_a_ber_call_to_star_100_hash_is_billed_with_the_code(
    engine: CoreEngine, warrants: WarrantIndex
) -> None:
    """One BER record with calledNumber *100#, ingested and routed: a service code, kept
    as received on billing, nothing dead-lettered."""
    record = BerRecordDecoder()(_call(calledNumber=USSD_100, callDuration=12), "f:1")
    assert not isinstance(record, CdrRejection), record
    decoded = engine.decoder.validate(record)
    assert not isinstance(decoded, CoreRejection), decoded
    assert decoded.parties == {"calledNumber": PartyClass.SERVICE_CODE}
    outputs = engine.route(decoded, lambda _n: None, warrants)
    billing = [json.loads(o.value) for o in outputs if o.topic == "traffic.billing"]
    assert [b["calledNumber"] for b in billing] == ["*100#"]


def _minimal_call_without(tag: int) -> bytes:
    """The minimal MO call re-assembled by hand without one top-level element."""
    elements = {
        0: context(0, b"\x00"),
        3: context(3, MSISDN_INTL[0]),
        9: context(9, MSC[0]),
        22: context(22, T_PLUS1[0]),
        25: context(25, b"\x3c"),
        30: context(30, b"\x00"),
        32: context(32, b"\x01"),
    }
    body = b"".join(v for k, v in elements.items() if k != tag)
    return context(0, body, constructed=True)


def test_hand_assembled_record_matches_pycrate_encoding(fast: BerRecordDecoder) -> None:
    decoded = fast(_minimal_call_without(-1), "f:1")
    assert isinstance(decoded, dict)
    assert decoded["callDuration"] == 60


@pytest.mark.parametrize(
    ("tag", "name"), [(9, "recordingEntity"), (32, "callReference"), (25, "callDuration")]
)
def test_missing_mandatory_fields_are_rejected(fast: BerRecordDecoder, tag: int, name: str) -> None:
    result = fast(_minimal_call_without(tag), "f:1")
    assert result == CdrRejection(MISSING_FIELD, f"{name}: mandatory field missing", name)


MALFORMED = [
    ("trailing octets", MO_CALL_MINIMAL.ber + b"\x00"),
    ("truncated", MO_CALL_MINIMAL.ber[:-3]),
    ("empty", b""),
    ("repeated field", context(0, context(9, MSC[0]) * 2, constructed=True)),
    ("primitive location", context(0, context(12, b"\x00\x01\x00\x01"), constructed=True)),
]


@pytest.mark.parametrize("ber", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_ber_is_a_bad_ber_rejection(fast: BerRecordDecoder, ber: bytes) -> None:
    result = fast(ber, "f:1")
    assert isinstance(result, CdrRejection)
    assert result.code == BAD_BER


@pytest.mark.parametrize(
    "ber",
    [context(2, context(0, b"\x02"), constructed=True), bytes.fromhex("3003020100")],
    ids=["roamingRecord", "universal SEQUENCE"],
)
def test_other_record_types_are_unknown_record_types(fast: BerRecordDecoder, ber: bytes) -> None:
    result = fast(ber, "f:1")
    assert isinstance(result, CdrRejection)
    assert result.code == UNKNOWN_RECORD_TYPE


def test_pycrate_engine_refuses_other_record_types_too() -> None:
    roaming = context(2, context(0, b"\x02"), constructed=True)
    result = BerRecordDecoder(engine="pycrate")(roaming, "f:1")
    assert isinstance(result, CdrRejection)
    # pycrate already fails on the roaming record's missing mandatory fields.
    assert result.code in (UNKNOWN_RECORD_TYPE, BAD_BER)


def test_rejection_messages_never_carry_identifier_values(decoder: BerRecordDecoder) -> None:
    for _, ber, _, _ in REJECTED:
        result = decoder(ber, "f:1")
        assert isinstance(result, CdrRejection)
        assert not any(value in result.message for value in IDENTIFIER_VALUES)
        assert IMSI[1][:6] not in result.message


# --- record ids and the optional dependency -------------------------------------------


def test_record_id_is_file_name_and_offset() -> None:
    assert record_id_for("MSC01_20261121_0001.dat", 54) == "MSC01_20261121_0001.dat:54"


def test_record_id_does_not_change_when_the_file_moves() -> None:
    assert record_id_for("/in/MSC01.dat", 54) == record_id_for("/in/done/MSC01.dat", 54)
    assert record_id_for("/in/MSC01.dat", 54) == "MSC01.dat:54"


def test_record_id_of_a_very_long_file_name_is_a_stable_hash() -> None:
    name = "x" * 200
    first, second = record_id_for(name, 10**9), record_id_for(name, 10**9)
    assert first == second
    assert len(first) <= 128
    assert first.startswith("sha256-") and first.endswith(":1000000000")
    assert record_id_for("y" * 200, 10**9) != first


def test_pycrate_engine_without_pycrate_says_to_install_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pycrate_asn1dir.CDR", None)
    with pytest.raises(BerSupportMissing, match=r"cdrveil\[ber\]"):
        BerRecordDecoder(engine="pycrate")
    # The fast engine needs no pycrate at all.
    assert isinstance(BerRecordDecoder()(MO_CALL_FULL.ber, "f:1"), dict)


def test_importing_the_package_does_not_import_pycrate() -> None:
    code = (
        "import sys, pipeline.ber, pipeline.ber.synth; "
        "assert not any(m.startswith('pycrate') for m in sys.modules), 'pycrate imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
