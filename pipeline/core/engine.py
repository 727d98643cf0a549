"""The engine: one input message in, the lawful output of every route out.

``Engine.process`` is a pure function of the message, the consent and warrant
state, the policy and the keyring: the same inputs give byte-identical
outputs, which is what makes at-least-once delivery safe to de-duplicate
downstream. ``Engine.route`` takes an optional trace list that ``explain``
uses, so the explanation is produced by the very code that decides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple

import orjson

from pipeline.core import transforms
from pipeline.core.compile import FieldSpec, RouteBuilder, compile_route
from pipeline.core.consent import ConsentLookup, ConsentState
from pipeline.core.decode import CdrRecord, Decoder, Rejection
from pipeline.core.fields import FIELDS, Kind, Owner
from pipeline.core.keys import Pseudonymizer, PurposePseudonymizer
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.policy import Action, Policy, Route
from pipeline.core.warrants import WarrantIndex

_DROP: Final = object()
_ID_TYPE: Final = {Kind.MSISDN: "msisdn", Kind.IMSI: "imsi", Kind.IMEI: "imei"}


class Output(NamedTuple):
    """One message to produce: topic, key, value and headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


Trace = list[dict[str, Any]]


class _RoutePlan(NamedTuple):
    route: Route
    topic: str
    fields: list[FieldSpec]
    build: RouteBuilder
    msisdn_pseudonym: PurposePseudonymizer
    imsi_pseudonym: PurposePseudonymizer
    constant_headers: list[tuple[str, bytes]]


def _apply(field: FieldSpec, action: Action, value: Any, normalized: str | None) -> Any:
    """The field's output value under ``action``; ``_DROP`` to leave it out."""
    if action is Action.DROP:
        return _DROP
    if action is Action.PSEUDONYMIZE:
        assert field.pseudonymize is not None and normalized is not None  # noqa: S101 - policy check
        return field.pseudonymize(normalized)
    if action is Action.KEEP and normalized is not None:
        return normalized
    if action is Action.MASK:
        assert normalized is not None  # noqa: S101 - the policy allows mask on numbers only
        return transforms.mask(normalized, field.mask_digits)
    if action is Action.TAC:
        assert normalized is not None  # noqa: S101 - the policy allows tac on IMEI only
        return normalized[:8]
    if action is Action.HOUR:
        return transforms.to_hour(value)
    if field.kind is Kind.LOCATION:
        return transforms.location(value, action)
    if field.kind is Kind.LOCATION_CHANGES:
        return transforms.location_changes(value, action)
    return value


class Engine:
    """Decide, for one record, what every route receives."""

    def __init__(
        self,
        policy: Policy,
        pseudonymizer: Pseudonymizer,
        decoder: Decoder,
        home_networks: frozenset[str] = frozenset({"24001"}),
        topic_prefix: str = "",
    ) -> None:
        self.policy = policy
        self.decoder = decoder
        self.home_networks = home_networks
        self.topic_prefix = topic_prefix
        self.key_id = pseudonymizer.key_id
        self._li_routes: list[tuple[Route, str, list[tuple[str, bytes]]]] = []
        self._plans: list[_RoutePlan] = []
        for route in policy.routes.values():
            topic = topic_prefix + route.topic
            headers = [
                ("cdrveil.route", route.name.encode()),
                ("cdrveil.legal-basis", route.legal_basis.encode()),
                ("cdrveil.policy-version", policy.version.encode()),
                ("cdrveil.key-id", self.key_id.encode()),
            ]
            if route.kind == "lawful_intercept":
                self._li_routes.append((route, topic, headers))
                continue
            fields = []
            for name, rule in route.fields.items():
                kind, owner = FIELDS[name]
                uses_key = Action.PSEUDONYMIZE in (rule.consented, rule.otherwise)
                spec = FieldSpec(
                    name,
                    rule.consented,
                    rule.otherwise,
                    rule.mask_digits,
                    kind,
                    owner,
                    pseudonymizer.for_purpose(route.purpose, _ID_TYPE[kind]) if uses_key else None,
                )
                fields.append(spec)
            analytics = route.kind == "analytics"
            self._plans.append(
                _RoutePlan(
                    route,
                    topic,
                    fields,
                    compile_route(route.name, route.purpose, analytics, fields),
                    pseudonymizer.for_purpose(route.purpose, "msisdn"),
                    pseudonymizer.for_purpose(route.purpose, "imsi"),
                    headers,
                )
            )

    @classmethod
    def build(
        cls,
        policy: Policy,
        pseudonymizer: Pseudonymizer,
        *,
        country_code: str = "46",
        trunk_prefix: str = "0",
        max_record_bytes: int = 65536,
        home_networks: frozenset[str] = frozenset({"24001"}),
        topic_prefix: str = "",
    ) -> Engine:
        """An engine with its decoder built from the numbering settings."""
        decoder = Decoder(MsisdnNormalizer(country_code, trunk_prefix), max_record_bytes)
        return cls(policy, pseudonymizer, decoder, home_networks, topic_prefix)

    def process(
        self, raw: bytes | None, consent: ConsentLookup, warrants: WarrantIndex
    ) -> Rejection | list[Output]:
        """Decode one message and return its outputs, or why it was rejected."""
        record = self.decoder(raw)
        if isinstance(record, Rejection):
            return record
        return self.route(record, consent, warrants)

    def _billable(self, record: CdrRecord) -> bool:
        if record.is_mo:
            return not record.is_voice or record.obj.get("callDuration", 0) > 0
        return record.mcc_mnc is not None and record.mcc_mnc not in self.home_networks

    def route(
        self,
        record: CdrRecord,
        consent: ConsentLookup,
        warrants: WarrantIndex,
        trace: Trace | None = None,
    ) -> list[Output]:
        """Every output of a decoded record; fills ``trace`` with the reasons when given."""
        record_id = record.record_id.encode()
        served = record.served_msisdn
        states: dict[str, ConsentState | None] = {}
        for number in record.numbers.values():
            if number not in states:
                states[number] = consent(number)
        served_state = states.get(served) if served is not None else None
        common = [
            ("cdrveil.record-id", record_id),
            (
                "cdrveil.consent-version",
                b"none" if served_state is None else str(served_state.version).encode(),
            ),
        ]
        outputs = self._intercepts(record, warrants, common, trace) if len(warrants) else []
        if trace is not None and not outputs:
            for route, _topic, _headers in self._li_routes:
                trace.append(_skipped(route, "no active warrant matches this record"))
        billable = self._billable(record)
        for plan in self._plans:
            route = plan.route
            if route.select == "billable" and not billable:
                if trace is not None:
                    trace.append(_skipped(route, "not billable (see select in the policy)"))
                continue
            served_ok = served_state is not None and route.purpose in served_state.granted
            if route.requires_consent and not served_ok:
                if trace is not None:
                    trace.append(_skipped(route, "the served subscriber has not consented"))
                continue
            if trace is None:
                value = plan.build(record.obj, record, served_ok, states)
            else:
                value = self._interpret(plan, record, states, served_ok, trace)
            key = self._key(plan, record)
            outputs.append(
                Output(plan.topic, key, orjson.dumps(value), plan.constant_headers + common)
            )
        return outputs

    def _key(self, plan: _RoutePlan, record: CdrRecord) -> bytes | None:
        served = record.served_msisdn
        if plan.route.kind == "billing":
            identity = served or record.imsi
            return None if identity is None else identity.encode()
        # An analytics key is never a clear identifier, yet keeps a subscriber's records in order.
        if served is not None:
            return plan.msisdn_pseudonym(served).encode()
        return None if record.imsi is None else plan.imsi_pseudonym(record.imsi).encode()

    def _intercepts(
        self,
        record: CdrRecord,
        warrants: WarrantIndex,
        common: list[tuple[str, bytes]],
        trace: Trace | None,
    ) -> list[Output]:
        outputs: list[Output] = []
        for route, topic, headers in self._li_routes:
            matches = warrants.match(record)
            for warrant, fields in matches:
                liid = warrant.liid.encode()
                value = {"liid": warrant.liid, "recordId": record.record_id, "record": record.obj}
                outputs.append(
                    Output(
                        topic,
                        liid,
                        orjson.dumps(value),
                        [*headers, *common, ("cdrveil.liid", liid)],
                    )
                )
                if trace is not None:
                    trace.append(
                        {
                            "route": route.name,
                            "topic": topic,
                            "delivered": True,
                            "reason": f"warrant {warrant.liid} is active and matched "
                            + ", ".join(fields),
                            "legalBasis": route.legal_basis,
                            "fields": [{"field": "*", "action": "keep (complete copy)"}],
                        }
                    )
        return outputs

    def _interpret(
        self,
        plan: _RoutePlan,
        record: CdrRecord,
        states: dict[str, ConsentState | None],
        served_ok: bool,
        trace: Trace,
    ) -> dict[str, Any]:
        """The route's value, field by field, recording each decision in ``trace``.

        The hot path runs the compiled builder instead; a test proves both agree.
        """
        purpose = plan.route.purpose
        numbers = record.numbers
        out: dict[str, Any] = {"recordId": record.record_id}
        if plan.route.kind == "analytics":
            out["purpose"] = purpose
        decisions: list[dict[str, Any]] = []
        trace.append(
            {
                "route": plan.route.name,
                "topic": plan.topic,
                "delivered": True,
                "reason": _delivered_reason(plan.route, served_ok),
                "legalBasis": plan.route.legal_basis,
                "fields": decisions,
            }
        )
        listed = set()
        for field in plan.fields:
            name = field.name
            listed.add(name)
            value = record.obj.get(name)
            if value is None:
                continue
            kind = field.kind
            normalized = (
                numbers.get(name)
                if kind is Kind.MSISDN
                else record.imsi
                if kind is Kind.IMSI
                else record.imei
                if kind is Kind.IMEI
                else None
            )
            owner = field.owner
            if owner is Owner.SERVED:
                consented = served_ok
            elif owner is Owner.NUMBER:
                state = states.get(normalized) if normalized is not None else None
                consented = state is not None and purpose in state.granted
            else:
                consented = True
            action = field.consented if consented else field.otherwise
            result = _apply(field, action, value, normalized)
            if result is not _DROP:
                out[name] = result
            decisions.append(_decision(name, owner, consented, field, action))
        for name, value in record.obj.items():
            if name not in listed and name != "recordId" and value is not None:
                decisions.append({"field": name, "action": "drop (not in the allow-list)"})
        return out


def _decision(
    name: str, owner: Owner, consented: bool, field: FieldSpec, action: Action
) -> dict[str, Any]:
    text = f"mask:{field.mask_digits}" if action is Action.MASK else action.value
    entry: dict[str, Any] = {"field": name, "action": text, "owner": owner.value}
    # Consent is shown only where it decided something (not for contract or law routes).
    if field.consented is not field.otherwise:
        entry["consented"] = consented
    return entry


def _skipped(route: Route, reason: str) -> dict[str, Any]:
    return {
        "route": route.name,
        "topic": route.topic,
        "delivered": False,
        "reason": reason,
        "legalBasis": route.legal_basis,
        "fields": [],
    }


def _delivered_reason(route: Route, served_ok: bool) -> str:
    if route.kind == "billing":
        return "billable record; needed to perform the contract"
    if route.requires_consent:
        return f"the served subscriber consented to {route.purpose}"
    if route.legal_basis == "legitimate_interest":
        return f"legitimate interest ({route.purpose}); identifiers pseudonymized per the policy"
    state = "consented" if served_ok else "did not consent"
    return f"the served subscriber {state} to {route.purpose}; fields follow each owner's consent"


#: The signature the shell calls.
Process = Callable[[bytes | None, ConsentLookup, WarrantIndex], Rejection | list[Output]]
