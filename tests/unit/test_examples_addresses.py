"""Example network-element addresses cannot be mistaken for subscribers' mobile numbers."""

from __future__ import annotations

from pathlib import Path

import orjson

from pipeline import defaults
from pipeline.synth import Workload, records

ROOT = Path(__file__).resolve().parents[2]
#: The home mobile plan the examples and the generator use for subscribers: 46 7X ...
MOBILE = defaults.COUNTRY_CODE + "7"


def _entities(value: object) -> list[str]:
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k == "recordingEntity" and isinstance(v, str)]
        return found + [e for v in value.values() for e in _entities(v)]
    if isinstance(value, list):
        return [e for v in value for e in _entities(v)]
    return []


def test_no_example_recording_entity_looks_like_a_mobile_number() -> None:
    """A DPO's scanner flagged 46705550001 (an MSC in the examples) as a subscriber."""
    files = [*(ROOT / "schemas" / "examples").rglob("*.json"), *(ROOT / "fuzz").rglob("*.json")]
    entities = [e for f in files for e in _entities(orjson.loads(f.read_bytes()))]
    assert len(entities) >= 10
    assert [e for e in entities if e.startswith(MOBILE)] == []


def test_no_generated_recording_entity_looks_like_a_mobile_number() -> None:
    generated = records(Workload(subscribers=200), 500)
    entities = [
        e
        for m in generated
        if m.value is not None and m.value.startswith(b"{")
        for e in _entities(_loads(m.value))
    ]
    assert len(entities) > 100
    assert [e for e in entities if e.startswith(MOBILE)] == []


def test_the_policy_says_why_recording_entity_is_kept_in_clear() -> None:
    text = (ROOT / "pipeline" / "policies" / "default.toml").read_text()
    assert "recordingEntity, kept in clear" in text
    assert "not a subscriber's number" in text


def _loads(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
