"""What a route can do with one field: every action, each in one entry of :data:`ACTIONS`.

An entry says everything about its action: the field kinds it applies to, whether it leaves
an identifier readable (the policy refuses that without consent on an analytics route), how
it turns a value into the output value (what the engine applies and ``explain`` shows) and
how a decision is written. A new action is a new :class:`Action` member, a new entry here,
and the same action in the compiled engine (``engine/src/engine.rs``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol

from pipeline.core.fields import IDENTIFIER_KINDS, Kind

if TYPE_CHECKING:
    from pipeline.core.keys import PurposePseudonymizer


class Action(Enum):
    """What a route does with one field (the value is the policy file's word)."""

    KEEP = "keep"
    DROP = "drop"
    PSEUDONYMIZE = "pseudonymize"
    MASK = "mask"
    TAC = "generalize:tac"
    LOCATION_AREA = "generalize:location_area"
    MCC_MNC = "generalize:mcc_mnc"
    HOUR = "generalize:hour"


LOCATION_KINDS: Final = (Kind.LOCATION, Kind.LOCATION_CHANGES)


# -- the value transforms -------------------------------------------------------------------


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
    if action is Action.MCC_MNC:
        return out
    # A null part means absent, as everywhere in a record.
    area = value.get("locationAreaCode")
    if area is not None:
        out["locationAreaCode"] = area
    cell = value.get("cellId")
    if action is Action.KEEP and cell is not None:
        out["cellId"] = cell
    return out


def location_changes(value: list[dict[str, Any]], action: Action) -> list[dict[str, Any]]:
    """``changeOfLocation`` under ``action``; generalized locations get hour-level times."""
    keep = action is Action.KEEP
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


# -- the actions ------------------------------------------------------------------------------


class Field(Protocol):
    """What an action needs to know of the field it applies to."""

    @property
    def kind(self) -> Kind:
        """The field's kind (``pipeline.core.fields``)."""

    @property
    def mask_digits(self) -> int:
        """Digits a mask replaces."""

    @property
    def pseudonymize(self) -> PurposePseudonymizer | None:
        """The route purpose's pseudonymizer of the field's identifier type, if it uses one."""


#: (field, value as received, normalized identifier or None) -> the output value.
Transform = Callable[[Field, Any, "str | None"], Any]


@dataclass(frozen=True)
class ActionRule:
    """Everything about one action."""

    action: Action
    #: The field kinds it applies to; ``None``: any.
    kinds: tuple[Kind, ...] | None
    #: It leaves a personal identifier readable (in clear, or most of it).
    reveals: bool
    #: The output value; ``None`` when the field is left out.
    transform: Transform | None
    #: The digit counts it takes (``mask:N``); ``None``: takes none.
    digits: range | None = None

    def text(self, digits: int) -> str:
        """The action as the policy writes it and ``explain`` shows it."""
        return self.action.value if self.digits is None else f"{self.action.value}:{digits}"


def _keep(field: Field, value: Any, normalized: str | None) -> Any:
    if normalized is not None:
        return normalized
    # A location is rebuilt from its known keys even when kept (an allow-list).
    if field.kind is Kind.LOCATION:
        return location(value, Action.KEEP)
    if field.kind is Kind.LOCATION_CHANGES:
        return location_changes(value, Action.KEEP)
    return value


def _pseudonymize(field: Field, value: Any, normalized: str | None) -> Any:
    assert field.pseudonymize is not None and normalized is not None  # noqa: S101 - policy check
    return field.pseudonymize(normalized)


def _mask(field: Field, value: Any, normalized: str | None) -> Any:
    assert normalized is not None  # noqa: S101 - the policy allows mask on numbers only
    return mask(normalized, field.mask_digits)


def _tac(field: Field, value: Any, normalized: str | None) -> Any:
    assert normalized is not None  # noqa: S101 - the policy allows tac on IMEI only
    return normalized[:8]


def _location(action: Action) -> Transform:
    def reduce(field: Field, value: Any, normalized: str | None) -> Any:
        if field.kind is Kind.LOCATION:
            return location(value, action)
        return location_changes(value, action)

    return reduce


def _hour(field: Field, value: Any, normalized: str | None) -> Any:
    return to_hour(value)


#: Action -> everything about it.
ACTIONS: Final[dict[Action, ActionRule]] = {
    rule.action: rule
    for rule in (
        ActionRule(Action.KEEP, None, reveals=True, transform=_keep),
        ActionRule(Action.DROP, None, reveals=False, transform=None),
        ActionRule(Action.PSEUDONYMIZE, IDENTIFIER_KINDS, reveals=False, transform=_pseudonymize),
        # A masked number is still most of the number: no more acceptable than clear.
        ActionRule(Action.MASK, (Kind.MSISDN,), reveals=True, transform=_mask, digits=range(1, 9)),
        ActionRule(Action.TAC, (Kind.IMEI,), reveals=False, transform=_tac),
        ActionRule(
            Action.LOCATION_AREA,
            LOCATION_KINDS,
            reveals=False,
            transform=_location(Action.LOCATION_AREA),
        ),
        ActionRule(
            Action.MCC_MNC, LOCATION_KINDS, reveals=False, transform=_location(Action.MCC_MNC)
        ),
        ActionRule(Action.HOUR, (Kind.TIME,), reveals=False, transform=_hour),
    )
}
