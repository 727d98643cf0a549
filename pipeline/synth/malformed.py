"""Planting exactly one defect in a valid record, so its rejection code is known in advance.

Each defect leaves everything else valid: a decoder that checks in any order still has only
one reason to reject. Values stay ASCII and free of newlines (one message, one JSONL line).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

import orjson

from pipeline.synth.population import luhn_check_digit

Record = dict[str, object]
T = TypeVar("T")

_BAD_UTF8 = (b"\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80")
_BAD_MSISDNS = ("12345", "4670123456789012", "+46 70-12A 45 67", "0046", "070-CALL-ME")
_BAD_IMSIS = ("2400112345678", "2400112345678901", "24001ABCDEFGHIJ", "24001-123456789")
_BAD_TIMES = (
    "2026-13-45T00:00:00Z",
    "2026-11-21T25:00:00Z",
    "yesterday",
    "2026-11-21T05:00:00",  # no offset: not RFC 3339, and not comparable
    "21/11/2026 05:00",
)
_UNKNOWN_TYPES = ("sgsnPDPRecord", "moLCSRecord", "ssActionRecord", "mtLCSRecord")


def _pick(rng: random.Random, options: Sequence[T]) -> T:
    return options[int(rng.random() * len(options))]


def _wrong_luhn_imei(rng: random.Random) -> str:
    payload = f"35332510{int(rng.random() * 1_000_000):06d}"
    good = int(luhn_check_digit(payload))
    return payload + str((good + 1 + int(rng.random() * 9)) % 10)


def _bad_imei(rng: random.Random) -> str:
    choice = int(rng.random() * 4)
    if choice == 0:
        return "3533251012345"  # 13 digits
    if choice == 1:
        return "35332510123456789"  # 17 digits
    if choice == 2:
        return _wrong_luhn_imei(rng)
    return "35332510ABCDEF1"


def _is_voice(rec: Record) -> bool:
    return str(rec.get("recordType", "")).endswith("CallRecord")


def plant_defect(
    rng: random.Random, reason: str, kind: str, rec: Record, max_bytes: int
) -> bytes | None:
    """The message value for `rec` broken so that the decoder must answer `reason`."""
    voice = kind == "voice"
    if reason == "null_value":
        return None
    if reason == "oversize":
        # An unknown extra field is allowed, so size is the record's only fault.
        rec["padding"] = "x" * max_bytes
        return orjson.dumps(rec)
    if reason == "invalid_json":
        raw = orjson.dumps(rec)
        variant = int(rng.random() * 3)
        if variant == 0:
            return raw[: 1 + int(rng.random() * (len(raw) - 2))]  # a proper prefix
        if variant == 1:
            return raw.replace(b'"', b"'")
        return raw[:-1] + b",}"
    if reason == "invalid_utf8":
        raw = orjson.dumps(rec)
        at = raw.index(b'"recordingEntity":"') + len(b'"recordingEntity":"')
        return raw[:at] + _pick(rng, _BAD_UTF8) + raw[at:]
    if reason == "not_an_object":
        variant = int(rng.random() * 4)
        if variant == 0:
            return orjson.dumps([rec])
        if variant == 1:
            return orjson.dumps(rec["recordId"])
        if variant == 2:
            return b"42"
        return b"true"
    if reason == "missing_field":
        _remove_required(rng, rec, voice)
    elif reason == "wrong_type":
        options = ["recordId", "location", "callDuration" if voice else "messageReference"]
        field = _pick(rng, options)
        if field == "recordId":
            rec["recordId"] = 1_000_000 + int(rng.random() * 1_000_000)
        elif field == "location":
            rec["location"] = "24001-1234-5678"
        else:
            rec[field] = str(rec[field])
    elif reason == "unknown_record_type":
        rec["recordType"] = _pick(rng, _UNKNOWN_TYPES)
    elif reason == "bad_msisdn":
        # Only the served identity (or the SMS centre) dead-letters: another party's number
        # that is no MSISDN is classified and kept (pipeline/core/party.py).
        rec["servedMSISDN"] = _pick(rng, _BAD_MSISDNS)
    elif reason == "bad_imsi":
        rec["servedIMSI"] = _pick(rng, _BAD_IMSIS)
    elif reason == "bad_imei":
        rec["servedIMEI"] = _bad_imei(rng)
    elif reason == "bad_timestamp":
        if voice:
            field = _pick(rng, ("seizureTime", "releaseTime"))
        else:
            field = "originationTime" if "originationTime" in rec else "deliveryTime"
        rec[field] = _pick(rng, _BAD_TIMES)
    elif reason == "bad_value":
        if not _is_voice(rec):
            raise ValueError("bad_value is planted in voice records only")
        rec["callDuration"] = -1 - int(rng.random() * 600)
    else:
        raise ValueError(f"unknown malformed reason {reason!r}")
    return orjson.dumps(rec)


def _remove_required(rng: random.Random, rec: Record, voice: bool) -> None:
    """Remove one required field (or the whole of a required either-or pair)."""
    options: tuple[str, ...]
    if voice:
        options = ("recordId", "recordType", "served", "callDuration", "times")
    elif "originationTime" in rec:
        options = ("recordId", "recordType", "served", "originationTime")
    else:
        options = ("recordId", "recordType", "served", "deliveryTime")
    field = _pick(rng, options)
    if field == "served":
        rec.pop("servedMSISDN", None)
        rec.pop("servedIMSI", None)
    elif field == "times":
        rec.pop("seizureTime", None)
        rec.pop("answerTime", None)
    else:
        del rec[field]
