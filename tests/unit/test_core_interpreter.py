"""The reference engine is one interpreter: tracing it (``explain``) changes no output.

``Engine.route`` runs the same code with and without a trace; these properties hold it to
that, byte for byte, for generated records and every pair of consent states, and pin how
null and unknown fields are treated. (Until the compiled engine took the hot path, a
per-shape code generator ran here instead and these tests compared it with the
interpreter; the native engine is now compared with the interpreter in
``test_native_engine.py``.)
"""

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
    LI_TOPIC,
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
    """The outputs without a trace (the worker's call), with one (``explain``'s), the trace."""
    trace: list[dict[str, Any]] = []
    untraced = engine.route(record, consent.get, index)
    traced = engine.route(record, consent.get, index, trace=trace)
    return untraced, traced, trace


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
def test_tracing_changes_no_output(
    engine: Engine, record: dict[str, Any], consent: dict[str, ConsentState | None]
) -> None:
    """For generated records and consent, route() equals route(trace=[]) byte for byte."""
    decoded = engine.decoder(encode(record))
    assert isinstance(decoded, CdrRecord), decoded
    untraced, traced, trace = both_paths(engine, decoded, consent, warrant_index(engine))
    assert untraced == traced
    assert trace  # the traced path did explain itself
    # One entry per route, delivered or not, and one per delivered output beyond the first
    # on a lawful-intercept route (one output per matching warrant).
    assert len([e for e in trace if e["delivered"]]) == len(traced)


PURPOSE_SETS = [frozenset(c) for n in range(3) for c in itertools.combinations(PURPOSES, n)]


@pytest.mark.parametrize("factory", [mo_call, mt_call, mo_sms, mt_sms])
def test_tracing_changes_no_output_for_every_pair_of_consent_states(
    engine: Engine, factory: Any
) -> None:
    """Every combination of the served and the other party's purposes (0-2 each), plus none."""
    decoded = engine.decoder(encode(factory()))
    assert isinstance(decoded, CdrRecord)
    index = warrant_index(engine)
    options: list[ConsentState | None] = [None, *(ConsentState(5, p) for p in PURPOSE_SETS)]
    for served, other in itertools.product(options, repeat=2):
        untraced, traced, _trace = both_paths(
            engine, decoded, {SERVED: served, OTHER: other}, index
        )
        assert untraced == traced, (served, other)


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
def test_a_record_with_null_fields_gives_what_the_record_without_them_gives(
    engine: Engine, factory: Any, nulls: tuple[str, ...]
) -> None:
    """A null optional field is left out: the outputs for a record with nulls equal, byte
    for byte, the outputs for the same record without those fields, with and without
    consent."""
    with_nulls = {**factory(), **dict.fromkeys(nulls)}
    without = {name: value for name, value in with_nulls.items() if name not in nulls}
    null_record = engine.decoder(encode(with_nulls))
    plain_record = engine.decoder(encode(without))
    assert isinstance(null_record, CdrRecord), null_record
    assert isinstance(plain_record, CdrRecord), plain_record
    index = WarrantIndex(engine.decoder.msisdn)
    everything = ConsentState(3, frozenset(PURPOSES))
    for consent in ({}, {SERVED: everything}, {SERVED: everything, OTHER: everything}):
        with_null_outputs, traced, _trace = both_paths(engine, null_record, consent, index)
        assert with_null_outputs, consent
        assert with_null_outputs == traced == engine.route(plain_record, consent.get, index)
        for output in with_null_outputs:
            assert b"null" not in output.value


def test_the_trace_explains_every_route(engine: Engine) -> None:
    """The trace names each route of the policy once, delivered or not, with a reason."""
    decoded = engine.decoder(encode(mt_call()))
    assert isinstance(decoded, CdrRecord)
    _untraced, _traced, trace = both_paths(engine, decoded, {}, WarrantIndex(engine.decoder.msisdn))
    assert sorted(entry["route"] for entry in trace) == sorted(engine.policy.routes)
    delivered = {entry["route"]: entry["delivered"] for entry in trace}
    assert delivered["billing"] is False
    assert delivered["marketing"] is False
    assert delivered["lawful_intercept"] is False
    assert delivered["fraud_prevention"] is True
    assert all(entry["reason"] for entry in trace)


def test_fields_outside_the_catalog_reach_only_the_lawful_intercept_copy(engine: Engine) -> None:
    """Records may carry mediation's own fields (a new name in every record, say): every
    route with field rules leaves them out, and says so in the trace."""
    index = warrant_index(engine)
    # Marketing and service improvement: the routes that require consent deliver too.
    consent = {SERVED: ConsentState(1, frozenset(PURPOSES[:2]))}
    for extra in range(8):
        record = mo_call(callingNumber=OTHER)
        record[f"vendorField{extra}"] = extra  # a new record shape every time
        decoded = engine.decoder(encode(record))
        assert isinstance(decoded, CdrRecord)
        untraced, traced, trace = both_paths(engine, decoded, consent, index)
        assert untraced == traced
        name = f"vendorField{extra}".encode()
        intercepts = [out for out in untraced if out.topic == LI_TOPIC]
        assert intercepts and all(name in out.value for out in intercepts)
        assert all(name not in out.value for out in untraced if out.topic != LI_TOPIC)
        dropped = {"field": f"vendorField{extra}", "action": "drop (not in the allow-list)"}
        for entry in trace:
            if entry["delivered"] and entry["topic"] != LI_TOPIC:
                assert dropped in entry["fields"]
