"""Leak test: canary identifiers in every form and field never reach analytics without consent."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pipeline.core.consent import ConsentTable
from pipeline.core.decode import CdrRecord
from pipeline.core.engine import Engine, Output
from pipeline.core.warrants import WarrantIndex
from tests.support.core import (
    ANALYTICS_PREFIX,
    BILLING_TOPIC,
    MSC,
    SMSC,
    consent_value,
    encode,
    render_imei,
)

CANARIES = 200


class Canary:
    """One subscriber whose identities must never appear in clear in analytics."""

    def __init__(self, index: int) -> None:
        self.msisdn = f"46765{index:06d}"  # 11 digits, Swedish mobile range 076
        self.imsi = f"24001{7_000_000_000 + index:010d}"
        self.imei = f"35332510{900_000 + index:06d}"  # TAC 35332510 + serial

    def msisdn_forms(self) -> list[str]:
        """Every way the number can be written (and so every way it could leak)."""
        e164, nsn = self.msisdn, self.msisdn[2:]
        return [
            e164,
            "+" + e164,
            "00" + e164,
            "0" + nsn,
            nsn,
            f"+46 {nsn[:2]}-{nsn[2:5]} {nsn[5:7]} {nsn[7:]}",
            f"+46 {nsn[:2]} {nsn[2:5]} {nsn[5:7]} {nsn[7:]}",
            f"+46-{nsn[:2]}-{nsn[2:5]}-{nsn[5:7]}-{nsn[7:]}",
            f"0{nsn[:2]}-{nsn[2:5]} {nsn[5:7]} {nsn[7:]}",
        ]

    def all_forms(self) -> list[str]:
        """The MSISDN forms, the IMSI and the IMEI in 14, 15 and 16 digits."""
        return [
            *self.msisdn_forms(),
            self.imsi,
            self.imei,
            render_imei(self.imei, 15),
            render_imei(self.imei, 16),
        ]


POPULATION = [Canary(index) for index in range(CANARIES)]
#: Input forms used on records, rotated so every form lands in every field.
INPUT_FORMS = 9
IMEI_FORMS = (14, 15, 16)
NUMBER_FIELDS_VOICE = (
    "callingNumber",
    "calledNumber",
    "translatedNumber",
    "connectedNumber",
    "roamingNumber",
)


def form(canary: Canary, turn: int) -> str:
    """The canary's number in the turn-th input form."""
    return canary.msisdn_forms()[turn % INPUT_FORMS] if turn % INPUT_FORMS != 4 else canary.msisdn


def leak_records() -> list[dict[str, Any]]:
    """Voice and SMS records of every canary, MO and MT, with canaries in every identity field."""
    records: list[dict[str, Any]] = []
    for index, served in enumerate(POPULATION):
        others = [POPULATION[(index + step) % CANARIES] for step in (1, 7, 13, 29, 61)]
        common = {
            "servedIMSI": served.imsi,
            "servedIMEI": render_imei(served.imei, IMEI_FORMS[index % 3]),
            "recordingEntity": MSC,
            "location": {
                "mccMnc": "24001",
                "locationAreaCode": 100 + index,
                "cellId": 5000 + index,
            },
            "systemType": "gERAN",
        }
        call_times = {
            "seizureTime": "2026-11-21T06:00:00+01:00",
            "answerTime": "2026-11-21T06:00:05+01:00",
            "releaseTime": "2026-11-21T06:03:05+01:00",
            "callDuration": 180,
            "causeForTerm": "normalRelease",
            "basicService": "telephony",
            "changeOfLocation": [
                {
                    "location": {"mccMnc": "24001", "locationAreaCode": 7, "cellId": 70},
                    "changeTime": "2026-11-21T06:01:00+01:00",
                }
            ],
        }
        for turn, record_type in enumerate(("moCallRecord", "mtCallRecord")):
            numbers = {
                field: form(other, index + turn + position)
                for position, (field, other) in enumerate(
                    zip(NUMBER_FIELDS_VOICE, others, strict=True)
                )
            }
            # The served subscriber's own number also appears as calling (MO) or called (MT).
            numbers["callingNumber" if record_type == "moCallRecord" else "calledNumber"] = form(
                served, index + turn + 3
            )
            records.append(
                {
                    "recordId": f"leak-{index:03d}-{turn}",
                    "recordType": record_type,
                    "servedMSISDN": form(served, index + turn),
                    **common,
                    **call_times,
                    **numbers,
                }
            )
        sms_times = {"moSMSRecord": "originationTime", "mtSMSRecord": "deliveryTime"}
        sms_party = {"moSMSRecord": "destinationNumber", "mtSMSRecord": "originationNumber"}
        for turn, record_type in enumerate(("moSMSRecord", "mtSMSRecord"), start=2):
            records.append(
                {
                    "recordId": f"leak-{index:03d}-{turn}",
                    "recordType": record_type,
                    "servedMSISDN": form(served, index + turn),
                    **common,
                    "serviceCentre": "+" + SMSC,
                    sms_times[record_type]: "2026-11-21T05:30:00Z",
                    sms_party[record_type]: form(others[turn], index + turn + 5),
                    "messageReference": index % 256,
                }
            )
        # A record known only by its IMSI: the analytics key falls back to the IMSI pseudonym.
        records.append(
            {
                "recordId": f"leak-{index:03d}-imsi",
                "recordType": "moSMSRecord",
                **common,
                "originationTime": "2026-11-21T05:31:00Z",
                "destinationNumber": form(others[0], index + 8),
            }
        )
    return records


def nothing_granted(msisdn: Any) -> ConsentTable:
    """States granting nothing: a third none, a third all false, a third not literally true."""
    table = ConsentTable(msisdn)
    every = ("marketing", "service_improvement", "fraud_prevention", "network_planning")
    for index, canary in enumerate(POPULATION):
        if index % 3 == 1:
            purposes: dict[str, object] = dict.fromkeys(every, False)
        elif index % 3 == 2:
            purposes = {"marketing": "yes", "service_improvement": 1, "fraud_prevention": "true"}
        else:
            continue
        assert table.apply(canary.msisdn.encode(), consent_value(canary.msisdn, purposes)) is None
    return table


def haystack(outputs: list[Output]) -> bytes:
    """Every byte of the outputs' keys, values, header names and header values."""
    parts: list[bytes] = []
    for output in outputs:
        parts.append(output.key or b"")
        parts.append(output.value)
        for name, value in output.headers:
            parts.append(name.encode())
            parts.append(value)
    return b"\n".join(parts)


# Digits with any separators between them, as far as they run (with a leading "+").
DIGIT_RUN = re.compile(rb"\+?[0-9](?:[0-9 ()./+\t-]*[0-9])?")
NEEDLES = [(text, canary) for canary in POPULATION for text in canary.all_forms()]


def leaks(blob: bytes) -> list[str]:
    """Every canary form found in the blob, literally or as digits behind any separators.

    Every form has at least 9 digits and consists of digits, "+", spaces and dashes only, so
    any occurrence lies inside one digit run holding 9 digits or more: searching those runs
    for every form is a complete literal scan, and a fast one.
    """
    found: list[str] = []
    for run in DIGIT_RUN.findall(blob):
        digits = re.sub(rb"[^0-9]", b"", run).decode()
        if len(digits) < 9:
            continue
        text = run.decode()
        found += [needle for needle, _canary in NEEDLES if needle in text]
        # Behind any separators: the national significant number, the IMSI, the IMEI.
        for canary in POPULATION:
            found += [d for d in (canary.msisdn[2:], canary.imsi, canary.imei) if d in digits]
    return found


@pytest.fixture(scope="module")
def leak_outputs(engine: Engine) -> list[Output]:
    """All outputs of the canary records, through both the compiled and the traced path."""
    table = nothing_granted(engine.decoder.msisdn)
    warrants = WarrantIndex(engine.decoder.msisdn)
    outputs: list[Output] = []
    for record in leak_records():
        decoded = engine.decoder(encode(record))
        assert isinstance(decoded, CdrRecord), (record["recordId"], decoded)
        outputs += engine.route(decoded, table.get, warrants)
        outputs += engine.route(decoded, table.get, warrants, trace=[])
    return outputs


def test_the_canary_records_exercise_every_form_and_field() -> None:
    """Every input form lands in every number field, and every IMEI length is used."""
    form_of = {text: i for canary in POPULATION for i, text in enumerate(canary.msisdn_forms())}
    seen: dict[str, set[int]] = {}
    imei_lengths = set()
    for record in leak_records():
        imei_lengths.add(len(record["servedIMEI"]))
        for field, value in record.items():
            if field.endswith(("MSISDN", "Number")):
                seen.setdefault(field, set()).add(form_of[value])
    assert set(seen) == {
        "servedMSISDN", "callingNumber", "calledNumber", "translatedNumber", "connectedNumber",
        "roamingNumber", "destinationNumber", "originationNumber",
    }  # fmt: skip
    for field, forms in seen.items():
        # Form 4, the bare national significant number, is no valid input; the rest all are.
        assert forms == {0, 1, 2, 3, 5, 6, 7, 8}, field
    assert imei_lengths == {14, 15, 16}


def test_no_canary_appears_in_any_analytics_output(leak_outputs: list[Output]) -> None:
    """Keys, values and headers of every analytics output: zero canary hits, in any form."""
    analytics = [o for o in leak_outputs if o.topic.startswith(ANALYTICS_PREFIX)]
    # Fraud prevention and network planning for each record, both paths (marketing and
    # service improvement require consent, and nobody granted any).
    assert len(analytics) == 2 * 2 * 5 * CANARIES
    assert leaks(haystack(analytics)) == []


@pytest.mark.parametrize("purpose", ["marketing", "service_improvement"])
def test_no_output_of_a_consent_based_purpose_without_consent(
    leak_outputs: list[Output], purpose: str
) -> None:
    """Nobody granted marketing or service improvement: no record of theirs at all."""
    assert not [o for o in leak_outputs if o.topic == ANALYTICS_PREFIX + purpose]


def test_the_scanner_finds_canaries_where_they_are_allowed(leak_outputs: list[Output]) -> None:
    """Billing carries the served subscribers in clear: the same scan must find them there."""
    billing = [o for o in leak_outputs if o.topic == BILLING_TOPIC]
    assert billing
    found = set(leaks(haystack(billing)))
    assert {canary.msisdn for canary in POPULATION} <= found
    assert {canary.imsi for canary in POPULATION} <= found


def test_the_scanner_sees_through_separators() -> None:
    """A canary written with separators in an output is still found."""
    canary = POPULATION[0]
    blob = b'{"x":"' + canary.msisdn_forms()[5].encode() + b'"}'
    assert canary.msisdn[2:] in leaks(blob)
    assert leaks(b'{"tac":"35332510","time":"2026-11-21T05:00:00Z"}') == []
