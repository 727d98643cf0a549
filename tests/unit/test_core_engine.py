"""The engine with the default policy: which route gets what, with which headers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings

from pipeline.core.consent import ConsentState
from pipeline.core.decode import Rejection
from pipeline.core.engine import Engine, Output
from pipeline.core.keys import Pseudonymizer
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from tests.support.core import (
    ANALYTICS_PREFIX,
    BILLING_TOPIC,
    HOME_LOCATION,
    KEY_ID,
    LI_TOPIC,
    MSC,
    OTHER,
    PURPOSES,
    ROAMING_LOCATION,
    SEIZURE,
    SERVED,
    SERVED_IMEI14,
    SERVED_IMSI,
    SERVED_TAC,
    UTC_HOUR,
    add_warrant,
    analytics,
    body,
    by_topic,
    consent_maps,
    encode,
    header_map,
    mo_call,
    mo_sms,
    mt_call,
    mt_sms,
    records,
    states,
)
from tests.support.properties import EXAMPLES

NUMBER_FIELDS = (
    "callingNumber",
    "calledNumber",
    "translatedNumber",
    "connectedNumber",
    "roamingNumber",
    "destinationNumber",
    "originationNumber",
)
PSEUDONYM = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}:[A-Za-z0-9_-]{22}$")
Lookup = Callable[[str], ConsentState | None]


def nobody(_msisdn: str) -> ConsentState | None:
    """A consent lookup for a world where nobody has a consent state."""
    return None


def run(
    engine: Engine,
    record: dict[str, Any],
    consent: Lookup = nobody,
    warrants: WarrantIndex | None = None,
) -> list[Output]:
    """Process one record; it must not be rejected."""
    index = warrants if warrants is not None else WarrantIndex(engine.decoder.msisdn)
    result = engine.process(encode(record), consent, index)
    assert not isinstance(result, Rejection), result
    return result


def topic(purpose: str) -> str:
    """The analytics topic of a purpose."""
    return ANALYTICS_PREFIX + purpose


def grants(**by_number: tuple[str, ...]) -> Lookup:
    """A consent lookup from keyword arguments served=... and other=... (purposes granted)."""
    numbers = {"served": SERVED, "other": OTHER}
    return states({numbers[name]: purposes for name, purposes in by_number.items()}).get


ALL = PURPOSES


# --- rejections ------------------------------------------------------------------------------


def test_a_rejected_record_produces_no_outputs(engine: Engine, warrants: WarrantIndex) -> None:
    """Bad input is a Rejection value, not outputs and not an exception."""
    result = engine.process(encode(mo_call(servedMSISDN="12ab")), nobody, warrants)
    assert isinstance(result, Rejection)
    assert result.code == "bad_msisdn"


# --- billing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        mo_call(),
        mo_call(callDuration=1),
        mo_sms(),
        mt_call(location=ROAMING_LOCATION),
        mt_sms(location=ROAMING_LOCATION),
    ],
    ids=["mo-call", "mo-call-1s", "mo-sms", "mt-call-roaming", "mt-sms-roaming"],
)
def test_billable_records_go_to_billing(engine: Engine, record: dict[str, Any]) -> None:
    """MO calls with duration > 0, MO SMS and MT records while roaming are billed."""
    assert BILLING_TOPIC in by_topic(run(engine, record))


@pytest.mark.parametrize(
    "record",
    [
        mt_call(),
        mt_sms(),
        mt_call(location=None),
        mo_call(callDuration=0, causeForTerm="unsuccessfulCallAttempt", answerTime=None),
    ],
    ids=["mt-call-home", "mt-sms-home", "mt-call-no-location", "mo-call-unanswered"],
)
def test_non_billable_records_skip_billing(engine: Engine, record: dict[str, Any]) -> None:
    """MT at home and unanswered MO calls produce no billing record."""
    assert BILLING_TOPIC not in by_topic(run(engine, record))


def test_billing_keeps_the_subscriber_and_masks_other_parties(engine: Engine) -> None:
    """Served MSISDN/IMSI normalized in clear; other numbers' last 4 digits are X."""
    value = body(by_topic(run(engine, mo_call(translatedNumber="+46 73-987 65 43")))[BILLING_TOPIC])
    assert value["servedMSISDN"] == SERVED
    assert value["servedIMSI"] == SERVED_IMSI
    assert value["calledNumber"] == "4673987XXXX"
    assert value["translatedNumber"] == "4673987XXXX"
    assert value["callingNumber"] == "4670123XXXX"


def test_billing_masks_the_sms_destination(engine: Engine) -> None:
    """The MO SMS destination is masked too."""
    value = body(by_topic(run(engine, mo_sms()))[BILLING_TOPIC])
    assert value["destinationNumber"] == "4673987XXXX"
    assert value["serviceCentre"] == "46705550100"


def test_billing_has_no_imei_and_no_cell(engine: Engine) -> None:
    """Rating gets the serving network only: no handset, no cell, no location area."""
    value = body(by_topic(run(engine, mt_call(location=ROAMING_LOCATION)))[BILLING_TOPIC])
    assert "servedIMEI" not in value
    assert value["location"] == {"mccMnc": "24201"}
    assert SERVED_IMEI14 not in json.dumps(value)
    assert "changeOfLocation" not in value


def test_billing_is_an_allow_list(engine: Engine) -> None:
    """Only the policy's billing fields appear; unknown input fields never do."""
    value = body(by_topic(run(engine, mo_call()))[BILLING_TOPIC])
    assert set(value) == {
        "recordId", "recordType", "servedMSISDN", "servedIMSI", "callingNumber", "calledNumber",
        "location", "seizureTime", "answerTime", "releaseTime", "callDuration", "basicService",
        "causeForTerm", "recordingEntity", "systemType", "callReference", "sequenceNumber",
    }  # fmt: skip
    assert value["seizureTime"] == SEIZURE


def test_billing_key_is_the_served_msisdn(engine: Engine) -> None:
    """Billing messages are keyed by the subscriber's E.164 digits."""
    assert by_topic(run(engine, mo_call()))[BILLING_TOPIC].key == SERVED.encode()


def test_billing_does_not_depend_on_consent(engine: Engine) -> None:
    """Billing rests on the contract: consent does not change it."""
    without = by_topic(run(engine, mo_call()))[BILLING_TOPIC].value
    with_all = by_topic(run(engine, mo_call(), grants(served=ALL, other=ALL)))[BILLING_TOPIC].value
    assert without == with_all


# --- marketing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "consent",
    [
        nobody,
        grants(served=("service_improvement", "fraud_prevention", "network_planning")),
        grants(other=("marketing",)),
        states({SERVED: ()}).get,
    ],
    ids=["no-state", "other-purposes", "only-other-party", "empty-state"],
)
def test_marketing_drops_the_record_unless_the_served_subscriber_consented(
    engine: Engine, consent: Lookup
) -> None:
    """No marketing consent of the served subscriber, no marketing record at all."""
    assert topic("marketing") not in by_topic(run(engine, mo_call(), consent))


def test_marketing_gets_the_record_of_a_consenting_subscriber(engine: Engine) -> None:
    """With consent: the subscriber in clear, IMEI generalized to TAC, full location."""
    value = body(
        by_topic(run(engine, mo_call(), grants(served=("marketing",))))[topic("marketing")]
    )
    assert value["servedMSISDN"] == SERVED
    assert value["servedIMSI"] == SERVED_IMSI
    assert value["servedIMEI"] == SERVED_TAC
    assert value["location"] == HOME_LOCATION
    assert value["purpose"] == "marketing"
    assert PSEUDONYM.match(value["calledNumber"])  # the other party did not consent


# --- service improvement ---------------------------------------------------------------------


def test_service_improvement_with_consent_has_clear_identifiers(engine: Engine) -> None:
    """A consenting subscriber's identities, location and times appear as normalized in clear."""
    outputs = run(engine, mo_call(), grants(served=("service_improvement",)))
    value = body(by_topic(outputs)[topic("service_improvement")])
    assert value["servedMSISDN"] == SERVED
    assert value["servedIMSI"] == SERVED_IMSI
    assert value["servedIMEI"] == SERVED_IMEI14
    assert value["location"] == HOME_LOCATION
    assert value["seizureTime"] == SEIZURE
    assert value["changeOfLocation"][0]["location"]["cellId"] == 4712


@pytest.mark.parametrize(
    "consent",
    [
        nobody,
        grants(served=("marketing", "fraud_prevention", "network_planning")),
        grants(other=("service_improvement",)),
        states({SERVED: ()}).get,
    ],
    ids=["no-state", "other-purposes", "only-other-party", "empty-state"],
)
def test_service_improvement_drops_the_record_unless_the_served_subscriber_consented(
    engine: Engine, consent: Lookup
) -> None:
    """The notice promises "better service" only with consent: no consent, no record at all."""
    assert topic("service_improvement") not in by_topic(run(engine, mo_call(), consent))


@pytest.mark.parametrize(
    ("time", "hour"),
    [
        ("2026-11-21T00:59:59+01:00", "2026-11-20T23:00:00Z"),
        ("2026-11-21T05:00:00Z", "2026-11-21T05:00:00Z"),
        ("2026-11-21T05:59:59.999Z", "2026-11-21T05:00:00Z"),
        ("2026-11-21T10:45:00+05:30", "2026-11-21T05:00:00Z"),
        ("2026-11-21T01:15:00-04:00", "2026-11-21T05:00:00Z"),
    ],
)
def test_times_are_generalized_to_the_utc_hour(engine: Engine, time: str, hour: str) -> None:
    """Offsets are converted to UTC before truncating to the hour (also across midnight)."""
    value = body(by_topic(run(engine, mo_sms(originationTime=time)))[topic("network_planning")])
    assert value["originationTime"] == hour


def test_the_other_party_is_judged_by_its_own_consent(engine: Engine) -> None:
    """A consenting other party appears in clear (without its consent: the next test)."""
    consent = grants(served=("service_improvement",), other=("service_improvement",))
    value = body(by_topic(run(engine, mo_call(), consent))[topic("service_improvement")])
    assert value["calledNumber"] == OTHER
    assert value["servedMSISDN"] == SERVED


def test_a_consenting_subscriber_does_not_expose_a_non_consenting_other_party(
    engine: Engine, pseudonymizer: Pseudonymizer
) -> None:
    """The served subscriber's consent covers their identities only, not whom they called."""
    value = body(
        by_topic(run(engine, mo_call(), grants(served=("service_improvement",))))[
            topic("service_improvement")
        ]
    )
    assert value["servedMSISDN"] == SERVED
    assert value["calledNumber"] == pseudonymizer.pseudonym("service_improvement", "msisdn", OTHER)


def test_the_other_partys_consent_to_another_purpose_does_not_count(
    engine: Engine, pseudonymizer: Pseudonymizer
) -> None:
    """Consent is per purpose: marketing consent does not reveal a number to service_improvement."""
    consent = grants(served=("service_improvement",), other=("marketing",))
    value = body(by_topic(run(engine, mt_sms(), consent))[topic("service_improvement")])
    assert value["originationNumber"] == pseudonymizer.pseudonym(
        "service_improvement", "msisdn", OTHER
    )


# --- fraud prevention and network planning ---------------------------------------------------


@pytest.mark.parametrize("consent", [nobody, grants(served=ALL, other=ALL)], ids=["none", "all"])
def test_fraud_prevention_always_pseudonymizes(
    engine: Engine, pseudonymizer: Pseudonymizer, consent: Lookup
) -> None:
    """Legitimate interest: identifiers are pseudonyms even for consenting subscribers."""
    value = body(by_topic(run(engine, mt_call(), consent))[topic("fraud_prevention")])
    purpose = "fraud_prevention"
    assert value["servedMSISDN"] == pseudonymizer.pseudonym(purpose, "msisdn", SERVED)
    assert value["servedIMSI"] == pseudonymizer.pseudonym(purpose, "imsi", SERVED_IMSI)
    assert value["servedIMEI"] == pseudonymizer.pseudonym(purpose, "imei", SERVED_IMEI14)
    assert value["callingNumber"] == pseudonymizer.pseudonym(purpose, "msisdn", OTHER)
    assert value["roamingNumber"] == pseudonymizer.pseudonym(purpose, "msisdn", "46709000001")
    assert value["location"] == {"mccMnc": "24001", "locationAreaCode": 1201}


@pytest.mark.parametrize("consent", [nobody, grants(served=ALL, other=ALL)], ids=["none", "all"])
def test_network_planning_has_no_numbers_a_pseudonymous_imsi_and_the_cell(
    engine: Engine, pseudonymizer: Pseudonymizer, consent: Lookup
) -> None:
    """MSISDN fields dropped, IMSI pseudonymized, IMEI to TAC, cell-level location kept."""
    value = body(by_topic(run(engine, mo_call(), consent))[topic("network_planning")])
    for field in ("servedMSISDN", *NUMBER_FIELDS):
        assert field not in value
    # Its exact change times would undo the hour generalization.
    assert "changeOfLocation" not in value
    assert value["servedIMSI"] == pseudonymizer.pseudonym("network_planning", "imsi", SERVED_IMSI)
    assert value["servedIMEI"] == SERVED_TAC
    assert value["location"] == HOME_LOCATION
    assert value["seizureTime"] == UTC_HOUR


# --- analytics in general --------------------------------------------------------------------


@pytest.mark.parametrize(
    "consent", [nobody, grants(served=ALL, other=ALL)], ids=["no-consent", "all-consented"]
)
@pytest.mark.parametrize("factory", [mo_call, mt_call, mo_sms, mt_sms])
def test_analytics_keys_are_pseudonyms_never_clear_identifiers(
    engine: Engine, pseudonymizer: Pseudonymizer, consent: Lookup, factory: Any
) -> None:
    """The key is the purpose's pseudonym of the served MSISDN, even with full consent."""
    outputs = analytics(run(engine, factory(), consent))
    assert outputs
    for output in outputs:
        purpose = output.topic.removeprefix(ANALYTICS_PREFIX)
        assert output.key == pseudonymizer.pseudonym(purpose, "msisdn", SERVED).encode()
        assert output.key is not None
        assert SERVED.encode() not in output.key


def test_analytics_key_falls_back_to_the_imsi_pseudonym(
    engine: Engine, pseudonymizer: Pseudonymizer
) -> None:
    """Without a served MSISDN, the key is the purpose's pseudonym of the IMSI."""
    outputs = analytics(run(engine, mo_sms(servedMSISDN=None)))
    assert outputs
    for output in outputs:
        purpose = output.topic.removeprefix(ANALYTICS_PREFIX)
        assert output.key == pseudonymizer.pseudonym(purpose, "imsi", SERVED_IMSI).encode()


def test_every_input_form_gives_the_same_pseudonym(engine: Engine) -> None:
    """+46 70-123 45 67, 0046..., 46..., 070... give one pseudonym per purpose."""
    values = set()
    for form in ("+46 70-123 45 67", "0046701234567", "46701234567", "0701234567"):
        output = by_topic(run(engine, mo_sms(servedMSISDN=form)))[topic("fraud_prevention")]
        values.add((output.key, body(output)["servedMSISDN"]))
    assert len(values) == 1


def test_pseudonyms_of_one_subscriber_differ_between_purposes(engine: Engine) -> None:
    """Two purposes' records cannot be joined on the pseudonym."""
    outputs = by_topic(run(engine, mo_call(), grants(served=ALL)))
    keys = {outputs[topic(p)].key for p in ALL}
    assert len(keys) == len(ALL) == 4


def test_analytics_values_are_allow_lists(engine: Engine) -> None:
    """Unknown input fields, callReference and sequenceNumber never reach analytics."""
    for output in analytics(run(engine, mo_call(), grants(served=ALL, other=ALL))):
        value = body(output)
        assert "vendorExtension" not in value
        assert "callReference" not in value
        assert "sequenceNumber" not in value


def test_the_default_policy_produces_the_documented_routes(engine: Engine) -> None:
    """A billable record of a subscriber who consented to everything reaches every non-LI route."""
    outputs = run(engine, mo_call(), grants(served=ALL))
    assert sorted(o.topic for o in outputs) == sorted([BILLING_TOPIC, *map(topic, PURPOSES)])


# --- headers ---------------------------------------------------------------------------------


def test_headers_identify_record_route_basis_policy_key_and_consent(
    engine: Engine, policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    """Every output says which record, route, legal basis, policy, key epoch and consent applied;
    the record id is keyed per purpose on analytics routes (test_core_linkage.py)."""
    consent = states({SERVED: ("marketing",)}, version=17).get
    outputs = run(engine, mo_call(recordId="rec-42"), consent)
    routes = {route.topic: route for route in policy.routes.values()}
    for output in outputs:
        headers = header_map(output)
        route = routes[output.topic]
        keyed = route.rules.keyed_record_id
        assert headers == {
            "cdrveil.record-id": (
                pseudonymizer.record_id(route.purpose, "rec-42") if keyed else "rec-42"
            ),
            "cdrveil.route": route.name,
            "cdrveil.legal-basis": route.legal_basis,
            "cdrveil.policy-version": policy.version,
            "cdrveil.key-id": KEY_ID,
            "cdrveil.consent-version": "17",
        }


def test_consent_version_header_is_none_without_a_state(engine: Engine) -> None:
    """No consent state for the served subscriber: the header says none."""
    for output in run(engine, mo_call(), grants(other=ALL)):
        assert header_map(output)["cdrveil.consent-version"] == "none"


def test_consent_version_is_the_served_subscribers_not_the_other_partys(engine: Engine) -> None:
    """The applied version is the served subscriber's."""
    consent = {SERVED: ConsentState(3, frozenset()), OTHER: ConsentState(99, frozenset(ALL))}.get
    for output in run(engine, mo_call(), consent):
        assert header_map(output)["cdrveil.consent-version"] == "3"


def test_policy_version_header_follows_the_policy(
    engine: Engine, policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    """An engine on an edited policy stamps a different version."""
    text = resources.files("pipeline").joinpath("policies/default.toml").read_bytes()
    edited = Engine.build(Policy.parse(text + b"\n# edited\n"), pseudonymizer)
    first = header_map(run(engine, mo_call())[0])["cdrveil.policy-version"]
    second = header_map(run(edited, mo_call())[0])["cdrveil.policy-version"]
    assert first == policy.version
    assert second != first


# --- lawful intercept ------------------------------------------------------------------------


def test_li_gets_the_complete_record_with_the_liid(engine: Engine, warrants: WarrantIndex) -> None:
    """The input exactly as received (unknown fields too), tagged with the LIID."""
    add_warrant(warrants, "LI-2026-0001", [("imsi", SERVED_IMSI)])
    record = mo_call()
    outputs = [o for o in run(engine, record, warrants=warrants) if o.topic == LI_TOPIC]
    assert len(outputs) == 1
    output = outputs[0]
    assert body(output) == {
        "liid": "LI-2026-0001",
        "recordId": record["recordId"],
        "record": record,
    }
    assert output.key == b"LI-2026-0001"
    headers = header_map(output)
    assert headers["cdrveil.liid"] == "LI-2026-0001"
    assert headers["cdrveil.legal-basis"] == "legal_obligation"
    assert headers["cdrveil.record-id"] == record["recordId"]


def test_li_copy_keeps_every_input_value_exactly(engine: Engine, warrants: WarrantIndex) -> None:
    """Vendor fields reach LI unchanged, even integers beyond 64 bits and nested values."""
    add_warrant(warrants, "LI-1", [("msisdn", SERVED)])
    vendor = {"chargingId": 2**64, "negative": -(2**63) - 1, "nested": [{"a": None}, 1.5, "x"]}
    record = mo_call(vendorExtension=vendor)
    raw = encode(record)
    outputs = [o for o in run(engine, record, warrants=warrants) if o.topic == LI_TOPIC]
    assert json.loads(outputs[0].value)["record"] == json.loads(raw)


def test_li_gets_one_output_per_matching_warrant(engine: Engine, warrants: WarrantIndex) -> None:
    """Two warrants on the record's parties: two deliveries, each with its LIID."""
    add_warrant(warrants, "LI-A", [("msisdn", SERVED), ("imei", SERVED_IMEI14)])
    add_warrant(warrants, "LI-B", [("msisdn", "+46 73-987 65 43")])
    add_warrant(warrants, "LI-C", [("msisdn", "46709999999")])
    outputs = [o for o in run(engine, mo_call(), warrants=warrants) if o.topic == LI_TOPIC]
    assert [o.key for o in outputs] == [b"LI-A", b"LI-B"]
    assert [header_map(o)["cdrveil.liid"] for o in outputs] == ["LI-A", "LI-B"]


def test_li_does_not_depend_on_consent_or_billing(engine: Engine, warrants: WarrantIndex) -> None:
    """A non-billable record of a non-consenting target is still intercepted."""
    add_warrant(warrants, "LI-1", [("msisdn", SERVED)])
    topics = [o.topic for o in run(engine, mt_sms(), warrants=warrants)]
    assert topics.count(LI_TOPIC) == 1
    assert BILLING_TOPIC not in topics


def test_no_li_output_outside_the_warrant_span(engine: Engine, warrants: WarrantIndex) -> None:
    """An expired warrant delivers nothing."""
    add_warrant(
        warrants,
        "LI-1",
        [("msisdn", SERVED)],
        valid_from="2026-10-01T00:00:00Z",
        valid_until="2026-11-01T00:00:00Z",
    )
    assert LI_TOPIC not in {o.topic for o in run(engine, mo_call(), warrants=warrants)}


# --- determinism -----------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None)
@given(records(), consent_maps)
def test_the_same_input_gives_byte_identical_outputs(
    engine: Engine,
    twin_engine: Engine,
    record: dict[str, Any],
    consent: dict[str, ConsentState | None],
) -> None:
    """Same bytes, consent, warrants, policy and keyring: identical outputs, twice and elsewhere."""
    raw = encode(record)
    index = WarrantIndex(engine.decoder.msisdn)
    add_warrant(
        index,
        "LI-1",
        [("msisdn", OTHER)],
        valid_from="2026-01-01T00:00:00Z",
        valid_until="2027-01-01T00:00:00Z",
    )
    first = engine.process(raw, consent.get, index)
    second = engine.process(raw, consent.get, index)
    elsewhere = twin_engine.process(raw, consent.get, index)
    assert isinstance(first, list)
    assert first == second == elsewhere


# --- robustness ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "time", ["9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00"], ids=["year-10000", "year-0"]
)
def test_a_record_the_decoder_accepts_never_makes_the_engine_raise(
    engine: Engine, warrants: WarrantIndex, time: str
) -> None:
    """Times at the edge of the calendar are rejected or processed, never an exception."""
    result = engine.process(encode(mo_sms(originationTime=time)), nobody, warrants)
    if isinstance(result, Rejection):
        assert result.code == "bad_timestamp"
    else:
        assert all(isinstance(output, Output) for output in result)


def test_outputs_carry_no_value_of_an_unknown_field(engine: Engine) -> None:
    """A vendor field holding a number reaches no route but LI."""
    outputs = run(engine, mo_call(vendorExtension={"aNumber": "46701112233"}), grants(served=ALL))
    for output in outputs:
        assert b"46701112233" not in output.value


def test_recording_entity_is_copied_as_is_where_the_policy_keeps_it(engine: Engine) -> None:
    """recordingEntity is a network element (the MSC), not a subscriber: not pseudonymized."""
    value = body(by_topic(run(engine, mo_call()))[topic("fraud_prevention")])
    assert value["recordingEntity"] == MSC
