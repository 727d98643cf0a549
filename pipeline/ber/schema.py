"""Which context tags of the four CS-domain records the pipeline reads, and how.

Transcribed from pycrate 0.8.1's ``pycrate_asn1dir.CDR.CSChargingDataTypes`` (TS 32.298):
a record arrives as the ``CSRecord`` CHOICE, whose alternative tag names the record type
(``[0]`` moCallRecord ... ``[7]`` mtSMSRecord), around a SET of implicitly tagged fields.
``tests/unit/ber/test_ber_schema.py`` checks every tag, type, size bound and mandatory set
below against pycrate's own definitions, so the hand-written walker cannot drift from them.
Fields not listed (trunk groups, CAMEL data, vendor extensions...) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "BASIC_SERVICE_NAMES",
    "CAUSE_FOR_TERM_NAMES",
    "DIAGNOSTICS_ALTERNATIVES",
    "RECORD_SCHEMAS",
    "SYSTEM_TYPE_NAMES",
    "FieldSpec",
    "Kind",
    "RecordSchema",
]


class Kind:
    """How a field's value is decoded (and which rejection code a bad value earns).

    Plain string constants, not an Enum: kinds are looked up once per field of every
    record, and hashing an Enum member runs Python code, a string's hash is cached.
    """

    RECORD_TYPE: Final = "record_type"  # INTEGER, must match the CHOICE tag
    INT: Final = "int"  # INTEGER
    DURATION: Final = "duration"  # INTEGER >= 0, seconds
    ENUM: Final = "enum"  # ENUMERATED systemType
    CAUSE: Final = "cause"  # INTEGER with named numbers, causeForTerm
    IMSI: Final = "imsi"  # TBCD
    IMEI: Final = "imei"  # TBCD
    NUMBER: Final = "number"  # address string of a party (an MSISDN-type field)
    SMS_NUMBER: Final = "sms_number"  # TS 23.040 address field
    ENTITY: Final = "entity"  # address string of a network element
    TIME: Final = "time"  # 9-octet BCD TimeStamp
    OCTETS_HEX: Final = "octets_hex"  # callReference
    OCTETS_INT: Final = "octets_int"  # messageReference
    LOCATION: Final = "location"  # LocationAreaAndCell SEQUENCE
    LOCATION_CHANGES: Final = "location_changes"  # SEQUENCE OF LocationChange
    BASIC_SERVICE: Final = "basic_service"  # BasicServiceCode CHOICE (explicit tag)
    DIAGNOSTICS: Final = "diagnostics"  # Diagnostics CHOICE (explicit tag)
    IGNORED: Final = "ignored"  # mandatory in ASN.1, not part of the JSON record


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a record: JSON/3GPP name, decoding kind, ASN.1 size bounds in octets."""

    name: str
    kind: str  # a Kind constant
    min_size: int = 0
    max_size: int = 0  # 0 = unbounded


@dataclass(frozen=True, slots=True)
class RecordSchema:
    """A record type: its CSRecord alternative tag, its fields by tag, its mandatory tags."""

    record_type: str
    choice_tag: int
    fields: dict[int, FieldSpec]
    mandatory: frozenset[int]


def _f(name: str, kind: str, min_size: int = 0, max_size: int = 0) -> FieldSpec:
    return FieldSpec(name, kind, min_size, max_size)


_RECORD_TYPE = _f("recordType", Kind.RECORD_TYPE)
_IMSI = _f("servedIMSI", Kind.IMSI, 3, 8)
_IMEI = _f("servedIMEI", Kind.IMEI, 8, 8)
_ISDN = 1, 9  # ISDN-AddressString size bounds
_ADDRESS = 1, 20  # AddressString size bounds

_MO_CALL = RecordSchema(
    "moCallRecord",
    0,
    {
        0: _RECORD_TYPE,
        1: _IMSI,
        2: _IMEI,
        3: _f("servedMSISDN", Kind.NUMBER, *_ISDN),
        4: _f("callingNumber", Kind.NUMBER),
        5: _f("calledNumber", Kind.NUMBER),
        6: _f("translatedNumber", Kind.NUMBER),
        7: _f("connectedNumber", Kind.NUMBER),
        8: _f("roamingNumber", Kind.NUMBER, *_ISDN),
        9: _f("recordingEntity", Kind.ENTITY, *_ADDRESS),
        12: _f("location", Kind.LOCATION),
        13: _f("changeOfLocation", Kind.LOCATION_CHANGES),
        14: _f("basicService", Kind.BASIC_SERVICE),
        22: _f("seizureTime", Kind.TIME, 9, 9),
        23: _f("answerTime", Kind.TIME, 9, 9),
        24: _f("releaseTime", Kind.TIME, 9, 9),
        25: _f("callDuration", Kind.DURATION),
        30: _f("causeForTerm", Kind.CAUSE),
        31: _f("diagnostics", Kind.DIAGNOSTICS),
        32: _f("callReference", Kind.OCTETS_HEX, 1, 8),
        33: _f("sequenceNumber", Kind.INT),
        61: _f("systemType", Kind.ENUM),
    },
    frozenset({0, 9, 25, 30, 32}),
)

_MT_CALL = RecordSchema(
    "mtCallRecord",
    1,
    {
        0: _RECORD_TYPE,
        1: _IMSI,
        2: _IMEI,
        3: _f("servedMSISDN", Kind.NUMBER),  # CalledNumber (BCDDirectoryNumber) in MT
        4: _f("callingNumber", Kind.NUMBER),
        5: _f("connectedNumber", Kind.NUMBER),
        6: _f("recordingEntity", Kind.ENTITY, *_ADDRESS),
        9: _f("location", Kind.LOCATION),
        10: _f("changeOfLocation", Kind.LOCATION_CHANGES),
        11: _f("basicService", Kind.BASIC_SERVICE),
        19: _f("seizureTime", Kind.TIME, 9, 9),
        20: _f("answerTime", Kind.TIME, 9, 9),
        21: _f("releaseTime", Kind.TIME, 9, 9),
        22: _f("callDuration", Kind.DURATION),
        27: _f("causeForTerm", Kind.CAUSE),
        28: _f("diagnostics", Kind.DIAGNOSTICS),
        29: _f("callReference", Kind.OCTETS_HEX, 1, 8),
        30: _f("sequenceNumber", Kind.INT),
        46: _f("systemType", Kind.ENUM),
    },
    frozenset({0, 1, 6, 22, 27, 29}),
)

_MO_SMS = RecordSchema(
    "moSMSRecord",
    6,
    {
        0: _RECORD_TYPE,
        1: _IMSI,
        2: _IMEI,
        3: _f("servedMSISDN", Kind.NUMBER, *_ISDN),
        4: _f("msClassmark", Kind.IGNORED),
        5: _f("serviceCentre", Kind.NUMBER, *_ADDRESS),
        6: _f("recordingEntity", Kind.ENTITY, *_ADDRESS),
        7: _f("location", Kind.LOCATION),
        8: _f("messageReference", Kind.OCTETS_INT),
        9: _f("originationTime", Kind.TIME, 9, 9),
        10: _f("smsResult", Kind.DIAGNOSTICS),
        12: _f("destinationNumber", Kind.SMS_NUMBER),
        14: _f("systemType", Kind.ENUM),
    },
    frozenset({0, 1, 4, 5, 6, 8, 9}),
)

_MT_SMS = RecordSchema(
    "mtSMSRecord",
    7,
    {
        0: _RECORD_TYPE,
        1: _f("serviceCentre", Kind.NUMBER, *_ADDRESS),
        2: _IMSI,
        3: _IMEI,
        4: _f("servedMSISDN", Kind.NUMBER, *_ISDN),
        5: _f("msClassmark", Kind.IGNORED),
        6: _f("recordingEntity", Kind.ENTITY, *_ADDRESS),
        7: _f("location", Kind.LOCATION),
        8: _f("deliveryTime", Kind.TIME, 9, 9),
        9: _f("smsResult", Kind.DIAGNOSTICS),
        11: _f("systemType", Kind.ENUM),
    },
    frozenset({0, 1, 2, 5, 6, 8}),
)

RECORD_SCHEMAS: Final[dict[int, RecordSchema]] = {
    s.choice_tag: s for s in (_MO_CALL, _MT_CALL, _MO_SMS, _MT_SMS)
}

# LocationAreaAndCell: [0] locationAreaCode, [1] cellId (2 octets each), [2] mCC-MNC
# (3 octets, optional). LocationChange: [0] location, [1] changeTime.
LOCATION_AREA_TAG: Final = 0
CELL_ID_TAG: Final = 1
MCC_MNC_TAG: Final = 2
CHANGE_LOCATION_TAG: Final = 0
CHANGE_TIME_TAG: Final = 1

# Diagnostics CHOICE: alternative tag -> (name, is an integer or enumerated value).
# The two ManagementExtension alternatives carry vendor data and are kept by name only.
DIAGNOSTICS_ALTERNATIVES: Final[dict[int, tuple[str, bool]]] = {
    0: ("gsm0408Cause", True),
    1: ("gsm0902MapErrorValue", True),
    2: ("itu-tQ767Cause", True),
    3: ("networkSpecificCause", False),
    4: ("manufacturerSpecificCause", False),
    5: ("positionMethodFailureCause", True),
    6: ("unauthorizedLCSClientCause", True),
    7: ("diameterResultCodeAndExperimentalResult", True),
}

# BasicServiceCode CHOICE: [2] bearerService, [3] teleservice, each one octet.
BEARER_SERVICE_TAG: Final = 2
TELESERVICE_TAG: Final = 3

SYSTEM_TYPE_NAMES: Final[dict[int, str]] = {0: "unknown", 1: "iuUTRAN", 2: "gERAN"}

CAUSE_FOR_TERM_NAMES: Final[dict[int, str]] = {
    0: "normalRelease",
    1: "partialRecord",
    2: "partialRecordCallReestablishment",
    3: "unsuccessfulCallAttempt",
    4: "abnormalRelease",
    5: "cAMELInitCallRelease",
    52: "unauthorizedRequestingNetwork",
    53: "unauthorizedLCSClient",
    54: "positionMethodFailure",
    58: "unknownOrUnreachableLCSClient",
}

# MAP-TS-Code / MAP-BS-Code names (TS 29.002) of the codes a CS record carries most.
# Other codes become "teleservice:XX" / "bearerService:XX" (hex), so nothing is lost.
BASIC_SERVICE_NAMES: Final[dict[tuple[int, int], str]] = {
    (TELESERVICE_TAG, 0x00): "allTeleservices",
    (TELESERVICE_TAG, 0x10): "allSpeechTransmissionServices",
    (TELESERVICE_TAG, 0x11): "telephony",
    (TELESERVICE_TAG, 0x12): "emergencyCalls",
    (TELESERVICE_TAG, 0x20): "allShortMessageServices",
    (TELESERVICE_TAG, 0x21): "shortMessageMT-PP",
    (TELESERVICE_TAG, 0x22): "shortMessageMO-PP",
    (TELESERVICE_TAG, 0x60): "allFacsimileTransmissionServices",
    (TELESERVICE_TAG, 0x61): "facsimileGroup3AndAlterSpeech",
    (TELESERVICE_TAG, 0x62): "automaticFacsimileGroup3",
    (TELESERVICE_TAG, 0x63): "facsimileGroup4",
    (TELESERVICE_TAG, 0x70): "allDataTeleservices",
    (TELESERVICE_TAG, 0x80): "allTeleservices-ExeptSMS",
    (TELESERVICE_TAG, 0x91): "voiceGroupCall",
    (TELESERVICE_TAG, 0x92): "voiceBroadcastCall",
    (BEARER_SERVICE_TAG, 0x00): "allBearerServices",
    (BEARER_SERVICE_TAG, 0x10): "allDataCDA-Services",
    (BEARER_SERVICE_TAG, 0x16): "dataCDA-9600bps",
    (BEARER_SERVICE_TAG, 0x17): "general-dataCDA",
    (BEARER_SERVICE_TAG, 0x18): "allDataCDS-Services",
    (BEARER_SERVICE_TAG, 0x1E): "dataCDS-9600bps",
    (BEARER_SERVICE_TAG, 0x1F): "general-dataCDS",
}
