"""Value transforms the policy's actions use: masking, generalizations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.core.policy import Action

# Enum member access is a descriptor call in CPython 3.11; these run per record.
_KEEP = Action.KEEP
_MCC_MNC = Action.MCC_MNC


def to_hour(value: str) -> str:
    """The UTC hour an RFC 3339 time falls in, as ``YYYY-MM-DDTHH:00:00Z``."""
    if value.endswith(("Z", "z", "+00:00")):
        # Already UTC (the common case): cut the string rather than parse it.
        return value[:10] + "T" + value[11:13] + ":00:00Z"
    moment = datetime.fromisoformat(value).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:00:00Z")


def location(value: dict[str, Any], action: Action) -> dict[str, Any]:
    """A location reduced per ``action``, rebuilt from known keys only (an allow-list)."""
    out: dict[str, Any] = {"mccMnc": value["mccMnc"]}
    if action is _MCC_MNC:
        return out
    # A null part means absent, as everywhere in a record.
    area = value.get("locationAreaCode")
    if area is not None:
        out["locationAreaCode"] = area
    cell = value.get("cellId")
    if action is _KEEP and cell is not None:
        out["cellId"] = cell
    return out


def location_changes(value: list[dict[str, Any]], action: Action) -> list[dict[str, Any]]:
    """``changeOfLocation`` under ``action``; generalized locations get hour-level times."""
    keep = action is _KEEP
    return [
        {
            "location": location(change["location"], action),
            "changeTime": change["changeTime"] if keep else to_hour(change["changeTime"]),
        }
        for change in value
    ]


def mask(number: str, digits: int) -> str:
    """A number with its last ``digits`` digits replaced by ``X``."""
    return number[:-digits] + "X" * digits
