"""``cdrveil explain`` (the reference engine) shows what the native engine produces.

The DPO's explanation is only worth something if the worker, which runs the compiled
engine, sends what it shows. For records of different shapes (MO and MT, voice and SMS,
one with null fields, one without a served MSISDN, one on a lawful-intercept warrant) the
command's ``--json`` output and ``NativeBatchEngine.process_batch`` on the same record,
consent, warrants, keyring and (default) policy give the same outputs: topic, key, value
(byte for byte once re-encoded) and headers, in order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.cli import main
from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.native import NativeBatchEngine
from pipeline.core.policy import Policy
from tests.support.core import (
    BILLING_TOPIC,
    LI_TOPIC,
    OTHER,
    PURPOSES,
    SERVED,
    SERVED_IMSI,
    consent_value,
    mo_call,
    mo_sms,
    mt_call,
    mt_sms,
    warrant_value,
)

#: The served subscriber consents to two purposes, the other party to one.
CONSENT = [
    consent_value(SERVED, {"marketing": True, "fraud_prevention": True}, version=17),
    consent_value(OTHER, {PURPOSES[1]: True}, version=3),
]
#: A warrant on a third subscriber's number, active through November 2026.
TARGET = "46761112233"
WARRANTS = [warrant_value("LI-2026-0007", [("msisdn", TARGET)])]
ROAMING = {"mccMnc": "24201", "locationAreaCode": 77, "cellId": 3001}

CASES: dict[str, dict[str, Any]] = {
    "mo-call": mo_call(),
    "mt-call-roaming": mt_call(callingNumber="+46 70 555 01 02", location=ROAMING),
    "mo-sms": mo_sms(destinationNumber="+47 912 34 567"),
    "mt-sms": mt_sms(originationNumber="+45 12 34 56 78"),
    "nulls": {**mo_call(), "servedIMEI": None, "changeOfLocation": None, "diagnostics": None},
    "imsi-only": mo_sms(servedMSISDN=None, destinationNumber="+47 912 34 567"),
    "warrant": mt_call(callingNumber="+46 76-111 22 33"),  # the warrant's target calls
}


def _explained(tmp_path: Path, raw: bytes, keyring: Path, capsys: Any) -> dict[str, Any]:
    record = tmp_path / "record.json"
    record.write_bytes(raw)
    consent = tmp_path / "consent.jsonl"
    consent.write_bytes(b"\n".join(CONSENT) + b"\n")
    warrants = tmp_path / "warrants.jsonl"
    warrants.write_bytes(b"\n".join(WARRANTS) + b"\n")
    argv = ["explain", str(record), "--consent", str(consent), "--warrants", str(warrants)]
    capsys.readouterr()
    assert main([*argv, "--keyring", str(keyring), "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def _native(raw: bytes, keyring: Path) -> list[Any]:
    native = NativeBatchEngine.build(Policy.load(None), Pseudonymizer(Keyring.load(keyring)))
    for value in CONSENT:
        assert native.consent.apply(json.loads(value)["msisdn"].encode(), value) is None
    for value in WARRANTS:
        assert native.warrants.apply(json.loads(value)["liid"].encode(), value) is None
    result = native.process_batch([raw])
    assert result.rejections == []
    return list(result.outputs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_explain_shows_the_outputs_the_native_engine_sends(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Topic, key, value and headers of every output, in order, for one record."""
    keyring = tmp_path / "keyring.json"
    Keyring.init(keyring)
    raw = orjson.dumps(CASES[case])
    shown = _explained(tmp_path, raw, keyring, capsys)
    sent = _native(raw, keyring)
    assert shown["accepted"] is True
    assert len(shown["outputs"]) == len(sent) > 0
    assert len([route for route in shown["routes"] if route["delivered"]]) == len(sent)
    for mine, theirs in zip(shown["outputs"], sent, strict=True):
        assert mine["topic"] == theirs.topic
        assert mine["key"] == (None if theirs.key is None else theirs.key.decode())
        assert orjson.dumps(mine["value"]) == theirs.value
        assert list(mine["headers"].items()) == [
            (name, value.decode()) for name, value in theirs.headers
        ]
    topics = [output.topic for output in sent]
    if case == "warrant":
        assert LI_TOPIC in topics
    else:
        assert LI_TOPIC not in topics
    if case == "imsi-only":
        billing = [output for output in sent if output.topic == BILLING_TOPIC]
        assert [output.key for output in billing] == [SERVED_IMSI.encode()]


def test_the_cases_cover_what_they_claim() -> None:
    """Null fields, a record without a served MSISDN, the other party (with consent of its
    own) and the warrant's target are there; only the last case names the target."""
    assert None in CASES["nulls"].values()
    assert "servedMSISDN" not in CASES["imsi-only"]
    assert CASES["mo-call"]["calledNumber"].endswith(OTHER[-9:])
    assert CASES["warrant"]["callingNumber"].replace("-", "").replace(" ", "").endswith(TARGET[-9:])
    for name, record in CASES.items():
        if name != "warrant":
            assert all(TARGET[-9:] not in str(value) for value in record.values()), name
