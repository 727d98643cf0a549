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

from pipeline.core.actions import ACTIONS, Action
from pipeline.core.consent import ConsentState
from pipeline.core.decode import CdrRecord
from pipeline.core.fields import Kind, Owner
from pipeline.core.keys import PurposePseudonymizer
from pipeline.core.policy import KindRules, OutputKey

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


class _Code:
    """The generated code's constants, as the actions' expressions bind them."""

    def __init__(self, constants: dict[str, Any]) -> None:
        self.constants = constants

    def constant(self, name: str, value: object) -> str:
        self.constants[name] = value
        return name

    def pseudonym(self, pseudonymizer: PurposePseudonymizer, arg: str) -> str:
        return _pseudonym(pseudonymizer, self.constants, arg)


def _expression(field: FieldSpec, action: Action, constants: dict[str, Any]) -> str | None:
    """A Python expression for the field's output under ``action``; ``None`` = drop."""
    expression = ACTIONS[action].expression
    return None if expression is None else expression(field, _Code(constants))


def _pseudonym(pseudonymizer: PurposePseudonymizer, constants: dict[str, Any], arg: str) -> str:
    """An expression that probes the pseudonym cache inline and calls only on a miss."""
    slot = len(constants)
    constants[f"P{slot}"] = pseudonymizer
    constants[f"Y{slot}"] = pseudonymizer.cache.young
    return f"(Y{slot}.get({arg}) or P{slot}({arg}))"


#: Record shapes (tuples of field names) specialized per route; others take the generic
#: builder. Real traffic has a few dozen shapes; input with arbitrary extra fields could
#: have any number, and must not grow memory or compile code without bound.
MAX_SHAPES = 256


def compile_route(
    route_name: str,
    purpose: str,
    kind: KindRules,
    fields: list[FieldSpec],
    key_pseudonymizers: tuple[PurposePseudonymizer, PurposePseudonymizer],
) -> RouteBuilder:
    """Generate the builder of one route's message key and output value.

    ``kind`` says how the key is made: :attr:`OutputKey.PSEUDONYM` (analytics: the
    purpose's pseudonym of the served MSISDN, else of the IMSI, so no key is ever a clear
    identifier) or :attr:`OutputKey.IDENTITY` (billing: the served MSISDN, else the IMSI),
    and whether the value names its purpose. Records with null fields take the interpreter
    instead (``Engine``), since nulls must be left out.

    Two levels. The generic builder copies the record (a fast C copy), deletes every field
    the route's allow-list does not name, and patches the fields whose value changes. On
    top of it, each record *shape* (its field names, in order) gets a builder of its own
    the first time it is seen: one dict display of exactly the allowed fields, in the
    record's order, with no copy, no deletions and no presence tests. The output is the
    same dict, key order included (``tests/unit/test_core_compile.py``).
    """
    constants: dict[str, Any] = {
        "PURPOSE": purpose,
        "ALLOWED": frozenset(["recordId", *(field.name for field in fields)]),
        "DROP": _DROPPED,
    }
    if kind.key not in (OutputKey.PSEUDONYM, OutputKey.IDENTITY):
        raise ValueError(f"a route keyed by {kind.key.value} has no field rules to compile")
    tag = kind.names_purpose
    key_lines = _key_lines(kind.key is OutputKey.PSEUDONYM, key_pseudonymizers, constants)
    generic = _generic(route_name, fields, tag, key_lines, constants)
    allowed: frozenset[str] = constants["ALLOWED"]
    by_name = {field.name: field for field in fields}
    # An input field named like the one the purpose tag adds would change the key order.
    shaped = not (tag and "purpose" in allowed)
    shapes: dict[tuple[str, ...], RouteBuilder] = {}
    known = shapes.get

    def specialize(shape: tuple[str, ...]) -> RouteBuilder:
        if not shaped or len(shapes) >= MAX_SHAPES:
            return generic
        present = [name for name in shape if name in allowed]  # catalog names only
        builder = _shaped(route_name, present, by_name, tag, key_lines, constants)
        shapes[shape] = builder
        return builder

    def build(
        record: CdrRecord, served_ok: bool, states: dict[str, ConsentState | None]
    ) -> tuple[bytes | None, dict[str, Any]]:
        builder = known(record.shape)
        if builder is None:
            builder = specialize(record.shape)
        return builder(record, served_ok, states)

    build.__doc__ = generic.__doc__
    build.shapes = shapes  # type: ignore[attr-defined]  # for tests and diagnostics
    return build


class _Dropped:
    """The value of a field a route leaves out (a sentinel no record holds)."""

    __slots__ = ()


_DROPPED = _Dropped()


def _branches(field: FieldSpec, constants: dict[str, Any]) -> tuple[str | None, str | None]:
    """The field's output expression with and without consent (``None`` = dropped)."""
    when_yes = _expression(field, field.consented, constants)
    when_no = (
        when_yes
        if field.otherwise is field.consented
        else _expression(field, field.otherwise, constants)
    )
    return when_yes, when_no


def _condition(field: FieldSpec, lines: list[str], indent: str) -> str:
    """The consent test of ``field``'s owner (may add the state lookup to ``lines``)."""
    if field.owner is Owner.SERVED:
        return "served_ok"
    lines.append(f"{indent}s = states.get(n)")
    return "s is not None and PURPOSE in s.granted"


def _key_lines(
    pseudonym: bool,
    key_pseudonymizers: tuple[PurposePseudonymizer, PurposePseudonymizer],
    constants: dict[str, Any],
) -> list[str]:
    served = "numbers.get('servedMSISDN')"
    if pseudonym:
        by_msisdn = _pseudonym(key_pseudonymizers[0], constants, "served")
        by_imsi = _pseudonym(key_pseudonymizers[1], constants, "record.imsi")
        return [
            f"    served = {served}",
            "    if served is not None:",
            f"        return {by_msisdn}.encode(), out",
            "    if record.imsi is not None:",
            f"        return {by_imsi}.encode(), out",
            "    return None, out",
        ]
    return [
        f"    identity = {served} or record.imsi",
        "    return (None if identity is None else identity.encode()), out",
    ]


def _generic(
    route_name: str,
    fields: list[FieldSpec],
    tag: bool,
    key_lines: list[str],
    constants: dict[str, Any],
) -> RouteBuilder:
    lines = [
        "def build(record, served_ok, states):",
        "    numbers = record.numbers",
        "    out = record.obj.copy()",
        "    for name in out.keys() - ALLOWED:",
        "        del out[name]",
    ]
    for field in fields:
        name = field.name
        when_yes, when_no = _branches(field, constants)
        if when_yes == "v" and when_no == "v":
            continue  # kept as it is: the copy already holds it
        lines.append(f"    if {name!r} in out:")
        if field.kind in _NORMALIZED:
            lines.append(f"        n = {_NORMALIZED[field.kind].format(name=name)}")
        else:
            lines.append(f"        v = out[{name!r}]")
        if when_yes == when_no:
            lines.append(_assign(name, when_yes, "        "))
            continue
        condition = _condition(field, lines, "        ")
        lines.append(f"        if {condition}:")
        lines.append(_assign(name, when_yes, "            "))
        lines.append("        else:")
        lines.append(_assign(name, when_no, "            "))
    if tag:
        lines.append("    out['purpose'] = PURPOSE")
    return _define(f"<cdrveil route {route_name}>", lines + key_lines, constants)


def _shaped(
    route_name: str,
    present: list[str],
    by_name: dict[str, FieldSpec],
    tag: bool,
    key_lines: list[str],
    constants: dict[str, Any],
) -> RouteBuilder:
    """The builder for records whose allowed fields are ``present``, in this order."""
    lines = [
        "def build(record, served_ok, states):",
        "    numbers = record.numbers",
        "    o = record.obj",
    ]
    items: list[str] = []
    optional: list[tuple[str, str]] = []
    for i, name in enumerate(present):
        field = by_name.get(name)  # recordId has no spec: always kept
        when_yes, when_no = ("v", "v") if field is None else _branches(field, constants)
        if when_yes == "v" and when_no == "v":
            items.append(f"{name!r}: o[{name!r}]")
            continue
        if when_yes is None and when_no is None:
            continue  # dropped either way: never in the output
        assert field is not None  # noqa: S101 - only specified fields are transformed
        if field.kind in _NORMALIZED:
            lines.append(f"    n = {_NORMALIZED[field.kind].format(name=name)}")
        else:
            lines.append(f"    v = o[{name!r}]")
        if when_yes == when_no:
            lines.append(f"    x{i} = {when_yes}")
        else:
            condition = _condition(field, lines, "    ")
            yes = "DROP" if when_yes is None else when_yes
            no = "DROP" if when_no is None else when_no
            lines.append(f"    x{i} = {yes} if {condition} else {no}")
            if when_yes is None or when_no is None:
                optional.append((name, f"x{i}"))
        items.append(f"{name!r}: x{i}")
    if tag:
        items.append("'purpose': PURPOSE")
    lines.append("    out = {" + ", ".join(items) + "}")
    for name, variable in optional:
        lines.append(f"    if {variable} is DROP:")
        lines.append(f"        del out[{name!r}]")
    return _define(f"<cdrveil route {route_name}, one record shape>", lines + key_lines, constants)


def _define(filename: str, lines: list[str], constants: dict[str, Any]) -> RouteBuilder:
    source = "\n".join(lines) + "\n"
    namespace: dict[str, Any] = dict(constants)
    code = compile(source, filename, "exec")
    exec(code, namespace)  # noqa: S102 - source built from the validated policy only, see module doc
    builder: RouteBuilder = namespace["build"]
    builder.__doc__ = source
    return builder


def _assign(name: str, expression: str | None, indent: str) -> str:
    if expression is None:
        return f"{indent}del out[{name!r}]"
    return f"{indent}out[{name!r}] = {expression}"
