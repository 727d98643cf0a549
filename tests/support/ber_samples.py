"""Test data for the BER decoder: records encoded by pycrate's own 3GPP definitions.

The octets of every identifier, address and time below are written out by hand (TBCD,
type-of-number octets, BCD), not produced by ``pipeline.ber``, so a symmetric mistake in
the package's encoder and decoder cannot hide here.

Importing this module without pycrate fails with an explanation instead of skipping:
these tests are part of the suite and must run.
"""

from __future__ import annotations

from typing import Any

try:
    from pycrate_asn1dir.CDR import (  # type: ignore[import-untyped]
        CSChargingDataTypes,
        GenericChargingDataTypes,
    )
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "tests/unit/ber need pycrate==0.8.1 (the cdrveil[ber] extra, also in the dev extra): "
        "pip install -e '.[dev]' or pip install pycrate==0.8.1"
    ) from exc

__all__ = [
    "CS_CHARGING",
    "GENERIC_CHARGING",
    "SAMPLES",
    "Sample",
    "context",
    "encode",
]

CS_CHARGING: Any = CSChargingDataTypes
GENERIC_CHARGING: Any = GenericChargingDataTypes

# Identifiers as TBCD / address octets, with the JSON value each must decode to.
IMSI = bytes.fromhex("42001132547698f0"), "240011234567890"
IMEI = bytes.fromhex("53029900711684ff"), "35209900176148"
IMEISV = bytes.fromhex("5302990071168412"), "3520990017614821"
MSISDN_INTL = bytes.fromhex("916407214365f7"), "46701234567"
MSISDN_NATIONAL = bytes.fromhex("a107214365f7"), "0701234567"  # national TON, no prefix
CALLED_INTL_NO = bytes.fromhex("917421436587"), "4712345678"  # a Norwegian number
CALLED_UNKNOWN = bytes.fromhex("810064072143f5"), "00467012345"  # unknown TON: as dialled
CALLING_3A = bytes.fromhex("1180640721436587"), "467012345678"  # octet 3a present
MSC = bytes.fromhex("916407000010"), "4670000001"  # recordingEntity
SMSC = bytes.fromhex("916407000000f1"), "46700000001"
SMS_DEST_NATIONAL = bytes.fromhex("09a107896745f3"), "0709876543"  # TS 23.040 address
LAC_CELL = b"\x00\x2a", b"\x12\x34"  # 42, 4660
PLMN_HOME = bytes.fromhex("42f010"), "24001"
PLMN_US = bytes.fromhex("130062"), "310260"
T_PLUS1 = bytes.fromhex("2611210600002b0100"), "2026-11-21T06:00:00+01:00"
T_PLUS1_ANSWER = bytes.fromhex("2611210600052b0100"), "2026-11-21T06:00:05+01:00"
T_PLUS1_RELEASE = bytes.fromhex("2611210601052b0100"), "2026-11-21T06:01:05+01:00"
T_PLUS1_CHANGE = bytes.fromhex("2611210600302b0100"), "2026-11-21T06:00:30+01:00"
T_MINUS5 = bytes.fromhex("2611202330002d0500"), "2026-11-20T23:30:00-05:00"
T_MINUS5_END = bytes.fromhex("2611202331152d0500"), "2026-11-20T23:31:15-05:00"
T_UTC = bytes.fromhex("2611210500002b0000"), "2026-11-21T05:00:00Z"
T_LEAP = bytes.fromhex("2802290930452b0530"), "2028-02-29T09:30:45+05:30"


def encode(alternative: str, value: dict[str, Any]) -> bytes:
    """BER-encode a ``CSRecord`` alternative with pycrate."""
    record = CS_CHARGING.CSRecord
    record.set_val((alternative, value))
    return bytes(record.to_ber())


def context(number: int, value: bytes, *, constructed: bool = False) -> bytes:
    """A context-tagged BER element, written by hand (for corrupt or unusual records)."""
    first = 0x80 | (0x20 if constructed else 0)
    tag = bytes([first | number]) if number < 31 else bytes([first | 0x1F, number])
    if len(value) < 0x80:
        return tag + bytes([len(value)]) + value
    return tag + bytes([0x81, len(value)]) + value


class Sample:
    """One record: its name, pycrate alternative and value, and the JSON it must become."""

    def __init__(
        self, name: str, alternative: str, value: dict[str, Any], expected: dict[str, Any]
    ) -> None:
        self.name = name
        self.alternative = alternative
        self.value = value
        self.expected = expected

    @property
    def ber(self) -> bytes:
        """The record encoded by pycrate."""
        return encode(self.alternative, self.value)

    def expected_with_id(self, record_id: str) -> dict[str, Any]:
        """The expected JSON object, with its record id."""
        return {"recordId": record_id, "recordType": self.alternative, **self.expected}


MO_CALL_FULL = Sample(
    "mo call, every mapped field, +01:00",
    "moCallRecord",
    {
        "recordType": 0,
        "servedIMSI": IMSI[0],
        "servedIMEI": IMEI[0],
        "servedMSISDN": MSISDN_INTL[0],
        "callingNumber": CALLING_3A[0],
        "calledNumber": CALLED_INTL_NO[0],
        "translatedNumber": CALLED_UNKNOWN[0],
        "connectedNumber": CALLED_INTL_NO[0],
        "roamingNumber": MSISDN_NATIONAL[0],
        "recordingEntity": MSC[0],
        "location": {
            "locationAreaCode": LAC_CELL[0],
            "cellId": LAC_CELL[1],
            "mCC-MNC": PLMN_HOME[0],
        },
        "changeOfLocation": [
            {
                "location": {"locationAreaCode": b"\x00\x01", "cellId": b"\xff\xff"},
                "changeTime": T_PLUS1_CHANGE[0],
            },
            {
                "location": {
                    "locationAreaCode": b"\xff\xfe",
                    "cellId": b"\x00\x00",
                    "mCC-MNC": PLMN_US[0],
                },
                "changeTime": T_PLUS1_ANSWER[0],
            },
        ],
        "basicService": ("teleservice", b"\x11"),
        "seizureTime": T_PLUS1[0],
        "answerTime": T_PLUS1_ANSWER[0],
        "releaseTime": T_PLUS1_RELEASE[0],
        "callDuration": 60,
        "causeForTerm": 0,
        "diagnostics": ("gsm0408Cause", 16),
        "callReference": bytes.fromhex("0102030405060708"),
        "sequenceNumber": 3,
        "systemType": "gERAN",
        # Fields the JSON record does not carry must be skipped, not break decoding.
        "msClassmark": b"\x53\x19\xa2",
        "dataVolume": 5,
        "mSCAddress": MSC[0],
    },
    {
        "servedIMSI": IMSI[1],
        "servedIMEI": IMEI[1],
        "servedMSISDN": MSISDN_INTL[1],
        "callingNumber": CALLING_3A[1],
        "calledNumber": CALLED_INTL_NO[1],
        "translatedNumber": CALLED_UNKNOWN[1],
        "connectedNumber": CALLED_INTL_NO[1],
        "roamingNumber": MSISDN_NATIONAL[1],
        "recordingEntity": MSC[1],
        "location": {"mccMnc": "24001", "locationAreaCode": 42, "cellId": 4660},
        "changeOfLocation": [
            {
                "location": {"locationAreaCode": 1, "cellId": 65535},
                "changeTime": T_PLUS1_CHANGE[1],
            },
            {
                "location": {"mccMnc": "310260", "locationAreaCode": 65534, "cellId": 0},
                "changeTime": T_PLUS1_ANSWER[1],
            },
        ],
        "basicService": "telephony",
        "seizureTime": T_PLUS1[1],
        "answerTime": T_PLUS1_ANSWER[1],
        "releaseTime": T_PLUS1_RELEASE[1],
        "callDuration": 60,
        "causeForTerm": "normalRelease",
        "diagnostics": 16,
        "callReference": "0102030405060708",
        "sequenceNumber": 3,
        "systemType": "gERAN",
    },
)

MO_CALL_MINIMAL = Sample(
    "mo call, mandatory fields and a national MSISDN only, -05:00",
    "moCallRecord",
    {
        "recordType": 0,
        "servedMSISDN": MSISDN_NATIONAL[0],
        "recordingEntity": MSC[0],
        "seizureTime": T_MINUS5[0],
        "callDuration": 0,
        "causeForTerm": 3,
        "callReference": b"\x00",
    },
    {
        "servedMSISDN": MSISDN_NATIONAL[1],
        "recordingEntity": MSC[1],
        "seizureTime": T_MINUS5[1],
        "callDuration": 0,
        "causeForTerm": "unsuccessfulCallAttempt",
        "callReference": "00",
    },
)

MT_CALL_FULL = Sample(
    "mt call, optional fields, -05:00, IMEISV, bearer service",
    "mtCallRecord",
    {
        "recordType": 1,
        "servedIMSI": IMSI[0],
        "servedIMEI": IMEISV[0],
        "servedMSISDN": MSISDN_NATIONAL[0],
        "callingNumber": CALLED_INTL_NO[0],
        "connectedNumber": MSISDN_INTL[0],
        "recordingEntity": MSC[0],
        "location": {"locationAreaCode": LAC_CELL[0], "cellId": LAC_CELL[1], "mCC-MNC": PLMN_US[0]},
        "basicService": ("bearerService", b"\x1a"),
        "seizureTime": T_MINUS5[0],
        "answerTime": T_MINUS5[0],
        "releaseTime": T_MINUS5_END[0],
        "callDuration": 75,
        "causeForTerm": 52,
        "diagnostics": ("positionMethodFailureCause", "qoSNotAttainable"),
        "callReference": b"\xab\xcd",
        "sequenceNumber": 0,
        "systemType": "iuUTRAN",
    },
    {
        "servedIMSI": IMSI[1],
        "servedIMEI": IMEISV[1],
        "servedMSISDN": MSISDN_NATIONAL[1],
        "callingNumber": CALLED_INTL_NO[1],
        "connectedNumber": MSISDN_INTL[1],
        "recordingEntity": MSC[1],
        "location": {"mccMnc": "310260", "locationAreaCode": 42, "cellId": 4660},
        "basicService": "bearerService:1A",
        "seizureTime": T_MINUS5[1],
        "answerTime": T_MINUS5[1],
        "releaseTime": T_MINUS5_END[1],
        "callDuration": 75,
        "causeForTerm": "unauthorizedRequestingNetwork",
        "diagnostics": "positionMethodFailureCause:6",
        "callReference": "abcd",
        "sequenceNumber": 0,
        "systemType": "iuUTRAN",
    },
)

MT_CALL_MINIMAL = Sample(
    "mt call, mandatory fields only, UTC, unnamed cause",
    "mtCallRecord",
    {
        "recordType": 1,
        "servedIMSI": IMSI[0],
        "recordingEntity": MSC[0],
        "answerTime": T_UTC[0],
        "callDuration": 1,
        "causeForTerm": 99,
        "callReference": b"\x01",
    },
    {
        "servedIMSI": IMSI[1],
        "recordingEntity": MSC[1],
        "answerTime": T_UTC[1],
        "callDuration": 1,
        "causeForTerm": "99",
        "callReference": "01",
    },
)

MO_SMS_FULL = Sample(
    "mo sms, optional fields, +05:30 on a leap day",
    "moSMSRecord",
    {
        "recordType": 6,
        "servedIMSI": IMSI[0],
        "servedIMEI": IMEI[0],
        "servedMSISDN": MSISDN_INTL[0],
        "msClassmark": b"\x53\x19\xa2",
        "serviceCentre": SMSC[0],
        "recordingEntity": MSC[0],
        "location": {"locationAreaCode": LAC_CELL[0], "cellId": LAC_CELL[1]},
        "messageReference": b"\x7f",
        "originationTime": T_LEAP[0],
        "smsResult": ("gsm0902MapErrorValue", 32),
        "destinationNumber": SMS_DEST_NATIONAL[0],
        "systemType": "unknown",
    },
    {
        "servedIMSI": IMSI[1],
        "servedIMEI": IMEI[1],
        "servedMSISDN": MSISDN_INTL[1],
        "serviceCentre": SMSC[1],
        "recordingEntity": MSC[1],
        "location": {"locationAreaCode": 42, "cellId": 4660},
        "messageReference": 127,
        "originationTime": T_LEAP[1],
        "smsResult": "gsm0902MapErrorValue:32",
        "destinationNumber": SMS_DEST_NATIONAL[1],
        "systemType": "unknown",
    },
)

MO_SMS_MINIMAL = Sample(
    "mo sms, mandatory fields only, -05:00",
    "moSMSRecord",
    {
        "recordType": 6,
        "servedIMSI": IMSI[0],
        "msClassmark": b"\x00",
        "serviceCentre": SMSC[0],
        "recordingEntity": MSC[0],
        "messageReference": b"\x00",
        "originationTime": T_MINUS5[0],
    },
    {
        "servedIMSI": IMSI[1],
        "serviceCentre": SMSC[1],
        "recordingEntity": MSC[1],
        "messageReference": 0,
        "originationTime": T_MINUS5[1],
    },
)

MT_SMS_FULL = Sample(
    "mt sms, optional fields, +01:00",
    "mtSMSRecord",
    {
        "recordType": 7,
        "serviceCentre": SMSC[0],
        "servedIMSI": IMSI[0],
        "servedIMEI": IMEI[0],
        "servedMSISDN": MSISDN_NATIONAL[0],
        "msClassmark": b"\x53\x19\xa2",
        "recordingEntity": MSC[0],
        "location": {
            "locationAreaCode": LAC_CELL[0],
            "cellId": LAC_CELL[1],
            "mCC-MNC": PLMN_HOME[0],
        },
        "deliveryTime": T_PLUS1[0],
        "smsResult": ("gsm0408Cause", 0),
        "systemType": "gERAN",
    },
    {
        "serviceCentre": SMSC[1],
        "servedIMSI": IMSI[1],
        "servedIMEI": IMEI[1],
        "servedMSISDN": MSISDN_NATIONAL[1],
        "recordingEntity": MSC[1],
        "location": {"mccMnc": "24001", "locationAreaCode": 42, "cellId": 4660},
        "deliveryTime": T_PLUS1[1],
        "smsResult": 0,
        "systemType": "gERAN",
    },
)

MT_SMS_MINIMAL = Sample(
    "mt sms, mandatory fields only, UTC",
    "mtSMSRecord",
    {
        "recordType": 7,
        "serviceCentre": SMSC[0],
        "servedIMSI": IMSI[0],
        "msClassmark": b"\x00",
        "recordingEntity": MSC[0],
        "deliveryTime": T_UTC[0],
    },
    {
        "serviceCentre": SMSC[1],
        "servedIMSI": IMSI[1],
        "recordingEntity": MSC[1],
        "deliveryTime": T_UTC[1],
    },
)

SAMPLES: tuple[Sample, ...] = (
    MO_CALL_FULL,
    MO_CALL_MINIMAL,
    MT_CALL_FULL,
    MT_CALL_MINIMAL,
    MO_SMS_FULL,
    MO_SMS_MINIMAL,
    MT_SMS_FULL,
    MT_SMS_MINIMAL,
)

# Every identifier value above, to check that no rejection message repeats one.
IDENTIFIER_VALUES: tuple[str, ...] = (
    IMSI[1],
    IMEI[1],
    IMEISV[1],
    MSISDN_INTL[1],
    MSISDN_NATIONAL[1],
    CALLED_INTL_NO[1],
    CALLED_UNKNOWN[1],
    SMSC[1],
    SMS_DEST_NATIONAL[1],
)
