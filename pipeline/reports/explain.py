"""``cdrveil explain``: what one record becomes on every route, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from pipeline.core.consent import ConsentState, ConsentTable
from pipeline.core.decode import Rejection
from pipeline.core.engine import Engine, Trace
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from pipeline.errors import ConfigError


def _messages(path: Path | None) -> list[Any]:
    """JSON objects from a file holding one object, an array, or JSON lines."""
    if path is None:
        return []
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror})") from None
    try:
        doc = orjson.loads(data)
        return doc if isinstance(doc, list) else [doc]
    except orjson.JSONDecodeError:
        pass
    try:
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]
    except orjson.JSONDecodeError:
        raise ConfigError(f"{path}: expected a JSON object, a JSON array or JSON lines") from None


def load_consent(table: ConsentTable, path: Path | None) -> int:
    """Load consent states (as published on ``consent.state``) into ``table``.

    Returns how many were read. A file given that holds none (the record itself, or the
    warrants, passed as ``--consent``) is refused: explained against it, every subscriber
    would silently count as not consenting.
    """
    read = 0
    for state in _messages(path):
        msisdn = state.get("msisdn", "") if isinstance(state, dict) else ""
        if table.apply(str(msisdn).encode(), orjson.dumps(state)) is None:
            read += 1
    if path is not None and read == 0:
        raise ConfigError(
            f"{path} holds no readable consent state (an object with msisdn, version and "
            "purposes, as on consent.state): is it the right file? --consent takes consent "
            "states, --warrants warrants"
        )
    return read


def load_warrants(index: WarrantIndex, path: Path | None) -> None:
    """Load warrants (as published on ``li.warrants``) into ``index``."""
    for warrant in _messages(path):
        liid = warrant.get("liid", "") if isinstance(warrant, dict) else ""
        index.apply(str(liid).encode(), orjson.dumps(warrant))


def explain(
    engine: Engine, raw: bytes, consent: ConsentTable, warrants: WarrantIndex
) -> dict[str, Any]:
    """The decision for every route, with each field's action, as plain data."""
    record = engine.decoder(raw)
    if isinstance(record, Rejection):
        return {
            "accepted": False,
            "deadLetter": {"code": record.code, "message": record.message, "field": record.field},
            "routes": [],
        }
    trace: Trace = []
    outputs = engine.route(record, consent.get, warrants, trace)
    served = record.served_msisdn
    state = consent.get(served) if served else None
    return {
        "accepted": True,
        "recordId": record.record_id,
        # Each party-number field that is no MSISDN, with its class (party.py).
        "partyNumbers": {name: party.value for name, party in record.parties.items()},
        "recordType": record.record_type,
        "policyVersion": engine.policy.version,
        "keyId": engine.key_id,
        "servedConsent": _served_consent(state, engine.policy),
        "routes": trace,
        "outputs": [
            {
                "topic": o.topic,
                "key": o.key,
                "value": orjson.loads(o.value),
                # Header values are ASCII (names, versions, ids: never an identifier).
                "headers": {name: value.decode("utf-8", "replace") for name, value in o.headers},
            }
            for o in outputs
        ],
    }


def _served_consent(state: ConsentState | None, policy: Policy) -> dict[str, Any]:
    """The served subscriber's state as ``explain`` shows it: an unreadable one (fail
    closed) has no version, grants nothing and objects to every purpose (Art. 21)."""
    if state is None:
        return {"version": None, "granted": [], "objections": [], "readable": True}
    return {
        "version": state.version if state.readable else None,
        "granted": sorted(state.granted),
        "objections": sorted(
            name
            for name, purpose in policy.purposes.items()
            if purpose.legal_basis == "legitimate_interest" and state.objects(name)
        ),
        "readable": state.readable,
    }


def render(result: dict[str, Any], show_values: bool) -> str:
    """Human-readable text for ``explain``."""
    if not result["accepted"]:
        dead = result["deadLetter"]
        return (
            f"REJECTED -> dead-letter topic\n  reason code: {dead['code']}\n"
            f"  why: {dead['message']}\n"
        )
    consent = result["servedConsent"]
    granted = ", ".join(consent["granted"]) or "nothing"
    version = consent["version"] if consent["version"] is not None else "none (not consented)"
    objections = ", ".join(consent["objections"]) or "none"
    if not consent["readable"]:
        version = "none (its state is unreadable: no consent, an objection to every purpose)"
    lines = [
        f"record {result['recordId']} ({result['recordType']}), policy {result['policyVersion']}",
        f"served subscriber's consent: version {version}; granted: {granted}; "
        f"objections (Art. 21): {objections}",
        "",
    ]
    parties = result.get("partyNumbers") or {}
    if parties:
        classes = ", ".join(f"{name} is {party}" for name, party in parties.items())
        lines.append(f"party numbers that are no MSISDN: {classes}")
    lines.append("")
    for route in result["routes"]:
        mark = "YES" if route["delivered"] else "no "
        lines.append(f"[{mark}] {route['route']} -> {route['topic']} ({route['legalBasis']})")
        lines.append(f"      {route['reason']}")
        for field in route["fields"]:
            consent_note = ""
            if "class" in field:
                # Another party's number that is no MSISDN: nobody's consent, the class decides.
                consent_note = f"  [{field['class']}: no subscriber, no consent; [party_numbers]]"
            elif "consented" in field:
                verdict = "consented" if field["consented"] else "not consented"
                consent_note = f"  [{field['owner']}: {verdict}]"
            lines.append(f"      {field['field']:<18} {field['action']}{consent_note}")
    if show_values:
        lines.append("")
        lines.append("outputs:")
        for output in result["outputs"]:
            key = output["key"].decode() if output["key"] else "-"
            lines.append(f"  {output['topic']}  key={key}")
            lines.append(f"    {orjson.dumps(output['value']).decode()}")
            headers = ", ".join(f"{name}={value}" for name, value in output["headers"].items())
            lines.append(f"    headers: {headers}")
    return "\n".join(lines) + "\n"
