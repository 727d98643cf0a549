"""Decode one input message into a validated :class:`CdrRecord`, or reject it.

Bad input is a value here, not an exception: :class:`Rejection` carries a
stable reason code (for the dead-letter topic, metrics and alerting) and a
message that names the field but never its value, since the value may be an
identifier.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final, NamedTuple

import orjson

from pipeline import defaults
from pipeline.core.cache import TwoGenerationCache
from pipeline.core.fields import (
    FIELDS,
    MO_TYPES,
    RECORD_ID,
    SMS_TYPES,
    VOICE_TYPES,
    Kind,
    Owner,
)
from pipeline.core.normalize import MsisdnNormalizer, normalize_imei, normalize_imsi
from pipeline.core.party import PartyClass, classify

#: Every reason code the decoder produces, with what it means.
REASONS: Final[dict[str, str]] = {
    "null_value": "the message has no value (a tombstone on a record topic)",
    "oversize": "the message is larger than the configured maximum record size",
    "invalid_utf8": "the message is not valid UTF-8",
    "invalid_json": "the message is not valid JSON",
    "not_an_object": "the JSON value is not an object",
    "missing_field": "a required field is absent or null",
    "wrong_type": "a field has the wrong JSON type",
    "unknown_record_type": "recordType is not one of the supported record types",
    "bad_msisdn": "servedMSISDN or serviceCentre is not a valid MSISDN in any accepted form "
    "(another party's number that is no MSISDN is classified, not refused: party.py)",
    "bad_imsi": "an IMSI field is not 14-15 digits",
    "bad_imei": "an IMEI field is not 14, 15 (with valid Luhn digit) or 16 digits",
    "bad_timestamp": "a time field is not an RFC 3339 timestamp with a UTC offset",
    "bad_value": "a field has a value outside its allowed range",
}

MAX_RECORD_ID_LENGTH: Final = 128
#: Parsed timestamps kept per cache generation (two generations).
TIME_CACHE_SIZE: Final = 1 << 14


class Rejection(NamedTuple):
    """Why an input cannot be processed. ``message`` never contains an identifier."""

    code: str
    message: str
    field: str | None = None


class CdrRecord:
    """A validated voice or SMS record with its identities normalized."""

    __slots__ = (
        "_span",
        "imei",
        "imsi",
        "is_mo",
        "is_voice",
        "mcc_mnc",
        "numbers",
        "obj",
        "parties",
        "raw",
        "record_id",
        "record_type",
        "times",
    )

    def __init__(self, obj: dict[str, Any], raw: bytes | None = None) -> None:
        self.obj = obj
        #: The message bytes as received (``None`` when built from another format).
        self.raw = raw
        self.record_id: str = obj[RECORD_ID]
        self.record_type: str = obj["recordType"]
        self.is_voice = self.record_type in VOICE_TYPES
        self.is_mo = self.record_type in MO_TYPES
        #: Normalized E.164 digits of every MSISDN-type field present, by field name.
        self.numbers: dict[str, str] = {}
        #: The class of every party-number field present that is no MSISDN, by field name.
        self.parties: dict[str, PartyClass] = {}
        self.imsi: str | None = None
        #: The first 14 digits of the served IMEI.
        self.imei: str | None = None
        self.mcc_mnc: str | None = None
        #: Every validated time of the record; turned into a span only when a warrant needs it.
        self.times: list[datetime] = []
        self._span: tuple[float, float] | None = None

    @property
    def span(self) -> tuple[float, float]:
        """The event's start and end, seconds since the epoch (earliest and latest time)."""
        if self._span is None:
            stamps = [moment.timestamp() for moment in self.times] or [0.0]
            self._span = (min(stamps), max(stamps))
        return self._span

    @property
    def served_msisdn(self) -> str | None:
        """The served subscriber's E.164 number, if the record has one."""
        return self.numbers.get("servedMSISDN")


# RFC 3339 date-time; fromisoformat alone also takes week dates, "+0100", commas...
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def parse_time(value: str) -> datetime | None:
    """Parse an RFC 3339 timestamp with a mandatory offset, or return ``None``."""
    # Traffic happens in years 1900-2999 (the schemas say the same); years at the edges of
    # datetime's range would also overflow when converted to UTC later.
    if _RFC3339.fullmatch(value) is None or not "1900" <= value[:4] <= "2999":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed


def _location_problem(value: object) -> Rejection | None:
    if not isinstance(value, dict):
        return Rejection("wrong_type", "'location' must be an object", "location")
    mcc_mnc = value.get("mccMnc")
    if not (
        isinstance(mcc_mnc, str)
        and len(mcc_mnc) in (5, 6)
        and mcc_mnc.isascii()
        and mcc_mnc.isdigit()
    ):
        return Rejection("bad_value", "'location.mccMnc' must be 5-6 digits", "location")
    for name in ("locationAreaCode", "cellId"):
        part = value.get(name)
        if part is None:
            continue
        if type(part) is not int:
            return Rejection("wrong_type", f"'location.{name}' must be an integer", "location")
        if not 0 <= part <= 0xFFFF:
            return Rejection("bad_value", f"'location.{name}' must be 0-65535", "location")
    return None


class Decoder:
    """Turn raw message bytes into a :class:`CdrRecord` or a :class:`Rejection`."""

    __slots__ = ("imei", "max_bytes", "msisdn", "time")

    def __init__(
        self, msisdn: MsisdnNormalizer, max_bytes: int = defaults.MAX_RECORD_BYTES
    ) -> None:
        if max_bytes < 256:
            raise ValueError("max_bytes must be at least 256")
        self.msisdn = msisdn
        self.max_bytes = max_bytes
        # Handsets repeat like subscribers do, and the Luhn check is not free.
        self.imei: TwoGenerationCache[str | None] = TwoGenerationCache(normalize_imei, 1 << 16)
        # Records arrive minutes after the event, so a second's timestamp string recurs in
        # many of them; a parse costs a regex match and fromisoformat (~1 µs).
        self.time: TwoGenerationCache[datetime | None] = TwoGenerationCache(
            parse_time, TIME_CACHE_SIZE
        )

    def __call__(self, raw: bytes | None) -> CdrRecord | Rejection:
        """Decode and validate one message value."""
        if raw is None:
            return Rejection("null_value", "the message has no value")
        if len(raw) > self.max_bytes:
            return Rejection("oversize", f"the message exceeds {self.max_bytes} bytes")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return Rejection("invalid_utf8", "the message is not valid UTF-8")
            return Rejection("invalid_json", "the message is not valid JSON")
        if type(obj) is not dict:
            return Rejection("not_an_object", "the JSON value is not an object")
        return self.validate(obj, raw)

    def validate(self, obj: dict[str, Any], raw: bytes | None = None) -> CdrRecord | Rejection:
        """Validate an already parsed object (the BER ingest path starts here)."""
        record_id = obj.get(RECORD_ID)
        if record_id is None:
            return Rejection("missing_field", "'recordId' is required", "recordId")
        if type(record_id) is not str:
            return Rejection("wrong_type", "'recordId' must be a string", "recordId")
        if not 1 <= len(record_id) <= MAX_RECORD_ID_LENGTH:
            return Rejection("bad_value", "'recordId' must be 1-128 characters", "recordId")
        record_type = obj.get("recordType")
        if record_type is None:
            return Rejection("missing_field", "'recordType' is required", "recordType")
        if type(record_type) is not str:
            return Rejection("wrong_type", "'recordType' must be a string", "recordType")
        if record_type not in VOICE_TYPES and record_type not in SMS_TYPES:
            return Rejection("unknown_record_type", "'recordType' is not supported", "recordType")
        record = CdrRecord(obj, raw)
        problem = self._fields(obj, record)
        if problem is not None:
            return problem
        return self._required(obj, record)

    def _fields(self, obj: dict[str, Any], record: CdrRecord) -> Rejection | None:
        """Check every catalog field present (null means absent) and note its normalized
        form; fields outside the catalog pass unchecked (only lawful intercept gets them)."""
        for name, value in obj.items():
            if value is None or name not in FIELDS:
                continue
            match FIELDS[name][0]:
                case Kind.MSISDN:
                    if type(value) is not str:
                        return Rejection("wrong_type", f"'{name}' must be a string", name)
                    number = self.msisdn(value)
                    if number is not None:
                        record.numbers[name] = number
                    elif FIELDS[name][1] is Owner.NUMBER:
                        # Another party's service code, short number or sender name: no
                        # reason to lose the record (only the served identity is).
                        record.parties[name] = classify(value)
                    else:
                        return Rejection("bad_msisdn", f"'{name}' is not a valid MSISDN", name)
                case Kind.TIME:
                    if type(value) is not str:
                        return Rejection("wrong_type", f"'{name}' must be a string", name)
                    parsed = self.time(value)
                    if parsed is None:
                        return Rejection(
                            "bad_timestamp", f"'{name}' is not RFC 3339 with offset", name
                        )
                    record.times.append(parsed)
                case Kind.TEXT:
                    if type(value) is not str:
                        return Rejection("wrong_type", f"'{name}' must be a string", name)
                case Kind.COUNT:
                    if type(value) is not int:
                        return Rejection("wrong_type", f"'{name}' must be an integer", name)
                    if value < 0:
                        return Rejection("bad_value", f"'{name}' must not be negative", name)
                case Kind.IMSI:
                    if type(value) is not str:
                        return Rejection("wrong_type", f"'{name}' must be a string", name)
                    record.imsi = normalize_imsi(value)
                    if record.imsi is None:
                        return Rejection("bad_imsi", f"'{name}' is not a valid IMSI", name)
                case Kind.IMEI:
                    if type(value) is not str:
                        return Rejection("wrong_type", f"'{name}' must be a string", name)
                    record.imei = self.imei(value)
                    if record.imei is None:
                        return Rejection("bad_imei", f"'{name}' is not a valid IMEI", name)
                case Kind.TEXT_OR_COUNT:
                    if type(value) is not str and type(value) is not int:
                        return Rejection(
                            "wrong_type", f"'{name}' must be a string or integer", name
                        )
                case Kind.LOCATION:
                    problem = _location_problem(value)
                    if problem is not None:
                        return problem
                    record.mcc_mnc = value["mccMnc"]
                case Kind.LOCATION_CHANGES:
                    problem = self._location_changes(value, record.times)
                    if problem is not None:
                        return problem
        return None

    @staticmethod
    def _location_changes(value: object, times: list[datetime]) -> Rejection | None:
        if type(value) is not list:
            return Rejection(
                "wrong_type", "'changeOfLocation' must be an array", "changeOfLocation"
            )
        for change in value:
            if type(change) is not dict:
                return Rejection(
                    "wrong_type", "'changeOfLocation' items must be objects", "changeOfLocation"
                )
            problem = _location_problem(change.get("location"))
            if problem is not None:
                return Rejection(
                    problem.code, f"'changeOfLocation': {problem.message}", "changeOfLocation"
                )
            change_time = change.get("changeTime")
            parsed = parse_time(change_time) if type(change_time) is str else None
            if parsed is None:
                return Rejection(
                    "bad_timestamp",
                    "'changeOfLocation.changeTime' is not RFC 3339 with offset",
                    "changeOfLocation",
                )
            times.append(parsed)
        return None

    @staticmethod
    def _required(obj: dict[str, Any], record: CdrRecord) -> CdrRecord | Rejection:
        if record.served_msisdn is None and record.imsi is None:
            return Rejection(
                "missing_field", "'servedMSISDN' or 'servedIMSI' is required", "servedMSISDN"
            )
        if record.is_voice:
            if obj.get("callDuration") is None:
                return Rejection("missing_field", "'callDuration' is required", "callDuration")
            if obj.get("seizureTime") is None and obj.get("answerTime") is None:
                return Rejection(
                    "missing_field", "'seizureTime' or 'answerTime' is required", "seizureTime"
                )
        else:
            name = "originationTime" if record.is_mo else "deliveryTime"
            if obj.get(name) is None:
                return Rejection("missing_field", f"'{name}' is required", name)
        return record
