"""What a route can do with one field: every action, each in one entry of :data:`ACTIONS`.

An entry says everything about its action: the field kinds it applies to, whether it leaves
an identifier readable (the policy refuses that without consent on an analytics route), how
it turns a value into the output value (the interpreter, which ``explain`` runs), the Python
expression the route compiler generates for it, and how a decision is written. A new action
is a new :class:`Action` member and a new entry here.
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


# -- the value transforms (the generated route code calls them too) ---------------------------


def to_hour(value: str) -> str:
    """The UTC hour an RFC 3339 time falls in, as ``YYYY-MM-DDTHH:00:00Z``."""
    if value.endswith(("Z", "z", "+00:00")):
        # Already UTC (the common case): cut the string rather than parse it.
        return value[:10] + "T" + value[11:13] + ":00:00Z"
    moment = datetime.fromisoformat(value).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:00:00Z")


# Enum member access is a Python-level descriptor call in CPython 3.11, and these run for
# every location of every route: bound once. Measured (make bench-instructions): without
# them and engine._output, 225,303 instructions per warm record; with both, 214,089.
_KEEP: Final = Action.KEEP
_MCC_MNC: Final = Action.MCC_MNC


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


class Code(Protocol):
    """What the route compiler offers an action's expression: bound constants and the
    inline pseudonym lookup. In the generated code ``n`` is the field's normalized
    identifier (identifier kinds) and ``v`` its value (every other kind)."""

    def constant(self, name: str, value: object) -> str:
        """Bind ``value`` as the generated code's global ``name``; returns ``name``."""

    def pseudonym(self, pseudonymizer: PurposePseudonymizer, arg: str) -> str:
        """An expression for the pseudonym of the expression ``arg``."""


#: (field, value as received, normalized identifier or None) -> the output value.
Transform = Callable[[Field, Any, "str | None"], Any]
#: (field, code context) -> a Python expression for the output value.
Expression = Callable[[Field, Code], str]


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
    #: The generated expression; ``None`` when the field is left out.
    expression: Expression | None
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


def _keep_code(field: Field, code: Code) -> str:
    if field.kind in IDENTIFIER_KINDS:
        return "n"
    if field.kind in LOCATION_KINDS:
        return _location_code(field, code, Action.KEEP)
    return "v"


def _pseudonymize(field: Field, value: Any, normalized: str | None) -> Any:
    assert field.pseudonymize is not None and normalized is not None  # noqa: S101 - policy check
    return field.pseudonymize(normalized)


def _pseudonymize_code(field: Field, code: Code) -> str:
    assert field.pseudonymize is not None  # noqa: S101 - set for every pseudonymized field
    return code.pseudonym(field.pseudonymize, "n")


def _mask(field: Field, value: Any, normalized: str | None) -> Any:
    assert normalized is not None  # noqa: S101 - the policy allows mask on numbers only
    return mask(normalized, field.mask_digits)


def _mask_code(field: Field, code: Code) -> str:
    return f"n[:-{field.mask_digits}] + {'X' * field.mask_digits!r}"


def _tac(field: Field, value: Any, normalized: str | None) -> Any:
    assert normalized is not None  # noqa: S101 - the policy allows tac on IMEI only
    return normalized[:8]


def _location(action: Action) -> Transform:
    def reduce(field: Field, value: Any, normalized: str | None) -> Any:
        if field.kind is Kind.LOCATION:
            return location(value, action)
        return location_changes(value, action)

    return reduce


def _location_code(field: Field, code: Code, action: Action) -> str:
    # Bound once as a global: enum member access is slower than a global per call.
    member = code.constant(f"A_{action.name}", action)
    function = "location" if field.kind is Kind.LOCATION else "location_changes"
    transform = location if field.kind is Kind.LOCATION else location_changes
    return f"{code.constant(function, transform)}(v, {member})"


def _hour(field: Field, value: Any, normalized: str | None) -> Any:
    return to_hour(value)


def _hour_code(field: Field, code: Code) -> str:
    return f"{code.constant('to_hour', to_hour)}(v)"


#: Action -> everything about it.
ACTIONS: Final[dict[Action, ActionRule]] = {
    rule.action: rule
    for rule in (
        ActionRule(Action.KEEP, None, reveals=True, transform=_keep, expression=_keep_code),
        ActionRule(Action.DROP, None, reveals=False, transform=None, expression=None),
        ActionRule(
            Action.PSEUDONYMIZE,
            IDENTIFIER_KINDS,
            reveals=False,
            transform=_pseudonymize,
            expression=_pseudonymize_code,
        ),
        # A masked number is still most of the number: no more acceptable than clear.
        ActionRule(
            Action.MASK,
            (Kind.MSISDN,),
            reveals=True,
            transform=_mask,
            expression=_mask_code,
            digits=range(1, 9),
        ),
        ActionRule(
            Action.TAC, (Kind.IMEI,), reveals=False, transform=_tac, expression=lambda f, c: "n[:8]"
        ),
        ActionRule(
            Action.LOCATION_AREA,
            LOCATION_KINDS,
            reveals=False,
            transform=_location(Action.LOCATION_AREA),
            expression=lambda f, c: _location_code(f, c, Action.LOCATION_AREA),
        ),
        ActionRule(
            Action.MCC_MNC,
            LOCATION_KINDS,
            reveals=False,
            transform=_location(Action.MCC_MNC),
            expression=lambda f, c: _location_code(f, c, Action.MCC_MNC),
        ),
        ActionRule(
            Action.HOUR, (Kind.TIME,), reveals=False, transform=_hour, expression=_hour_code
        ),
    )
}
