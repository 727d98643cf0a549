"""Lawful-interception warrants and matching records against their targets.

A warrant (ETSI TS 103 120 in spirit) names target identities and a validity
span; the pipeline delivers a complete copy of every record of a target whose
event overlaps that span, tagged with the warrant's LIID.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from pipeline.core.decode import CdrRecord, parse_time
from pipeline.core.fields import NUMBER_FIELDS
from pipeline.core.normalize import MsisdnNormalizer, normalize_imei, normalize_imsi
from pipeline.core.unknown import WARRANT_FIELDS, count_unknown

TARGET_TYPES = ("msisdn", "imsi", "imei")
_MATCHED_NUMBER_FIELDS = frozenset(NUMBER_FIELDS)


class Warrant(NamedTuple):
    """An active warrant: its LIID, normalized targets and validity span (epoch seconds)."""

    liid: str
    targets: tuple[tuple[str, str], ...]
    valid_from: float
    valid_until: float
    authority: str


class WarrantProblem(NamedTuple):
    """Why a warrant message was not accepted. LIIDs are not subscriber identifiers."""

    code: str
    message: str


class Match(NamedTuple):
    """A warrant that a record matched, with the record fields that matched it."""

    warrant: Warrant
    fields: tuple[str, ...]


def _target(obj: object, msisdn: MsisdnNormalizer) -> tuple[str, str] | None:
    if type(obj) is not dict:
        return None
    kind, value = obj.get("type"), obj.get("value")
    if type(value) is not str:
        return None
    normalized: str | None = None
    if kind == "msisdn":
        normalized = msisdn(value)
    elif kind == "imsi":
        normalized = normalize_imsi(value)
    elif kind == "imei":
        normalized = normalize_imei(value)
    return None if normalized is None else (str(kind), normalized)


def parse_warrant(
    key: bytes | None,
    value: bytes | None,
    msisdn: MsisdnNormalizer,
    unknown: dict[str, int] | None = None,
) -> tuple[str, Warrant | None] | WarrantProblem:
    """Parse one ``li.warrants`` message into ``(liid, warrant)``; tombstone -> ``None``.

    Top-level fields the schema does not define are counted into ``unknown`` (``unknown.py``)."""
    if not key:
        return WarrantProblem("missing_key", "warrant message has no key (the LIID)")
    liid = key.decode("utf-8", "replace")
    if value is None:
        return liid, None
    try:
        obj: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        return WarrantProblem("invalid_json", f"warrant {liid}: not valid JSON")
    if unknown is not None and type(obj) is dict:
        count_unknown(obj, WARRANT_FIELDS, unknown)
    if type(obj) is not dict or obj.get("liid") != liid:
        return WarrantProblem("key_mismatch", f"warrant {liid}: 'liid' missing or differs from key")
    raw_targets = obj.get("targets")
    if type(raw_targets) is not list or not raw_targets:
        return WarrantProblem("bad_targets", f"warrant {liid}: 'targets' must be a non-empty list")
    targets = []
    for raw in raw_targets:
        target = _target(raw, msisdn)
        if target is None:
            return WarrantProblem("bad_target", f"warrant {liid}: a target is invalid")
        targets.append(target)
    start_text, end_text = obj.get("validFrom"), obj.get("validUntil")
    start = parse_time(start_text) if type(start_text) is str else None
    end = parse_time(end_text) if type(end_text) is str else None
    if start is None or end is None or end <= start:
        return WarrantProblem("bad_validity", f"warrant {liid}: invalid validity span")
    authority = obj.get("authority")
    return liid, Warrant(
        liid,
        tuple(targets),
        start.timestamp(),
        end.timestamp(),
        authority if type(authority) is str else "",
    )


class WarrantIndex:
    """The active warrants, indexed by target identity for a cheap per-record match."""

    __slots__ = ("_by_liid", "_by_target", "msisdn", "rejected", "unknown_fields")

    def __init__(self, msisdn: MsisdnNormalizer) -> None:
        self.msisdn = msisdn
        self._by_liid: dict[str, Warrant] = {}
        self._by_target: dict[tuple[str, str], list[Warrant]] = {}
        self.rejected: dict[str, int] = {}
        #: Count of messages carrying a top-level field the schema does not define, by name.
        self.unknown_fields: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._by_liid)

    @property
    def active(self) -> bool:
        """Whether any warrant is registered (most of the time, matching can be skipped)."""
        return bool(self._by_target)

    def apply(self, key: bytes | None, value: bytes | None) -> WarrantProblem | None:
        """Apply one message from ``li.warrants``; return the problem if it was rejected."""
        parsed = parse_warrant(key, value, self.msisdn, self.unknown_fields)
        if isinstance(parsed, WarrantProblem):
            self.rejected[parsed.code] = self.rejected.get(parsed.code, 0) + 1
            return parsed
        liid, warrant = parsed
        self.remove(liid)
        if warrant is not None:
            self.put(warrant)
        return None

    def put(self, warrant: Warrant) -> None:
        """Register (or replace) a warrant."""
        self.remove(warrant.liid)
        self._by_liid[warrant.liid] = warrant
        for target in set(warrant.targets):
            self._by_target.setdefault(target, []).append(warrant)

    def remove(self, liid: str) -> None:
        """Revoke a warrant, if present."""
        old = self._by_liid.pop(liid, None)
        if old is None:
            return
        for target in set(old.targets):
            remaining = [w for w in self._by_target.get(target, ()) if w.liid != liid]
            if remaining:
                self._by_target[target] = remaining
            else:
                self._by_target.pop(target, None)

    def warrants(self) -> list[Warrant]:
        """Every registered warrant, by LIID."""
        return [self._by_liid[liid] for liid in sorted(self._by_liid)]

    def match(self, record: CdrRecord) -> list[Match]:
        """Warrants whose targets appear in ``record`` and whose span overlaps the event."""
        index = self._by_target
        if not index:
            return []
        # Most records match nothing: find candidate targets first, build tuples only on a hit.
        candidates = [
            (("msisdn", number), field)
            for field, number in record.numbers.items()
            if ("msisdn", number) in index and field in _MATCHED_NUMBER_FIELDS
        ]
        if record.imsi is not None and ("imsi", record.imsi) in index:
            candidates.append((("imsi", record.imsi), "servedIMSI"))
        if record.imei is not None and ("imei", record.imei) in index:
            candidates.append((("imei", record.imei), "servedIMEI"))
        if not candidates:
            return []
        start, end = record.span
        hits: dict[str, tuple[Warrant, list[str]]] = {}
        for target, field in candidates:
            for warrant in index[target]:
                if warrant.valid_from <= end and start < warrant.valid_until:
                    hits.setdefault(warrant.liid, (warrant, []))[1].append(field)
        return [Match(w, tuple(fields)) for _liid, (w, fields) in sorted(hits.items())]
