"""The compiled engine behind the batch interface: the same decisions, byte for byte.

``pipeline._engine`` (the Rust crate in ``engine/``) runs the whole per-record path:
decode, normalize, consent and warrant lookups, the policy's field actions, pseudonyms,
JSON encoding, output keys and headers. Python stays in charge of what it is good at
auditing: it loads and checks the policy, derives the per-purpose keys with HKDF
(``keys.py``), and hands the native engine a plan built by :func:`build_plan`, the one
place that translates the policy for native code. The Python engine (``engine.py``) is
the reference; ``tests/unit/test_native_engine.py`` proves both give the same outputs.

The derived keys cross into native code as bytes and are wiped there when the engine
is dropped; the plan itself holds no key material.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from pipeline import _engine
from pipeline.core.batch import BatchResult, Layout, PartitionBatches, RecordBatches
from pipeline.core.consent import ConsentProblem
from pipeline.core.decode import Decoder, Rejection
from pipeline.core.engine import WITHHELD_REASONS, Output
from pipeline.core.fields import FIELDS, MO_TYPES, NUMBER_FIELDS, SMS_TYPES, VOICE_TYPES, Owner
from pipeline.core.keys import ID_TYPES, RECORD_ID_TYPE, Pseudonymizer
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantProblem

_OWNERS: Final = {Owner.SERVED: "served", Owner.NUMBER: "number", Owner.NONE: "none"}


def _text(value: object) -> str:
    """An enum member's value (``Action.KEEP`` -> ``"keep"``), or the string itself."""
    return str(getattr(value, "value", value))


def _accepts(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def time_dialect() -> tuple[bool, bool, bool]:
    """What this Python's ``datetime.fromisoformat`` accepts beyond RFC 3339's core (it
    differs between versions): a lowercase ``t``, a lowercase ``z``, offset minutes >= 60."""
    return (
        _accepts("2026-01-01t00:00:00+00:00"),
        _accepts("2026-01-01T00:00:00z"),
        _accepts("2026-01-01T00:00:00+00:90"),
    )


def build_plan(
    policy: Policy,
    pseudonymizer: Pseudonymizer,
    *,
    country_code: str = "46",
    trunk_prefix: str = "0",
    max_record_bytes: int = 65536,
    home_networks: frozenset[str] = frozenset({"24001"}),
    topic_prefix: str = "",
) -> tuple[dict[str, Any], list[bytes]]:
    """The native engine's plan (plain data, no secrets) and the derived keys it indexes.

    Mirrors ``Engine.__init__``: topics, headers, route order, field rules and the
    (purpose, identifier type) keys. The only place that reads the policy for native code.
    """
    normalizer = MsisdnNormalizer(country_code, trunk_prefix)  # refuses bad numbering
    Decoder(normalizer, max_record_bytes)  # refuses a size limit below the minimum
    key_id = pseudonymizer.key_id
    keys: list[bytes] = []
    key_slots: dict[tuple[str, str], int] = {}

    def slot(purpose: str, id_type: str) -> int:
        if (purpose, id_type) not in key_slots:
            key_slots[purpose, id_type] = len(keys)
            keys.append(pseudonymizer.derived_key(purpose, id_type))
        return key_slots[purpose, id_type]

    intercepts: list[tuple[str, list[tuple[str, bytes]]]] = []
    routes: list[dict[str, Any]] = []
    purposes: list[str] = []
    for route in policy.routes.values():
        topic = topic_prefix + route.topic
        headers = [
            ("cdrveil.route", route.name.encode()),
            ("cdrveil.legal-basis", route.legal_basis.encode()),
            ("cdrveil.policy-version", policy.version.encode()),
            ("cdrveil.key-id", key_id.encode()),
        ]
        kind = _text(route.kind)
        if kind == "lawful_intercept":
            intercepts.append((topic, headers))
            continue
        if route.purpose not in purposes:
            purposes.append(route.purpose)
        fields = [
            (name, _text(rule.consented), _text(rule.otherwise), rule.mask_digits)
            for name, rule in route.fields.items()
        ]
        routes.append(
            {
                "topic": topic,
                "headers": headers,
                "analytics": kind == "analytics",
                "billable_only": _text(route.select) == "billable",
                "requires_consent": route.requires_consent,
                "excludes_objections": route.excludes_objections,
                "purpose": route.purpose,
                "fields": fields,
                "keys": tuple(slot(route.purpose, id_type) for id_type in ID_TYPES),
                "record_id_key": (
                    slot(route.purpose, RECORD_ID_TYPE) if route.rules.keyed_record_id else None
                ),
            }
        )
    plan: dict[str, Any] = {
        "catalog": [(name, _text(kind), _OWNERS[owner]) for name, (kind, owner) in FIELDS.items()],
        "voice_types": sorted(VOICE_TYPES),
        "sms_types": sorted(SMS_TYPES),
        "mo_types": sorted(MO_TYPES),
        "matched_numbers": list(NUMBER_FIELDS),
        "country_code": normalizer.country_code,
        "trunk_prefix": normalizer.trunk_prefix,
        "international_prefix": normalizer.international_prefix,
        "max_bytes": max_record_bytes,
        "home_networks": sorted(home_networks),
        "key_id": key_id,
        "dialect": time_dialect(),
        "purposes": purposes,
        "intercepts": intercepts,
        "routes": routes,
        "party_numbers": [(c.value, a.value) for c, a in policy.party_numbers.items()],
    }
    return plan, keys


class NativeConsentTable:
    """The native consent table with ``ConsentTable``'s interface for the shell."""

    __slots__ = ("_table", "rejected")

    def __init__(self, table: _engine.ConsentTable) -> None:
        self._table = table
        #: Count of messages not accepted, by problem code (their subscribers lose consent).
        self.rejected: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._table)

    def apply(self, key: bytes | None, value: bytes | None) -> ConsentProblem | None:
        """Apply one message from ``consent.state``; return the problem if it was rejected."""
        problem = self._table.apply(key, value)
        if problem is None:
            return None
        code, message = problem
        self.rejected[code] = self.rejected.get(code, 0) + 1
        return ConsentProblem(code, message)

    @property
    def unknown_fields(self) -> dict[str, int]:
        """Messages carrying a field the schema does not define, by field name."""
        return dict(self._table.unknown_fields())

    def get(self, msisdn: str) -> tuple[int, list[str], list[str], bool] | None:
        """Version, granted and objected-to purposes (among the policy's) of these E.164
        digits, and whether their latest state was readable."""
        return self._table.get(msisdn)


class NativeWarrantIndex:
    """The native warrant index with ``WarrantIndex``'s interface for the shell."""

    __slots__ = ("_index", "rejected")

    def __init__(self, index: _engine.WarrantIndex) -> None:
        self._index = index
        self.rejected: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._index)

    @property
    def active(self) -> bool:
        """Whether any warrant is registered."""
        return self._index.active

    @property
    def unknown_fields(self) -> dict[str, int]:
        """Messages carrying a top-level field the schema does not define, by field name."""
        return dict(self._index.unknown_fields())

    def apply(self, key: bytes | None, value: bytes | None) -> WarrantProblem | None:
        """Apply one message from ``li.warrants``; return the problem if it was rejected."""
        problem = self._index.apply(key, value)
        if problem is None:
            return None
        code, message = problem
        self.rejected[code] = self.rejected.get(code, 0) + 1
        return WarrantProblem(code, message)


class NativeBatchEngine:
    """The compiled engine: one call per batch, the GIL released while it works.

    It also lays the outputs out in finished Kafka record batches
    (:meth:`process_batch_records`, a :class:`~pipeline.core.batch.RecordBatchEngine`), so
    the worker sends them without one Python object per output.
    """

    name = "native"

    def __init__(
        self, engine: _engine.Engine, key_id: str, routes: Sequence[str] = ()
    ) -> None:
        self._engine = engine
        self.key_id = key_id
        #: The names of the plan's billing and analytics routes, in plan order.
        self._routes = list(routes)
        self.consent = NativeConsentTable(engine.consent)
        self.warrants = NativeWarrantIndex(engine.warrants)

    def __repr__(self) -> str:
        return f"NativeBatchEngine(key_id={self.key_id!r})"

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
    ) -> NativeBatchEngine:
        """A native engine with the same settings ``Engine.build`` takes."""
        plan, keys = build_plan(
            policy,
            pseudonymizer,
            country_code=country_code,
            trunk_prefix=trunk_prefix,
            max_record_bytes=max_record_bytes,
            home_networks=home_networks,
            topic_prefix=topic_prefix,
        )
        engine = _engine.Engine(plan, keys, Output)
        keys.clear()
        routes = [r.name for r in policy.routes.values() if not r.rules.copies_record]
        return cls(engine, pseudonymizer.key_id, routes)

    @property
    def withheld(self) -> dict[tuple[str, str], int]:
        """Outputs not published, by (route name, reason), as ``Engine.withheld``."""
        counts = self._engine.withheld()
        return {
            (route, reason): count
            for route, row in zip(self._routes, counts, strict=True)
            for reason, count in zip(WITHHELD_REASONS, row, strict=True)
            if count
        }

    @property
    def output_topics(self) -> list[str]:
        """Every topic the engine can write (its routes' topics, prefix included), once each."""
        return self._engine.output_topics

    def process_batch(self, values: Sequence[bytes | None]) -> BatchResult:
        """Decode and route every message value; outputs in input order, rejections by index."""
        outputs, rejected = self._engine.process_batch(values)
        return BatchResult(
            outputs,
            [(index, Rejection(code, message, field)) for index, code, message, field in rejected],
            dict(self._engine.take_party_numbers()),
        )

    def process_batch_records(
        self, values: Sequence[bytes | None], layout: Layout
    ) -> RecordBatches:
        """As :meth:`process_batch`, the outputs in finished record batches (Kafka v2):
        what ``reference_record_batches`` builds from ``process_batch``'s outputs."""
        partitions, rejected, after = self._engine.process_batch_records(
            values, layout.partitions, layout.batch_bytes, layout.timestamp_ms, layout.round_robin
        )
        return RecordBatches(
            [PartitionBatches(topic, part, batches) for topic, part, batches in partitions],
            [(index, Rejection(code, message, field)) for index, code, message, field in rejected],
            after,
        )
