"""The policy file: purposes, routes, and what each route does with each field.

The policy is data a DPO can read (TOML, see ``pipeline/policies/default.toml``).
Loading checks it against the rules the product promises, so a policy that
would put an identifier in clear on an analytics topic without consent is
refused at start-up rather than discovered in a topic.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Final

from pipeline.core.actions import ACTIONS, Action
from pipeline.core.fields import FIELDS, IDENTIFIER_KINDS, RECORD_ID, Owner
from pipeline.core.party import ABSENT, PartyClass, parse_table
from pipeline.core.policykeys import refuse_unknown_keys
from pipeline.core.topics import READ_TOPICS
from pipeline.errors import PolicyError

LEGAL_BASES: Final = {
    "consent": "GDPR Art. 6(1)(a)",
    "contract": "GDPR Art. 6(1)(b)",
    "legal_obligation": "GDPR Art. 6(1)(c)",
    "legitimate_interest": "GDPR Art. 6(1)(f)",
}
SELECTIONS: Final = ("all", "billable")


class OnObjection(StrEnum):
    """What a legitimate-interest route does with the records of a subscriber who objected
    (GDPR Art. 21); the value is the policy file's ``on_objection``."""

    #: Not published on the route; the other parties' numbers of an objector are dropped.
    EXCLUDE = "exclude"
    #: Published as without the objection, on the compelling ground the policy states.
    OVERRIDE = "override"


@dataclass(frozen=True)
class FieldRule:
    """A route's treatment of one field, with and without its owner's consent."""

    name: str
    consented: Action
    otherwise: Action
    mask_digits: int = 0


class RouteKind(StrEnum):
    """What a route is for; the value is the policy file's ``kind``.

    Everything that differs between kinds is in :data:`ROUTE_KINDS`, so a new kind is a
    new member and a new row there.
    """

    LAWFUL_INTERCEPT = "lawful_intercept"
    BILLING = "billing"
    ANALYTICS = "analytics"


class OutputKey(Enum):
    """How the message key of a route's outputs is made."""

    #: The matching warrant's LIID (one output per warrant).
    LIID = "liid"
    #: The served MSISDN, else the IMSI, in clear (E.164 digits).
    IDENTITY = "identity"
    #: The purpose's pseudonym of the served MSISDN, else of the IMSI: never in clear.
    PSEUDONYM = "pseudonym"


@dataclass(frozen=True)
class KindRules:
    """The behaviour of one route kind, for the policy checks, the engine and ``explain``."""

    #: How the output key is made.
    key: OutputKey
    #: A policy must have a route of this kind (the law requires it).
    required: bool
    #: The output is the input record byte for byte (no field rules); else an allow-list.
    copies_record: bool
    #: Consent decides: the purpose must be declared, the route may require the served
    #: subscriber's consent, and no identifier may reach it in clear without its owner's.
    by_consent: bool
    #: The output value names its purpose (``"purpose": ...``).
    names_purpose: bool
    #: The output carries a record id keyed per purpose (``Pseudonymizer.record_id``) in
    #: place of the source's, in its value and its ``cdrveil.record-id`` header, so two
    #: purposes' outputs of one record cannot be joined on it; else the source id.
    keyed_record_id: bool
    #: ``explain``'s reason for a delivered output, from the route and whether the served
    #: subscriber consented to its purpose (``None``: the engine names the warrant instead).
    reason: Callable[[Route, bool], str] | None


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
    kind: RouteKind
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
    #: What an objection (Art. 21) does here; ``None``: the route is not on legitimate
    #: interest, so no objection applies to it.
    on_objection: OnObjection | None = None
    #: The compelling legitimate ground an ``override`` rests on (else empty).
    override_ground: str = ""

    @property
    def excludes_objections(self) -> bool:
        """Whether an objecting subscriber's data is withheld from this route."""
        return self.on_objection is OnObjection.EXCLUDE

    @property
    def rules(self) -> KindRules:
        """What this route's kind does."""
        return ROUTE_KINDS[self.kind]


def _billing_reason(route: Route, served_ok: bool) -> str:
    return "billable record; needed to perform the contract"


def _analytics_reason(route: Route, served_ok: bool) -> str:
    if route.requires_consent:
        return f"the served subscriber consented to {route.purpose}"
    if route.legal_basis == "legitimate_interest":
        return f"legitimate interest ({route.purpose}); identifiers pseudonymized per the policy"
    state = "consented" if served_ok else "did not consent"
    return f"the served subscriber {state} to {route.purpose}; fields follow each owner's consent"


#: Route kind -> its behaviour: the one table of what differs between kinds.
ROUTE_KINDS: Final[dict[RouteKind, KindRules]] = {
    RouteKind.LAWFUL_INTERCEPT: KindRules(
        key=OutputKey.LIID,
        required=True,
        copies_record=True,
        by_consent=False,
        names_purpose=False,
        keyed_record_id=False,
        reason=None,
    ),
    RouteKind.BILLING: KindRules(
        key=OutputKey.IDENTITY,
        required=False,
        copies_record=False,
        by_consent=False,
        names_purpose=False,
        keyed_record_id=False,
        reason=_billing_reason,
    ),
    RouteKind.ANALYTICS: KindRules(
        key=OutputKey.PSEUDONYM,
        required=False,
        copies_record=False,
        by_consent=True,
        names_purpose=True,
        keyed_record_id=True,
        reason=_analytics_reason,
    ),
}


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
    #: What every route with a rule for a party-number field does when its value is no
    #: MSISDN, by class (``party.py``; fail closed: drop where the policy names none).
    party_numbers: dict[PartyClass, Action] = dataclasses.field(
        default_factory=lambda: dict(ABSENT)
    )

    @classmethod
    def load(cls, path: str | Path | None = None) -> Policy:
        """Load a policy file, or the packaged default when ``path`` is ``None``."""
        packaged = resources.files("pipeline").joinpath("policies/default.toml")
        if path is None or (isinstance(packaged, Path) and Path(path).resolve() == packaged):
            return cls.parse(packaged.read_bytes(), "pipeline/policies/default.toml (packaged)")
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
        # First, so a misspelt key is named as such, not reported as the key it stands for.
        refuse_unknown_keys(doc, source)
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
        for kind, rules in ROUTE_KINDS.items():
            if rules.required and not any(route.kind is kind for route in routes.values()):
                raise PolicyError(f"{source}: a {kind} route is required by law")
        topics = [route.topic for route in routes.values()]
        if len(set(topics)) != len(topics):
            raise PolicyError(f"{source}: two routes share a topic")
        dead = _table(doc, "dead_letter", source)
        dead_letter_topic = _text(dead, "topic", "dead_letter")
        if dead_letter_topic in topics:
            raise PolicyError(f"{source}: the dead-letter topic is also a route's topic")
        _refuse_read_topics(routes, dead_letter_topic, source)
        security = doc.get("security", {})
        measures = security.get("measures", []) if isinstance(security, dict) else []
        return cls(
            name=_text(head, "name", "policy"),
            controller=_text(head, "controller", "policy"),
            dpo_contact=_text(head, "dpo_contact", "policy"),
            data_subjects=_text(head, "data_subjects", "policy"),
            purposes=purposes,
            routes=routes,
            dead_letter_topic=dead_letter_topic,
            dead_letter_retention_days=_days(dead, "dead_letter"),
            dead_letter_recipients=_text(dead, "recipients", "dead_letter"),
            security_measures=tuple(str(m) for m in measures),
            version="sha256:" + hashlib.sha256(data).hexdigest()[:16],
            source=source,
            dead_letter_principals=_principals(dead, "dead_letter"),
            party_numbers=parse_table(doc.get("party_numbers"), source),
        )

    @property
    def analytics_purposes(self) -> list[str]:
        """The purposes that have an analytics route, in policy order."""
        return [r.purpose for r in self.routes.values() if r.kind is RouteKind.ANALYTICS]

    def retention_ms_by_topic(self) -> dict[str, int]:
        """Every output topic (each route's, in policy order, then the dead-letter topic)
        with its retention in milliseconds, for topic provisioning."""
        day = 86_400_000
        retention = {route.topic: route.retention_days * day for route in self.routes.values()}
        retention[self.dead_letter_topic] = self.dead_letter_retention_days * day
        return retention


def _refuse_read_topics(routes: dict[str, Route], dead_letter_topic: str, source: str) -> None:
    """Outputs written to a topic the pipeline reads would loop or corrupt its state."""
    named = [(f"routes.{name}", route.topic) for name, route in routes.items()]
    for where, topic in [*named, ("dead_letter", dead_letter_topic)]:
        if topic in READ_TOPICS:
            raise PolicyError(
                f"{source}: [{where}] topic {topic!r} is one the pipeline reads "
                f"({', '.join(sorted(READ_TOPICS))}); name another"
            )


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
    """The action a policy word names (``keep``, ``mask:4``, ...) and its digit count."""
    if not isinstance(text, str):
        raise PolicyError(f"policy [{where}]: the action for '{field}' must be a string")
    word, _, count = text.partition(":")
    counted = {rule.action.value: rule for rule in ACTIONS.values() if rule.digits is not None}
    digits = 0
    if word in counted:
        rule = counted[word]
        assert rule.digits is not None  # noqa: S101 - only those that take digits
        if not (count.isdigit() and int(count) in rule.digits):
            span = f"{rule.digits.start}-{rule.digits.stop - 1}"
            raise PolicyError(
                f"policy [{where}]: '{field}': {word} takes {span} digits, e.g. {word}:4"
            )
        digits = int(count)
    else:
        try:
            rule = ACTIONS[Action(text)]
        except ValueError:
            choices = [r.action.value for r in ACTIONS.values() if r.digits is None]
            choices += [f"{word}:N" for word in counted]
            raise PolicyError(
                f"policy [{where}]: '{field}': unknown action {text!r} (one of "
                f"{', '.join(choices)})"
            ) from None
    kind = FIELDS[field][0]
    if rule.kinds is not None and kind not in rule.kinds:
        raise PolicyError(f"policy [{where}]: '{field}' cannot be {text}")
    return rule.action, digits


def _rule(name: str, spec: object, where: str, kind: RouteKind) -> FieldRule:
    if name not in FIELDS:
        raise PolicyError(f"policy [{where}]: unknown field '{name}' (use TS 32.298 names)")
    if name == RECORD_ID:
        # Both engines copy it into every output, so a rule here could only be a promise the
        # output does not keep (a "drop" that still shows it, in the value and in the
        # cdrveil.record-id header).
        raise PolicyError(
            f"policy [{where}]: '{RECORD_ID}' takes no rule: every output carries the record "
            "id, so each output can be traced to its input and de-duplicated; remove the line"
        )
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
    clear = ACTIONS[rule.otherwise].reveals
    if ROUTE_KINDS[kind].by_consent and personal_identifier and clear:
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
    try:
        kind = RouteKind(_text(entry, "kind", where))
    except ValueError:
        raise PolicyError(
            f"policy [{where}]: kind must be one of {[str(k) for k in RouteKind]}"
        ) from None
    rules = ROUTE_KINDS[kind]
    purpose = entry.get("purpose", name)
    if rules.by_consent and purpose not in purposes:
        raise PolicyError(f"policy [{where}]: purpose {purpose!r} is not under [purposes]")
    fields_spec = entry.get("fields", {})
    if not rules.copies_record and (not isinstance(fields_spec, dict) or not fields_spec):
        raise PolicyError(f"policy [{where}]: a [{where}.fields] table is required")
    select = entry.get("select", "all")
    if select not in SELECTIONS:
        raise PolicyError(f"policy [{where}]: select must be one of {list(SELECTIONS)}")
    requires = entry.get("requires_consent", False)
    if type(requires) is not bool:
        raise PolicyError(f"policy [{where}]: requires_consent must be true or false")
    if requires and not rules.by_consent:
        raise PolicyError(f"policy [{where}]: only analytics routes depend on consent")
    basis = _basis(entry, where)
    _refuse_consent_without_consent(where, kind, basis, requires, purposes.get(str(purpose)))
    if rules.copies_record:
        for key in ("fields", "select"):
            if key in entry:
                raise PolicyError(
                    f"policy [{where}]: a {kind} route carries every record of a matching "
                    f"warrant, complete; '{key}' would mean nothing here, so leave it out"
                )
    field_rules = {field: _rule(field, spec, where, kind) for field, spec in fields_spec.items()}
    on_objection, ground = _objection(entry, where, kind, basis)
    return Route(
        name=name,
        kind=kind,
        purpose=str(purpose),
        topic=_text(entry, "topic", where),
        legal_basis=basis,
        legal_reference=_text(entry, "legal_reference", where),
        recipients=_text(entry, "recipients", where),
        retention_days=_days(entry, where),
        categories=_text(entry, "categories", where),
        select=str(select),
        requires_consent=requires,
        fields=field_rules,
        principals=_principals(entry, where),
        on_objection=on_objection,
        override_ground=ground,
    )


def _objection(
    entry: dict[str, Any], where: str, kind: RouteKind, basis: str
) -> tuple[OnObjection | None, str]:
    """``on_objection`` and ``override_ground``: required on a route resting on legitimate
    interest (Art. 21 gives its subjects the right to object), meaningless elsewhere."""
    choices = " or ".join(f'"{c}"' for c in OnObjection)
    if basis != "legitimate_interest" or not ROUTE_KINDS[kind].by_consent:
        for key in ("on_objection", "override_ground"):
            if key in entry:
                raise PolicyError(
                    f"policy [{where}]: '{key}' applies only to an analytics route on "
                    "legitimate_interest (the basis a subscriber may object to, Art. 21); "
                    "leave it out"
                )
        return None, ""
    text = entry.get("on_objection")
    try:
        on_objection = OnObjection(str(text))
    except ValueError:
        raise PolicyError(
            f"policy [{where}]: a route on legitimate interest must say what an objection "
            f"(GDPR Art. 21) does: on_objection = {choices}"
        ) from None
    ground = entry.get("override_ground")
    if on_objection is OnObjection.EXCLUDE:
        if ground is not None:
            raise PolicyError(
                f'policy [{where}]: override_ground goes with on_objection = "override"; '
                "an excluding route needs none"
            )
        return on_objection, ""
    if not isinstance(ground, str) or not ground.strip():
        raise PolicyError(
            f'policy [{where}]: on_objection = "override" needs override_ground: the '
            "compelling legitimate ground that overrides the subscriber's objection (Art. 21(1))"
        )
    return on_objection, ground


def _refuse_consent_without_consent(
    where: str, kind: RouteKind, basis: str, requires: bool, purpose: Purpose | None
) -> None:
    """A route that rests on consent publishes only what its subscribers consented to."""
    if ROUTE_KINDS[kind].by_consent and purpose is not None and purpose.legal_basis != basis:
        raise PolicyError(
            f"policy [{where}]: legal_basis is {basis!r} but its purpose {purpose.name!r} "
            f"rests on {purpose.legal_basis!r}; make them agree"
        )
    if basis != "consent":
        return
    if not ROUTE_KINDS[kind].by_consent:
        raise PolicyError(
            f"policy [{where}]: a {kind} route cannot rest on consent (no consent decides "
            "what it receives); name its real legal basis"
        )
    if not requires:
        raise PolicyError(
            f"policy [{where}]: the legal basis is consent, so the route must have "
            "requires_consent = true: without it the records of subscribers who did not "
            "consent reach it too (pseudonymized data is still personal data)"
        )
