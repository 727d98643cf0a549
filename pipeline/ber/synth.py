"""JSON record -> BER CDR, encoded by pycrate's own TS 32.298 definitions (needs the extra).

The inverse of ``BerRecordDecoder``, for tests, benchmarks and demos that need BER files
holding known records (e.g. the end-to-end test comparing the BER and JSON paths).
Numbers get the type of number the decoder maps back to the same string (national
without the trunk prefix, unknown when they start with the prefix twice, otherwise
international), so ``decoder(encoder(record))`` gives ``record`` back for every record
the decoder can produce with the same trunk prefix and without ``default_mcc_mnc``.
Fields the ASN.1 makes mandatory must be present, except ``msClassmark``, which the JSON
record does not carry and which gets a fixed value. Invalid input raises ValueError
(or KeyError for an unknown name): a caller building test data has a bug, not bad data.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pipeline.ber.reference import load_cs_charging_module
from pipeline.ber.schema import (
    BASIC_SERVICE_NAMES,
    BEARER_SERVICE_TAG,
    CAUSE_FOR_TERM_NAMES,
    DIAGNOSTICS_ALTERNATIVES,
    RECORD_SCHEMAS,
    TELESERVICE_TAG,
    FieldSpec,
    Kind,
)
from pipeline.ber.tbcd import TON_INTERNATIONAL, TON_NATIONAL, TON_UNKNOWN
from pipeline.ber.timestamps import encode_timestamp_octets

__all__ = ["BerRecordEncoder", "encode_address", "encode_plmn_id", "encode_tbcd"]

_SCHEMAS_BY_NAME: Final = {s.record_type: s for s in RECORD_SCHEMAS.values()}
_CAUSES: Final = {name: value for value, name in CAUSE_FOR_TERM_NAMES.items()}
_SERVICES: Final = {name: key for key, name in BASIC_SERVICE_NAMES.items()}
_DIAGNOSTICS: Final = {name: tag for tag, (name, _) in DIAGNOSTICS_ALTERNATIVES.items()}
_MS_CLASSMARK: Final = b"\x53\x19\xa2"
_ISDN_TELEPHONY: Final = 0x01


def encode_tbcd(digits: str, size: int | None = None) -> bytes:
    """Digits as TBCD (low nibble first), padded with filler F to ``size`` octets if given."""
    if not digits.isdigit():
        raise ValueError("TBCD needs digits")
    padded = digits + "f" * ((size * 2 - len(digits)) if size else len(digits) % 2)
    return bytes(int(padded[i + 1] + padded[i], 16) for i in range(0, len(padded), 2))


def encode_address(number: str, trunk_prefix: str = "0") -> bytes:
    """A number as an address string, choosing the type of number the decoder reads back.

    Starting with the trunk prefix once: national, prefix stripped ("0701234567"). Starting
    with it twice (an international prefix such as "00"): unknown type, digits as they are.
    Otherwise: international.
    """
    if trunk_prefix and number.startswith(trunk_prefix):
        rest = number[len(trunk_prefix) :]
        if rest.startswith(trunk_prefix):
            return bytes([0x80 | TON_UNKNOWN << 4 | _ISDN_TELEPHONY]) + encode_tbcd(number)
        return bytes([0x80 | TON_NATIONAL << 4 | _ISDN_TELEPHONY]) + encode_tbcd(rest)
    return bytes([0x80 | TON_INTERNATIONAL << 4 | _ISDN_TELEPHONY]) + encode_tbcd(number)


def encode_plmn_id(mcc_mnc: str) -> bytes:
    """A 5- or 6-digit MCC+MNC as a 3-octet PLMN id."""
    if not mcc_mnc.isdigit() or len(mcc_mnc) not in (5, 6):
        raise ValueError("mccMnc must be 5 or 6 digits")
    d = [int(c) for c in mcc_mnc]
    mnc3 = d[5] if len(d) == 6 else 0xF
    return bytes([d[1] << 4 | d[0], mnc3 << 4 | d[2], d[4] << 4 | d[3]])


def _encode_time(text: str) -> bytes:
    moment = datetime.fromisoformat(text)
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("times need an offset")
    return encode_timestamp_octets(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        int(offset.total_seconds()) // 60,
    )


def _encode_location(value: Any) -> dict[str, bytes]:
    location = {
        "locationAreaCode": int(value["locationAreaCode"]).to_bytes(2, "big"),
        "cellId": int(value["cellId"]).to_bytes(2, "big"),
    }
    if "mccMnc" in value:
        location["mCC-MNC"] = encode_plmn_id(value["mccMnc"])
    return location


class BerRecordEncoder:
    """Encode JSON record dicts (the cdr.voice / cdr.sms format) as BER ``CSRecord`` CDRs."""

    def __init__(self, *, trunk_prefix: str = "0") -> None:
        """Load pycrate (raises BerSupportMissing if it is not installed)."""
        module = load_cs_charging_module()
        self._cs_record = module.CSRecord
        self._trunk_prefix = trunk_prefix
        diagnostics = module.MOCallRecord._cont["diagnostics"]._cont
        self._enum_names: dict[str, dict[int, str]] = {
            name: {v: k for k, v in component._cont.items()}
            for name, component in diagnostics.items()
            if component.TYPE == "ENUMERATED"
        }

    def __call__(self, record: Mapping[str, Any]) -> bytes:
        """The BER encoding of one record."""
        schema = _SCHEMAS_BY_NAME.get(record.get("recordType", ""))
        if schema is None:
            raise ValueError("recordType must be one of the four CS record types")
        value: dict[str, Any] = {}
        for tag, spec in schema.fields.items():
            if spec.kind == Kind.RECORD_TYPE:
                value["recordType"] = schema.choice_tag
            elif spec.kind == Kind.IGNORED:
                value[spec.name] = _MS_CLASSMARK
            elif spec.name in record:
                value[spec.name] = self._encode_field(spec, record[spec.name])
            elif tag in schema.mandatory:
                raise ValueError(f"{spec.name} is mandatory in {schema.record_type}")
        self._cs_record.set_val((schema.record_type, value))
        return bytes(self._cs_record.to_ber())

    def _encode_field(self, spec: FieldSpec, value: Any) -> Any:
        kind = spec.kind
        if kind in (Kind.INT, Kind.DURATION):
            return int(value)
        if kind == Kind.CAUSE:
            return _CAUSES[value] if value in _CAUSES else int(value)
        if kind == Kind.ENUM:
            return value
        if kind == Kind.IMSI:
            return encode_tbcd(value)
        if kind == Kind.IMEI:
            return encode_tbcd(value, 8)
        if kind == Kind.NUMBER or kind == Kind.ENTITY:
            return encode_address(value, self._trunk_prefix)
        if kind == Kind.SMS_NUMBER:
            address = encode_address(value, self._trunk_prefix)
            return bytes([(len(address) - 1) * 2 - (address[-1] >> 4 == 0xF)]) + address
        if kind == Kind.TIME:
            return _encode_time(value)
        if kind == Kind.OCTETS_HEX:
            return bytes.fromhex(value)
        if kind == Kind.OCTETS_INT:
            return int(value).to_bytes(1, "big")
        if kind == Kind.LOCATION:
            return _encode_location(value)
        if kind == Kind.LOCATION_CHANGES:
            return [
                {
                    "location": _encode_location(change["location"]),
                    "changeTime": _encode_time(change["changeTime"]),
                }
                for change in value
            ]
        if kind == Kind.BASIC_SERVICE:
            return self._encode_service(value)
        return self._encode_diagnostics(value)

    @staticmethod
    def _encode_service(value: str) -> tuple[str, bytes]:
        if value in _SERVICES:
            tag, code = _SERVICES[value]
        else:
            prefix, _, code_hex = value.partition(":")
            tag = BEARER_SERVICE_TAG if prefix == "bearerService" else TELESERVICE_TAG
            code = int(code_hex, 16)
        return ("bearerService" if tag == BEARER_SERVICE_TAG else "teleservice"), bytes([code])

    def _encode_diagnostics(self, value: int | str) -> tuple[str, Any]:
        if isinstance(value, int):
            return "gsm0408Cause", value
        name, _, number = value.partition(":")
        if name not in _DIAGNOSTICS or not number:
            raise ValueError("only numeric diagnostics alternatives can be encoded")
        if name in self._enum_names:
            return name, self._enum_names[name][int(number)]
        return name, int(number)
