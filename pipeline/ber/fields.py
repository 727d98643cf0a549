"""Field values of a decoded CDR, from the raw ASN.1 shapes both engines produce to JSON.

Both engines (the hand-written walker in ``fast.py`` and pycrate in ``reference.py``) hand
this module the same raw shapes per ``Kind``, so the JSON a record becomes cannot depend
on the engine:

=======================================  ===================================================
kind                                     raw value
=======================================  ===================================================
RECORD_TYPE, INT, DURATION, CAUSE, ENUM  ``int``
IMSI ... OCTETS_INT (octet strings)      ``bytes``
LOCATION                                 ``(lac: bytes, cell: bytes, plmn: bytes | None)``
LOCATION_CHANGES                         ``list[(location, change_time: bytes)]``
BASIC_SERVICE                            ``(alternative tag, code: bytes)``
DIAGNOSTICS                              ``(alternative tag, value: int | None)``
=======================================  ===================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

from pipeline import defaults
from pipeline.ber.errors import (
    BAD_IMEI,
    BAD_IMSI,
    BAD_MSISDN,
    BAD_TIMESTAMP,
    BAD_VALUE,
    CdrRejection,
)
from pipeline.ber.party import PARTY_FIELDS, party_address, party_sms_address
from pipeline.ber.schema import (
    BASIC_SERVICE_NAMES,
    BEARER_SERVICE_TAG,
    CAUSE_FOR_TERM_NAMES,
    DIAGNOSTICS_ALTERNATIVES,
    SYSTEM_TYPE_NAMES,
    FieldSpec,
    Kind,
    RecordSchema,
)
from pipeline.ber.tbcd import (
    Address,
    address_to_number,
    decode_address,
    decode_plmn_id,
    decode_sms_address,
    decode_tbcd,
    decode_uint16,
)
from pipeline.ber.timestamps import decode_timestamp

__all__ = ["CONVERTERS", "Converter", "DecodeOptions", "RawLocation", "RawRecord"]

RawLocation = tuple[bytes, bytes, bytes | None]


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Numbering settings and the serving network to assume (see ``BerRecordDecoder``)."""

    trunk_prefix: str = defaults.TRUNK_PREFIX
    country_code: str = defaults.COUNTRY_CODE
    default_mcc_mnc: str | None = None


class RawRecord(NamedTuple):
    """A record as an engine extracted it: its schema and the raw values of its known fields."""

    schema: RecordSchema
    values: list[tuple[FieldSpec, object]]


_MAX_MESSAGE_REFERENCE_OCTETS: Final = 4

Converter = Callable[[FieldSpec, object, DecodeOptions], object]


def _reject(code: str, spec: FieldSpec, what: str) -> CdrRejection:
    return CdrRejection(code, f"{spec.name}: {what}", spec.name)


def _fits(spec: FieldSpec, raw: bytes) -> bool:
    """Whether an octet string keeps its field's size bounds."""
    return spec.min_size <= len(raw) and not (spec.max_size and len(raw) > spec.max_size)


def _sized(spec: FieldSpec, raw: object, code: str) -> bytes | CdrRejection:
    """The octets of an octet-string field, or a rejection if they break its size bounds."""
    if not isinstance(raw, bytes):
        return _reject(BAD_VALUE, spec, "expected an octet string")
    size = len(raw)
    if size < spec.min_size or (spec.max_size and size > spec.max_size):
        return _reject(code, spec, "octet string size out of range")
    return raw


def _time(spec: FieldSpec, raw: object, _options: DecodeOptions) -> object:
    octets = _sized(spec, raw, BAD_TIMESTAMP)
    if isinstance(octets, CdrRejection):
        return octets
    text = decode_timestamp(octets)
    return text if text is not None else _reject(BAD_TIMESTAMP, spec, "invalid BCD time")


def _digits(code: str) -> Converter:
    def convert(spec: FieldSpec, raw: object, _options: DecodeOptions) -> object:
        octets = _sized(spec, raw, code)
        if isinstance(octets, CdrRejection):
            return octets
        digits = decode_tbcd(octets)
        return digits if digits is not None else _reject(code, spec, "invalid TBCD digits")

    return convert


def _number(code: str, decode: Callable[[bytes], Address | None]) -> Converter:
    party = party_sms_address if decode is decode_sms_address else party_address

    def convert(spec: FieldSpec, raw: object, options: DecodeOptions) -> object:
        if spec.name in PARTY_FIELDS and isinstance(raw, bytes):
            # Another party's number: a code, a sender name or junk keeps the record, the
            # record decoder classifies it (only a served identity must be readable).
            address = decode(raw) if _fits(spec, raw) else None
            if address is None:
                return party(raw, options.trunk_prefix, options.country_code)
            return address_to_number(address, options.trunk_prefix, options.country_code)
        octets = _sized(spec, raw, code)
        if isinstance(octets, CdrRejection):
            return octets
        address = decode(octets)
        if address is None:
            return _reject(code, spec, "invalid address string")
        return address_to_number(address, options.trunk_prefix, options.country_code)

    return convert


def _octets_hex(spec: FieldSpec, raw: object, _options: DecodeOptions) -> object:
    octets = _sized(spec, raw, BAD_VALUE)
    return octets if isinstance(octets, CdrRejection) else octets.hex()


def _octets_int(spec: FieldSpec, raw: object, _options: DecodeOptions) -> object:
    if not isinstance(raw, bytes) or not 1 <= len(raw) <= _MAX_MESSAGE_REFERENCE_OCTETS:
        return _reject(BAD_VALUE, spec, "octet string size out of range")
    return int.from_bytes(raw, "big")


def _integer(spec: FieldSpec, raw: object, _options: DecodeOptions) -> object:
    if not isinstance(raw, int):
        return _reject(BAD_VALUE, spec, "expected an integer")
    return raw


def _duration(spec: FieldSpec, raw: object, _options: DecodeOptions) -> object:
    if not isinstance(raw, int) or raw < 0:
        return _reject(BAD_VALUE, spec, "duration must be an integer >= 0")
    return raw


def _cause(spec: FieldSpec, raw: object, _options: DecodeOptions) -> object:
    if not isinstance(raw, int):
        return _reject(BAD_VALUE, spec, "expected an integer")
    return CAUSE_FOR_TERM_NAMES.get(raw, str(raw))


def _system_type(spec: FieldSpec, raw: object, _options: DecodeOptions) -> object:
    name = SYSTEM_TYPE_NAMES.get(raw) if isinstance(raw, int) else None
    return name if name is not None else _reject(BAD_VALUE, spec, "unknown enumerated value")


def _ignored(_spec: FieldSpec, _raw: object, _options: DecodeOptions) -> object:
    return None


def _location_json(
    spec: FieldSpec, raw: object, options: DecodeOptions
) -> dict[str, object] | CdrRejection:
    if not (isinstance(raw, tuple) and len(raw) == 3):
        return _reject(BAD_VALUE, spec, "malformed location")
    lac_raw, cell_raw, plmn_raw = raw
    lac = decode_uint16(lac_raw) if isinstance(lac_raw, bytes) else None
    cell = decode_uint16(cell_raw) if isinstance(cell_raw, bytes) else None
    if lac is None or cell is None:
        return _reject(BAD_VALUE, spec, "location area code and cell id must be 2 octets")
    location: dict[str, object] = {}
    if plmn_raw is not None:
        plmn = decode_plmn_id(plmn_raw) if isinstance(plmn_raw, bytes) else None
        if plmn is None:
            return _reject(BAD_VALUE, spec, "invalid MCC-MNC")
        location["mccMnc"] = plmn
    elif options.default_mcc_mnc is not None:
        location["mccMnc"] = options.default_mcc_mnc
    location["locationAreaCode"] = lac
    location["cellId"] = cell
    return location


def _location(spec: FieldSpec, raw: object, options: DecodeOptions) -> object:
    return _location_json(spec, raw, options)


def _location_changes(spec: FieldSpec, raw: object, options: DecodeOptions) -> object:
    if not isinstance(raw, list):
        return _reject(BAD_VALUE, spec, "malformed location changes")
    changes: list[dict[str, object]] = []
    for item in raw:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes)):
            return _reject(BAD_VALUE, spec, "malformed location change")
        location = _location_json(spec, item[0], options)
        if isinstance(location, CdrRejection):
            return location
        change_time = decode_timestamp(item[1])
        if change_time is None:
            return _reject(BAD_TIMESTAMP, spec, "invalid BCD change time")
        changes.append({"location": location, "changeTime": change_time})
    return changes


def _basic_service(spec: FieldSpec, raw: object, _options: DecodeOptions) -> object:
    if not (isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[1], bytes)):
        return _reject(BAD_VALUE, spec, "malformed basic service")
    tag, code = raw
    if len(code) != 1:
        return _reject(BAD_VALUE, spec, "service code must be 1 octet")
    name = BASIC_SERVICE_NAMES.get((tag, code[0]))
    if name is not None:
        return name
    prefix = "bearerService" if tag == BEARER_SERVICE_TAG else "teleservice"
    return f"{prefix}:{code[0]:02X}"


def _diagnostics(spec: FieldSpec, raw: object, _options: DecodeOptions) -> object:
    """gsm0408Cause (the Q.850 cause, by far the commonest) as an int; others as "name:value"."""
    if not (isinstance(raw, tuple) and len(raw) == 2):
        return _reject(BAD_VALUE, spec, "malformed diagnostics")
    tag, value = raw
    alternative = DIAGNOSTICS_ALTERNATIVES.get(tag)
    if alternative is None:
        return _reject(BAD_VALUE, spec, "unknown diagnostics alternative")
    name, is_number = alternative
    if not is_number:
        return name
    if not isinstance(value, int):
        return _reject(BAD_VALUE, spec, "expected an integer")
    return value if tag == 0 else f"{name}:{value}"


CONVERTERS: Final[dict[str, Converter]] = {
    Kind.RECORD_TYPE: _integer,
    Kind.INT: _integer,
    Kind.DURATION: _duration,
    Kind.ENUM: _system_type,
    Kind.CAUSE: _cause,
    Kind.IMSI: _digits(BAD_IMSI),
    Kind.IMEI: _digits(BAD_IMEI),
    Kind.NUMBER: _number(BAD_MSISDN, decode_address),
    Kind.SMS_NUMBER: _number(BAD_MSISDN, decode_sms_address),
    Kind.ENTITY: _number(BAD_VALUE, decode_address),
    Kind.TIME: _time,
    Kind.OCTETS_HEX: _octets_hex,
    Kind.OCTETS_INT: _octets_int,
    Kind.LOCATION: _location,
    Kind.LOCATION_CHANGES: _location_changes,
    Kind.BASIC_SERVICE: _basic_service,
    Kind.DIAGNOSTICS: _diagnostics,
    Kind.IGNORED: _ignored,
}
