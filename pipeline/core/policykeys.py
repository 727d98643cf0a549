"""Which keys each table of a policy file may have, and the refusal of any other.

A misspelt key is not a harmless extra: ``selct = "billable"`` left the default selection in
place and sent non-billable records to billing, and ``retention_dyas`` read as a missing
``retention_days``. So every table is closed: a key not listed here is refused, with the
table it is in and the nearest known key. A new policy key is a new name in one tuple here
(and the code in :mod:`pipeline.core.policy` that reads it).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, Final

from pipeline.core.fields import FIELDS
from pipeline.errors import PolicyError

#: The tables at the top level of a policy file.
TOP_LEVEL: Final = ("policy", "purposes", "routes", "dead_letter", "security", "party_numbers")
#: ``[policy]``: who is responsible, for whom.
POLICY_KEYS: Final = ("name", "controller", "dpo_contact", "data_subjects")
#: ``[purposes.NAME]``.
PURPOSE_KEYS: Final = ("title", "description", "legal_basis")
#: ``[routes.NAME]``.
ROUTE_KEYS: Final = (
    "kind",
    "purpose",
    "topic",
    "legal_basis",
    "legal_reference",
    "recipients",
    "principals",
    "retention_days",
    "categories",
    "select",
    "requires_consent",
    "on_objection",
    "override_ground",
    "fields",
)
#: A consent-dependent field rule, ``{ consented = ..., otherwise = ... }``.
RULE_KEYS: Final = ("consented", "otherwise")
#: ``[dead_letter]``.
DEAD_LETTER_KEYS: Final = ("topic", "retention_days", "recipients", "principals", "categories")
#: ``[security]``.
SECURITY_KEYS: Final = ("measures",)


def refuse_unknown_keys(doc: dict[str, Any], source: str) -> None:
    """Raise :class:`PolicyError` for the first key of ``doc`` that no table defines."""
    _closed(doc, TOP_LEVEL, "the top level", source)
    for name, known in (
        ("policy", POLICY_KEYS),
        ("dead_letter", DEAD_LETTER_KEYS),
        ("security", SECURITY_KEYS),
    ):
        _closed(doc.get(name), known, f"[{name}]", source)
    for name, entry in _entries(doc.get("purposes")):
        _closed(entry, PURPOSE_KEYS, f"[purposes.{name}]", source)
    for name, entry in _entries(doc.get("routes")):
        where = f"routes.{name}"
        _closed(entry, ROUTE_KEYS, f"[{where}]", source)
        fields = entry.get("fields") if isinstance(entry, dict) else None
        _closed(fields, tuple(FIELDS), f"[{where}.fields]", source, "field", "TS 32.298 names")
        for field, spec in _entries(fields):
            _closed(spec, RULE_KEYS, f"the rule for '{field}' in [{where}.fields]", source)


def _entries(table: object) -> Iterable[tuple[str, Any]]:
    return table.items() if isinstance(table, dict) else ()


def _closed(
    table: object,
    known: tuple[str, ...],
    where: str,
    source: str,
    noun: str = "key",
    hint: str = "",
) -> None:
    """Refuse the first key of ``table`` (if it is a table) that is not in ``known``."""
    if not isinstance(table, dict):
        return  # not a table: the checks that read it say what is wrong
    for key in table:
        if key not in known:
            raise PolicyError(
                f"{source}: unknown {noun} '{key}' in {where}; {_nearest(key, known, hint)}"
            )


def _nearest(key: str, known: tuple[str, ...], hint: str) -> str:
    """``did you mean 'x'?``, else what is known (``hint`` stands in for a long list)."""
    # Case-insensitive, so servedMsisdn finds servedMSISDN.
    by_lower = {name.lower(): name for name in known}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{by_lower[close[0]]}'?"
    return f"use {hint}" if hint else "known: " + ", ".join(known)
