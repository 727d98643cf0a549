"""The fast engine's tag tables match pycrate's TS 32.298 definitions, entry by entry."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.ber.schema import (
    BASIC_SERVICE_NAMES,
    BEARER_SERVICE_TAG,
    CAUSE_FOR_TERM_NAMES,
    CELL_ID_TAG,
    CHANGE_LOCATION_TAG,
    CHANGE_TIME_TAG,
    DIAGNOSTICS_ALTERNATIVES,
    LOCATION_AREA_TAG,
    MCC_MNC_TAG,
    RECORD_SCHEMAS,
    SYSTEM_TYPE_NAMES,
    TELESERVICE_TAG,
    Kind,
    RecordSchema,
)
from tests.support.ber_samples import CS_CHARGING, GENERIC_CHARGING

# The pycrate type each kind must have.
ASN1_TYPES = {
    Kind.RECORD_TYPE: "INTEGER",
    Kind.INT: "INTEGER",
    Kind.DURATION: "INTEGER",
    Kind.CAUSE: "INTEGER",
    Kind.ENUM: "ENUMERATED",
    Kind.LOCATION: "SEQUENCE",
    Kind.LOCATION_CHANGES: "SEQUENCE OF",
    Kind.BASIC_SERVICE: "CHOICE",
    Kind.DIAGNOSTICS: "CHOICE",
}


def _record_type(schema: RecordSchema) -> Any:
    """The record's type definition, found the way pycrate finds it: via the CHOICE."""
    module, name = CS_CHARGING.CSRecord._cont[schema.record_type]._typeref.called
    assert module == "CSChargingDataTypes"
    return getattr(CS_CHARGING, name)


def _size_bounds(component: Any) -> tuple[int, int]:
    constraint = getattr(component, "_const_sz", None)
    if constraint is None:
        return 0, 0
    (bound,) = constraint.root
    if isinstance(bound, int):
        return bound, bound
    return bound.lb, bound.ub


@pytest.mark.parametrize("schema", RECORD_SCHEMAS.values(), ids=lambda s: s.record_type)
def test_record_tags_types_and_sizes_match_pycrate(schema: RecordSchema) -> None:
    definition = _record_type(schema)
    choice = CS_CHARGING.CSRecord._cont[schema.record_type]
    assert choice._tag[0] == schema.choice_tag
    for tag, spec in schema.fields.items():
        component = definition._cont[spec.name]
        assert component._tag[0] == tag, spec.name
        assert ASN1_TYPES.get(spec.kind, "OCTET STRING") == component.TYPE, spec.name
        assert (spec.min_size, spec.max_size) == _size_bounds(component), spec.name


@pytest.mark.parametrize("schema", RECORD_SCHEMAS.values(), ids=lambda s: s.record_type)
def test_mandatory_fields_match_pycrate(schema: RecordSchema) -> None:
    definition = _record_type(schema)
    mandatory = {definition._cont[name]._tag[0] for name in definition._root_mand}
    assert mandatory == set(schema.mandatory)


def test_record_type_values_equal_their_choice_tags() -> None:
    values = dict(GENERIC_CHARGING.RecordType._cont)
    for schema in RECORD_SCHEMAS.values():
        assert values[schema.record_type] == schema.choice_tag


def test_location_and_location_change_tags_match_pycrate() -> None:
    location = GENERIC_CHARGING.LocationAreaAndCell._cont
    assert location["locationAreaCode"]._tag[0] == LOCATION_AREA_TAG
    assert location["cellId"]._tag[0] == CELL_ID_TAG
    assert location["mCC-MNC"]._tag[0] == MCC_MNC_TAG
    change = CS_CHARGING.LocationChange._cont
    assert change["location"]._tag[0] == CHANGE_LOCATION_TAG
    assert change["changeTime"]._tag[0] == CHANGE_TIME_TAG


def test_diagnostics_alternatives_match_pycrate() -> None:
    alternatives = GENERIC_CHARGING.Diagnostics._cont
    assert {c._tag[0]: name for name, c in alternatives.items()} == {
        tag: name for tag, (name, _) in DIAGNOSTICS_ALTERNATIVES.items()
    }
    for tag, (name, numeric) in DIAGNOSTICS_ALTERNATIVES.items():
        assert (alternatives[name].TYPE in ("INTEGER", "ENUMERATED")) == numeric, tag


def test_enumerations_and_named_numbers_match_pycrate() -> None:
    assert dict(GENERIC_CHARGING.SystemType._cont) == {v: k for k, v in SYSTEM_TYPE_NAMES.items()}
    assert dict(GENERIC_CHARGING.CauseForTerm._cont) == {
        v: k for k, v in CAUSE_FOR_TERM_NAMES.items()
    }


def test_basic_service_names_are_the_map_code_names() -> None:
    import pycrate_asn1dir.CDR as cdr  # type: ignore[import-untyped]

    codes = {
        TELESERVICE_TAG: cdr.MAP_TS_Code,
        BEARER_SERVICE_TAG: cdr.MAP_BS_Code,
    }
    choice = cdr.MAP_CommonDataTypes.BasicServiceCode._cont
    assert choice["bearerService"]._tag[0] == BEARER_SERVICE_TAG
    assert choice["teleservice"]._tag[0] == TELESERVICE_TAG
    for (tag, code), name in BASIC_SERVICE_NAMES.items():
        value = getattr(codes[tag], name.replace("-", "_"))._val
        assert value == bytes([code]), name
