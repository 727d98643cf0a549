"""Compile a route's field rules into one specialized function for the hot path.

Interpreting the policy field by field costs tens of microseconds a record;
straight-line code generated once from the policy costs a few. The generated
source is built only from validated policy data (field names from the
catalog, actions from an enum, purposes passed as constants, never spliced
from input), and ``tests/unit/test_core_compile.py`` proves it gives exactly what
the interpreter in ``engine.py`` gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.core import transforms
from pipeline.core.consent import ConsentState
from pipeline.core.decode import CdrRecord
from pipeline.core.fields import Kind, Owner
from pipeline.core.keys import PurposePseudonymizer
from pipeline.core.policy import Action

#: (record, served subscriber consented?, consent by number) -> (message key, output value)
RouteBuilder = Callable[
    [CdrRecord, bool, dict[str, ConsentState | None]], tuple[bytes | None, dict[str, Any]]
]


class FieldSpec:
    """What the compiler needs to know about one field of one route."""

    __slots__ = ("consented", "kind", "mask_digits", "name", "otherwise", "owner", "pseudonymize")

    def __init__(
        self,
        name: str,
        consented: Action,
        otherwise: Action,
        mask_digits: int,
        kind: Kind,
        owner: Owner,
        pseudonymize: PurposePseudonymizer | None,
    ) -> None:
        self.name = name
        self.consented = consented
        self.otherwise = otherwise
        self.mask_digits = mask_digits
        self.kind = kind
        self.owner = owner
        self.pseudonymize = pseudonymize


_NORMALIZED = {
    Kind.MSISDN: "numbers[{name!r}]",
    Kind.IMSI: "record.imsi",
    Kind.IMEI: "record.imei",
}


def _expression(field: FieldSpec, action: Action, constants: dict[str, Any]) -> str | None:
    """A Python expression for the field's output under ``action``; ``None`` = drop."""
    kind = field.kind
    if action is Action.DROP:
        return None
    if action is Action.PSEUDONYMIZE:
        assert field.pseudonymize is not None  # noqa: S101 - set for every pseudonymized field
        return _pseudonym(field.pseudonymize, constants, "n")
    if action is Action.MASK:
        return f"n[:-{field.mask_digits}] + {'X' * field.mask_digits!r}"
    if action is Action.TAC:
        return "n[:8]"
    if action is Action.HOUR:
        return "to_hour(v)"
    if kind is Kind.LOCATION:
        constants[f"A_{action.name}"] = action  # bound once: enum access is slow per call
        return f"location(v, A_{action.name})"
    if kind is Kind.LOCATION_CHANGES:
        constants[f"A_{action.name}"] = action
        return f"location_changes(v, A_{action.name})"
    if kind in _NORMALIZED:
        return "n"
    return "v"


def _pseudonym(pseudonymizer: PurposePseudonymizer, constants: dict[str, Any], arg: str) -> str:
    """An expression that probes the pseudonym cache inline and calls only on a miss."""
    slot = len(constants)
    constants[f"P{slot}"] = pseudonymizer
    constants[f"Y{slot}"] = pseudonymizer.cache.young
    return f"(Y{slot}.get({arg}) or P{slot}({arg}))"


def compile_route(
    route_name: str,
    purpose: str,
    key: str,
    fields: list[FieldSpec],
    key_pseudonymizers: tuple[PurposePseudonymizer, PurposePseudonymizer],
) -> RouteBuilder:
    """Generate the builder of one route's message key and output value.

    The builder copies the record (a fast C copy), deletes every field the
    route's allow-list does not name, and patches only the fields whose value
    changes (identifiers, locations, generalized times). ``key`` is
    ``"pseudonym"`` (analytics: the purpose's pseudonym of the served MSISDN,
    else of the IMSI, so no key is ever a clear identifier) or ``"identity"``
    (billing: the served MSISDN, else the IMSI). Records with null fields take
    the interpreter instead (``Engine``), since nulls must be left out.
    """
    constants: dict[str, Any] = {
        "to_hour": transforms.to_hour,
        "location": transforms.location,
        "location_changes": transforms.location_changes,
        "PURPOSE": purpose,
        "ALLOWED": frozenset(["recordId", *(field.name for field in fields)]),
    }
    analytics = key == "pseudonym"
    lines = [
        "def build(record, served_ok, states):",
        "    numbers = record.numbers",
        "    out = record.obj.copy()",
        "    for name in out.keys() - ALLOWED:",
        "        del out[name]",
    ]
    for field in fields:
        name = field.name
        when_yes = _expression(field, field.consented, constants)
        when_no = (
            when_yes
            if field.otherwise is field.consented
            else _expression(field, field.otherwise, constants)
        )
        if when_yes == "v" and when_no == "v":
            continue  # kept as it is: the copy already holds it
        lines.append(f"    if {name!r} in out:")
        if field.kind in _NORMALIZED:
            lines.append(f"        n = {_NORMALIZED[field.kind].format(name=name)}")
        else:
            lines.append(f"        v = out[{name!r}]")
        if when_yes == when_no:
            lines.append(f"        out[{name!r}] = {when_yes}")
            continue
        if field.owner is Owner.SERVED:
            condition = "served_ok"
        else:
            lines.append("        s = states.get(n)")
            condition = "s is not None and PURPOSE in s.granted"
        lines.append(f"        if {condition}:")
        lines.append(_assign(name, when_yes, "            "))
        lines.append("        else:")
        lines.append(_assign(name, when_no, "            "))
    if analytics:
        lines.append("    out['purpose'] = PURPOSE")
    served = "numbers.get('servedMSISDN')"
    if analytics:
        by_msisdn = _pseudonym(key_pseudonymizers[0], constants, "served")
        by_imsi = _pseudonym(key_pseudonymizers[1], constants, "record.imsi")
        lines += [
            f"    served = {served}",
            "    if served is not None:",
            f"        return {by_msisdn}.encode(), out",
            "    if record.imsi is not None:",
            f"        return {by_imsi}.encode(), out",
            "    return None, out",
        ]
    else:
        lines += [
            f"    identity = {served} or record.imsi",
            "    return (None if identity is None else identity.encode()), out",
        ]
    source = "\n".join(lines) + "\n"
    namespace: dict[str, Any] = dict(constants)
    code = compile(source, f"<cdrveil route {route_name}>", "exec")
    exec(code, namespace)  # noqa: S102 - source built from the validated policy only, see module doc
    builder: RouteBuilder = namespace["build"]
    builder.__doc__ = source
    return builder


def _assign(name: str, expression: str | None, indent: str) -> str:
    if expression is None:
        return f"{indent}del out[{name!r}]"
    return f"{indent}out[{name!r}] = {expression}"
