"""The JSON Schemas in schemas/: valid, consistent, and they accept and reject what they should."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, ValidationError
from referencing.exceptions import Unresolvable

from pipeline.core.decode import parse_time
from pipeline.core.keys import PurposePseudonymizer
from pipeline.core.normalize import MsisdnNormalizer, normalize_imei
from tests.support.schemas import (  # the repository root is on sys.path (see conftest.py)
    BASE_URI,
    SCHEMA_DIR,
    SCHEMA_SUFFIX,
    headers_document,
    load_schema,
    read_json,
    schema_registry,
)

EXAMPLE_DIR = SCHEMA_DIR / "examples"
INVALID_DIR = EXAMPLE_DIR / "invalid"
METASCHEMA = "https://json-schema.org/draft/2020-12/schema"
# Subschemas under these keywords only narrow a property that is described where it is declared.
NARROWING_KEYWORDS = {"if", "then", "else", "allOf", "anyOf", "oneOf", "not"}

INPUT_SCHEMAS = ["voice-cdr", "sms-record", "consent-state", "warrant"]
OUTPUT_SCHEMAS = [
    "lawful-intercept",
    "billing",
    "analytics",
    "dead-letter",
    "output-headers",
    "subject-access",
]
SCHEMA_FILES = sorted(SCHEMA_DIR.glob(f"*{SCHEMA_SUFFIX}"))
VALID_EXAMPLES = sorted(EXAMPLE_DIR.glob("*.json"))


def schema_of(example: Path) -> str:
    """Examples are named <schema stem>.<case>.json."""
    return example.name.split(".", 1)[0]


def examples_of(stems: list[str]) -> list[Path]:
    """The valid examples of the given schemas."""
    return [path for path in VALID_EXAMPLES if schema_of(path) in stems]


def ids(paths: list[Path]) -> list[str]:
    """Test ids: file names without the directory."""
    return [path.name for path in paths]


def walk(node: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Every JSON value in a document, with its JSON pointer."""
    yield pointer, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{pointer}/{index}")


def all_errors(errors: list[ValidationError]) -> Iterator[ValidationError]:
    """Errors with the errors of failed anyOf/oneOf branches, flattened."""
    for error in errors:
        yield error
        yield from all_errors(list(error.context or []))


# ---------------------------------------------------------------- the schemas themselves


def test_there_is_one_schema_per_record_plus_the_shared_definitions() -> None:
    assert {path.name.removesuffix(SCHEMA_SUFFIX) for path in SCHEMA_FILES} == {
        *INPUT_SCHEMAS,
        *OUTPUT_SCHEMAS,
        "common",
    }


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=ids(SCHEMA_FILES))
def test_schema_is_valid_against_the_2020_12_metaschema(path: Path) -> None:
    schema = read_json(path)
    assert schema["$schema"] == METASCHEMA
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=ids(SCHEMA_FILES))
def test_schema_id_is_the_url_of_its_file(path: Path) -> None:
    schema = read_json(path)
    assert schema["$id"] == BASE_URI + path.name


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=ids(SCHEMA_FILES))
def test_every_property_has_a_description(path: Path) -> None:
    undescribed = [
        f"{pointer}/{name}"
        for pointer, node in walk(read_json(path))
        if isinstance(node, dict) and isinstance(node.get("properties"), dict)
        for name, subschema in node["properties"].items()
        if not NARROWING_KEYWORDS & set(pointer.split("/"))
        if not isinstance(subschema, dict) or "description" not in subschema
    ]
    assert undescribed == []


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=ids(SCHEMA_FILES))
def test_every_ref_resolves_across_the_schema_files(path: Path) -> None:
    schema = read_json(path)
    resolver = schema_registry().resolver(base_uri=schema["$id"])
    refs = [node["$ref"] for _, node in walk(schema) if isinstance(node, dict) and "$ref" in node]
    for ref in refs:
        resolver.lookup(ref)  # raises Unresolvable if a $ref points nowhere


@pytest.mark.parametrize("stem", INPUT_SCHEMAS)
def test_input_schema_allows_unknown_fields_and_says_why(stem: str) -> None:
    extra = read_json(SCHEMA_DIR / f"{stem}{SCHEMA_SUFFIX}")["additionalProperties"]
    assert isinstance(extra, dict)
    assert "Unknown fields are allowed" in extra["description"]


@pytest.mark.parametrize("stem", OUTPUT_SCHEMAS)
def test_output_schema_is_an_allow_list(stem: str) -> None:
    schema = read_json(SCHEMA_DIR / f"{stem}{SCHEMA_SUFFIX}")
    assert schema["additionalProperties"] is False


# ---------------------------------------------------------------- examples


@pytest.mark.parametrize("path", VALID_EXAMPLES, ids=ids(VALID_EXAMPLES))
def test_example_is_valid_against_the_schema_its_name_names(path: Path) -> None:
    load_schema(schema_of(path)).validate(read_json(path))


@pytest.mark.parametrize("stem", INPUT_SCHEMAS + OUTPUT_SCHEMAS)
def test_every_record_schema_has_a_valid_example(stem: str) -> None:
    assert examples_of([stem]) != []


class Invalid(NamedTuple):
    """An invalid example and why it must fail: the instance path and keyword of the error."""

    schema: str
    path: tuple[str | int, ...]
    keyword: str
    mentions: str = ""


INVALID: dict[str, Invalid] = {
    "voice-cdr.without-recordId": Invalid("voice-cdr", (), "required", "'recordId'"),
    "voice-cdr.time-without-offset": Invalid("voice-cdr", ("answerTime",), "pattern"),
    "voice-cdr.null-callDuration": Invalid("voice-cdr", ("callDuration",), "type"),
    "sms-record.mo-without-originationTime": Invalid(
        "sms-record", (), "required", "'originationTime'"
    ),
    "consent-state.purpose-as-string": Invalid("consent-state", ("purposes", "marketing"), "type"),
    "warrant.imsi-target-with-msisdn-value": Invalid("warrant", ("targets", 0, "value"), "pattern"),
    "billing.with-servedIMEI": Invalid("billing", ("servedIMEI",), "not"),
    "billing.location-with-cellId": Invalid("billing", ("location", "cellId"), "not"),
    "billing.called-number-unmasked": Invalid("billing", ("calledNumber",), "pattern"),
    "billing.mo-call-zero-duration": Invalid("billing", ("callDuration",), "minimum"),
    # The only pseudonym-only place of an analytics message is its key: no clear IMSI there.
    "analytics.key-clear-imsi": Invalid("analytics.schema.json#/$defs/messageKey", (), "pattern"),
    "analytics.msisdn-not-normalized": Invalid("analytics", ("servedMSISDN",), "anyOf"),
    "analytics.masked-number": Invalid("analytics", ("calledNumber",), "anyOf"),
    "analytics.full-imei": Invalid("analytics", ("servedIMEI",), "anyOf"),
    "analytics.location-not-an-allow-list": Invalid(
        "analytics", ("location",), "additionalProperties", "'sectorName'"
    ),
    "analytics.field-outside-allow-list": Invalid(
        "analytics", (), "additionalProperties", "'callReference'"
    ),
    "lawful-intercept.record-without-recordId": Invalid(
        "lawful-intercept", ("record",), "required", "'recordId'"
    ),
    "output-headers.lawful-intercept-without-liid": Invalid(
        "output-headers", (), "required", "'cdrveil.liid'"
    ),
    "output-headers.liid-on-a-contract-route": Invalid(
        "output-headers", ("cdrveil.legal-basis",), "const"
    ),
    "dead-letter.unknown-reason-code": Invalid("dead-letter", ("dlq.error.code",), "enum"),
}


def test_every_invalid_example_has_a_stated_reason() -> None:
    assert {path.stem for path in INVALID_DIR.glob("*.json")} == set(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_example_fails_for_the_stated_reason_only(name: str) -> None:
    case = INVALID[name]
    errors = list(load_schema(case.schema).iter_errors(read_json(INVALID_DIR / f"{name}.json")))
    assert errors, "the example validates"
    # Only the stated defect: every error is about the same place.
    assert {tuple(error.absolute_path) for error in errors} == {case.path}
    assert any(
        tuple(error.absolute_path) == case.path
        and error.validator == case.keyword
        and case.mentions in error.message
        for error in all_errors(errors)
    ), [error.message for error in all_errors(errors)]


@pytest.mark.parametrize("path", examples_of(INPUT_SCHEMAS), ids=ids(examples_of(INPUT_SCHEMAS)))
def test_input_record_with_an_unknown_field_is_valid(path: Path) -> None:
    document = read_json(path)
    load_schema(schema_of(path)).validate(document | {"vendorExtension": {"anything": [1, None]}})


@pytest.mark.parametrize("path", examples_of(OUTPUT_SCHEMAS), ids=ids(examples_of(OUTPUT_SCHEMAS)))
def test_route_output_with_a_field_outside_the_allow_list_is_invalid(path: Path) -> None:
    document = read_json(path)
    errors = list(load_schema(schema_of(path)).iter_errors(document | {"subscriberName": "x"}))
    assert [error.validator for error in errors] == ["additionalProperties"]


# ---------------------------------------------------------------- formats


def example(name: str) -> dict[str, Any]:
    """A valid example document, by file stem."""
    document: dict[str, Any] = read_json(EXAMPLE_DIR / f"{name}.json")
    return document


@given(st.binary(min_size=16, max_size=16))
def test_pseudonym_accepts_any_truncated_hmac_in_unpadded_base64url(digest: bytes) -> None:
    encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert load_schema("common#/$defs/pseudonym").is_valid(f"k2026-11:{encoded}")


@pytest.mark.parametrize(
    "value",
    [
        "46701234567",  # clear digits
        "k2026-11:qKYH6WEOsmUNe6sh0s0mTQ==",  # padded
        "k2026-11:qKYH6WEOsmUNe6sh0s0mT",  # 21 characters
        "k2026-11:qKYH6WEOsmUNe6sh0s0mTQA",  # 23 characters: more than 16 bytes
        "k2026-11:qKYH6WEOsmUNe6sh0s0mTR",  # last character carries bits 16 bytes do not have
        "k2026-11:qKYH6WEOsmUNe6sh0s0+TQ",  # standard, not url-safe, base64
        "K2026:qKYH6WEOsmUNe6sh0s0mTQ",  # key ids are lower case
        ":qKYH6WEOsmUNe6sh0s0mTQ",  # no key id
    ],
)
def test_pseudonym_rejects_anything_but_key_id_colon_22_base64url_characters(value: str) -> None:
    assert not load_schema("common#/$defs/pseudonym").is_valid(value)


@pytest.mark.parametrize(
    "value",
    [
        "+46 70-123 45 67",
        "0046701234567",
        "46701234567",
        "0701234567",
        "(070) 123.45/67",
        "+46 (0)70 123",  # 46070123: the "(0)" some people write is not dropped
    ],
)
def test_msisdn_input_accepts_the_forms_producers_send(value: str) -> None:
    assert load_schema("common#/$defs/msisdnInput").is_valid(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "070-12A 45 67",  # a letter
        "++46701234567",
        "+0701234567",  # a country code never starts with 0
        "0012345",  # 5 digits after the international prefix
        "46 70 12",  # 6 digits
        "1234567890123456",  # 16 digits
    ],
)
def test_msisdn_input_rejects_letters_bad_prefixes_and_wrong_lengths(value: str) -> None:
    assert not load_schema("common#/$defs/msisdnInput").is_valid(value)


@pytest.mark.parametrize(
    "value", ["2026-11-21T05:00:00Z", "2026-11-21T06:00:00+01:00", "2026-11-21T05:00:00.125-03:30"]
)
def test_time_with_an_offset_is_valid(value: str) -> None:
    assert load_schema("common#/$defs/rfc3339Time").is_valid(value)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-21T05:00:00",  # no offset: ambiguous
        "2026-11-21 05:00:00Z",  # space separator
        "2026-11-21T05:00:00+0100",  # offset without colon
        "2026-11-21T23:59:60Z",  # leap second
        "2026-13-01T00:00:00Z",
        "1763701200",  # epoch seconds
    ],
)
def test_time_without_an_rfc3339_offset_is_invalid(value: str) -> None:
    assert not load_schema("common#/$defs/rfc3339Time").is_valid(value)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2026-11-21T05:00:00Z", True),
        ("2026-11-21T05:30:00Z", False),
        ("2026-11-21T05:00:01Z", False),
        ("2026-11-21T06:00:00+01:00", False),
    ],
)
def test_time_generalized_to_the_hour_is_a_whole_utc_hour(value: str, valid: bool) -> None:
    assert load_schema("common#/$defs/utcHour").is_valid(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [("4670123XXXX", True), ("479001XXXX", True), ("46701234567", False), ("4670123XXX", False)],
)
def test_billing_masks_exactly_the_last_four_digits(value: str, valid: bool) -> None:
    assert load_schema("common#/$defs/maskedNumber").is_valid(value) is valid


@pytest.mark.parametrize(
    ("key", "valid"),
    [("k2026-11:qKYH6WEOsmUNe6sh0s0mTQ", True), ("46701234567", False), ("240019876543210", False)],
)
def test_analytics_key_is_always_a_pseudonym(key: str, valid: bool) -> None:
    assert load_schema("analytics.schema.json#/$defs/messageKey").is_valid(key) is valid


# ---------------------------------------------------------------- cross-field rules


@pytest.mark.parametrize("field", ["servedIMEI", "calledNumber", "location", "releaseTime"])
def test_input_field_that_is_null_counts_as_absent(field: str) -> None:
    load_schema("voice-cdr").validate(example("voice-cdr.mo-call") | {field: None})


def test_input_record_whose_served_identities_are_null_is_invalid() -> None:
    record = example("sms-record.mt-sms") | {"servedMSISDN": None, "servedIMSI": None}
    assert not load_schema("sms-record").is_valid(record)


def test_billable_mt_record_carries_the_roaming_location() -> None:
    document = {k: v for k, v in example("billing.mt-call-roaming").items() if k != "location"}
    assert not load_schema("billing").is_valid(document)


def test_lawful_intercept_delivers_sms_records_as_received() -> None:
    record = example("sms-record.mo-sms")
    delivery = {"liid": "LI-2026-0002", "recordId": record["recordId"], "record": record}
    load_schema("lawful-intercept").validate(delivery)


@pytest.mark.parametrize(
    ("route", "valid"),
    [
        ("billing", True),
        ("fraud_prevention", True),
        ("traffic.billing", False),  # the route's name, not its topic
        ("analytics.marketing", False),
        ("", False),
    ],
)
def test_route_header_is_the_policy_route_name(route: str, valid: bool) -> None:
    headers = example("output-headers.billing") | {"cdrveil.route": route}
    assert load_schema("output-headers").is_valid(headers) is valid


# ---------------------------------------------------------------- agreement with the code

NUMBER_CHARACTERS = "0123456789+ -()./\tx"


@given(st.text(alphabet=NUMBER_CHARACTERS, max_size=24))
def test_msisdn_input_accepts_exactly_what_the_default_normalizer_accepts(raw: str) -> None:
    accepted = MsisdnNormalizer(country_code="46", trunk_prefix="0")(raw) is not None
    assert load_schema("common#/$defs/msisdnInput").is_valid(raw) is accepted


@given(st.text(alphabet=NUMBER_CHARACTERS, max_size=24))
def test_imei_input_accepts_every_imei_the_normalizer_accepts(raw: str) -> None:
    if normalize_imei(raw) is not None:
        assert load_schema("common#/$defs/imeiInput").is_valid(raw)


TIME_PATTERN = read_json(SCHEMA_DIR / "common.schema.json")["$defs"]["rfc3339Time"]["pattern"]


@given(st.from_regex(TIME_PATTERN, fullmatch=True))
def test_decoder_accepts_every_time_the_schema_accepts_on_a_real_date(value: str) -> None:
    try:
        date.fromisoformat(value[:10])
    except ValueError:
        assume(False)  # 2026-02-31 matches the pattern; format "date-time" would catch it
    assert parse_time(value) is not None


@given(st.binary(min_size=32, max_size=32), st.text(max_size=20))
def test_pseudonymizer_output_matches_the_pseudonym_pattern(key: bytes, value: str) -> None:
    pseudonym = PurposePseudonymizer("k2026-11", key)(value)
    assert load_schema("analytics.schema.json#/$defs/messageKey").is_valid(pseudonym)


# ---------------------------------------------------------------- the helper


def test_load_schema_takes_a_file_name_or_its_stem() -> None:
    document = example("billing.mo-call")
    assert load_schema("billing.schema.json").is_valid(document)
    assert load_schema("billing").is_valid(document)


def test_load_schema_refuses_an_unknown_schema() -> None:
    with pytest.raises(Unresolvable):
        load_schema("no-such-record")


def test_headers_document_decodes_values_and_refuses_a_repeated_header() -> None:
    assert headers_document([("cdrveil.route", b"billing")]) == {"cdrveil.route": "billing"}
    with pytest.raises(ValueError, match="more than once"):
        headers_document([("cdrveil.route", b"billing"), ("cdrveil.route", b"billing")])
