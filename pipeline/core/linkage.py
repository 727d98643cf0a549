"""What two purposes' outputs of one record still share: the joins the policy leaves open.

Each analytics output carries a record id and pseudonyms keyed per purpose, so nothing
keyed joins two purposes' topics. What the policy keeps *as it is* on two analytics routes
does: an exact time, a cell, a call reference is the same value in both topics and, with
its entropy, picks out the one record in each. The policy may keep such a field on purpose
(fraud prevention needs exact times); :func:`linkability` lists every one, with the routes
that share it, so ``cdrveil ropa`` puts the join in front of the DPO who signs the policy.

Only the policy decides this (not the records), so it is computed from the policy alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from pipeline.core.actions import Action
from pipeline.core.fields import FIELDS, IDENTIFIER_KINDS, Kind
from pipeline.core.keys import RECORD_ID_TYPE, Pseudonymizer
from pipeline.core.policy import FieldRule, Policy, Route

#: Fields whose value, kept as it is, picks out one record or very few among a network's
#: records of the same time (not counters of a few values, codes or network elements).
_HIGH_ENTROPY_KINDS: Final = (*IDENTIFIER_KINDS, Kind.TIME, Kind.LOCATION, Kind.LOCATION_CHANGES)
_HIGH_ENTROPY_FIELDS: Final = frozenset({"callReference", "diagnostics", "messageReference"})
#: Kept values that still join with some entropy (a duration in seconds, an hour).
_LOWER_ENTROPY_FIELDS: Final = frozenset({"callDuration", "sequenceNumber"})

#: What every output header carries that is the same on two purposes' outputs of one record.
SHARED_HEADERS: Final = (
    (
        "cdrveil.consent-version",
        "the served subscriber's consent-state version: the same on every route's output of "
        "one record (low entropy while versions are small counters)",
    ),
    (
        "Kafka message timestamp",
        "the time the worker produced the batch: the same for every output of one batch, on "
        "every topic (it joins batches, not records)",
    ),
)


@dataclass(frozen=True)
class SharedField:
    """One field two or more analytics routes carry in the same form."""

    field: str
    #: The analytics routes that carry it in that form, in policy order.
    routes: tuple[str, ...]
    #: The form: the policy's action word (``keep``, ``generalize:hour``, ...).
    form: str
    #: ``high``: one value picks out very few records; ``low``: it narrows a join.
    entropy: str
    #: Some route gives the field this form only when its owner consented to its purpose
    #: (a clear number on two consent routes joins only the records of who consented to both).
    consented_only: bool = False


def _forms(rule: FieldRule) -> dict[str, bool]:
    """The forms a rule can give the field in, each with whether only consent gives it:
    keyed transforms are per purpose (never the same on two routes), a drop gives nothing."""
    forms: dict[str, bool] = {}
    for action, consented_only in ((rule.otherwise, False), (rule.consented, True)):
        if action in (Action.PSEUDONYMIZE, Action.DROP):
            continue
        form = action.value if action is not Action.MASK else f"mask:{rule.mask_digits}"
        forms.setdefault(form, consented_only)
    return forms


def _entropy(name: str, form: str) -> str | None:
    """``high`` or ``low`` for a joinable form of a field, ``None`` for one that joins
    nothing worth naming (a record type, a cause code, a network's country code)."""
    kind = FIELDS[name][0]
    if form == "keep" and (kind in _HIGH_ENTROPY_KINDS or name in _HIGH_ENTROPY_FIELDS):
        return "high"
    if form.startswith("mask:"):
        return "high"  # most of a number
    if form == "keep" and name in _LOWER_ENTROPY_FIELDS:
        return "low"
    if form in ("generalize:hour", "generalize:tac", "generalize:location_area"):
        return "low"  # an hour, a handset model, an area: they narrow a join
    return None


def linkability(policy: Policy) -> list[SharedField]:
    """Every field that two or more analytics routes can carry in the same joinable form."""
    analytics = [route for route in policy.routes.values() if route.rules.keyed_record_id]
    shared: list[SharedField] = []
    for name in FIELDS:
        by_form: dict[str, list[tuple[Route, bool]]] = {}
        for route in analytics:
            rule = route.fields.get(name)
            forms = _forms(rule) if rule is not None else {}
            for form in sorted(forms):
                by_form.setdefault(form, []).append((route, forms[form]))
        for form, routes in by_form.items():
            entropy = _entropy(name, form)
            if len(routes) >= 2 and entropy is not None:
                names = tuple(route.name for route, _ in routes)
                consented_only = any(only for _, only in routes)
                shared.append(SharedField(name, names, form, entropy, consented_only))
    return shared


def source_ids(
    pseudonymizer: Pseudonymizer, purposes: Iterable[str], record_ids: Iterable[str]
) -> dict[str, str]:
    """Keyed record id -> source record id, for the given purposes and source ids.

    Only the holder of the keys can draw this map (the demo, the benchmarks and the tests
    that match outputs to their inputs); no downstream reader of analytics topics can.
    """
    keyed: dict[str, str] = {}
    ids = list(record_ids)
    for purpose in purposes:
        keys = pseudonymizer.for_purpose(purpose, RECORD_ID_TYPE)
        keyed.update((keys.uncached(source), source) for source in ids)
    return keyed
