"""Consent states: only a literal true grants; anything unreadable means not consented."""

from __future__ import annotations

import json

import pytest

from pipeline.core.consent import ConsentProblem, ConsentState, ConsentTable, parse_consent
from pipeline.core.normalize import MsisdnNormalizer
from tests.support.core import OTHER, SERVED, consent_value, grant


def consented(table: ConsentTable, msisdn: str, purpose: str) -> bool:
    """What the engine asks: does this subscriber's current state grant this purpose?"""
    state = table.get(msisdn)
    return state is not None and state.allows(purpose)


def test_a_literal_true_grants_the_purpose(consent_table: ConsentTable) -> None:
    """The baseline every fail-closed case below is measured against."""
    grant(consent_table, SERVED, "marketing")
    assert consented(consent_table, SERVED, "marketing")


def test_no_state_means_not_consented(consent_table: ConsentTable) -> None:
    """A subscriber the table has never heard of has consented to nothing."""
    assert consent_table.get(SERVED) is None
    assert not consented(consent_table, SERVED, "marketing")


def test_a_tombstone_means_not_consented(consent_table: ConsentTable) -> None:
    """A null value (tombstone) is no consent at all."""
    assert consent_table.apply(SERVED.encode(), None) is None
    assert consent_table.get(SERVED) is None


def test_a_later_tombstone_removes_consent(consent_table: ConsentTable) -> None:
    """Withdrawal: a tombstone after a grant takes the consent away."""
    grant(consent_table, SERVED, "marketing", "service_improvement")
    consent_table.apply(SERVED.encode(), None)
    assert not consented(consent_table, SERVED, "marketing")
    assert not consented(consent_table, SERVED, "service_improvement")


def test_a_later_state_replaces_the_earlier_one(consent_table: ConsentTable) -> None:
    """A state without the purpose (slider turned off) withdraws it; the version follows."""
    grant(consent_table, SERVED, "marketing", version=1)
    grant(consent_table, SERVED, "service_improvement", version=2)
    assert not consented(consent_table, SERVED, "marketing")
    assert consented(consent_table, SERVED, "service_improvement")
    state = consent_table.get(SERVED)
    assert state is not None
    assert state.version == 2


@pytest.mark.parametrize("field", ["msisdn", "purposes", "version", "updatedAt"])
def test_a_state_with_a_missing_field_means_not_consented(
    consent_table: ConsentTable, field: str
) -> None:
    """A state missing any field is rejected, and replaces the consent held before."""
    grant(consent_table, SERVED, "marketing")
    problem = consent_table.apply(
        SERVED.encode(), consent_value(SERVED, {"marketing": True}, changes={field: None})
    )
    assert isinstance(problem, ConsentProblem)
    assert not consented(consent_table, SERVED, "marketing")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", "17"),
        ("version", -1),
        ("version", 1.5),
        ("updatedAt", "yesterday"),
        ("updatedAt", "2026-11-21T05:00:00"),
        ("purposes", ["marketing"]),
        ("purposes", "marketing"),
    ],
)
def test_a_state_with_an_invalid_field_means_not_consented(
    consent_table: ConsentTable, field: str, value: object
) -> None:
    """Wrong types and values are rejected, failing closed."""
    grant(consent_table, SERVED, "marketing")
    problem = consent_table.apply(
        SERVED.encode(), consent_value(SERVED, {"marketing": True}, changes={field: value})
    )
    assert isinstance(problem, ConsentProblem)
    assert not consented(consent_table, SERVED, "marketing")


@pytest.mark.parametrize("flag", ["yes", "true", 1, 1.0, [True], {"granted": True}, None, False])
def test_only_a_literal_true_grants(consent_table: ConsentTable, flag: object) -> None:
    """'yes', 1, "true" and other truthy values are not consent."""
    consent_table.apply(SERVED.encode(), consent_value(SERVED, {"marketing": flag}))
    assert not consented(consent_table, SERVED, "marketing")


def test_a_purpose_missing_from_the_state_is_not_granted(consent_table: ConsentTable) -> None:
    """Granting one purpose says nothing about another."""
    grant(consent_table, SERVED, "marketing")
    assert not consented(consent_table, SERVED, "fraud_prevention")


def test_an_unknown_purpose_grants_nothing_known(consent_table: ConsentTable) -> None:
    """A purpose the policy does not name is carried but grants none of the policy's."""
    grant(consent_table, SERVED, "newsletter")
    for purpose in ("marketing", "service_improvement", "fraud_prevention", "network_planning"):
        assert not consented(consent_table, SERVED, purpose)


def test_a_key_body_mismatch_means_not_consented(consent_table: ConsentTable) -> None:
    """A state whose msisdn differs from its key grants nothing to either number."""
    grant(consent_table, SERVED, "marketing")
    problem = consent_table.apply(SERVED.encode(), consent_value(OTHER, {"marketing": True}))
    assert isinstance(problem, ConsentProblem)
    assert problem.code == "key_mismatch"
    assert not consented(consent_table, SERVED, "marketing")
    assert not consented(consent_table, OTHER, "marketing")


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b"null", b'"marketing"'])
def test_an_unreadable_state_means_not_consented(consent_table: ConsentTable, raw: bytes) -> None:
    """Invalid JSON or a non-object replaces the earlier state with no consent."""
    grant(consent_table, SERVED, "marketing")
    assert isinstance(consent_table.apply(SERVED.encode(), raw), ConsentProblem)
    assert not consented(consent_table, SERVED, "marketing")


@pytest.mark.parametrize("key", [None, b"", b"not-a-number", b"\xff\xfe"])
def test_a_state_without_a_valid_key_is_rejected(
    consent_table: ConsentTable, key: bytes | None
) -> None:
    """A state that cannot be tied to a subscriber is counted as rejected and stored nowhere."""
    problem = consent_table.apply(key, consent_value(SERVED, {"marketing": True}))
    assert isinstance(problem, ConsentProblem)
    assert len(consent_table) == 0
    assert sum(consent_table.rejected.values()) == 1


@pytest.mark.parametrize("key", ["+46 70-123 45 67", "0046701234567", "0701234567"])
def test_keys_in_any_number_form_address_the_same_subscriber(
    consent_table: ConsentTable, key: str
) -> None:
    """Consent is stored under the normalized E.164 digits, whatever the key's form."""
    body = consent_value("+46701234567", {"marketing": True})
    assert consent_table.apply(key.encode(), body) is None
    assert consented(consent_table, SERVED, "marketing")


def test_equal_states_are_interned(consent_table: ConsentTable) -> None:
    """Two subscribers with the same version and purposes share one state object."""
    grant(consent_table, SERVED, "marketing", "network_planning", version=3)
    grant(consent_table, OTHER, "network_planning", "marketing", version=3)
    assert consent_table.get(SERVED) is consent_table.get(OTHER)
    grant(consent_table, OTHER, "marketing", version=3)
    assert consent_table.get(SERVED) is not consent_table.get(OTHER)


def test_parse_consent_returns_the_subscriber_and_granted_purposes(
    msisdn: MsisdnNormalizer,
) -> None:
    """The parser's result: normalized key and the set of literally-true purposes."""
    value = json.dumps(
        {
            "msisdn": SERVED,
            "purposes": {"marketing": True, "service_improvement": False, "x": "yes"},
            "version": 17,
            "updatedAt": "2026-11-21T06:00:00+01:00",
        }
    ).encode()
    assert parse_consent(b"0701234567", value, msisdn) == (
        SERVED,
        ConsentState(17, frozenset({"marketing"})),
    )
    assert parse_consent(SERVED.encode(), None, msisdn) == (SERVED, None)


def test_consent_problems_never_carry_the_number(msisdn: MsisdnNormalizer) -> None:
    """Problem messages name fields, not the subscriber."""
    for key, value in [
        (b"0701234567", consent_value(OTHER, {})),
        (b"0701234567", b"{"),
        (b"070123", consent_value(SERVED, {})),
        (b"0701234567", consent_value(SERVED, {}, changes={"version": "x"})),
    ]:
        problem = parse_consent(key, value, msisdn)
        assert isinstance(problem, ConsentProblem)
        for digits in ("701234", "739876", "070123"):
            assert digits not in problem.message
