"""Engine outputs conform to the published schemas (values, keys and headers)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipeline.core.consent import ConsentState
from pipeline.core.decode import Rejection
from pipeline.core.engine import Engine, Output
from pipeline.core.warrants import WarrantIndex
from tests.support.core import (
    ANALYTICS_PREFIX,
    BILLING_TOPIC,
    LI_TOPIC,
    NUMBER_POOL,
    OPTIONAL_FIELDS,
    OTHER,
    PURPOSES,
    RECORD_TYPES,
    ROAMING_LOCATION,
    SERVED,
    SERVED_IMSI,
    add_warrant,
    consent_from_mask,
    encode,
    mo_call,
    mo_sms,
    mt_call,
    mt_sms,
    random_record,
    states,
)
from tests.support.schemas import headers_document, load_schema

SCHEMA_OF_TOPIC = {
    LI_TOPIC: "lawful-intercept.schema.json",
    BILLING_TOPIC: "billing.schema.json",
}


def schema_name(topic: str) -> str:
    """The value schema of an output topic."""
    return "analytics.schema.json" if topic.startswith(ANALYTICS_PREFIX) else SCHEMA_OF_TOPIC[topic]


def problems(output: Output) -> list[str]:
    """Every way the output breaks its schemas (value, key, headers); empty when it conforms."""
    name = schema_name(output.topic)
    found: list[str] = []
    checks: list[tuple[str, Draft202012Validator, Any]] = [
        ("value", load_schema(name), json.loads(output.value)),
        ("key", load_schema(name + "#/$defs/messageKey"), (output.key or b"").decode()),
        ("headers", load_schema("output-headers.schema.json"), headers_document(output.headers)),
    ]
    for part, validator, document in checks:
        for error in validator.iter_errors(document):
            path = "/".join(map(str, error.absolute_path))
            found.append(f"{output.topic} {part} /{path}: {error.message[:200]}")
    return found


def warrant_index(engine: Engine) -> WarrantIndex:
    """Warrants that match the fixtures' served IMSI and the other party's number."""
    index = WarrantIndex(engine.decoder.msisdn)
    span = {"valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z"}
    add_warrant(index, "LI-2026-0001", [("imsi", SERVED_IMSI)], **span)
    add_warrant(index, "LI-2026-0002", [("msisdn", OTHER)], **span)
    return index


CONSENTS = {
    "nobody": {},
    "served-all": {SERVED: PURPOSES},
    "other-all": {OTHER: PURPOSES},
    "both-all": {SERVED: PURPOSES, OTHER: PURPOSES},
}
FIXTURES = {
    "mo-call": mo_call(),
    "mt-call-roaming": mt_call(location=ROAMING_LOCATION),
    "mo-sms": mo_sms(),
    "mt-sms-roaming": mt_sms(location=ROAMING_LOCATION),
    "mo-call-imsi-only": mo_call(servedMSISDN=None, callingNumber=None),
    "mo-sms-minimal": {
        "recordId": "r-min",
        "recordType": "moSMSRecord",
        "servedMSISDN": "0701234567",
        "originationTime": "2026-11-21T05:00:00Z",
    },
}


@pytest.mark.parametrize("consent", sorted(CONSENTS))
@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_outputs_of_the_fixture_records_conform_to_their_schemas(
    engine: Engine, fixture: str, consent: str
) -> None:
    """Every route's value, key and headers validate, for each consent situation."""
    lookup = states(CONSENTS[consent]).get
    outputs = engine.process(encode(FIXTURES[fixture]), lookup, warrant_index(engine))
    assert not isinstance(outputs, Rejection), outputs
    assert outputs
    assert [p for output in outputs for p in problems(output)] == []


def test_the_fixture_records_reach_every_route(engine: Engine) -> None:
    """The cases above produce LI, billing and every analytics output (else they prove less)."""
    topics = set()
    for record in FIXTURES.values():
        outputs = engine.process(
            encode(record), states(CONSENTS["both-all"]).get, warrant_index(engine)
        )
        assert not isinstance(outputs, Rejection)
        topics |= {output.topic for output in outputs}
    assert topics == {LI_TOPIC, BILLING_TOPIC, *(ANALYTICS_PREFIX + p for p in PURPOSES)}


def generated_cases(count: int) -> list[tuple[dict[str, Any], dict[str, ConsentState | None]]]:
    """Seeded generated records with random consent for the pool numbers."""
    rng = random.Random(20261121)
    cases = []
    for _ in range(count):
        optional = frozenset(f for f in OPTIONAL_FIELDS if rng.random() < 0.6)
        null = rng.choice([None, None, None, *OPTIONAL_FIELDS])
        record = random_record(
            rng.choice(RECORD_TYPES),
            rng.choice(("msisdn", "imsi", "both")),
            optional,
            null,
            rng.randrange(2**32),
        )
        consent = {n: consent_from_mask(rng.randrange(-1, 32)) for n in NUMBER_POOL}
        cases.append((record, consent))
    return cases


def test_outputs_of_generated_records_conform_to_their_schemas(engine: Engine) -> None:
    """300 generated records (every type, form and optional field), random consent, warrants."""
    index = warrant_index(engine)
    found: list[str] = []
    topics: set[str] = set()
    for record, consent in generated_cases(300):
        outputs = engine.process(encode(record), consent.get, index)
        assert not isinstance(outputs, Rejection), (record, outputs)
        for output in outputs:
            topics.add(output.topic)
            found += [f"{record['recordId']}: {p}" for p in problems(output)]
    assert found == []
    assert {LI_TOPIC, BILLING_TOPIC, *(ANALYTICS_PREFIX + p for p in PURPOSES)} <= topics


def test_the_validators_reject_what_the_engine_must_never_write() -> None:
    """The schemas are not vacuous: a clear key, an IMEI in billing, a cell in billing fail."""
    assert list(load_schema("analytics.schema.json#/$defs/messageKey").iter_errors(SERVED))
    billing = load_schema("billing.schema.json")
    bad = {"recordId": "r", "recordType": "moSMSRecord", "servedMSISDN": SERVED,
           "originationTime": "2026-11-21T05:00:00Z", "servedIMEI": "49015420323751"}  # fmt: skip
    assert list(billing.iter_errors(bad))
    bad.pop("servedIMEI")
    assert not list(billing.iter_errors(bad))
    bad["location"] = {"mccMnc": "24001", "cellId": 1}
    assert list(billing.iter_errors(bad))
