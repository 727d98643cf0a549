"""`cdrveil subject`: one person's pseudonyms, and exactly their outputs picked out of a topic."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.cli import main
from pipeline.core.consent import ConsentTable
from pipeline.core.engine import Engine, Output
from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from pipeline.errors import ConfigError
from pipeline.reports.subject import (
    WITHHELD,
    Found,
    RouteSummary,
    Subject,
    SubjectSelector,
    pseudonyms_table,
    subject_pseudonyms,
    summary_table,
)
from pipeline.tools.subject_access import open_private, routes_to_read
from tests.support.core import (
    OTHER,
    OTHER_NATIONAL,
    SERVED,
    SERVED_FORMS,
    SERVED_IMEI14,
    SERVED_IMEI15,
    SERVED_IMSI,
    add_warrant,
    encode,
    grant,
    mo_call,
    mt_sms,
    write_keyring,
)
from tests.support.schemas import load_schema

OTHER_IMSI = "240019999999999"
OTHER_IMEI = "35332510123456"


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    """Three epochs: k1 shredded, k2 retired, k3 active."""
    path = tmp_path_factory.mktemp("subject") / "keyring.json"
    epochs: dict[str, bytes | None] = {"k1": None, "k2": secrets.token_bytes(32)}
    epochs["k3"] = secrets.token_bytes(32)
    return Keyring.load(write_keyring(path, epochs, active="k3"))


def engine_of(ring: Keyring, key_id: str) -> Engine:
    """The worker's engine with ``key_id`` as the active epoch."""
    epoch = ring.epochs[key_id]
    return Engine.build(Policy.load(), Pseudonymizer(Keyring(ring.path, key_id, {key_id: epoch})))


def subject() -> Subject:
    """The served subscriber of the test records, with IMSI and IMEI."""
    return Subject.of("+46 70-123 45 67", SERVED_IMSI, SERVED_IMEI15, MsisdnNormalizer())


def selector(policy: Policy, ring: Keyring, who: Subject | None = None) -> SubjectSelector:
    """A selector of ``who`` (default: the served subscriber of the test records)."""
    who = who or subject()
    return SubjectSelector(who, subject_pseudonyms(policy, ring, who), MsisdnNormalizer())


def outputs_of(engine: Engine, record: dict[str, Any], liid: str | None = None) -> list[Output]:
    """Every output of one record; the served subscriber and the other party consent to all,
    so marketing and service improvement publish too; with ``liid``, a warrant on the other."""
    normalizer = MsisdnNormalizer()
    table, index = ConsentTable(normalizer), WarrantIndex(normalizer)
    for number in (SERVED, OTHER):
        grant(table, number, "marketing", "service_improvement")
    if liid is not None:
        add_warrant(index, liid, [("msisdn", OTHER)])
    result = engine.process(encode(record), table.get, index)
    assert isinstance(result, list)
    return result


def pick(select: SubjectSelector, policy: Policy, outputs: list[Output]) -> list[Found]:
    """What the selector takes of these outputs."""
    routes = {route.topic: route for route in policy.routes.values()}
    found = [select.select(routes[o.topic], o.key, o.value, o.headers, 1) for o in outputs]
    return [f for f in found if f is not None]


# -- the subject and their pseudonyms ---------------------------------------------------------


@pytest.mark.parametrize("form", SERVED_FORMS)
def test_every_input_form_of_the_number_is_one_subject(form: str) -> None:
    """Normalized as the engine normalizes: the form the DPO was given does not matter."""
    assert Subject.of(form, None, None, MsisdnNormalizer()).msisdn == SERVED


def test_the_imei_is_compared_on_its_14_digits() -> None:
    """15 digits with a Luhn digit, or an IMEISV: the 14 that identify the device."""
    assert subject().imei == SERVED_IMEI14


@pytest.mark.parametrize(
    ("flag", "arguments"),
    [
        ("--msisdn", ("12ab", None, None)),
        ("--imsi", (SERVED, "24001", None)),
        ("--imei", (SERVED, None, "490154203237519")),  # wrong Luhn digit
    ],
)
def test_an_invalid_identifier_names_the_flag_not_the_value(
    flag: str, arguments: tuple[str, str | None, str | None]
) -> None:
    """The value is someone's identifier: it never goes into a message."""
    with pytest.raises(ConfigError, match=flag) as refused:
        Subject.of(*arguments, MsisdnNormalizer())
    for value in arguments:
        if value is not None:
            assert value not in str(refused.value)


def test_pseudonyms_per_purpose_epoch_and_type_skip_the_shredded_epoch(
    policy: Policy, ring: Keyring
) -> None:
    """4 purposes x 2 epochs with a secret x 3 identifiers; k1 named as shredded."""
    found = subject_pseudonyms(policy, ring, subject())
    assert len(found.rows) == 4 * 2 * 3
    assert {row.key_id for row in found.rows} == {"k2", "k3"}
    assert {row.status for row in found.rows} == {"retired", "active"}
    assert found.shredded == ("k1",)
    assert len({row.pseudonym for row in found.rows}) == len(found.rows)


def test_the_pseudonyms_are_the_keys_the_engine_gives_under_each_epoch(
    policy: Policy, ring: Keyring
) -> None:
    """The analytics key of the subject's record, under k2 and under k3, is in the list."""
    found = subject_pseudonyms(policy, ring, subject())
    listed = {(r.purpose, r.key_id, r.id_type): r.pseudonym for r in found.rows}
    for key_id in ("k2", "k3"):
        for output in outputs_of(engine_of(ring, key_id), mo_call()):
            if output.topic.startswith("traffic.analytics."):
                purpose = output.topic.removeprefix("traffic.analytics.")
                assert output.key == listed[(purpose, key_id, "msisdn")].encode()


def test_the_pseudonyms_table_and_json_hold_only_this_persons_values(
    policy: Policy, ring: Keyring
) -> None:
    """Table and document: the given identifiers, the pseudonyms, the shredded epoch."""
    found = subject_pseudonyms(policy, ring, subject())
    table = pseudonyms_table(found, subject())
    assert "shredded key epochs" in table and "k1" in table
    assert all(row.pseudonym in table for row in found.rows)
    document = found.document(subject())
    assert document["subject"] == {"msisdn": SERVED, "imsi": SERVED_IMSI, "imei": SERVED_IMEI14}
    assert document["shreddedKeyIds"] == ["k1"]


# -- selecting the subject's outputs ----------------------------------------------------------


def test_every_output_of_the_subjects_own_record_is_found(policy: Policy, ring: Keyring) -> None:
    """Served subscriber: billing by MSISDN, each analytics route by its pseudonym key."""
    outputs = outputs_of(engine_of(ring, "k3"), mo_call())
    found = pick(selector(policy, ring), policy, outputs)
    assert len(found) == len(outputs) == 5  # billing and four analytics routes
    assert all(f.as_served for f in found)
    routes = {f.route: f for f in found}
    assert routes["billing"].document["matchedBy"][0] == "key"
    assert "servedMSISDN" in routes["billing"].in_clear
    assert "servedMSISDN" in routes["fraud_prevention"].pseudonymized
    assert set(routes["marketing"].in_clear) >= {"servedMSISDN", "servedIMSI"}


def test_outputs_made_under_a_retired_epoch_are_found_too(policy: Policy, ring: Keyring) -> None:
    """Outputs keep the pseudonyms of the epoch they were made under."""
    outputs = outputs_of(engine_of(ring, "k2"), mo_call())
    assert len(pick(selector(policy, ring), policy, outputs)) == len(outputs)


def test_another_persons_record_is_not_found(policy: Policy, ring: Keyring) -> None:
    """A record in which the subject appears nowhere gives nothing, on any route."""
    record = mo_call(
        servedMSISDN="0739876543",
        callingNumber="0739876543",
        calledNumber="0731111111",
        servedIMSI=OTHER_IMSI,
        servedIMEI=OTHER_IMEI,
    )
    assert pick(selector(policy, ring), policy, outputs_of(engine_of(ring, "k3"), record)) == []


def test_the_record_id_does_not_select(policy: Policy, ring: Keyring) -> None:
    """Same record id as the subject's record, another person's record: not theirs."""
    mine = mo_call()
    other = mt_sms(
        recordId=mine["recordId"],
        servedMSISDN=OTHER_NATIONAL,
        servedIMSI=OTHER_IMSI,
        originationNumber="0731111111",
    )
    other.pop("servedIMEI", None)
    assert pick(selector(policy, ring), policy, outputs_of(engine_of(ring, "k3"), other)) == []


def test_the_subject_as_the_other_party_is_found_with_the_served_persons_data_withheld(
    policy: Policy, ring: Keyring
) -> None:
    """Called by someone else: found by the pseudonym (or clear number) of calledNumber; the
    caller's identities, handset and location are withheld, and the key is not shown."""
    record = mo_call(
        servedMSISDN=OTHER_NATIONAL,
        callingNumber=OTHER_NATIONAL,
        calledNumber="0701234567",
        servedIMSI=OTHER_IMSI,
        servedIMEI=OTHER_IMEI,
    )
    outputs = outputs_of(engine_of(ring, "k3"), record)
    found = pick(selector(policy, ring), policy, outputs)
    # Billing masks the called number, network planning has no numbers: neither can say.
    assert {f.route for f in found} == {"marketing", "service_improvement", "fraud_prevention"}
    for f in found:
        assert not f.as_served
        assert f.document["matchedBy"] == ["calledNumber"]
        assert f.document["key"] is None
        value = f.document["value"]
        for name in ("servedMSISDN", "servedIMSI", "servedIMEI", "callingNumber", "location"):
            if name in value:
                assert value[name] == WITHHELD, (f.route, name)
        assert "cdrveil.consent-version" not in f.document["headers"]
        assert "seizureTime" in value  # the event's time is this person's too
        line = {"topic": "traffic.analytics." + f.route, "partition": 0, "offset": 0}
        load_schema("subject-access").validate(line | f.document)


def test_no_copy_holds_another_persons_identifier_in_any_form(
    policy: Policy, ring: Keyring
) -> None:
    """Every copy handed over, of both directions: no other party number, IMSI or pseudonym."""
    engine = engine_of(ring, "k3")
    outputs = outputs_of(engine, mo_call()) + outputs_of(
        engine,
        mo_call(
            servedMSISDN=OTHER_NATIONAL,
            callingNumber=OTHER_NATIONAL,
            calledNumber="0701234567",
            servedIMSI=OTHER_IMSI,
            servedIMEI=OTHER_IMEI,
        ),
    )
    found = pick(selector(policy, ring), policy, outputs)
    assert found
    blob = b"\n".join(orjson.dumps(f.document) for f in found)
    other = Subject.of(OTHER, OTHER_IMSI, None, MsisdnNormalizer())
    needles = [OTHER, OTHER[2:], OTHER_IMSI, OTHER_IMEI[:14], OTHER_IMEI[:8]]
    needles += [row.pseudonym for row in subject_pseudonyms(policy, ring, other).rows]
    # Masked: the billing copy of the subject's call to the other party.
    needles += [OTHER[:-4]]
    for needle in needles:
        assert needle.encode() not in blob, needle


def test_a_lawful_intercept_copy_is_matched_on_the_raw_record_in_any_form(
    policy: Policy, ring: Keyring
) -> None:
    """LI carries the record as received: the subject's numbers are normalized to match."""
    record = mo_call(servedMSISDN="+46 70-123 45 67", callingNumber="0046701234567")
    outputs = outputs_of(engine_of(ring, "k3"), record, liid="LI-1")
    li = [o for o in outputs if o.topic == "traffic.lawful-intercept"]
    assert len(li) == 1
    (found,) = pick(selector(policy, ring), policy, li)
    assert found.as_served
    assert found.in_clear == ("callingNumber", "servedIMEI", "servedIMSI", "servedMSISDN")
    assert found.document["value"]["record"]["calledNumber"] == WITHHELD
    assert found.document["value"]["liid"] == "LI-1"


def test_lawful_intercept_is_read_only_when_asked_for(policy: Policy) -> None:
    """Analytics and billing by default; lawful intercept is an explicit choice."""
    default = {route.kind for route in routes_to_read(policy, False)}
    assert default == {"billing", "analytics"}
    assert "lawful_intercept" in {route.kind for route in routes_to_read(policy, True)}


def test_unreadable_values_and_tombstones_are_not_found(policy: Policy, ring: Keyring) -> None:
    """Garbage on a topic is skipped, never a crash."""
    select = selector(policy, ring)
    for value in (None, b"not json", b"[1]"):
        assert select.select(policy.routes["billing"], SERVED.encode(), value, [], 0) is None
    li = policy.routes["lawful_intercept"]
    assert select.select(li, b"LI-1", b'{"liid": "LI-1", "record": 3}', [], 0) is None


# -- the summary and the file -----------------------------------------------------------------


def test_the_summary_counts_times_and_fields_and_shows_no_identifier(
    policy: Policy, ring: Keyring
) -> None:
    """First and last publish time, counts by role, field names; no digits of anyone."""
    route = policy.routes["fraud_prevention"]
    summary = RouteSummary(route.name, route.topic, route.kind)
    select = selector(policy, ring)
    for when, record in ((2_000, mo_call()), (1_000, mo_call(recordId="second"))):
        for o in outputs_of(engine_of(ring, "k3"), record):
            if o.topic == route.topic:
                found = select.select(route, o.key, o.value, o.headers, when)
                assert found is not None
                summary.add(found)
    document = summary.document()
    assert (document["found"], document["asServedSubscriber"]) == (2, 2)
    assert (document["first"], document["last"]) == (
        "1970-01-01T00:00:01.000Z",
        "1970-01-01T00:00:02.000Z",
    )
    assert document["fieldsPseudonymized"]["servedMSISDN"] == 2
    text = summary_table([summary])
    for needle in (SERVED, SERVED[2:], SERVED_IMSI, SERVED_IMEI14):
        assert needle not in text


def test_the_output_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    """Mode 0600 (it is personal data); an existing file is refused, not replaced."""
    path = tmp_path / "access.jsonl"
    with open_private(path) as sink:
        sink.write("x\n")
    assert os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError, match="already exists"):
        open_private(path)
    assert path.read_text() == "x\n"


# -- the command ------------------------------------------------------------------------------


def test_subject_pseudonyms_json_from_the_command_line(
    ring: Keyring, policy: Policy, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cdrveil subject pseudonyms --json`: the document, in any input form of the number."""
    code = main(
        ["subject", "pseudonyms", "--msisdn", "0701234567", "--keyring", str(ring.path), "--json"]
    )
    assert code == 0
    document = orjson.loads(capsys.readouterr().out)
    expected = subject_pseudonyms(policy, ring, Subject(SERVED)).document(Subject(SERVED))
    assert document == expected


def test_subject_without_a_keyring_exits_2_saying_why(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the keyring can say which pseudonyms are this person's."""
    monkeypatch.delenv("CDRVEIL_KEYRING_PATH", raising=False)
    assert main(["subject", "pseudonyms", "--msisdn", "0701234567"]) == 2
    assert "no keyring given" in capsys.readouterr().err


def test_subject_help_teaches_both_actions(capsys: pytest.CaptureFixture[str]) -> None:
    """`cdrveil subject --help` says what each action is for, with examples."""
    with pytest.raises(SystemExit):
        main(["subject", "--help"])
    out = capsys.readouterr().out
    assert "pseudonyms" in out and "access" in out and "Art. 17" in out
    assert "cdrveil subject access --msisdn" in out


def test_subject_access_refuses_an_existing_file_before_reading_anything(
    ring: Keyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 at once (no broker needed), the file untouched."""
    existing = tmp_path / "earlier.jsonl"
    existing.write_text("someone's request\n")
    argv = ["subject", "access", "--msisdn", "0701234567", "--keyring", str(ring.path)]
    argv += ["--output", str(existing), "--bootstrap-servers", "127.0.0.1:1"]
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert existing.read_text() == "someone's request\n"


def test_subject_access_without_kafka_exits_3_and_leaves_no_file(
    ring: Keyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing reachable: the broker error, and no empty file that looks like an answer."""
    output = tmp_path / "access.jsonl"
    argv = ["subject", "access", "--msisdn", "0701234567", "--keyring", str(ring.path)]
    argv += ["--output", str(output), "--bootstrap-servers", "127.0.0.1:1", "--no-progress"]
    assert main(argv) == 3
    assert "cannot reach Kafka" in capsys.readouterr().err
    assert not output.exists()
