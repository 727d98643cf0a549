"""Other parties' numbers that are no MSISDN: classified, counted, and routed by the policy's
``[party_numbers]`` table instead of dead-lettering the whole record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.main import main
from pipeline.core.consent import ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.engine import Engine, Output
from pipeline.core.keys import Pseudonymizer
from pipeline.core.party import PARTY_ID_TYPE, PartyClass
from pipeline.core.policy import Action, Policy
from pipeline.core.warrants import WarrantIndex
from pipeline.errors import PolicyError
from pipeline.reports.explain import explain, render
from pipeline.reports.ropa import ropa_document, ropa_markdown
from tests.support.core import (
    ANALYTICS_PREFIX,
    BILLING_TOPIC,
    LI_TOPIC,
    OTHER,
    PURPOSES,
    SERVED,
    add_warrant,
    body,
    by_topic,
    encode,
    mo_call,
    mo_sms,
    states,
)
from tests.unit.conftest import CliRun
from tests.unit.test_core_policy import MINIMAL, parse

MARKETING = ANALYTICS_PREFIX + "marketing"
FRAUD = ANALYTICS_PREFIX + "fraud_prevention"
PLANNING = ANALYTICS_PREFIX + "network_planning"
EVERYONE = states({SERVED: PURPOSES, OTHER: PURPOSES}).get


def outputs_of(
    engine: Engine, record: dict[str, Any], warrants: WarrantIndex | None = None
) -> dict[str, Output]:
    """The outputs of one record, by topic, with everyone consenting to everything."""
    index = warrants if warrants is not None else WarrantIndex(engine.decoder.msisdn)
    result = engine.process(encode(record), EVERYONE, index)
    assert not isinstance(result, Rejection), result
    return by_topic(result)


# --- the default policy ----------------------------------------------------------------------


@pytest.mark.parametrize("code", ["*100#", "#31#", "*#06#"])
def test_a_service_code_is_billed_and_kept_as_received(engine: Engine, code: str) -> None:
    """A USSD or service code is no person's number: the call is billed, the code kept."""
    found = outputs_of(engine, mo_call(calledNumber=code))
    assert body(found[BILLING_TOPIC])["calledNumber"] == code
    assert body(found[MARKETING])["calledNumber"] == code
    assert body(found[FRAUD])["calledNumber"] == code


@pytest.mark.parametrize("short", ["112", "1177", "72456"])
def test_a_short_number_is_kept_as_received(engine: Engine, short: str) -> None:
    """Emergency and service short numbers are services, not persons."""
    found = outputs_of(engine, mo_call(calledNumber=short))
    assert body(found[BILLING_TOPIC])["calledNumber"] == short
    assert body(found[MARKETING])["calledNumber"] == short


def test_a_sender_name_is_pseudonymized_in_its_own_key_domain(
    engine: Engine, pseudonymizer: Pseudonymizer
) -> None:
    """An alphanumeric originator may be a person's name: a pseudonym, never an MSISDN's."""
    record = mo_sms(destinationNumber="BankID")
    found = outputs_of(engine, record)
    value = body(found[MARKETING])["destinationNumber"]
    assert value == pseudonymizer.pseudonym("marketing", PARTY_ID_TYPE, "BankID")
    assert value != pseudonymizer.pseudonym("marketing", "msisdn", "BankID")
    assert body(found[BILLING_TOPIC])["destinationNumber"] == pseudonymizer.pseudonym(
        "billing", PARTY_ID_TYPE, "BankID"
    )


def test_a_short_number_pseudonym_never_equals_an_msisdn_pseudonym(
    pseudonymizer: Pseudonymizer,
) -> None:
    """Domain separation: the same digits under the party key and the MSISDN key differ."""
    for digits in ("112", "46701234567"):
        party = pseudonymizer.pseudonym("marketing", PARTY_ID_TYPE, digits)
        assert party != pseudonymizer.pseudonym("marketing", "msisdn", digits)


@pytest.mark.parametrize("junk", ["", "+", "--", "**21*+46739990011#", "#31#0739990011"])
def test_an_unparseable_number_is_dropped_and_the_record_flows(engine: Engine, junk: str) -> None:
    """Empty, digit-less, or a code that embeds a person's number: dropped, nothing refused."""
    found = outputs_of(engine, mo_call(callingNumber=junk))
    for topic in (BILLING_TOPIC, MARKETING, FRAUD):
        assert "callingNumber" not in body(found[topic])
    # The embedded number never reaches a route in any form.
    for output in found.values():
        assert b"739990011" not in output.value


def test_a_route_that_drops_the_field_without_consent_drops_a_service_code(
    engine: Engine,
) -> None:
    """network_planning drops every number field without consent: a code too."""
    found = outputs_of(engine, mo_call(calledNumber="*100#"))
    assert "calledNumber" not in body(found[PLANNING])


def test_lawful_intercept_gets_the_service_code_as_received(
    engine: Engine, warrants: WarrantIndex
) -> None:
    """The served subscriber's warrant matches; the copy is complete, the code included."""
    add_warrant(warrants, "LI-9", [("msisdn", SERVED)])
    record = mo_call(calledNumber="*100#")
    found = outputs_of(engine, record, warrants)
    assert body(found[LI_TOPIC])["record"] == record


def test_the_served_identity_still_dead_letters(engine: Engine, warrants: WarrantIndex) -> None:
    """Only the served identity (and the SMS centre, a network element) must be readable."""
    for record in (mo_call(servedMSISDN="*100#"), mo_sms(serviceCentre="BankID")):
        result = engine.process(encode(record), EVERYONE, warrants)
        assert isinstance(result, Rejection)
        assert result.code == "bad_msisdn"


def test_the_engine_counts_party_numbers_by_class(engine: Engine, warrants: WarrantIndex) -> None:
    """The counts the batch interface hands to the metric, reset when taken."""
    engine.take_party_numbers()
    for record in (mo_call(calledNumber="*100#"), mo_sms(destinationNumber="BankID")):
        engine.process(encode(record), EVERYONE, warrants)
    assert engine.take_party_numbers() == {"msisdn": 1, "service_code": 1, "alphanumeric": 1}
    assert engine.take_party_numbers() == {}


# --- explain and ropa ------------------------------------------------------------------------


def test_explain_shows_the_class_and_the_action(engine: Engine) -> None:
    """The DPO sees which class a number fell in and what each route did with it."""
    consent = ConsentTable(engine.decoder.msisdn)
    result = explain(
        engine,
        encode(mo_call(calledNumber="*100#")),
        consent,
        WarrantIndex(engine.decoder.msisdn),
    )
    assert result["partyNumbers"] == {"calledNumber": "service_code"}
    billing = next(r for r in result["routes"] if r["route"] == "billing")
    called = next(f for f in billing["fields"] if f["field"] == "calledNumber")
    assert called == {
        "field": "calledNumber",
        "action": "keep (as received)",
        "owner": "the number's own subscriber",
        "class": "service_code",
        "consented": False,
    }
    text = render(result, show_values=False)
    assert "calledNumber is service_code" in text
    assert "[service_code: no subscriber, no consent; [party_numbers]]" in text


def test_ropa_lists_the_party_number_actions(policy: Policy) -> None:
    """The record of processing says what each class of non-MSISDN number gets."""
    doc = ropa_document(policy)
    assert {p["class"]: p["action"] for p in doc["partyNumbers"]} == {
        "service_code": "keep",
        "short_number": "keep",
        "alphanumeric": "pseudonymize",
        "unparseable": "drop",
    }
    assert "| alphanumeric |" in ropa_markdown(policy)


# --- the policy table ------------------------------------------------------------------------


def test_without_a_table_every_class_is_dropped() -> None:
    """Fail closed: what no DPO signed is dropped."""
    assert set(parse(MINIMAL).party_numbers.values()) == {Action.DROP}


def test_a_class_left_out_is_dropped() -> None:
    policy = parse(MINIMAL + '\n[party_numbers]\nshort_number = "keep"\n')
    assert policy.party_numbers[PartyClass.SHORT_NUMBER] is Action.KEEP
    assert policy.party_numbers[PartyClass.SERVICE_CODE] is Action.DROP


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('alphanumeric = "keep"', "in clear without anyone's consent"),
        ('unparseable = "keep"', "in clear without anyone's consent"),
        ('short_number = "mask:4"', "can only be one of keep, drop, pseudonymize"),
        ('service_code = "generalize:hour"', "can only be one of keep, drop, pseudonymize"),
        ('msisdn = "keep"', "unknown class 'msisdn'"),
        ('sender = "drop"', "unknown class 'sender'"),
    ],
)
def test_the_table_refuses_what_makes_no_sense(table: str, message: str) -> None:
    """Only keep, drop and pseudonymize; never keep what may be a person's identifier."""
    with pytest.raises(PolicyError, match=message):
        parse(MINIMAL + f"\n[party_numbers]\n{table}\n")


def test_the_table_must_be_a_table() -> None:
    with pytest.raises(PolicyError, match=r"\[party_numbers\] must be a table"):
        parse('party_numbers = "keep"\n' + MINIMAL)


def test_policy_check_shows_the_party_number_actions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cdrveil policy-check` on the default policy names every class and its action."""
    assert main(["policy-check"]) == 0
    out = capsys.readouterr().out
    assert (
        "party numbers that are no MSISDN: service_code keep, short_number keep, "
        "alphanumeric pseudonymize, unparseable drop"
    ) in out


def test_policy_check_refuses_a_sender_name_in_clear(cdrveil: CliRun, tmp_path: Path) -> None:
    """Exit 2 and the reason, for a table that would keep sender names in clear."""
    path = tmp_path / "policy.toml"
    path.write_text(MINIMAL + '\n[party_numbers]\nalphanumeric = "keep"\n')
    code, out = cdrveil("policy-check", str(path))
    assert code == 2
    assert "[party_numbers] alphanumeric = 'keep'" in out
