"""The synthetic traffic generator: deterministic, realistic in its shares, honest about defects."""

from __future__ import annotations

import collections
import hashlib
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.synth import (
    DEFAULT_START,
    MALFORMED_REASONS,
    Generated,
    Workload,
    consent_states,
    luhn_check_digit,
    population,
    records,
    warrants,
    write_jsonl,
)

N = 20_000
WORKLOAD = Workload(subscribers=10_000, seed=11, malformed_share=0.05)
CLEAN = Workload(subscribers=10_000, seed=11)

VOICE_TYPES = {"moCallRecord", "mtCallRecord"}
SMS_TYPES = {"moSMSRecord", "mtSMSRecord"}
# The number fields an invalid MSISDN dead-letters (another party's is classified instead).
MSISDN_FIELDS = ("servedMSISDN", "serviceCentre")
TIME_FIELDS = ("seizureTime", "answerTime", "releaseTime", "originationTime", "deliveryTime")
OTHER_PARTY = {
    "moCallRecord": "calledNumber",
    "mtCallRecord": "callingNumber",
    "moSMSRecord": "destinationNumber",
    "mtSMSRecord": "originationNumber",
}
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
FORM_PATTERNS = {
    "spaced": re.compile(r"\+46 7\d-\d{3} \d{2} \d{2}"),
    "double_zero": re.compile(r"00467\d{8}"),
    "digits": re.compile(r"467\d{8}"),
    "national": re.compile(r"07\d{8}"),
    "plus": re.compile(r"\+467\d{8}"),
}


# A reference reading of the spec, independent of pipeline.core, so the labels are checked
# against the contract rather than against whatever the decoder happens to do.
def normalize_msisdn(value: str) -> str | None:
    """E.164 digits of a number in any accepted input form (home 46, trunk 0), else None."""
    s = value.replace(" ", "").replace("-", "")
    if s.startswith("+"):
        digits = s[1:]
    elif s.startswith("00"):
        digits = s[2:]
    elif s.startswith("0"):
        digits = "46" + s[1:]
    else:
        digits = s
    ok = digits.isascii() and digits.isdigit() and 8 <= len(digits) <= 15
    return digits if ok else None


def luhn_ok(digits: str) -> bool:
    """True when the last digit is the Luhn check digit of the others."""
    return luhn_check_digit(digits[:-1]) == digits[-1]


def imei_ok(value: str) -> bool:
    """14 digits, 15 with a Luhn digit, or 16 (IMEISV)."""
    if not (value.isascii() and value.isdigit()):
        return False
    return len(value) in (14, 16) or (len(value) == 15 and luhn_ok(value))


def time_ok(value: object) -> bool:
    """An RFC 3339 time with an offset."""
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def defects(kind: str, value: bytes | None, max_bytes: int) -> set[str]:
    """Every rejection code the spec gives this message (empty for a valid record)."""
    if value is None:
        return {"null_value"}
    found = {"oversize"} if len(value) > max_bytes else set()
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return found | {"invalid_utf8"}
    try:
        rec = orjson.loads(value)
    except orjson.JSONDecodeError:
        return found | {"invalid_json"}
    if not isinstance(rec, dict):
        return found | {"not_an_object"}
    for field in ("recordId", "recordType"):
        if field not in rec:
            found.add("missing_field")
    if "servedMSISDN" not in rec and "servedIMSI" not in rec:
        found.add("missing_field")
    if "recordId" in rec and not isinstance(rec["recordId"], str):
        found.add("wrong_type")
    rtype = rec.get("recordType")
    if "recordType" in rec and rtype not in (VOICE_TYPES if kind == "voice" else SMS_TYPES):
        found.add("unknown_record_type")
    if kind == "voice":
        if "callDuration" not in rec:
            found.add("missing_field")
        elif type(rec["callDuration"]) is not int:
            found.add("wrong_type")
        elif rec["callDuration"] < 0:
            found.add("bad_value")
        if "seizureTime" not in rec and "answerTime" not in rec:
            found.add("missing_field")
    else:
        if rtype == "moSMSRecord" and "originationTime" not in rec:
            found.add("missing_field")
        if rtype == "mtSMSRecord" and "deliveryTime" not in rec:
            found.add("missing_field")
        if "messageReference" in rec and type(rec["messageReference"]) is not int:
            found.add("wrong_type")
    for field in MSISDN_FIELDS:
        if field in rec and normalize_msisdn(rec[field]) is None:
            found.add("bad_msisdn")
    imsi = rec.get("servedIMSI", "00000000000000")
    if not (imsi.isascii() and imsi.isdigit() and len(imsi) in (14, 15)):
        found.add("bad_imsi")
    if "servedIMEI" in rec and not imei_ok(rec["servedIMEI"]):
        found.add("bad_imei")
    for field in TIME_FIELDS:
        if field in rec and not time_ok(rec[field]):
            found.add("bad_timestamp")
    location = rec.get("location", {})
    if not isinstance(location, dict):
        found.add("wrong_type")
    elif not (
        re.fullmatch(r"\d{5,6}", location["mccMnc"])
        and 0 <= location["locationAreaCode"] <= 65_535
        and 0 <= location["cellId"] <= 65_535
    ):
        found.add("bad_value")
    return found


@pytest.fixture(scope="module")
def generated() -> list[Generated]:
    """20,000 messages with 5 % defects."""
    return list(records(WORKLOAD, N))


@pytest.fixture(scope="module")
def clean() -> list[tuple[str, dict[str, object]]]:
    """20,000 valid messages, decoded."""
    return [(g.kind, orjson.loads(g.value or b"")) for g in records(CLEAN, N)]


def digest(workload: Workload, count: int) -> str:
    """One hash over consent, warrants and records of a workload."""
    h = hashlib.sha256()
    for key, value in consent_states(workload):
        h.update(key + value)
    for w in warrants(workload, 3):
        h.update(w.key + w.value)
    for g in records(workload, count):
        h.update(repr(g).encode())
    return h.hexdigest()


def test_same_seed_gives_same_bytes_in_another_process() -> None:
    """Determinism holds across interpreters, whatever their hash seed."""
    small = Workload(subscribers=500, seed=3, malformed_share=0.1)
    code = (
        "from pipeline.synth import Workload\n"
        "from tests.unit.test_synth import digest\n"
        "print(digest(Workload(subscribers=500, seed=3, malformed_share=0.1), 2000))\n"
    )
    env = {"PYTHONHASHSEED": "12345", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        text=True,
    )
    assert out.stdout.strip() == digest(small, 2000)


def test_different_seeds_give_different_traffic() -> None:
    """Two seeds give different subscribers, consent and records."""
    a, b = Workload(subscribers=1000, seed=1), Workload(subscribers=1000, seed=2)
    assert population(a).subscribers[0] != population(b).subscribers[0]
    assert list(consent_states(a))[:10] != list(consent_states(b))[:10]
    values_a = [g.value for g in records(a, 200)]
    values_b = [g.value.replace(b'"2-', b'"1-') for g in records(b, 200) if g.value]
    assert not set(values_a) & set(values_b)
    assert digest(Workload(subscribers=1000, seed=1), 10) != digest(
        Workload(subscribers=1000, seed=2), 10
    )


def test_every_label_matches_the_only_defect_of_its_message(generated: list[Generated]) -> None:
    """Valid records have no defect; each malformed one has exactly its labelled defect."""
    for g in generated:
        expected = {g.expected_reason} if g.expected_reason else set()
        assert defects(g.kind, g.value, WORKLOAD.max_record_bytes) == expected, g.record_id


def test_every_reason_code_is_planted_at_roughly_the_configured_share(
    generated: list[Generated],
) -> None:
    """5 % of messages are malformed, spread over all reason codes."""
    reasons = collections.Counter(g.expected_reason for g in generated if g.expected_reason)
    assert set(reasons) == set(MALFORMED_REASONS)
    assert 0.04 < sum(reasons.values()) / N < 0.06


def test_invalid_utf8_values_do_not_decode_and_null_values_are_none(
    generated: list[Generated],
) -> None:
    """The two byte-level defects are what they claim to be."""
    for g in generated:
        if g.expected_reason == "invalid_utf8":
            assert g.value is not None
            with pytest.raises(UnicodeDecodeError):
                g.value.decode("utf-8")
        elif g.expected_reason == "null_value":
            assert g.value is None


def test_oversize_exceeds_the_limit_and_nothing_else_does(generated: list[Generated]) -> None:
    """Only oversize messages are larger than max_record_bytes."""
    for g in generated:
        big = g.value is not None and len(g.value) > WORKLOAD.max_record_bytes
        assert big == (g.expected_reason == "oversize")


def test_no_value_contains_a_newline(generated: list[Generated]) -> None:
    """Each message is one JSON line."""
    assert not any(g.value and b"\n" in g.value for g in generated)


def test_valid_records_carry_every_field_the_spec_requires(
    clean: list[tuple[str, dict[str, object]]],
) -> None:
    """recordId, recordType, a served identity, times and durations per record type."""
    for kind, rec in clean:
        assert isinstance(rec["recordId"], str)
        assert "servedMSISDN" in rec or "servedIMSI" in rec
        assert isinstance(rec["location"], dict)
        assert set(rec["location"]) == {"mccMnc", "locationAreaCode", "cellId"}
        if kind == "voice":
            assert rec["recordType"] in VOICE_TYPES
            assert "seizureTime" in rec
            assert "releaseTime" in rec
            assert isinstance(rec["callDuration"], int)
        else:
            assert rec["recordType"] in SMS_TYPES
            time_field = "originationTime" if rec["recordType"] == "moSMSRecord" else "deliveryTime"
            assert time_ok(rec[time_field])
            assert "messageReference" in rec


def test_answered_calls_last_and_unanswered_ones_do_not(
    clean: list[tuple[str, dict[str, object]]],
) -> None:
    """Answered: duration > 0 and an answerTime; unanswered: 0 and unsuccessfulCallAttempt."""
    causes: collections.Counter[object] = collections.Counter()
    for kind, rec in clean:
        if kind != "voice":
            continue
        causes[rec["causeForTerm"]] += 1
        if "answerTime" in rec:
            assert isinstance(rec["callDuration"], int)
            assert rec["callDuration"] > 0
        else:
            assert rec["callDuration"] == 0
            assert rec["causeForTerm"] == "unsuccessfulCallAttempt"
    assert {"normalRelease", "partialRecord", "unsuccessfulCallAttempt", "abnormalRelease"} <= set(
        causes
    )


def test_partial_records_form_numbered_chains_ending_in_a_normal_release(
    clean: list[tuple[str, dict[str, object]]],
) -> None:
    """Records sharing a callReference are numbered 1..k, only the last releases normally."""
    chains: dict[object, list[dict[str, object]]] = collections.defaultdict(list)
    for kind, rec in clean:
        if kind == "voice" and "sequenceNumber" in rec:
            chains[rec["callReference"]].append(rec)
    assert len(chains) > 50
    for chain in chains.values():
        if chain[0]["sequenceNumber"] != 1 or chain[-1]["causeForTerm"] != "normalRelease":
            continue  # the run's count cut this chain short
        assert [r["sequenceNumber"] for r in chain] == list(range(1, len(chain) + 1))
        assert [r["causeForTerm"] for r in chain[:-1]] == ["partialRecord"] * (len(chain) - 1)


def test_shares_of_voice_roaming_and_off_net_follow_the_workload(
    clean: list[tuple[str, dict[str, object]]],
) -> None:
    """60 % voice, 1 % roaming, 30 % of other parties not our subscribers."""
    ours = population(CLEAN).index
    voice = roaming = off_net = parties = 0
    for kind, rec in clean:
        voice += kind == "voice"
        roaming += rec["location"]["mccMnc"] not in CLEAN.home_networks  # type: ignore[index]
        other = rec.get(OTHER_PARTY[str(rec["recordType"])])
        if other is not None:  # None: a withheld calling number
            parties += 1
            off_net += normalize_msisdn(str(other)) not in ours
    assert 0.58 < voice / N < 0.62
    assert 0.006 < roaming / N < 0.014
    assert 0.28 < off_net / parties < 0.32


def test_roaming_records_name_a_foreign_network(
    clean: list[tuple[str, dict[str, object]]],
) -> None:
    """A record served abroad has a 5-digit foreign MCC-MNC and a foreign MSC."""
    roaming = [r for _, r in clean if r["location"]["mccMnc"] != "24001"]  # type: ignore[index]
    assert roaming
    for rec in roaming:
        assert not str(rec["location"]["mccMnc"]).startswith("240")  # type: ignore[index]
        assert not str(rec["recordingEntity"]).startswith("46")


def test_other_parties_include_foreign_numbers(
    clean: list[tuple[str, dict[str, object]]],
) -> None:
    """Danish, Norwegian, German, Finnish and British numbers appear as other parties."""
    prefixes: set[str] = set()
    for _, rec in clean:
        for field in ("calledNumber", "callingNumber", "destinationNumber", "originationNumber"):
            e164 = normalize_msisdn(str(rec.get(field, "+46700000000")))
            assert e164 is not None
            prefixes.update(cc for cc in ("45", "47", "49", "358", "44") if e164.startswith(cc))
    assert prefixes == {"45", "47", "49", "358", "44"}


def test_keys_and_numbers_appear_in_every_input_form(generated: list[Generated]) -> None:
    """Keys use all five forms of the served number, and some messages have no key."""
    keys = [g.key for g in generated]
    assert None in keys
    seen = {
        form
        for key in keys
        if key is not None
        for form, pattern in FORM_PATTERNS.items()
        if pattern.fullmatch(key.decode())
    }
    assert seen == set(FORM_PATTERNS)


def test_keys_name_the_served_subscriber(generated: list[Generated]) -> None:
    """A message's key normalizes to its record's served MSISDN."""
    for g in generated:
        if g.key is None or g.expected_reason is not None:
            continue
        rec = orjson.loads(g.value or b"")
        assert normalize_msisdn(g.key.decode()) == normalize_msisdn(rec["servedMSISDN"])


def test_imei_appears_as_15_16_and_14_digits_with_correct_luhn(
    clean: list[tuple[str, dict[str, object]]],
) -> None:
    """Every 15-digit IMEI checks out; IMEISV and 14-digit forms occur too."""
    lengths: collections.Counter[int] = collections.Counter()
    for _, rec in clean:
        imei = rec.get("servedIMEI")
        if isinstance(imei, str):
            lengths[len(imei)] += 1
            if len(imei) == 15:
                assert luhn_ok(imei)
    assert set(lengths) == {14, 15, 16}


def test_luhn_check_digit_matches_known_imeis() -> None:
    """Textbook IMEIs: 49015420323751 -> 8, 35209900176148 -> 1."""
    assert luhn_check_digit("49015420323751") == "8"
    assert luhn_check_digit("35209900176148") == "1"
    assert not luhn_ok("490154203237519")


def test_subscribers_have_valid_distinct_identities() -> None:
    """Swedish mobile MSISDNs, 15-digit home IMSIs, Luhn-valid IMEIs, all distinct."""
    subs = population(CLEAN).subscribers
    assert len({s.msisdn for s in subs}) == len({s.imsi for s in subs}) == len(subs)
    for s in subs:
        assert re.fullmatch(r"467[02369]\d{7}", s.msisdn)
        assert re.fullmatch(r"24001\d{10}", s.imsi)
        assert len(s.imei) == 15
        assert luhn_ok(s.imei)


def test_event_times_advance_from_start_and_record_ids_count_up(
    clean: list[tuple[str, dict[str, object]]],
) -> None:
    """Start times never go backwards, none precede start; ids are "<seed>-<n>" in order."""
    previous = DEFAULT_START
    for n, (_, rec) in enumerate(clean):
        assert rec["recordId"] == f"11-{n}"
        begin = rec.get("seizureTime") or rec.get("originationTime") or rec.get("deliveryTime")
        at = datetime.fromisoformat(str(begin)).astimezone(UTC)
        assert at >= previous
        previous = at
    assert previous - DEFAULT_START < timedelta(seconds=2 * N / CLEAN.events_per_second)


def test_a_few_subscribers_make_most_of_the_traffic(
    clean: list[tuple[str, dict[str, object]]],
) -> None:
    """The busiest 1 % of subscribers are served in at least 20 % of records."""
    per_subscriber = collections.Counter(rec["servedIMSI"] for _, rec in clean)
    top = per_subscriber.most_common(CLEAN.subscribers // 100)
    assert sum(c for _, c in top) / N >= 0.2


def test_consent_shares_follow_the_workload() -> None:
    """Each purpose is granted to about its share of subscribers; fraud_prevention to none."""
    states = [orjson.loads(v) for _, v in consent_states(CLEAN)]
    assert len(states) == CLEAN.subscribers
    for purpose, share in CLEAN.consent_shares:
        granted = sum(s["purposes"][purpose] is True for s in states) / len(states)
        assert abs(granted - share) < 0.02, purpose
    assert not any(s["purposes"]["fraud_prevention"] for s in states)


def test_consent_states_are_keyed_by_their_msisdn_and_well_formed() -> None:
    """Key = E.164 digits = msisdn; version >= 1; updatedAt RFC 3339 UTC before start."""
    for key, value in consent_states(Workload(subscribers=2000, seed=5)):
        state = orjson.loads(value)
        assert key.decode() == state["msisdn"]
        assert isinstance(state["version"], int)
        assert state["version"] >= 1
        assert state["updatedAt"].endswith("Z")
        assert datetime.fromisoformat(state["updatedAt"]) < DEFAULT_START


def test_warrants_target_busy_subscribers_during_the_traffic(
    clean: list[tuple[str, dict[str, object]]],
) -> None:
    """Each warrant targets an existing subscriber, by each identity type, across the traffic."""
    issued = warrants(CLEAN, count=3)
    subs = set(population(CLEAN).subscribers)
    assert [w.target_type for w in issued] == ["msisdn", "imsi", "imei"]
    assert len({w.liid for w in issued}) == 3
    for w in issued:
        value = orjson.loads(w.value)
        assert w.key.decode() == value["liid"] == w.liid
        assert w.subscriber in subs
        assert value["targets"] == [
            {"type": w.target_type, "value": getattr(w.subscriber, w.target_type)}
        ]
        valid_from = datetime.fromisoformat(value["validFrom"])
        valid_until = datetime.fromisoformat(value["validUntil"])
        hits = [rec for _, rec in clean if rec["servedIMSI"] == w.subscriber.imsi]
        assert hits, "a busy target is served in the traffic"
        for rec in hits:
            begin = rec.get("seizureTime") or rec.get("originationTime") or rec.get("deliveryTime")
            assert valid_from <= datetime.fromisoformat(str(begin)) < valid_until


def test_write_jsonl_writes_each_value_on_a_line_and_skips_null_values(
    tmp_path: Path, generated: list[Generated]
) -> None:
    """Lines are the values byte for byte; a null value has no line."""
    path = tmp_path / "traffic.jsonl"
    written = write_jsonl(path, generated[:2000])
    expected = [g.value for g in generated[:2000] if g.value is not None]
    assert written == len(expected)
    assert path.read_bytes().split(b"\n")[:-1] == expected


@pytest.mark.parametrize(
    "changes",
    [
        {"voice_share": 1.5},
        {"subscribers": 0},
        {"home_networks": ("2400",)},
        {"malformed_reasons": ("no_such_code",)},
        {"max_record_bytes": 100},
    ],
)
def test_workload_rejects_settings_it_cannot_honour(changes: dict[str, object]) -> None:
    """A share outside 0..1, no subscribers, a bad MCC-MNC, an unknown code, a tiny limit."""
    with pytest.raises(ValueError, match=next(iter(changes)).split("_")[0]):
        Workload(**changes)  # type: ignore[arg-type]


def test_records_refuses_a_naive_start() -> None:
    """Times must be anchored to a zone."""
    with pytest.raises(ValueError, match="timezone"):
        records(CLEAN, 1, start=datetime(2026, 11, 21))  # noqa: DTZ001 -- the naive time is the point
