"""The policy file loads when it keeps the product's promises and is refused when it breaks one."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.core.policy import Action, Policy
from pipeline.errors import PolicyError

# A small valid policy; each refusal test below changes one thing in it.
MINIMAL = """
[policy]
name = "test"
controller = "operator"
dpo_contact = "dpo@example.org"
data_subjects = "subscribers"

[purposes.marketing]
title = "Offers"
description = "Better offers"
legal_basis = "consent"

[routes.lawful_intercept]
kind = "lawful_intercept"
topic = "traffic.lawful-intercept"
legal_basis = "legal_obligation"
legal_reference = "law"
recipients = "LEMF"
retention_days = 365
categories = "all"

[routes.marketing]
kind = "analytics"
purpose = "marketing"
topic = "traffic.analytics.marketing"
legal_basis = "consent"
legal_reference = "6(1)(a)"
recipients = "marketing"
retention_days = 365
categories = "traffic"
requires_consent = true

[routes.marketing.fields]
recordType = "keep"
servedMSISDN = { consented = "keep", otherwise = "pseudonymize" }
callingNumber = { consented = "keep", otherwise = "drop" }
servedIMEI = { consented = "generalize:tac", otherwise = "drop" }
location = { consented = "keep", otherwise = "generalize:mcc_mnc" }
callDuration = "keep"

[dead_letter]
topic = "traffic.dead-letter"
retention_days = 7
recipients = "operators"
"""

MARKETING_MSISDN = 'servedMSISDN = { consented = "keep", otherwise = "pseudonymize" }'
BILLING = """
[routes.billing]
kind = "billing"
topic = "traffic.billing"
legal_basis = "contract"
legal_reference = "6(1)(b)"
recipients = "billing"
retention_days = 180
categories = "billing"
select = "billable"

[routes.billing.fields]
calledNumber = "mask:4"
"""


def parse(text: str) -> Policy:
    """Parse policy text."""
    return Policy.parse(text.encode(), "test policy")


def changed(old: str, new: str) -> str:
    """MINIMAL with exactly one occurrence of ``old`` replaced."""
    assert MINIMAL.count(old) == 1, old
    return MINIMAL.replace(old, new)


def with_field(field: str, spec: str) -> str:
    """MINIMAL with the marketing route's rule for ``field`` set to ``spec`` (TOML value)."""
    lines = [line for line in MINIMAL.splitlines() if not line.startswith(f"{field} = ")]
    at = lines.index("[routes.marketing.fields]") + 1
    lines.insert(at, f"{field} = {spec}")
    return "\n".join(lines) + "\n"


def test_the_minimal_policy_loads() -> None:
    """The base of the refusal tests is itself valid (so each refusal is the change's doing)."""
    policy = parse(MINIMAL)
    assert set(policy.routes) == {"lawful_intercept", "marketing"}
    rule = policy.routes["marketing"].fields["servedMSISDN"]
    assert (rule.consented, rule.otherwise) == (Action.KEEP, Action.PSEUDONYMIZE)


def test_the_default_policy_loads_with_its_routes_and_purposes(policy: Policy) -> None:
    """The packaged policy has LI, billing and the four analytics purposes."""
    assert {route.kind for route in policy.routes.values()} == {
        "lawful_intercept",
        "billing",
        "analytics",
    }
    assert policy.analytics_purposes == [
        "marketing",
        "service_improvement",
        "fraud_prevention",
        "network_planning",
    ]
    assert set(policy.purposes) == set(policy.analytics_purposes)
    assert policy.routes["marketing"].requires_consent
    assert policy.routes["billing"].select == "billable"
    assert policy.version.startswith("sha256:")
    assert len(policy.version) == len("sha256:") + 16


def test_the_default_policy_has_the_documented_legal_bases(policy: Policy) -> None:
    """LI: legal obligation; billing: contract; consent and legitimate interest for analytics."""
    bases = {name: route.legal_basis for name, route in policy.routes.items()}
    assert bases == {
        "lawful_intercept": "legal_obligation",
        "billing": "contract",
        "marketing": "consent",
        "service_improvement": "consent",
        "fraud_prevention": "legitimate_interest",
        "network_planning": "legitimate_interest",
    }


@pytest.mark.parametrize(
    ("field", "spec"),
    [
        ("servedMSISDN", '{ consented = "keep", otherwise = "keep" }'),
        ("servedMSISDN", '"keep"'),
        ("servedIMSI", '{ consented = "keep", otherwise = "keep" }'),
        ("servedIMEI", '"keep"'),
        ("callingNumber", '{ consented = "pseudonymize", otherwise = "keep" }'),
        ("destinationNumber", '"keep"'),
        ("roamingNumber", '{ consented = "drop", otherwise = "keep" }'),
    ],
)
def test_an_identifier_kept_in_clear_without_consent_on_analytics_is_refused(
    field: str, spec: str
) -> None:
    """The central promise: no identifier in clear on an analytics topic without consent."""
    with pytest.raises(PolicyError, match=f"'{field}' would reach an analytics topic in clear"):
        parse(with_field(field, spec))


def test_keep_for_an_identifier_without_consent_is_allowed_on_billing() -> None:
    """Billing (contract) may carry the subscriber's identity: the rule is analytics-only."""
    policy = parse(MINIMAL + BILLING.replace('calledNumber = "mask:4"', 'servedMSISDN = "keep"'))
    assert policy.routes["billing"].fields["servedMSISDN"].otherwise is Action.KEEP


def test_an_unknown_field_is_refused() -> None:
    """Fields use TS 32.298 names; a typo would silently drop data, so it is an error."""
    with pytest.raises(PolicyError, match="unknown field 'servedMsisdn'"):
        parse(with_field("servedMsisdn", '"drop"'))


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("hash", "unknown action"),
        ("encrypt", "unknown action"),
        ("generalize:cell", "unknown action"),
        ("mask", "mask"),  # the bare word, without a digit count
        ("mask:0", "mask takes 1-8 digits"),
        ("mask:9", "mask takes 1-8 digits"),
    ],
)
def test_an_unknown_action_is_refused(action: str, message: str) -> None:
    """Only the documented actions (and mask:1..8) exist."""
    with pytest.raises(PolicyError, match=message):
        parse(with_field("calledNumber", f'{{ consented = "keep", otherwise = "{action}" }}'))


def test_mask_on_an_imsi_is_refused() -> None:
    """Masking applies to numbers only."""
    with pytest.raises(PolicyError, match="'servedIMSI' cannot be mask:4"):
        parse(with_field("servedIMSI", '{ consented = "keep", otherwise = "mask:4" }'))


@pytest.mark.parametrize("field", ["callingNumber", "servedMSISDN", "servedIMSI"])
def test_tac_on_a_non_imei_is_refused(field: str) -> None:
    """generalize:tac applies to the IMEI only."""
    with pytest.raises(PolicyError, match=f"'{field}' cannot be generalize:tac"):
        parse(with_field(field, '{ consented = "keep", otherwise = "generalize:tac" }'))


@pytest.mark.parametrize(
    ("field", "action"),
    [
        ("seizureTime", "generalize:location_area"),
        ("location", "generalize:hour"),
        ("callDuration", "pseudonymize"),
        ("recordingEntity", "pseudonymize"),
    ],
)
def test_actions_on_the_wrong_kind_of_field_are_refused(field: str, action: str) -> None:
    """Each generalization and pseudonymization fits only its kind of field."""
    with pytest.raises(PolicyError, match=f"'{field}' cannot be {action}"):
        parse(with_field(field, f'"{action}"'))


def test_a_policy_without_a_lawful_intercept_route_is_refused() -> None:
    """LI is a legal obligation: no policy may leave it out."""
    start = MINIMAL.index("[routes.lawful_intercept]")
    end = MINIMAL.index("[routes.marketing]")
    with pytest.raises(PolicyError, match="lawful_intercept route is required"):
        parse(MINIMAL[:start] + MINIMAL[end:])


def test_two_routes_on_one_topic_are_refused() -> None:
    """Each route has its own topic (ACLs and retention are per topic)."""
    with pytest.raises(PolicyError, match="share a topic"):
        parse(
            changed('topic = "traffic.analytics.marketing"', 'topic = "traffic.lawful-intercept"')
        )


@pytest.mark.parametrize(
    "field", ["callDuration", "recordType", "recordingEntity", "serviceCentre"]
)
def test_consent_dependent_rules_on_non_personal_fields_are_refused(field: str) -> None:
    """consented/otherwise only makes sense for a field that identifies someone."""
    with pytest.raises(PolicyError, match=f"'{field}' is not personal data"):
        parse(with_field(field, '{ consented = "keep", otherwise = "drop" }'))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('purpose = "marketing"', 'purpose = "profiling"', "not under"),
        (
            'legal_basis = "consent"\nlegal_reference',
            'legal_basis = "vibes"\nlegal_reference',
            "legal_basis",
        ),
        ('kind = "analytics"', 'kind = "export"', "kind must be"),
        ("retention_days = 7", "retention_days = 0", "retention_days"),
        ("requires_consent = true", 'requires_consent = "yes"', "requires_consent"),
        (MARKETING_MSISDN, 'servedMSISDN = { consented = "keep" }', "exactly"),
    ],
)
def test_other_malformed_policies_are_refused(old: str, new: str, message: str) -> None:
    """Unknown purposes, legal bases, kinds, bad retention and half rules are refused."""
    with pytest.raises(PolicyError, match=message):
        parse(changed(old, new))


def test_consent_cannot_gate_a_non_analytics_route() -> None:
    """Billing rests on the contract, not consent."""
    with pytest.raises(PolicyError, match="only analytics"):
        parse(MINIMAL + BILLING.replace('select = "billable"', "requires_consent = true"))


def test_invalid_toml_is_refused() -> None:
    """A syntax error is a PolicyError, not a crash."""
    with pytest.raises(PolicyError, match="not valid TOML"):
        parse(MINIMAL + "\n[[[")


def test_version_changes_when_the_file_changes(tmp_path: Path) -> None:
    """The version is a hash of the file: any edit (even a comment) gives a new version."""
    path = tmp_path / "policy.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    first = Policy.load(path).version
    assert Policy.load(path).version == first
    path.write_text(MINIMAL + "\n# reviewed by the DPO\n", encoding="utf-8")
    second = Policy.load(path).version
    assert second != first
    assert second.startswith("sha256:")


def test_an_unreadable_policy_path_is_refused(tmp_path: Path) -> None:
    """A missing file is a PolicyError naming the path."""
    with pytest.raises(PolicyError, match="cannot be read"):
        Policy.load(tmp_path / "absent.toml")


@pytest.mark.parametrize("read", ["cdr.voice", "cdr.sms", "consent.state", "li.warrants"])
def test_a_route_may_not_write_to_a_topic_the_pipeline_reads(read: str) -> None:
    """Outputs on an input or state topic would loop through the worker or corrupt a table."""
    with pytest.raises(PolicyError, match=rf"\[routes.marketing\] topic '{read}' is one"):
        parse(changed('topic = "traffic.analytics.marketing"', f'topic = "{read}"'))


@pytest.mark.parametrize("read", ["cdr.sms", "li.warrants"])
def test_dead_letters_may_not_go_to_a_topic_the_pipeline_reads(read: str) -> None:
    """A dead letter on an input topic would be read again and rejected again, for ever."""
    with pytest.raises(PolicyError, match=rf"\[dead_letter\] topic '{read}' is one"):
        parse(changed('topic = "traffic.dead-letter"', f'topic = "{read}"'))


def test_dead_letters_may_not_share_a_route_topic() -> None:
    """Consumers of a route would get the raw rejected input."""
    with pytest.raises(PolicyError, match="dead-letter topic is also a route's topic"):
        parse(changed('topic = "traffic.dead-letter"', 'topic = "traffic.lawful-intercept"'))


def test_policy_check_refuses_a_topic_the_pipeline_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cdrveil policy-check` runs the same check: exit 2, the route and topic named."""
    path = tmp_path / "policy.toml"
    path.write_text(changed('topic = "traffic.lawful-intercept"', 'topic = "consent.state"'))
    assert main(["policy-check", str(path)]) == 2
    error = capsys.readouterr().err
    assert "[routes.lawful_intercept] topic 'consent.state' is one the pipeline reads" in error


# -- strict files: every key of every table is a known one ------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "where", "key", "nearest"),
    [
        # The two examples: a misspelt selection and a misspelt retention.
        (
            "requires_consent = true",
            'requires_consent = true\nselct = "all"',
            "[routes.marketing]",
            "selct",
            "select",
        ),
        (
            'retention_days = 365\ncategories = "traffic"',
            'retention_dyas = 365\ncategories = "traffic"',
            "[routes.marketing]",
            "retention_dyas",
            "retention_days",
        ),
        (
            'categories = "all"',
            'categories = "all"\nrecipent = "x"',
            "[routes.lawful_intercept]",
            "recipent",
            "recipients",
        ),
        (
            MARKETING_MSISDN,
            'servedMsisdn = "pseudonymize"',
            "[routes.marketing.fields]",
            "servedMsisdn",
            "servedMSISDN",
        ),
        (
            MARKETING_MSISDN,
            'servedMSISDN = { consented = "keep", otherwise = "pseudonymize", otherwsie = "drop" }',
            "the rule for 'servedMSISDN' in [routes.marketing.fields]",
            "otherwsie",
            "otherwise",
        ),
        (
            'recipients = "operators"',
            'recipients = "operators"\nretension_days = 3',
            "[dead_letter]",
            "retension_days",
            "retention_days",
        ),
        (
            'data_subjects = "subscribers"',
            'data_subjects = "subscribers"\ndpo_contakt = "x"',
            "[policy]",
            "dpo_contakt",
            "dpo_contact",
        ),
        (
            'title = "Offers"',
            'title = "Offers"\ndescripton = "x"',
            "[purposes.marketing]",
            "descripton",
            "description",
        ),
        ("[policy]", "rotues = 1\n[policy]", "the top level", "rotues", "routes"),
        ("[policy]", "[securty]\nmeasures = []\n[policy]", "the top level", "securty", "security"),
    ],
)
def test_an_unknown_key_is_refused_with_its_table_and_the_nearest_known_key(
    old: str, new: str, where: str, key: str, nearest: str
) -> None:
    """A typo in any table changes what the file means; it is refused, never ignored."""
    with pytest.raises(PolicyError) as refused:
        parse(changed(old, new))
    message = str(refused.value)
    assert f"'{key}' in {where}" in message
    assert f"did you mean '{nearest}'?" in message


def test_selct_is_refused_rather_than_sending_every_record_to_billing() -> None:
    """The issue's case: `selct = "billable"` read as no selection, and billing got all."""
    with pytest.raises(PolicyError, match=r"unknown key 'selct' in \[routes.billing\]"):
        parse(MINIMAL + BILLING.replace('select = "billable"', 'selct = "billable"'))


def test_a_misspelt_retention_is_named_as_the_typo_not_as_a_missing_key() -> None:
    """`retention_dyas` used to get a message about `retention_days`; now about itself."""
    with pytest.raises(PolicyError) as refused:
        parse(changed("retention_days = 7", "retention_dyas = 7"))
    assert "unknown key 'retention_dyas' in [dead_letter]; did you mean 'retention_days'?" in str(
        refused.value
    )


def test_an_unknown_key_with_nothing_near_lists_the_known_ones() -> None:
    """Without a close match the message says what the table may hold."""
    with pytest.raises(
        PolicyError, match=r"unknown key 'zzz' in \[purposes.marketing\]; known: title"
    ):
        parse(changed('title = "Offers"', 'title = "Offers"\nzzz = 1'))


@pytest.mark.parametrize(
    "key", ['select = "all"', '[routes.lawful_intercept.fields]\nrecordType = "keep"']
)
def test_a_lawful_intercept_route_refuses_keys_that_would_mean_nothing(key: str) -> None:
    """LI carries complete records of warrant targets: a selection or field list is a mistake."""
    with pytest.raises(PolicyError, match="would mean nothing here"):
        parse(changed('categories = "all"', f'categories = "all"\n{key}'))


def test_policy_check_exits_2_naming_the_unknown_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cdrveil policy-check` on a typo: exit 2, the table, the key and the suggestion."""
    path = tmp_path / "policy.toml"
    path.write_text(MINIMAL + BILLING.replace('select = "billable"', 'selct = "billable"'))
    assert main(["policy-check", str(path)]) == 2
    captured = capsys.readouterr()
    assert "OK" not in captured.out
    assert "unknown key 'selct' in [routes.billing]; did you mean 'select'?" in captured.err


# -- a route that rests on consent requires it ------------------------------------------------


def test_a_consent_based_route_that_does_not_require_consent_is_refused() -> None:
    """Without requires_consent, non-consenting subscribers' records would reach it."""
    with pytest.raises(PolicyError, match="the legal basis is consent, so the route must have"):
        parse(changed("requires_consent = true", "requires_consent = false"))
    with pytest.raises(PolicyError, match="requires_consent = true"):
        parse(changed("requires_consent = true\n", ""))


def test_a_billing_route_cannot_rest_on_consent() -> None:
    """Consent decides nothing on billing, so it cannot be billing's basis."""
    with pytest.raises(PolicyError, match="a billing route cannot rest on consent"):
        parse(MINIMAL + BILLING.replace('legal_basis = "contract"', 'legal_basis = "consent"'))


def test_a_route_and_its_purpose_must_name_the_same_legal_basis() -> None:
    """The route and its purpose are one processing: two bases would contradict each other."""
    text = changed(
        'legal_basis = "consent"\nlegal_reference',
        'legal_basis = "legitimate_interest"\nlegal_reference',
    )
    with pytest.raises(PolicyError, match="its purpose 'marketing' rests on 'consent'"):
        parse(text)


def test_every_consent_based_route_of_the_default_policy_requires_consent(policy: Policy) -> None:
    """The notice: better recommendations and better service only with consent."""
    consent_based = [r for r in policy.routes.values() if r.legal_basis == "consent"]
    assert {r.name for r in consent_based} == {"marketing", "service_improvement"}
    assert all(r.requires_consent for r in consent_based)


@pytest.mark.parametrize(
    "spec", ['"drop"', '"keep"', '{ consented = "keep", otherwise = "drop" }'], ids=str
)
def test_a_rule_for_the_record_id_is_refused(spec: str) -> None:
    """Both engines copy recordId into every output (and the cdrveil.record-id header), so
    a rule for it could only be a promise the output does not keep: the old generated Python
    builder honoured "drop" while the interpreter and the native engine kept it."""
    with pytest.raises(PolicyError, match="'recordId' takes no rule: every output carries"):
        parse(with_field("recordId", spec))
    with pytest.raises(PolicyError, match="'recordId' takes no rule"):
        parse(MINIMAL + BILLING.replace('calledNumber = "mask:4"', f"recordId = {spec}"))


def test_policy_check_refuses_a_rule_for_the_record_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cdrveil policy-check` says so before a worker starts with it: exit 2, the route named."""
    path = tmp_path / "policy.toml"
    path.write_text(with_field("recordId", '"drop"'))
    assert main(["policy-check", str(path)]) == 2
    error = capsys.readouterr().err
    assert "[routes.marketing]: 'recordId' takes no rule" in error
