"""Warrant matching: any identity of the record against the active warrants' targets and spans."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.core.decode import CdrRecord, Decoder
from pipeline.core.warrants import WarrantIndex, WarrantProblem, parse_warrant
from tests.support.core import (
    OTHER,
    SERVED,
    SERVED_IMEI14,
    SERVED_IMEI15,
    SERVED_IMEISV,
    SERVED_IMSI,
    add_warrant,
    encode,
    mo_call,
    mo_sms,
    mt_call,
    mt_sms,
    warrant_value,
)

# The voice fixtures run 05:17:42Z .. 05:22:32Z on 2026-11-21.


def decoded(decoder: Decoder, record: dict[str, Any]) -> CdrRecord:
    """A record through the real decoder."""
    result = decoder(encode(record))
    assert isinstance(result, CdrRecord), result
    return result


def liids(index: WarrantIndex, record: CdrRecord) -> list[str]:
    """The LIIDs of the warrants the record matches."""
    return [match.warrant.liid for match in index.match(record)]


def test_no_warrants_match_nothing(decoder: Decoder, warrants: WarrantIndex) -> None:
    """An empty index matches no record."""
    assert warrants.match(decoded(decoder, mo_call())) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("servedMSISDN", "+46 73-987 65 43"),
        ("callingNumber", "0739876543"),
        ("calledNumber", "0046739876543"),
        ("translatedNumber", "46739876543"),
        ("connectedNumber", "+46739876543"),
        ("roamingNumber", "0739876543"),
    ],
)
def test_an_msisdn_target_matches_every_voice_number_field(
    decoder: Decoder, warrants: WarrantIndex, field: str, value: str
) -> None:
    """The target's number in any number field, in any input form, is a match."""
    add_warrant(warrants, "LI-1", [("msisdn", OTHER)])
    base = mt_call(callingNumber=None, calledNumber=None, roamingNumber=None)
    record = decoded(decoder, {**base, field: value})
    matches = warrants.match(record)
    assert [m.warrant.liid for m in matches] == ["LI-1"]
    assert matches[0].fields == (field,)


@pytest.mark.parametrize(
    ("factory", "field"), [(mo_sms, "destinationNumber"), (mt_sms, "originationNumber")]
)
def test_an_msisdn_target_matches_the_sms_number_fields(
    decoder: Decoder, warrants: WarrantIndex, factory: Any, field: str
) -> None:
    """The other party of an SMS is matched too."""
    add_warrant(warrants, "LI-1", [("msisdn", "+46 73-987 65 43")])
    assert liids(warrants, decoded(decoder, factory(**{field: "0739876543"}))) == ["LI-1"]


@pytest.mark.parametrize("target", ["+46 70-123 45 67", "0046701234567", "0701234567", SERVED])
def test_an_msisdn_target_in_any_form_matches(
    decoder: Decoder, warrants: WarrantIndex, target: str
) -> None:
    """Targets are normalized like record fields."""
    add_warrant(warrants, "LI-1", [("msisdn", target)])
    assert liids(warrants, decoded(decoder, mo_sms())) == ["LI-1"]


def test_a_different_number_does_not_match(decoder: Decoder, warrants: WarrantIndex) -> None:
    """A near miss is no match."""
    add_warrant(warrants, "LI-1", [("msisdn", "46701234568")])
    assert liids(warrants, decoded(decoder, mo_call())) == []


def test_an_imsi_target_matches_the_served_imsi(decoder: Decoder, warrants: WarrantIndex) -> None:
    """IMSI targets match servedIMSI."""
    add_warrant(warrants, "LI-1", [("imsi", SERVED_IMSI)])
    matches = warrants.match(decoded(decoder, mo_call(servedMSISDN=None, callingNumber=None)))
    assert [(m.warrant.liid, m.fields) for m in matches] == [("LI-1", ("servedIMSI",))]


@pytest.mark.parametrize("record_imei", [SERVED_IMEI14, SERVED_IMEI15, SERVED_IMEISV])
@pytest.mark.parametrize("target", [SERVED_IMEI14, SERVED_IMEI15, SERVED_IMEI14 + "42"])
def test_an_imei_target_matches_on_the_first_14_digits(
    decoder: Decoder, warrants: WarrantIndex, record_imei: str, target: str
) -> None:
    """IMEI, IMEI with Luhn digit and IMEISV of one device match each other."""
    add_warrant(warrants, "LI-1", [("imei", target)])
    record = decoded(decoder, mo_call(servedIMEI=record_imei))
    assert [(m.warrant.liid, m.fields) for m in warrants.match(record)] == [
        ("LI-1", ("servedIMEI",))
    ]


def test_an_imei_target_does_not_match_another_device(
    decoder: Decoder, warrants: WarrantIndex
) -> None:
    """A different serial is a different device."""
    add_warrant(warrants, "LI-1", [("imei", "49015420323752")])
    assert liids(warrants, decoded(decoder, mo_call())) == []


@pytest.mark.parametrize(
    ("valid_from", "valid_until"),
    [
        ("2026-11-21T05:22:33Z", "2026-12-01T00:00:00Z"),  # starts after the call ended
        ("2026-11-01T00:00:00Z", "2026-11-21T05:17:42Z"),  # ends as the call starts (exclusive)
        ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"),  # long before
    ],
)
def test_events_outside_the_validity_span_do_not_match(
    decoder: Decoder, warrants: WarrantIndex, valid_from: str, valid_until: str
) -> None:
    """Only events inside [validFrom, validUntil) are delivered."""
    add_warrant(
        warrants, "LI-1", [("msisdn", SERVED)], valid_from=valid_from, valid_until=valid_until
    )
    assert liids(warrants, decoded(decoder, mo_call())) == []


@pytest.mark.parametrize(
    ("valid_from", "valid_until"),
    [
        ("2026-11-21T05:20:00Z", "2026-12-01T00:00:00Z"),  # starts during the call
        ("2026-11-01T00:00:00Z", "2026-11-21T05:20:00Z"),  # ends during the call
        ("2026-11-21T05:22:32Z", "2026-11-22T00:00:00Z"),  # starts at the release time
        ("2026-11-21T06:18:00+01:00", "2026-11-21T06:19:00+01:00"),  # inside, other offset
    ],
)
def test_events_overlapping_the_validity_span_match(
    decoder: Decoder, warrants: WarrantIndex, valid_from: str, valid_until: str
) -> None:
    """A call that overlaps the span at all is delivered."""
    add_warrant(
        warrants, "LI-1", [("msisdn", SERVED)], valid_from=valid_from, valid_until=valid_until
    )
    assert liids(warrants, decoded(decoder, mo_call())) == ["LI-1"]


def test_an_sms_is_matched_at_its_event_time(decoder: Decoder, warrants: WarrantIndex) -> None:
    """An SMS at 05:30:05Z is inside a span that opens at 05:30 and outside one that closes then."""
    add_warrant(
        warrants,
        "LI-IN",
        [("msisdn", SERVED)],
        valid_from="2026-11-21T05:30:00Z",
        valid_until="2026-11-21T06:00:00Z",
    )
    add_warrant(
        warrants,
        "LI-OUT",
        [("msisdn", SERVED)],
        valid_from="2026-11-21T05:00:00Z",
        valid_until="2026-11-21T05:30:00Z",
    )
    assert liids(warrants, decoded(decoder, mo_sms())) == ["LI-IN"]


def test_a_tombstone_revokes_the_warrant(decoder: Decoder, warrants: WarrantIndex) -> None:
    """After revocation the target's records are no longer delivered."""
    add_warrant(warrants, "LI-1", [("msisdn", SERVED), ("imsi", SERVED_IMSI)])
    assert warrants.apply(b"LI-1", None) is None
    assert len(warrants) == 0
    assert liids(warrants, decoded(decoder, mo_call())) == []


def test_a_replaced_warrant_matches_only_its_new_targets(
    decoder: Decoder, warrants: WarrantIndex
) -> None:
    """Re-publishing a LIID with other targets drops the old ones."""
    add_warrant(warrants, "LI-1", [("msisdn", SERVED)])
    add_warrant(warrants, "LI-1", [("msisdn", "46709999999")])
    assert liids(warrants, decoded(decoder, mo_call())) == []


def test_revoking_one_warrant_keeps_another_on_the_same_target(
    decoder: Decoder, warrants: WarrantIndex
) -> None:
    """Two warrants on one target are independent."""
    add_warrant(warrants, "LI-1", [("msisdn", SERVED)])
    add_warrant(warrants, "LI-2", [("msisdn", SERVED)])
    warrants.apply(b"LI-1", None)
    assert liids(warrants, decoded(decoder, mo_call())) == ["LI-2"]


def test_one_match_per_matching_warrant(decoder: Decoder, warrants: WarrantIndex) -> None:
    """Two warrants give two matches; one warrant hit by three identities gives one."""
    add_warrant(
        warrants, "LI-A", [("msisdn", SERVED), ("imsi", SERVED_IMSI), ("imei", SERVED_IMEI14)]
    )
    add_warrant(warrants, "LI-B", [("msisdn", OTHER)])
    add_warrant(warrants, "LI-C", [("msisdn", "46709999999")])
    matches = warrants.match(decoded(decoder, mo_call()))
    assert [m.warrant.liid for m in matches] == ["LI-A", "LI-B"]
    assert set(matches[0].fields) == {"servedMSISDN", "callingNumber", "servedIMSI", "servedIMEI"}


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        (None, warrant_value("LI-1", [("msisdn", SERVED)]), "missing_key"),
        (b"LI-1", b"{", "invalid_json"),
        (b"LI-1", warrant_value("LI-2", [("msisdn", SERVED)]), "key_mismatch"),
        (b"LI-1", warrant_value("LI-1", []), "bad_targets"),
        (b"LI-1", warrant_value("LI-1", [("msisdn", "12ab")]), "bad_target"),
        (b"LI-1", warrant_value("LI-1", [("imei", SERVED_IMEI14 + "0")]), "bad_target"),
        (b"LI-1", warrant_value("LI-1", [("email", "a@b")]), "bad_target"),
        (
            b"LI-1",
            warrant_value(
                "LI-1", [("msisdn", SERVED)], "2026-12-01T00:00:00Z", "2026-11-01T00:00:00Z"
            ),
            "bad_validity",
        ),
        (
            b"LI-1",
            warrant_value("LI-1", [("msisdn", SERVED)], "2026-11-01", "2026-12-01T00:00:00Z"),
            "bad_validity",
        ),
    ],
)
def test_invalid_warrant_messages_are_rejected_with_a_code(
    warrants: WarrantIndex, key: bytes | None, value: bytes, code: str
) -> None:
    """Unusable warrants are refused (counted), never half-registered."""
    problem = warrants.apply(key, value)
    assert isinstance(problem, WarrantProblem)
    assert problem.code == code
    assert len(warrants) == 0
    assert warrants.rejected == {code: 1}


def test_warrant_problems_never_carry_the_target(msisdn: Any) -> None:
    """Problem messages name the LIID (not personal), never a target identity."""
    problem = parse_warrant(b"LI-1", warrant_value("LI-1", [("msisdn", "0701234X67")]), msisdn)
    assert isinstance(problem, WarrantProblem)
    assert "0701234" not in problem.message
    assert "LI-1" in problem.message
