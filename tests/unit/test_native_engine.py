"""The native engine gives byte for byte what the Python engine (the reference) gives.

Differential properties: the same messages go to ``Engine.process`` with ``ConsentTable``
and ``WarrantIndex``, and to ``NativeBatchEngine.process_batch`` with its native tables;
the outputs (topic, key, value, headers, order) and the rejections (index, code,
message, field) must be equal, and so must what the tables answer to each message.
Records of every shape ``core_fixtures.records`` builds, in every identifier form,
malformed in many ways; consent with tombstones and unreadable states; warrants with
windows, replacements and revocations; the default policy and generated valid ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.batch import BatchResult
from pipeline.core.consent import ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.engine import Engine, Output
from pipeline.core.fields import FIELDS, Kind, Owner
from pipeline.core.keys import Pseudonymizer
from pipeline.core.native import NativeBatchEngine, build_plan
from pipeline.core.party import NEVER_KEPT, POLICY_CLASSES
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from tests.support.core import (
    IMEI_POOL,
    IMSI_POOL,
    NUMBER_FORMS,
    NUMBER_POOL,
    OPTIONAL_FIELDS,
    OTHER,
    PARTY_VALUES,
    PURPOSES,
    SERVED,
    SERVED_IMSI,
    consent_value,
    encode,
    mo_call,
    mo_sms,
    mt_call,
    mt_sms,
    records,
    render_imei,
    render_number,
    warrant_value,
)
from tests.support.properties import EXAMPLES
from tests.support.strategies import FIELD_NAMES, field_values, json_values, record_like

PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Message = tuple[bytes | None, bytes | None]
Withheld = dict[tuple[str, str], int]


_PYTHON_ENGINES: dict[tuple[str, str], Engine] = {}


def python_engine(policy: Policy, pseudonymizer: Pseudonymizer, **build: Any) -> Engine:
    """One reference engine per policy and settings (its caches never change an answer, so
    examples may share it). Generated policies are built afresh: they rarely repeat."""
    slot = (policy.version, repr(sorted(build.items())))
    found = _PYTHON_ENGINES.get(slot)
    if found is None:
        found = Engine.build(policy, pseudonymizer, **build)
        if policy.source != "generated policy":
            _PYTHON_ENGINES[slot] = found
    return found


def _increments(after: Withheld, before: Withheld) -> Withheld:
    return {slot: n - before.get(slot, 0) for slot, n in after.items() if n != before.get(slot, 0)}


class Pair:
    """The reference engine with its tables, and a native engine built from the same inputs."""

    def __init__(self, policy: Policy, pseudonymizer: Pseudonymizer, **build: Any) -> None:
        self.python = python_engine(policy, pseudonymizer, **build)
        self.native = NativeBatchEngine.build(policy, pseudonymizer, **build)
        normalizer = self.python.decoder.msisdn
        self.consent = ConsentTable(normalizer)
        self.warrants = WarrantIndex(normalizer)

    def feed(self, consent: Sequence[Message] = (), warrants: Sequence[Message] = ()) -> None:
        """Apply the messages to both engines' tables; both must answer alike."""
        for key, value in consent:
            assert self.native.consent.apply(key, value) == self.consent.apply(key, value)
        for key, value in warrants:
            assert self.native.warrants.apply(key, value) == self.warrants.apply(key, value)
        assert len(self.native.consent) == len(self.consent)
        assert len(self.native.warrants) == len(self.warrants)
        assert self.native.consent.rejected == self.consent.rejected
        assert self.native.warrants.rejected == self.warrants.rejected
        assert self.native.consent.unknown_fields == self.consent.unknown_fields
        assert self.native.warrants.unknown_fields == self.warrants.unknown_fields

    def reference(self, values: Sequence[bytes | None]) -> BatchResult:
        """What the Python engine gives for the batch, record by record."""
        outputs: list[Output] = []
        rejections: list[tuple[int, Rejection]] = []
        for index, raw in enumerate(values):
            result = self.python.process(raw, self.consent.get, self.warrants)
            if isinstance(result, Rejection):
                rejections.append((index, result))
            else:
                outputs.extend(result)
        return BatchResult(outputs, rejections, self.python.take_party_numbers())

    def check(self, values: Sequence[bytes | None]) -> BatchResult:
        """Both engines on one batch: equal outputs and rejections, or the test fails."""
        python_before, native_before = dict(self.python.withheld), self.native.withheld
        expected = self.reference(values)
        got = self.native.process_batch(values)
        # The withheld outputs (the metric) are counted alike: the same increments.
        assert _increments(self.python.withheld, python_before) == _increments(
            self.native.withheld, native_before
        )
        assert got.rejections == expected.rejections
        assert dict(got.parties) == dict(expected.parties)
        assert len(got.outputs) == len(expected.outputs)
        for mine, theirs in zip(got.outputs, expected.outputs, strict=True):
            assert type(mine) is Output
            assert mine == theirs, (mine, theirs)
            assert type(mine.key) is type(theirs.key)
        return got


@pytest.fixture(scope="module")
def default_policy() -> Policy:
    """The packaged default policy (one parse for the module)."""
    return Policy.load()


# --- strategies: consent and warrant messages --------------------------------------------------

_FLAGS = st.sampled_from([True, True, False, "true", 1, None])
#: Fields the consent-state schema does not define: plain names, and names only counted
#: as "(other)" (an identifier, a space, too long).
_EXTRA_FIELDS = st.sampled_from(
    ["objection", "portalUser", "changedBy", "46701234567", "a b", "x" * 65, "é", "(other)"]
)
_PURPOSE_NAMES = st.sampled_from([*PURPOSES, "billing", "newsletter"])
_BROKEN_CONSENT: list[dict[str, object]] = [
    {"objections": ["network_planning"]},
    {"objections": {"network_planning": "yes"}},
    {"objections": {"fraud_prevention": True, "network_planning": 1}},
    {"objections": True},
    {"version": -1},
    {"version": "3"},
    {"version": 1.5},
    {"version": True},
    {"version": None},
    {"updatedAt": "2026-11-21 05:00"},
    {"updatedAt": None},
    {"purposes": ["marketing"]},
    {"purposes": None},
    {"msisdn": "46700000001"},
    {"msisdn": None},
    {"msisdn": 46701234567},
]


@st.composite
def consent_messages(draw: st.DrawFn) -> list[Message]:
    """States for the pool numbers in any key form, replaced, tombstoned or made unreadable."""
    messages: list[Message] = []
    for number in NUMBER_POOL:
        for _ in range(draw(st.integers(0, 3))):
            key = render_number(number, draw(st.sampled_from(NUMBER_FORMS))).encode()
            body_number = render_number(number, draw(st.sampled_from(NUMBER_FORMS)))
            choice = draw(
                st.sampled_from(["state", "state", "state", "tombstone", "broken", "junk"])
            )
            purposes = draw(st.dictionaries(_PURPOSE_NAMES, _FLAGS, max_size=6))
            version = draw(st.integers(0, 2**64 - 1) | st.integers(0, 20))
            objections = draw(st.none() | st.dictionaries(_PURPOSE_NAMES, st.booleans()))
            extra = draw(st.dictionaries(_EXTRA_FIELDS, json_values, max_size=2))
            if choice == "state":
                changes = {**extra} if objections is None else {**extra, "objections": objections}
                messages.append((key, consent_value(body_number, purposes, version, changes)))
            elif choice == "tombstone":
                messages.append((key, None))
            elif choice == "broken":
                changes = draw(st.sampled_from(_BROKEN_CONSENT))
                messages.append((key, consent_value(body_number, purposes, version, changes)))
            else:
                junk = draw(st.sampled_from([b"", b"{", b"[]", b"\xff", b"null", b'"x"']))
                messages.append((key, junk))
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from([None, b"", b"abc", b"\xff\xfe", b"+46 70"]))
        messages.append((key, consent_value(SERVED, {"marketing": True})))
    return messages


_WINDOWS = [
    ("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ("2026-01-01T00:00:00+01:00", "2026-07-01T00:00:00Z"),
    ("2026-07-01T00:00:00Z", "2026-12-31T23:59:59.999999-01:00"),
    ("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"),
    ("2026-11-21T05:00:00Z", "2026-11-21T05:00:00Z"),  # empty: refused
    ("2026-12-01T00:00:00Z", "2026-01-01T00:00:00Z"),  # reversed: refused
    ("2026-01-01", "2027-01-01T00:00:00Z"),  # not RFC 3339: refused
]


@st.composite
def targets(draw: st.DrawFn) -> tuple[str, str]:
    """A warrant target in any accepted form, sometimes an invalid one."""
    kind = draw(st.sampled_from(["msisdn", "msisdn", "imsi", "imei", "bad"]))
    if kind == "msisdn":
        number = draw(st.sampled_from(NUMBER_POOL))
        return kind, render_number(number, draw(st.sampled_from(NUMBER_FORMS)))
    if kind == "imsi":
        return kind, draw(st.sampled_from(IMSI_POOL))
    if kind == "imei":
        return kind, render_imei(
            draw(st.sampled_from(IMEI_POOL)), draw(st.sampled_from((14, 15, 16)))
        )
    return draw(st.sampled_from([("msisdn", "12ab"), ("imsi", "123"), ("fax", "46701234567")]))


@st.composite
def warrant_messages(draw: st.DrawFn) -> list[Message]:
    """Warrants put, replaced, revoked and refused, on the pool's identities."""
    messages: list[Message] = []
    for liid in ("LI-1", "LI-2", "LI-3\u00e9"):
        key = liid.encode()
        for _ in range(draw(st.integers(0, 3))):
            choice = draw(st.sampled_from(["put", "put", "put", "revoke", "broken"]))
            if choice == "revoke":
                messages.append((key, None))
                continue
            start, end = draw(st.sampled_from(_WINDOWS))
            found = draw(st.lists(targets(), min_size=1, max_size=3))
            if choice == "put":
                messages.append((key, warrant_value(liid, found, start, end)))
            else:
                broken = draw(
                    st.sampled_from(
                        [
                            b"{",
                            b"[]",
                            json.dumps({"liid": "other", "targets": []}).encode(),
                            json.dumps({"liid": liid, "targets": []}).encode(),
                            json.dumps({"liid": liid, "targets": ["46701234567"]}).encode(),
                        ]
                    )
                )
                messages.append((key, broken))
    if draw(st.booleans()):
        messages.append((None, warrant_value("LI-9", [("msisdn", SERVED)])))
        messages.append((b"", None))
        messages.append((b"\xffLI", b"{"))
    return messages


# --- strategies: malformed records ---------------------------------------------------------


def _dumps(record: object, ascii_only: bool, spaced: bool) -> bytes:
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(record, ensure_ascii=ascii_only, separators=separators).encode()


@st.composite
def encoded_records(draw: st.DrawFn) -> bytes:
    """A valid record as some producer might write it (escapes, spacing, duplicate keys)."""
    record = draw(records())
    raw = _dumps(record, draw(st.booleans()), draw(st.booleans()))
    if draw(st.integers(0, 4)) == 0:
        # A repeated key keeps its first position and takes its last value.
        name = draw(st.sampled_from(sorted(record)))
        earlier = json.dumps(draw(field_values)).encode()
        raw = b'{"' + name.encode() + b'":' + earlier + b"," + raw[1:]
    return raw


@st.composite
def malformed_records(draw: st.DrawFn) -> bytes:
    """A valid record broken in one of many ways (or, by chance, still valid)."""
    record = draw(records())
    how = draw(st.sampled_from(["set", "set", "set", "delete", "truncate", "flip", "wrap", "nest"]))
    if how == "set":
        name = draw(st.sampled_from(sorted({*FIELD_NAMES, *OPTIONAL_FIELDS, "recordId"})))
        record[name] = draw(field_values | json_values)
    elif how == "delete":
        del record[draw(st.sampled_from(sorted(record)))]
    elif how == "wrap":
        return json.dumps(draw(st.sampled_from([[record], "x", 1, None]))).encode()
    elif how == "nest":
        depth = draw(st.integers(1020, 1030))
        record["vendorExtension"] = "PLACEHOLDER"
        text = json.dumps(record).replace('"PLACEHOLDER"', "[" * depth + "]" * depth)
        return text.encode()
    raw = encode(record)
    if how == "truncate":
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if how == "flip":
        at = draw(st.integers(0, len(raw) - 1))
        return raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    return raw


texts = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from('\x00\x1f"\\/\u2028'),
    max_size=12,
)


@st.composite
def odd_strings(draw: st.DrawFn) -> bytes:
    """Records whose free-text fields hold control characters, quotes, escapes, any script."""
    record = draw(records(nulls=False))
    for name in ("recordId", "causeForTerm", "basicService", "recordingEntity", "callReference"):
        if draw(st.booleans()):
            record[name] = draw(texts.filter(bool)) if name == "recordId" else draw(texts)
    return _dumps(record, draw(st.booleans()), False)


# --- the properties ----------------------------------------------------------------------------


@PROPERTY
@given(st.lists(records(), min_size=1, max_size=6), consent_messages(), warrant_messages())
def test_valid_records_give_identical_outputs(
    default_policy: Policy,
    pseudonymizer: Pseudonymizer,
    batch: list[dict[str, Any]],
    consent: list[Message],
    warrants: list[Message],
) -> None:
    """Generated records, consent and warrants: the same outputs, byte for byte, in order."""
    pair = Pair(default_policy, pseudonymizer)
    pair.feed(consent, warrants)
    got = pair.check([encode(record) for record in batch])
    assert not got.rejections


@PROPERTY
@given(st.lists(encoded_records() | odd_strings(), min_size=1, max_size=6), consent_messages())
def test_any_encoding_of_a_record_gives_identical_outputs(
    default_policy: Policy, pseudonymizer: Pseudonymizer, batch: list[bytes], consent: list[Message]
) -> None:
    """Escapes, spacing, repeated keys, control characters and any script in text fields."""
    pair = Pair(default_policy, pseudonymizer)
    pair.feed(
        consent, [(b"LI-1", warrant_value("LI-1", [("msisdn", OTHER), ("imsi", SERVED_IMSI)]))]
    )
    pair.check(batch)


@PROPERTY
@given(
    st.lists(
        malformed_records() | st.binary(max_size=300) | record_like.map(encode),
        min_size=1,
        max_size=6,
    )
)
def test_malformed_input_gives_the_same_rejections(
    default_policy: Policy, pseudonymizer: Pseudonymizer, batch: list[bytes]
) -> None:
    """Broken records and random bytes: the same rejection code, message and field, by index."""
    pair = Pair(default_policy, pseudonymizer, max_record_bytes=4096)
    pair.feed(
        [(SERVED.encode(), consent_value(SERVED, {"marketing": True}))],
        [
            (
                b"LI-1",
                warrant_value(
                    "LI-1", [("msisdn", SERVED)], "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"
                ),
            )
        ],
    )
    pair.check([*batch, None, b" " * 4097])


@PROPERTY
@given(consent_messages(), warrant_messages())
def test_the_tables_answer_every_message_alike(
    default_policy: Policy,
    pseudonymizer: Pseudonymizer,
    consent: list[Message],
    warrants: list[Message],
) -> None:
    """Consent and warrant messages: the same problems, counts and sizes; then the same lookups."""
    pair = Pair(default_policy, pseudonymizer)
    pair.feed(consent, warrants)
    for number in NUMBER_POOL:
        state = pair.consent.get(number)
        native = pair.native.consent.get(number)
        if state is None:
            assert native is None
        else:
            assert native is not None
            asked = {route.purpose for route in pair.python.policy.routes.values()}
            assert native[3] == state.readable
            if state.readable:
                assert native[0] == state.version
                assert set(native[1]) == set(state.granted) & asked
                assert set(native[2]) == set(state.objections) & asked
            else:  # an unreadable state: no consent, an objection to everything
                routed = {r.purpose for r in pair.python.policy.routes.values() if r.fields}
                assert native[1] == []
                assert set(native[2]) == routed
    pair.check([encode(factory()) for factory in (mo_call, mt_call, mo_sms, mt_sms)])


# --- generated policies ---------------------------------------------------------------------

_IDENTIFIERS = (Kind.MSISDN, Kind.IMSI, Kind.IMEI)
_EXTRA_ACTIONS: dict[Kind, list[str]] = {
    Kind.MSISDN: ["pseudonymize", "mask:1", "mask:4", "mask:8"],
    Kind.IMSI: ["pseudonymize"],
    Kind.IMEI: ["pseudonymize", "generalize:tac"],
    Kind.TIME: ["generalize:hour"],
    Kind.LOCATION: ["generalize:location_area", "generalize:mcc_mnc"],
    Kind.LOCATION_CHANGES: ["generalize:location_area", "generalize:mcc_mnc"],
}


def _actions(kind: Kind) -> list[str]:
    return ["keep", "drop", *_EXTRA_ACTIONS.get(kind, [])]


@st.composite
def field_rules(draw: st.DrawFn, route_kind: str) -> str:
    """The TOML of one route's [fields] table: valid rules for random catalog fields."""
    # recordId is left out: the policy refuses a rule for it (both engines copy it into every
    # output; test_core_policy.py).
    names = draw(
        st.lists(st.sampled_from([n for n in FIELDS if n != "recordId"]), min_size=1, unique=True)
    )
    lines = []
    for name in names:
        kind, owner = FIELDS[name]
        choices = _actions(kind)
        clear = ["keep", *(a for a in choices if a.startswith("mask"))]
        personal = kind in _IDENTIFIERS and owner is not Owner.NONE
        consented = draw(st.sampled_from(choices))
        otherwise_choices = [
            a for a in choices if not (route_kind == "analytics" and personal and a in clear)
        ]
        if owner is Owner.NONE or draw(st.booleans()):
            if route_kind == "analytics" and personal and consented in clear:
                consented = draw(st.sampled_from(otherwise_choices))
            lines.append(f'{name} = "{consented}"')
            continue
        otherwise = draw(st.sampled_from(otherwise_choices))
        if consented.startswith("mask") and otherwise.startswith("mask"):
            otherwise = consented
        lines.append(f'{name} = {{ consented = "{consented}", otherwise = "{otherwise}" }}')
    return "\n".join(lines)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """A valid policy: one lawful-intercept route and 1-4 billing or analytics routes."""
    parts = [
        '[policy]\nname = "generated"\ncontroller = "c"\ndpo_contact = "d"\ndata_subjects = "s"\n',
    ]
    bases = {}
    for purpose in PURPOSES:
        basis = bases[purpose] = draw(st.sampled_from(["consent", "legitimate_interest"]))
        parts.append(
            f'[purposes.{purpose}]\ntitle = "t"\ndescription = "d"\nlegal_basis = "{basis}"\n'
        )
    common = 'legal_reference = "r"\nrecipients = "r"\nretention_days = 1\ncategories = "c"\n'
    parts.append(
        '[routes.intercept]\nkind = "lawful_intercept"\ntopic = "t.li"\n'
        f'legal_basis = "legal_obligation"\n{common}'
    )
    for index in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["analytics", "analytics", "billing"]))
        purpose = (
            draw(st.sampled_from(PURPOSES))
            if kind == "analytics"
            else draw(st.sampled_from(["billing", "marketing"]))
        )
        select = draw(st.sampled_from(["all", "billable"]))
        # An analytics route rests on its purpose's basis; one on consent must require it.
        basis = "contract" if kind == "billing" else bases[purpose]
        requires = kind == "analytics" and (basis == "consent" or draw(st.booleans()))
        objection = ""
        if kind == "analytics" and basis == "legitimate_interest":
            exclude = 'on_objection = "exclude"\n'
            override = 'on_objection = "override"\noverride_ground = "g"\n'
            objection = draw(st.sampled_from([exclude, override]))
        parts.append(
            f'[routes.r{index}]\nkind = "{kind}"\npurpose = "{purpose}"\ntopic = "t.r{index}"\n'
            f'legal_basis = "{basis}"\n{common}select = "{select}"\n'
            f"requires_consent = {'true' if requires else 'false'}\n{objection}"
            f"[routes.r{index}.fields]\n{draw(field_rules(kind))}\n"
        )
    parts.append('[dead_letter]\ntopic = "t.dl"\nretention_days = 1\nrecipients = "r"\n')
    parts.append(draw(party_tables()))
    return Policy.parse("\n".join(parts).encode(), "generated policy")


@st.composite
def party_tables(draw: st.DrawFn) -> str:
    """A [party_numbers] table with random actions for some classes, or none at all."""
    if draw(st.booleans()) and draw(st.booleans()):
        return ""
    lines = ["[party_numbers]"]
    for party in POLICY_CLASSES:
        if draw(st.integers(0, 4)) == 0:
            continue  # absent: dropped
        choices = ["drop", "pseudonymize"] + ([] if party in NEVER_KEPT else ["keep"])
        lines.append(f'{party.value} = "{draw(st.sampled_from(choices))}"')
    return "\n".join(lines) + "\n"


@PROPERTY
@given(
    policies(),
    st.lists(records() | encoded_records(), min_size=1, max_size=4),
    consent_messages(),
    warrant_messages(),
    st.sampled_from(["", "test."]),
)
def test_generated_policies_give_identical_outputs(
    pseudonymizer: Pseudonymizer,
    policy: Policy,
    batch: list[dict[str, Any] | bytes],
    consent: list[Message],
    warrants: list[Message],
    prefix: str,
) -> None:
    """Any valid policy: every route, field action and topic prefix, byte for byte."""
    pair = Pair(
        policy, pseudonymizer, topic_prefix=prefix, home_networks=frozenset({"24001", "23802"})
    )
    pair.feed(consent, warrants)
    pair.check([raw if isinstance(raw, bytes) else encode(raw) for raw in batch])


@PROPERTY
@given(
    st.sampled_from([("46", "0"), ("47", ""), ("1", "1"), ("358", "0")]),
    st.lists(records(), min_size=1, max_size=4),
    consent_messages(),
)
def test_other_numbering_plans_give_identical_outputs(
    default_policy: Policy,
    pseudonymizer: Pseudonymizer,
    numbering: tuple[str, str],
    batch: list[dict[str, Any]],
    consent: list[Message],
) -> None:
    """Country code and trunk prefix are settings; national forms follow them in both."""
    country_code, trunk_prefix = numbering
    pair = Pair(default_policy, pseudonymizer, country_code=country_code, trunk_prefix=trunk_prefix)
    pair.feed(consent)
    pair.check([encode(record) for record in batch])


_PARTY_SAMPLES = [value for values in PARTY_VALUES.values() for value in values]
_PARTY_RECORDS = {
    "callingNumber": mo_call,
    "calledNumber": mo_call,
    "translatedNumber": mo_call,
    "connectedNumber": mt_call,
    "roamingNumber": mt_call,
    "destinationNumber": mo_sms,
    "originationNumber": mt_sms,
}


@PROPERTY
@given(
    policies(),
    st.lists(
        st.tuples(st.sampled_from(sorted(_PARTY_RECORDS)), st.sampled_from(_PARTY_SAMPLES)),
        min_size=1,
        max_size=6,
    ),
)
def test_party_numbers_of_every_class_give_identical_outputs(
    pseudonymizer: Pseudonymizer, policy: Policy, parties: list[tuple[str, str]]
) -> None:
    """Service codes, short numbers, sender names and junk in every party field, under any
    policy and [party_numbers] table: the same outputs and the same counts by class."""
    pair = Pair(policy, pseudonymizer, home_networks=frozenset({"24001", "23802"}))
    pair.check([encode(_PARTY_RECORDS[field](**{field: value})) for field, value in parties])


# --- plain examples ----------------------------------------------------------------------------


def test_every_record_type_gives_identical_outputs(
    default_policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    """The four fixture records with consent and a warrant: identical, and not trivially empty."""
    pair = Pair(default_policy, pseudonymizer)
    pair.feed(
        [
            (
                SERVED.encode(),
                consent_value(SERVED, {"marketing": True, "service_improvement": True}),
            )
        ],
        [(b"LI-1", warrant_value("LI-1", [("msisdn", OTHER)]))],
    )
    got = pair.check([encode(factory()) for factory in (mo_call, mt_call, mo_sms, mt_sms)])
    topics = {output.topic for output in got.outputs}
    assert "traffic.lawful-intercept" in topics
    assert "traffic.billing" in topics
    assert "traffic.analytics.marketing" in topics


def test_the_plan_holds_no_key_material(
    default_policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    """Keys travel apart from the plan, and no repr shows them."""
    plan, keys = build_plan(default_policy, pseudonymizer)
    assert keys
    text = repr(plan)
    for key in keys:
        assert key.hex() not in text
        assert repr(key)[2:-1] not in text
    engine = NativeBatchEngine.build(default_policy, pseudonymizer)
    assert "withheld" in repr(engine._engine)
    for key in keys:
        assert key.hex() not in repr(engine._engine)


def test_values_must_be_bytes_or_none(default_policy: Policy, pseudonymizer: Pseudonymizer) -> None:
    """A str is a caller's bug, refused with a TypeError rather than guessed at."""
    engine = NativeBatchEngine.build(default_policy, pseudonymizer)
    with pytest.raises(TypeError, match="bytes or None"):
        engine.process_batch(["{}"])  # type: ignore[list-item]


def test_an_empty_batch_gives_nothing(default_policy: Policy, pseudonymizer: Pseudonymizer) -> None:
    """No input, no output."""
    assert NativeBatchEngine.build(default_policy, pseudonymizer).process_batch([]) == ([], [], {})


def test_bad_settings_are_refused_as_the_python_engine_refuses_them(
    default_policy: Policy, pseudonymizer: Pseudonymizer
) -> None:
    """The same numbering and size checks as Engine.build."""
    with pytest.raises(ValueError, match="country_code"):
        NativeBatchEngine.build(default_policy, pseudonymizer, country_code="x")
    with pytest.raises(ValueError, match="max_bytes"):
        NativeBatchEngine.build(default_policy, pseudonymizer, max_record_bytes=10)
