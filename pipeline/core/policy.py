"""The policy file: purposes, routes, and what each route does with each field.

The policy is data a DPO can read (TOML, see ``pipeline/policies/default.toml``).
Loading checks it against the rules the product promises, so a policy that
would put an identifier in clear on an analytics topic without consent is
refused at start-up rather than discovered in a topic.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, Final

from pipeline.core.fields import FIELDS, Kind, Owner
from pipeline.errors import PolicyError

ROUTE_KINDS: Final = ("lawful_intercept", "billing", "analytics")
LEGAL_BASES: Final = {
    "consent": "GDPR Art. 6(1)(a)",
    "contract": "GDPR Art. 6(1)(b)",
    "legal_obligation": "GDPR Art. 6(1)(c)",
    "legitimate_interest": "GDPR Art. 6(1)(f)",
}
SELECTIONS: Final = ("all", "billable")
IDENTIFIER_KINDS: Final = (Kind.MSISDN, Kind.IMSI, Kind.IMEI)


class Action(Enum):
    """What a route does with one field."""

    KEEP = "keep"
    DROP = "drop"
    PSEUDONYMIZE = "pseudonymize"
    MASK = "mask"
    TAC = "generalize:tac"
    LOCATION_AREA = "generalize:location_area"
    MCC_MNC = "generalize:mcc_mnc"
    HOUR = "generalize:hour"


#: Which actions make sense for which field kinds (anything may be kept or dropped).
_ALLOWED: Final[dict[Action, tuple[Kind, ...]]] = {
    Action.PSEUDONYMIZE: IDENTIFIER_KINDS,
    Action.MASK: (Kind.MSISDN,),
    Action.TAC: (Kind.IMEI,),
    Action.LOCATION_AREA: (Kind.LOCATION, Kind.LOCATION_CHANGES),
    Action.MCC_MNC: (Kind.LOCATION, Kind.LOCATION_CHANGES),
    Action.HOUR: (Kind.TIME,),
}


@dataclass(frozen=True)
class FieldRule:
    """A route's treatment of one field, with and without its owner's consent."""

    name: str
    consented: Action
    otherwise: Action
    mask_digits: int = 0

    def describe(self, action: Action) -> str:
        """The action as written in the policy file."""
        return f"mask:{self.mask_digits}" if action is Action.MASK else action.value


@dataclass(frozen=True)
class Purpose:
    """A named processing purpose that subscribers can consent to."""

    name: str
    title: str
    description: str
    legal_basis: str


@dataclass(frozen=True)
class Route:
    """One output route: its topic, legal basis, record selection and field rules."""

    name: str
    kind: str
    purpose: str
    topic: str
    legal_basis: str
    legal_reference: str
    recipients: str
    retention_days: int
    categories: str
    select: str
    requires_consent: bool
    fields: dict[str, FieldRule]
    #: The Kafka principals of the recipients (``User:<name>``): the only ones that may
    #: read the route's topic (``cdrveil acls``). None named: nobody reads it.
    principals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """A loaded, checked policy, with the version that every output records."""

    name: str
    controller: str
    dpo_contact: str
    data_subjects: str
    purposes: dict[str, Purpose]
    routes: dict[str, Route]
    dead_letter_topic: str
    dead_letter_retention_days: int
    dead_letter_recipients: str
    security_measures: tuple[str, ...]
    version: str
    source: str
    #: The principals that may read the dead-letter topic (``cdrveil acls``).
    dead_letter_principals: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: str | Path | None = None) -> Policy:
        """Load a policy file, or the packaged default when ``path`` is ``None``."""
        if path is None:
            data = resources.files("pipeline").joinpath("policies/default.toml").read_bytes()
            return cls.parse(data, "default policy (pipeline/policies/default.toml)")
        policy_path = Path(path)
        try:
            data = policy_path.read_bytes()
        except OSError as exc:
            raise PolicyError(f"policy {policy_path} cannot be read ({exc.strerror})") from None
        return cls.parse(data, str(policy_path))

    @classmethod
    def parse(cls, data: bytes, source: str = "<policy>") -> Policy:
        """Parse and check policy TOML."""
        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PolicyError(f"{source}: not valid TOML ({exc})") from None
        head = _table(doc, "policy", source)
        purposes = {
            name: Purpose(
                name,
                _text(entry, "title", f"purposes.{name}"),
                _text(entry, "description", f"purposes.{name}"),
                _basis(entry, f"purposes.{name}"),
            )
            for name, entry in _table(doc, "purposes", source).items()
        }
        routes = {
            name: _route(name, entry, purposes)
            for name, entry in _table(doc, "routes", source).items()
        }
        if not any(route.kind == "lawful_intercept" for route in routes.values()):
            raise PolicyError(f"{source}: a lawful_intercept route is required by law")
        topics = [route.topic for route in routes.values()]
        if len(set(topics)) != len(topics):
            raise PolicyError(f"{source}: two routes share a topic")
        dead = _table(doc, "dead_letter", source)
        security = doc.get("security", {})
        measures = security.get("measures", []) if isinstance(security, dict) else []
        return cls(
            name=_text(head, "name", "policy"),
            controller=_text(head, "controller", "policy"),
            dpo_contact=_text(head, "dpo_contact", "policy"),
            data_subjects=_text(head, "data_subjects", "policy"),
            purposes=purposes,
            routes=routes,
            dead_letter_topic=_text(dead, "topic", "dead_letter"),
            dead_letter_retention_days=_days(dead, "dead_letter"),
            dead_letter_recipients=_text(dead, "recipients", "dead_letter"),
            security_measures=tuple(str(m) for m in measures),
            version="sha256:" + hashlib.sha256(data).hexdigest()[:16],
            source=source,
            dead_letter_principals=_principals(dead, "dead_letter"),
        )

    @property
    def analytics_purposes(self) -> list[str]:
        """The purposes that have an analytics route, in policy order."""
        return [r.purpose for r in self.routes.values() if r.kind == "analytics"]

    def retention_ms_by_topic(self) -> dict[str, int]:
        """Topic retention from the policy, for topic provisioning."""
        day = 86_400_000
        retention = {route.topic: route.retention_days * day for route in self.routes.values()}
        retention[self.dead_letter_topic] = self.dead_letter_retention_days * day
        return retention


def _table(doc: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict) or not value:
        raise PolicyError(f"{where}: the [{name}] table is missing or empty")
    return value


def _text(entry: dict[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        raise PolicyError(f"policy [{where}]: '{name}' must be a non-empty string")
    return value


def _days(entry: dict[str, Any], where: str) -> int:
    value = entry.get("retention_days")
    if type(value) is not int or value < 1:
        raise PolicyError(f"policy [{where}]: 'retention_days' must be a positive integer")
    return value


_PRINCIPAL = re.compile(r"^User:[A-Za-z0-9._@-]{1,200}$")


def _principals(entry: dict[str, Any], where: str) -> tuple[str, ...]:
    value = entry.get("principals", [])
    if not isinstance(value, list) or not all(
        isinstance(p, str) and _PRINCIPAL.match(p) for p in value
    ):
        raise PolicyError(
            f"policy [{where}]: 'principals' must be a list of Kafka principals such as "
            '"User:analytics-marketing"'
        )
    return tuple(dict.fromkeys(value))


def _basis(entry: dict[str, Any], where: str) -> str:
    basis = _text(entry, "legal_basis", where)
    if basis not in LEGAL_BASES:
        raise PolicyError(f"policy [{where}]: legal_basis must be one of {sorted(LEGAL_BASES)}")
    return basis


def _action(text: object, field: str, where: str) -> tuple[Action, int]:
    if not isinstance(text, str):
        raise PolicyError(f"policy [{where}]: the action for '{field}' must be a string")
    digits = 0
    if text == "mask":
        raise PolicyError(f"policy [{where}]: '{field}': mask takes 1-8 digits, e.g. mask:4")
    if text.startswith("mask:"):
        count = text[5:]
        if not (count.isdigit() and 1 <= int(count) <= 8):
            raise PolicyError(f"policy [{where}]: '{field}': mask takes 1-8 digits, e.g. mask:4")
        action, digits = Action.MASK, int(count)
    else:
        try:
            action = Action(text)
        except ValueError:
            choices = ", ".join(a.value for a in Action if a is not Action.MASK) + ", mask:N"
            raise PolicyError(
                f"policy [{where}]: '{field}': unknown action {text!r} (one of {choices})"
            ) from None
    kind = FIELDS[field][0]
    if action in _ALLOWED and kind not in _ALLOWED[action]:
        raise PolicyError(f"policy [{where}]: '{field}' cannot be {text}")
    return action, digits


def _rule(name: str, spec: object, where: str, kind: str) -> FieldRule:
    if name not in FIELDS:
        raise PolicyError(f"policy [{where}]: unknown field '{name}' (use TS 32.298 names)")
    field_kind, owner = FIELDS[name]
    if isinstance(spec, dict):
        if set(spec) != {"consented", "otherwise"}:
            raise PolicyError(
                f"policy [{where}]: '{name}' needs exactly 'consented' and 'otherwise'"
            )
        if owner is Owner.NONE:
            raise PolicyError(f"policy [{where}]: '{name}' is not personal data; give one action")
        consented, mask_a = _action(spec["consented"], name, where)
        otherwise, mask_b = _action(spec["otherwise"], name, where)
        if mask_a and mask_b and mask_a != mask_b:
            raise PolicyError(f"policy [{where}]: '{name}' masks two different lengths")
        rule = FieldRule(name, consented, otherwise, mask_a or mask_b)
    else:
        action, digits = _action(spec, name, where)
        rule = FieldRule(name, action, action, digits)
    # The product's central promise: no identifier in clear without its owner's consent.
    personal_identifier = field_kind in IDENTIFIER_KINDS and owner is not Owner.NONE
    # A masked number is still most of the number: no more acceptable than clear.
    if kind == "analytics" and personal_identifier and rule.otherwise in (Action.KEEP, Action.MASK):
        raise PolicyError(
            f"policy [{where}]: '{name}' would reach an analytics topic in clear without "
            "consent (a mask leaves most of it); use pseudonymize, drop or a generalization "
            "for 'otherwise'"
        )
    return rule


def _route(name: str, entry: object, purposes: dict[str, Purpose]) -> Route:
    where = f"routes.{name}"
    if not isinstance(entry, dict):
        raise PolicyError(f"policy [{where}] must be a table")
    kind = _text(entry, "kind", where)
    if kind not in ROUTE_KINDS:
        raise PolicyError(f"policy [{where}]: kind must be one of {list(ROUTE_KINDS)}")
    purpose = entry.get("purpose", name)
    if kind == "analytics" and purpose not in purposes:
        raise PolicyError(f"policy [{where}]: purpose {purpose!r} is not under [purposes]")
    fields_spec = entry.get("fields", {})
    if kind != "lawful_intercept" and (not isinstance(fields_spec, dict) or not fields_spec):
        raise PolicyError(f"policy [{where}]: a [{where}.fields] table is required")
    select = entry.get("select", "all")
    if select not in SELECTIONS:
        raise PolicyError(f"policy [{where}]: select must be one of {list(SELECTIONS)}")
    requires = entry.get("requires_consent", False)
    if type(requires) is not bool:
        raise PolicyError(f"policy [{where}]: requires_consent must be true or false")
    if requires and kind != "analytics":
        raise PolicyError(f"policy [{where}]: only analytics routes depend on consent")
    rules = {field: _rule(field, spec, where, kind) for field, spec in fields_spec.items()}
    return Route(
        name=name,
        kind=kind,
        purpose=str(purpose),
        topic=_text(entry, "topic", where),
        legal_basis=_basis(entry, where),
        legal_reference=_text(entry, "legal_reference", where),
        recipients=_text(entry, "recipients", where),
        retention_days=_days(entry, where),
        categories=_text(entry, "categories", where),
        select=str(select),
        requires_consent=requires,
        fields=rules,
        principals=_principals(entry, where),
    )
