"""Purposes that cannot be joined (keyed record ids) and objections honoured (Art. 21).

Both rules are checked on the reference engine here and on both engines by the
differential properties of test_native_engine.py (objections in the generated consent
states, on_objection in the generated policies, record ids of any text).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from pipeline.core.consent import UNREADABLE, ConsentState, ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.engine import Engine, Output, Trace
from pipeline.core.keys import Pseudonymizer
from pipeline.core.linkage import linkability
from pipeline.core.native import NativeBatchEngine
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.policy import OnObjection, Policy
from pipeline.core.warrants import WarrantIndex
from pipeline.errors import PolicyError
from pipeline.reports.ropa import ropa_document, ropa_markdown
from tests.support.core import (
    ANALYTICS_PREFIX,
    BILLING_TOPIC,
    KEY_ID,
    OTHER,
    SERVED,
    body,
    consent_value,
    encode,
    header_map,
    mo_call,
    mt_call,
)

KEYED = re.compile(rf"^{KEY_ID}:[A-Za-z0-9_-]{{22}}$")
NETWORK_PLANNING = ANALYTICS_PREFIX + "network_planning"
FRAUD = ANALYTICS_PREFIX + "fraud_prevention"
Lookup = Callable[[str], ConsentState | None]


def run(
    engine: Engine, record: dict[str, Any], consent: Lookup, trace: Trace | None = None
) -> list[Output]:
    raw = encode(record)
    decoded = engine.decoder(raw)
    assert not isinstance(decoded, Rejection), decoded
    return engine.route(decoded, consent, WarrantIndex(engine.decoder.msisdn), trace)


def everyone_consents(_msisdn: str) -> ConsentState | None:
    return ConsentState(1, frozenset({"marketing", "service_improvement"}))


# --- record ids ------------------------------------------------------------------------------


def test_analytics_outputs_carry_a_keyed_record_id_billing_the_source_id(
    engine: Engine, pseudonymizer: Pseudonymizer
) -> None:
    """Value and header agree; analytics ids are keyed per purpose; billing keeps the source."""
    outputs = run(engine, mo_call(recordId="MSC1-46701234567-20261121"), everyone_consents)
    analytics = [o for o in outputs if o.topic.startswith(ANALYTICS_PREFIX)]
    assert len(analytics) == 4
    for output in analytics:
        purpose = body(output)["purpose"]
        keyed = pseudonymizer.record_id(purpose, "MSC1-46701234567-20261121")
        assert KEYED.match(keyed)
        assert body(output)["recordId"] == keyed
        assert header_map(output)["cdrveil.record-id"] == keyed
    (billing,) = [o for o in outputs if o.topic == BILLING_TOPIC]
    assert body(billing)["recordId"] == "MSC1-46701234567-20261121"
    assert header_map(billing)["cdrveil.record-id"] == "MSC1-46701234567-20261121"


def test_two_purposes_outputs_of_one_record_share_no_record_id(engine: Engine) -> None:
    """The join the issue found: no id is the same on two topics, nor the source's."""
    outputs = run(engine, mo_call(recordId="rec-1"), everyone_consents)
    ids = [header_map(o)["cdrveil.record-id"] for o in outputs if o.topic != BILLING_TOPIC]
    assert len(ids) == 4
    assert len(set(ids)) == 4
    assert "rec-1" not in ids


def test_the_same_input_gives_the_same_record_id(engine: Engine, twin_engine: Engine) -> None:
    """De-duplication downstream still works: a redelivered record gets the same id."""
    first = run(engine, mo_call(recordId="rec-7"), everyone_consents)
    again = run(twin_engine, mo_call(recordId="rec-7"), everyone_consents)
    other = run(engine, mo_call(recordId="rec-8"), everyone_consents)
    assert [o.headers for o in first] == [o.headers for o in again]
    assert {header_map(o)["cdrveil.record-id"] for o in first}.isdisjoint(
        header_map(o)["cdrveil.record-id"] for o in other
    )


def test_a_canary_in_the_record_id_never_reaches_analytics(
    engine: Engine, policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    """A mediation system that builds ids from the MSISDN: neither engine lets it through."""
    canary = f"CANARY{OTHER}-20261121T050000"
    native = NativeBatchEngine.build(policy, pseudonymizer)
    native.consent.apply(SERVED.encode(), consent_value(SERVED, {"marketing": True}))
    table = ConsentTable(engine.decoder.msisdn)
    table.apply(SERVED.encode(), consent_value(SERVED, {"marketing": True}))
    reference = run(engine, mo_call(recordId=canary), table.get)
    compiled = native.process_batch([encode(mo_call(recordId=canary))]).outputs
    assert reference == compiled
    for output in reference:
        text = output.value + b"".join(value for _, value in output.headers)
        if output.topic.startswith(ANALYTICS_PREFIX):
            # OTHER has no consent: its number is pseudonymized wherever it is a field.
            assert b"CANARY" not in text and OTHER.encode() not in text, output.topic


def test_long_and_non_ascii_record_ids_are_keyed_alike_by_both_engines(
    engine: Engine, policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    """Record ids up to 128 characters (several SHA-256 blocks) and any script."""
    native = NativeBatchEngine.build(policy, pseudonymizer)
    table = ConsentTable(engine.decoder.msisdn)
    for record_id in ["r", "x" * 55, "x" * 56, "x" * 64, "ö" * 100, "日" * 128, 'q"\\\n']:
        reference = run(engine, mo_call(recordId=record_id), table.get)
        assert reference == native.process_batch([encode(mo_call(recordId=record_id))]).outputs


# --- objections: the consent state -----------------------------------------------------------


def apply(table: ConsentTable, msisdn: str, **changes: object) -> object:
    return table.apply(msisdn.encode(), consent_value(msisdn, {}, 3, dict(changes)))


def test_objections_are_read_per_purpose(msisdn: MsisdnNormalizer) -> None:
    """Only true objects; false and absent do not."""
    table = ConsentTable(msisdn)
    assert (
        apply(table, SERVED, objections={"network_planning": True, "fraud_prevention": False})
        is None
    )
    state = table.get(SERVED)
    assert state is not None
    assert state.objects("network_planning")
    assert not state.objects("fraud_prevention")
    assert apply(table, OTHER) is None
    other = table.get(OTHER)
    assert other is not None and other.objections == frozenset()


@pytest.mark.parametrize(
    "objections", [["network_planning"], {"network_planning": "yes"}, True, {"a": None}]
)
def test_an_unreadable_state_objects_to_everything(
    msisdn: MsisdnNormalizer, objections: object
) -> None:
    """Fail closed: a state that cannot be read replaces the last good one, with no consent
    and an objection to every legitimate-interest purpose."""
    table = ConsentTable(msisdn)
    assert apply(table, SERVED) is None
    problem = apply(table, SERVED, objections=objections)
    assert problem is not None and problem.code == "bad_objections"  # type: ignore[attr-defined]
    assert table.get(SERVED) is UNREADABLE
    assert UNREADABLE.objects("network_planning") and not UNREADABLE.granted
    table.apply(SERVED.encode(), b"{not json")
    assert table.get(SERVED) is UNREADABLE
    table.apply(SERVED.encode(), None)  # a tombstone: no state, so no objection either
    assert table.get(SERVED) is None


# --- objections: the policy ------------------------------------------------------------------


def default_text() -> str:
    from importlib import resources

    return resources.files("pipeline").joinpath("policies/default.toml").read_text()


def test_the_default_policy_excludes_from_planning_and_overrides_for_fraud(policy: Policy) -> None:
    assert policy.routes["network_planning"].on_objection is OnObjection.EXCLUDE
    fraud = policy.routes["fraud_prevention"]
    assert fraud.on_objection is OnObjection.OVERRIDE
    assert "fraud" in fraud.override_ground
    for name in ("billing", "marketing", "service_improvement", "lawful_intercept"):
        assert policy.routes[name].on_objection is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('on_objection = "exclude"\n', "", "must say what an objection"),
        ('on_objection = "exclude"\n', 'on_objection = "ignore"\n', "must say what an objection"),
        (
            'on_objection = "exclude"\n',
            'on_objection = "exclude"\noverride_ground = "x"\n',
            "an excluding route needs none",
        ),
        ('override_ground = "Detecting', 'override_groundx = "Detecting', "did you mean"),
        ('override_ground = "Detecting', '# override_ground = "Detecting', "needs override_ground"),
        (
            'topic = "traffic.analytics.marketing"\n',
            'topic = "traffic.analytics.marketing"\non_objection = "exclude"\n',
            "applies only to an analytics route on legitimate_interest",
        ),
    ],
)
def test_policy_check_refuses_a_wrong_on_objection(old: str, new: str, message: str) -> None:
    text = default_text()
    assert old in text
    with pytest.raises(PolicyError, match=message):
        Policy.parse(text.replace(old, new, 1).encode())


# --- objections: the engine ------------------------------------------------------------------


def objecting(*purposes: str, number: str = SERVED) -> Lookup:
    states = {number: ConsentState(5, frozenset(), frozenset(purposes))}
    return states.get


def test_an_objection_excludes_the_record_from_network_planning_not_from_fraud(
    engine: Engine,
) -> None:
    trace: Trace = []
    outputs = run(engine, mo_call(), objecting("network_planning", "fraud_prevention"), trace)
    topics = {o.topic for o in outputs}
    assert NETWORK_PLANNING not in topics
    assert FRAUD in topics
    entries = {entry["route"]: entry for entry in trace}
    assert not entries["network_planning"]["delivered"]
    assert "objected (GDPR Art. 21)" in entries["network_planning"]["reason"]
    fraud = entries["fraud_prevention"]
    assert (
        fraud["delivered"]
        and "overrides the objection on this ground: Detecting" in fraud["reason"]
    )


def test_without_an_objection_network_planning_gets_the_record(engine: Engine) -> None:
    outputs = run(engine, mo_call(), objecting("fraud_prevention"))
    assert NETWORK_PLANNING in {o.topic for o in outputs}


def test_an_unreadable_state_excludes_from_network_planning(engine: Engine) -> None:
    outputs = run(engine, mo_call(), {SERVED: UNREADABLE}.get)
    assert NETWORK_PLANNING not in {o.topic for o in outputs}
    for output in outputs:
        assert header_map(output)["cdrveil.consent-version"] == "none"


def test_an_objecting_other_partys_number_is_dropped_on_an_excluding_route(
    policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    """network_planning carries no numbers by default; a route that does drops an objector's."""
    text = default_text().replace(
        'servedIMSI = "pseudonymize"\nservedIMEI = "generalize:tac"\nlocation = "keep"',
        'servedIMSI = "pseudonymize"\nservedIMEI = "generalize:tac"\n'
        'calledNumber = "pseudonymize"\nlocation = "keep"',
    )
    edited = Policy.parse(text.encode())
    engine = Engine.build(edited, pseudonymizer)
    native = NativeBatchEngine.build(edited, pseudonymizer)
    for number, present in ((OTHER, False), (SERVED, True)):
        table = ConsentTable(engine.decoder.msisdn)
        native_table = native.consent
        for t in (table, native_table):
            t.apply(OTHER.encode(), None)
        message = consent_value(OTHER, {}, 2, {"objections": {"network_planning": True}})
        if number == OTHER:
            table.apply(OTHER.encode(), message)
            native_table.apply(OTHER.encode(), message)
        outputs = run(engine, mo_call(), table.get)
        assert outputs == native.process_batch([encode(mo_call())]).outputs
        (planning,) = [o for o in outputs if o.topic == NETWORK_PLANNING]
        assert ("calledNumber" in body(planning)) is present
        (fraud,) = [o for o in outputs if o.topic == FRAUD]
        assert "calledNumber" in body(fraud)  # override: the number stays, pseudonymized


def test_an_objecting_served_subscriber_of_an_mt_record(engine: Engine) -> None:
    outputs = run(engine, mt_call(), objecting("network_planning"))
    assert NETWORK_PLANNING not in {o.topic for o in outputs}


# --- linkability in the record of processing --------------------------------------------------


def test_ropa_lists_what_two_purposes_still_share(policy: Policy) -> None:
    shared = {(f.field, f.form): f for f in linkability(policy)}
    seizure = shared[("seizureTime", "keep")]
    assert seizure.entropy == "high"
    assert {"marketing", "fraud_prevention"} <= set(seizure.routes)
    assert ("servedMSISDN", "pseudonymize") not in shared
    assert all(f.field != "recordId" for f in linkability(policy))
    document = ropa_document(policy)
    assert document["linkability"]["sharedFields"]
    text = ropa_markdown(policy)
    assert "## Linkability between purposes" in text
    assert "- seizureTime (keep, high entropy): " in text
    assert "cdrveil.consent-version" in text
    assert "## Objections (Art. 21)" in text
    assert "- network_planning: an objection (Art. 21) stops the outputs" in text


# --- withheld outputs (the metric) -----------------------------------------------------------


def test_both_engines_count_withheld_outputs_by_route_and_reason(
    policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    engine = Engine.build(policy, pseudonymizer)
    native = NativeBatchEngine.build(policy, pseudonymizer)
    message = consent_value(SERVED, {}, 4, {"objections": {"network_planning": True}})
    table = ConsentTable(engine.decoder.msisdn)
    table.apply(SERVED.encode(), message)
    native.consent.apply(SERVED.encode(), message)
    for record in (mo_call(), mt_call()):
        engine.process(encode(record), table.get, WarrantIndex(engine.decoder.msisdn))
    native.process_batch([encode(mo_call()), encode(mt_call())])
    assert engine.withheld == native.withheld
    assert engine.withheld[("network_planning", "objection")] == 2
    assert engine.withheld[("marketing", "no_consent")] == 2
    assert engine.withheld[("billing", "not_billable")] == 1  # the MT call at home


# --- fields the schemas do not define ---------------------------------------------------------


def test_undefined_consent_and_warrant_fields_are_counted_by_name_in_both_engines(
    policy: Policy, pseudonymizer: Pseudonymizer, msisdn: MsisdnNormalizer
) -> None:
    """A misspelt 'objection' must not pass unseen; a name that could be a number is pooled."""
    from pipeline.core.warrants import WarrantIndex as Index

    native = NativeBatchEngine.build(policy, pseudonymizer)
    table, index = ConsentTable(msisdn), Index(msisdn)
    consent = [
        consent_value(SERVED, {}, 1, {"objection": {"network_planning": True}}),
        consent_value(SERVED, {}, 2, {"objection": True, OTHER: 1, "portalUser": "u"}),
        b'{"objection": 1}',  # not accepted (no msisdn), still counted
    ]
    for value in consent:
        assert native.consent.apply(SERVED.encode(), value) == table.apply(SERVED.encode(), value)
    warrant = b'{"liid": "LI-1", "targets": [], "caseRef": "x", "caseRef": "y"}'
    assert native.warrants.apply(b"LI-1", warrant) == index.apply(b"LI-1", warrant)
    assert table.unknown_fields == {"objection": 3, "(other)": 1, "portalUser": 1}
    assert native.consent.unknown_fields == table.unknown_fields
    assert index.unknown_fields == {"caseRef": 1}
    assert native.warrants.unknown_fields == index.unknown_fields
