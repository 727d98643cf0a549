"""The reference engine: pycrate's own TS 32.298 definitions decode the record.

Slower than ``fast.py`` (pycrate builds a full object tree), and strict where real files
are not (an unknown tag fails the record), so it serves as the yardstick the fast engine
is tested against, and as a second opinion on a file that the fast engine rejects.
pycrate is imported when an engine is created, not when this module is: the import takes
seconds, and the package must import without the optional ``cdrveil[ber]`` extra.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from pipeline.ber.errors import BAD_BER, UNKNOWN_RECORD_TYPE, BerSupportMissing, CdrRejection
from pipeline.ber.fields import RawLocation, RawRecord
from pipeline.ber.schema import (
    BEARER_SERVICE_TAG,
    DIAGNOSTICS_ALTERNATIVES,
    RECORD_SCHEMAS,
    SYSTEM_TYPE_NAMES,
    TELESERVICE_TAG,
    FieldSpec,
    Kind,
    RecordSchema,
)
from pipeline.ber.tlv import BerError, read_tlv

__all__ = ["PycrateEngine", "load_cs_charging_module"]

_SCHEMAS_BY_NAME: Final = {s.record_type: s for s in RECORD_SCHEMAS.values()}
_DIAGNOSTICS_TAGS: Final = {name: tag for tag, (name, _) in DIAGNOSTICS_ALTERNATIVES.items()}
_BASIC_SERVICE_TAGS: Final = {"bearerService": BEARER_SERVICE_TAG, "teleservice": TELESERVICE_TAG}
_SYSTEM_TYPES: Final = {name: value for value, name in SYSTEM_TYPE_NAMES.items()}


def load_cs_charging_module() -> Any:
    """Import pycrate's ``CSChargingDataTypes`` module (seconds), or raise BerSupportMissing."""
    try:
        cdr = importlib.import_module("pycrate_asn1dir.CDR")
    except ImportError as exc:
        raise BerSupportMissing from exc
    return cdr.CSChargingDataTypes


class PycrateEngine:
    """Decode a BER ``CSRecord`` with pycrate and reduce it to the raw shapes of ``fields.py``."""

    def __init__(self) -> None:
        """Load pycrate (raises BerSupportMissing if it is not installed)."""
        module = load_cs_charging_module()
        self._cs_record = module.CSRecord
        diagnostics = importlib.import_module("pycrate_asn1dir.CDR").GenericChargingDataTypes
        # ENUMERATED alternatives of Diagnostics come back as names; fast.py reads numbers.
        self._enum_values: dict[str, dict[str, int]] = {
            name: dict(component._cont)
            for name, component in diagnostics.Diagnostics._cont.items()
            if component.TYPE == "ENUMERATED"
        }

    def __call__(self, cdr: bytes) -> RawRecord | CdrRejection:
        """Decode one record; malformed input is returned as a ``bad_ber`` rejection."""
        try:
            outer_end = read_tlv(cdr, 0, len(cdr)).next
        except BerError as exc:
            return CdrRejection(BAD_BER, f"malformed BER: {exc}")
        if outer_end != len(cdr):
            return CdrRejection(BAD_BER, "malformed BER: octets after the end of the record")
        try:
            self._cs_record.from_ber(cdr)
            alternative, value = self._cs_record.get_val()
        # pycrate raises many exception types on malformed input; its messages can quote
        # field values, so only the exception's type is kept.
        except Exception as exc:  # noqa: BLE001
            return CdrRejection(BAD_BER, f"malformed BER (pycrate {type(exc).__name__})")
        schema = _SCHEMAS_BY_NAME.get(alternative)
        if schema is None:
            return CdrRejection(
                UNKNOWN_RECORD_TYPE, "CSRecord alternative is not a supported record type"
            )
        try:
            return self._reduce(schema, value)
        except (KeyError, TypeError, IndexError, ValueError):
            # A shape pycrate accepted but the reduction did not expect; still bad input.
            return CdrRejection(BAD_BER, "malformed BER (unexpected value shape)")

    def _reduce(self, schema: RecordSchema, value: dict[str, Any]) -> RawRecord:
        values: list[tuple[FieldSpec, object]] = []
        for spec in schema.fields.values():
            if spec.name in value:
                raw = value[spec.name]
                if spec.kind == Kind.DIAGNOSTICS and isinstance(raw[1], str):
                    raw = raw[0], self._enum_values[raw[0]][raw[1]]
                values.append((spec, _reduce_field(spec.kind, raw)))
        return RawRecord(schema, values)


def _reduce_field(kind: str, value: Any) -> object:
    if kind == Kind.ENUM:
        return _SYSTEM_TYPES[value]
    if kind == Kind.LOCATION:
        return _reduce_location(value)
    if kind == Kind.LOCATION_CHANGES:
        return [(_reduce_location(item["location"]), item["changeTime"]) for item in value]
    if kind == Kind.BASIC_SERVICE:
        return _BASIC_SERVICE_TAGS[value[0]], value[1]
    if kind == Kind.DIAGNOSTICS:
        name, inner = value
        return _DIAGNOSTICS_TAGS[name], inner if isinstance(inner, int) else None
    return value


def _reduce_location(value: dict[str, Any]) -> RawLocation:
    return value["locationAreaCode"], value["cellId"], value.get("mCC-MNC")
