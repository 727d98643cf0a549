"""The compiled route builders give exactly what the field-by-field interpreter gives."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings

from pipeline.core.consent import ConsentState
from pipeline.core.decode import CdrRecord
from pipeline.core.engine import Engine, Output
from pipeline.core.warrants import WarrantIndex
from tests.support.core import (
    OPTIONAL_FIELDS,
    OTHER,
    PURPOSES,
    SERVED,
    SERVED_IMSI,
    add_warrant,
    consent_maps,
    encode,
    mo_call,
    mo_sms,
    mt_call,
    mt_sms,
    records,
)
from tests.support.properties import EXAMPLES

PROPERTY = settings(max_examples=EXAMPLES, deadline=None)


def both_paths(
    engine: Engine, record: CdrRecord, consent: dict[str, ConsentState | None], index: WarrantIndex
) -> tuple[list[Output], list[Output], list[dict[str, Any]]]:
    """The default (compiled) outputs, the traced (interpreted) outputs and the trace."""
    trace: list[dict[str, Any]] = []
    compiled = engine.route(record, consent.get, index)
    interpreted = engine.route(record, consent.get, index, trace=trace)
    return compiled, interpreted, trace


def warrant_index(engine: Engine) -> WarrantIndex:
    """Warrants on one subscriber's number and on an IMSI, active all of 2026."""
    index = WarrantIndex(engine.decoder.msisdn)
    add_warrant(
        index,
        "LI-1",
        [("msisdn", OTHER), ("imsi", SERVED_IMSI)],
        valid_from="2026-01-01T00:00:00Z",
        valid_until="2027-01-01T00:00:00Z",
    )
    return index


@PROPERTY
@given(records(), consent_maps)
def test_compiled_and_interpreted_routes_agree_output_for_output(
    engine: Engine, record: dict[str, Any], consent: dict[str, ConsentState | None]
) -> None:
    """For generated records and consent, route() equals route(trace=[]) byte for byte."""
    decoded = engine.decoder(encode(record))
    assert isinstance(decoded, CdrRecord), decoded
    compiled, interpreted, trace = both_paths(engine, decoded, consent, warrant_index(engine))
    assert compiled == interpreted
    assert trace  # the traced path did explain itself


PURPOSE_SETS = [frozenset(c) for n in range(3) for c in itertools.combinations(PURPOSES, n)]


@pytest.mark.parametrize("factory", [mo_call, mt_call, mo_sms, mt_sms])
def test_compiled_and_interpreted_agree_for_every_pair_of_consent_states(
    engine: Engine, factory: Any
) -> None:
    """Every combination of the served and the other party's purposes (0-2 each), plus none."""
    decoded = engine.decoder(encode(factory()))
    assert isinstance(decoded, CdrRecord)
    index = warrant_index(engine)
    options: list[ConsentState | None] = [None, *(ConsentState(5, p) for p in PURPOSE_SETS)]
    for served, other in itertools.product(options, repeat=2):
        compiled, interpreted, _trace = both_paths(
            engine, decoded, {SERVED: served, OTHER: other}, index
        )
        assert compiled == interpreted, (served, other)


NULL_CASES = [
    (factory, nulls)
    for factory in (mo_call, mt_call, mo_sms, mt_sms)
    for present in [[name for name in factory() if name in OPTIONAL_FIELDS]]
    for nulls in [*((name,) for name in present), tuple(present)]
]


@pytest.mark.parametrize(
    ("factory", "nulls"),
    NULL_CASES,
    ids=[f"{factory.__name__}-{'+'.join(nulls)}" for factory, nulls in NULL_CASES],
)
def test_a_record_with_null_fields_gives_what_the_compiled_builders_give_without_them(
    engine: Engine, factory: Any, nulls: tuple[str, ...]
) -> None:
    """A null optional field is left out: the interpreter's outputs for a record with nulls
    equal, byte for byte, the compiled per-shape builders' outputs for the same record
    without those fields, with and without consent."""
    with_nulls = {**factory(), **dict.fromkeys(nulls)}
    without = {name: value for name, value in with_nulls.items() if name not in nulls}
    interpreted_record = engine.decoder(encode(with_nulls))
    compiled_record = engine.decoder(encode(without))
    assert isinstance(interpreted_record, CdrRecord), interpreted_record
    assert isinstance(compiled_record, CdrRecord), compiled_record
    # route() sends a record with nulls to the interpreter, one without to the builders.
    assert interpreted_record.has_nulls
    assert not compiled_record.has_nulls
    index = WarrantIndex(engine.decoder.msisdn)
    everything = ConsentState(3, frozenset(PURPOSES))
    for consent in ({}, {SERVED: everything}, {SERVED: everything, OTHER: everything}):
        interpreted = engine.route(interpreted_record, consent.get, index)
        compiled = engine.route(compiled_record, consent.get, index)
        assert interpreted, consent
        assert interpreted == compiled, consent
        for output in interpreted:
            assert b"null" not in output.value
    for plan in engine._plans:
        if compiled_record.shape in plan.build.shapes:  # type: ignore[attr-defined]
            break
    else:
        pytest.fail("no route built the record without nulls with a per-shape builder")


def test_the_trace_explains_every_route(engine: Engine) -> None:
    """The trace names each route of the policy once, delivered or not, with a reason."""
    decoded = engine.decoder(encode(mt_call()))
    assert isinstance(decoded, CdrRecord)
    _compiled, _interpreted, trace = both_paths(
        engine, decoded, {}, WarrantIndex(engine.decoder.msisdn)
    )
    assert sorted(entry["route"] for entry in trace) == sorted(engine.policy.routes)
    delivered = {entry["route"]: entry["delivered"] for entry in trace}
    assert delivered["billing"] is False
    assert delivered["marketing"] is False
    assert delivered["lawful_intercept"] is False
    assert delivered["fraud_prevention"] is True
    assert all(entry["reason"] for entry in trace)


def test_each_record_shape_gets_its_own_builder_and_a_flood_of_shapes_stays_bounded(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records with ever new field names (unknown fields are allowed) fall back to the
    generic builder once MAX_SHAPES are known, and still agree with the interpreter."""
    from pipeline.core import compile as compiled_routes

    monkeypatch.setattr(compiled_routes, "MAX_SHAPES", 3)
    fresh = Engine(engine.policy, engine._pseudonymizer, engine.decoder, engine.home_networks)
    index = WarrantIndex(engine.decoder.msisdn)
    # Marketing and service improvement: the routes that require consent build too.
    consent = {SERVED: ConsentState(1, frozenset(PURPOSES[:2]))}
    for extra in range(8):
        record = mo_call()
        record[f"vendorField{extra}"] = extra  # a new shape every time
        decoded = fresh.decoder(encode(record))
        assert isinstance(decoded, CdrRecord)
        compiled, interpreted, _trace = both_paths(fresh, decoded, consent, index)
        assert compiled == interpreted
        assert all(f"vendorField{extra}".encode() not in out.value for out in compiled)
    for plan in fresh._plans:
        assert len(plan.build.shapes) == 3  # type: ignore[attr-defined]
