"""One person's pseudonyms, and which published outputs are theirs (GDPR Art. 15 and 17).

Only the operator, holding the keyring, can say which pseudonyms belong to a person: for
each analytics purpose and each key epoch that is not shredded, the keyed pseudonym of each
of their identifiers (:func:`subject_pseudonyms`). With them, :class:`SubjectSelector`
picks this person's outputs out of a route's messages, by the message key and by the
identifier fields of the value (in clear or pseudonymized), never by record id: an
analytics record id will be per purpose, so it cannot find the same record elsewhere.

The copy of an output handed over is :func:`handover`'s: this person's own identifiers as
published, and another person's identifier (the other party's number, masked or not, its
pseudonym, the served subscriber's location when this person is the other party) withheld,
named in ``withheld``. Pure: no Kafka here (``pipeline.tools.subject_access`` reads topics).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from pipeline.core.fields import FIELDS, IDENTIFIER_KINDS, Kind, Owner
from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.normalize import MsisdnNormalizer, normalize_imei, normalize_imsi
from pipeline.core.policy import Policy, Route, RouteKind
from pipeline.errors import ConfigError

#: What replaces a value that is another person's in a handed-over copy.
WITHHELD: Final = "(withheld: another person's data)"
#: The identifier type each identifier kind is pseudonymized as (``keys.ID_TYPES``).
ID_TYPE: Final = {Kind.MSISDN: "msisdn", Kind.IMSI: "imsi", Kind.IMEI: "imei"}
#: The header that holds the served subscriber's consent version (theirs, not the other's).
_CONSENT_VERSION: Final = "cdrveil.consent-version"


@dataclass(frozen=True)
class Subject:
    """The person a request is about: identifiers normalized as the engine normalizes them."""

    msisdn: str
    imsi: str | None = None
    imei: str | None = None

    @classmethod
    def of(
        cls, msisdn: str, imsi: str | None, imei: str | None, normalizer: MsisdnNormalizer
    ) -> Subject:
        """Normalize every input form; a ConfigError names the flag, never the value."""
        number = normalizer(msisdn)
        if number is None:
            raise ConfigError(
                "--msisdn is not a valid MSISDN (accepted: +46 70-123 45 67, 0046701234567, "
                "46701234567, 0701234567 with --country-code and --trunk-prefix)"
            )
        imsi_value = None if imsi is None else normalize_imsi(imsi.strip())
        if imsi is not None and imsi_value is None:
            raise ConfigError("--imsi is not a valid IMSI (14-15 digits: MCC, MNC, MSIN)")
        imei_value = None if imei is None else normalize_imei(imei.strip())
        if imei is not None and imei_value is None:
            raise ConfigError(
                "--imei is not a valid IMEI (14 digits, 15 with a Luhn check digit, or a "
                "16-digit IMEISV)"
            )
        return cls(number, imsi_value, imei_value)

    def identities(self) -> dict[str, str]:
        """Identifier type -> normalized value, for the identifiers given."""
        found = {"msisdn": self.msisdn, "imsi": self.imsi, "imei": self.imei}
        return {id_type: value for id_type, value in found.items() if value is not None}


@dataclass(frozen=True)
class PseudonymRow:
    """One pseudonym of the subject: purpose, key epoch, identifier type, value."""

    purpose: str
    key_id: str
    status: str
    id_type: str
    pseudonym: str

    def document(self) -> dict[str, str]:
        """As JSON."""
        return {
            "purpose": self.purpose,
            "keyId": self.key_id,
            "keyStatus": self.status,
            "idType": self.id_type,
            "pseudonym": self.pseudonym,
        }


@dataclass(frozen=True)
class SubjectPseudonyms:
    """Every pseudonym the subject can have, and the epochs that can no longer give any."""

    rows: tuple[PseudonymRow, ...]
    shredded: tuple[str, ...]

    def of_purpose(self, purpose: str) -> dict[str, str]:
        """Pseudonym -> identifier type, for one purpose (every epoch)."""
        return {row.pseudonym: row.id_type for row in self.rows if row.purpose == purpose}

    def document(self, subject: Subject) -> dict[str, Any]:
        """As JSON: the subject's own identifiers, the pseudonyms, the shredded epochs."""
        return {
            "subject": subject.identities(),
            "pseudonyms": [row.document() for row in self.rows],
            "shreddedKeyIds": list(self.shredded),
        }


def subject_pseudonyms(policy: Policy, keyring: Keyring, subject: Subject) -> SubjectPseudonyms:
    """For each analytics purpose and each epoch not shredded, the subject's pseudonyms."""
    status = {row["keyId"]: row["status"] for row in keyring.describe()}
    rows: list[PseudonymRow] = []
    shredded: list[str] = []
    by_epoch: dict[str, Pseudonymizer] = {}
    for key_id, epoch in keyring.epochs.items():
        if epoch.secret is None:
            shredded.append(key_id)
            continue
        # The public API: a Pseudonymizer of a ring whose active epoch is this one.
        by_epoch[key_id] = Pseudonymizer(Keyring(keyring.path, key_id, {key_id: epoch}))
    for purpose in policy.analytics_purposes:
        for key_id, pseudonymizer in by_epoch.items():
            for id_type, value in subject.identities().items():
                pseudonym = pseudonymizer.pseudonym(purpose, id_type, value)
                rows.append(PseudonymRow(purpose, key_id, status[key_id], id_type, pseudonym))
    return SubjectPseudonyms(tuple(rows), tuple(shredded))


def pseudonyms_table(pseudonyms: SubjectPseudonyms, subject: Subject) -> str:
    """The pseudonyms as a table a DPO can send to downstream holders."""
    given = ", ".join(f"{t} {v}" for t, v in subject.identities().items())
    lines = [f"subject: {given}", ""]
    lines.append(f"{'purpose':<22} {'key':<10} {'status':<9} {'type':<7} pseudonym")
    lines += [
        f"{r.purpose:<22} {r.key_id:<10} {r.status:<9} {r.id_type:<7} {r.pseudonym}"
        for r in pseudonyms.rows
    ]
    if pseudonyms.shredded:
        lines += [
            "",
            f"shredded key epochs (their pseudonyms can no longer be computed, nor linked to "
            f"anyone): {', '.join(pseudonyms.shredded)}",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Found:
    """One output that is the subject's, and the copy of it to hand over."""

    route: str
    timestamp_ms: int
    as_served: bool
    in_clear: tuple[str, ...]
    pseudonymized: tuple[str, ...]
    document: dict[str, Any]


def _is_identifier(name: str) -> bool:
    kind, owner = FIELDS.get(name, (Kind.TEXT, Owner.NONE))
    return kind in IDENTIFIER_KINDS and owner is not Owner.NONE


class SubjectSelector:
    """Pick one subject's outputs out of a route's messages (pure: bytes in, a Found out)."""

    def __init__(
        self,
        subject: Subject,
        pseudonyms: SubjectPseudonyms,
        normalizer: MsisdnNormalizer,
    ) -> None:
        self.subject = subject
        self._pseudonyms = pseudonyms
        self._normalizer = normalizer
        ids = subject.identities()
        self._clear = {kind: ids.get(id_type) for kind, id_type in ID_TYPE.items()}
        #: What the key of an output holds, in clear: the served MSISDN, else the IMSI.
        self._clear_keys = {v for k, v in ids.items() if k in ("msisdn", "imsi")}
        self._purposes: dict[
            str, tuple[dict[str, str], tuple[frozenset[bytes], tuple[bytes, ...]]]
        ] = {}

    def _of_purpose(
        self, purpose: str
    ) -> tuple[dict[str, str], tuple[frozenset[bytes], tuple[bytes, ...]]]:
        """The subject's pseudonyms of a purpose, and as bytes: keys and quoted values."""
        found = self._purposes.get(purpose)
        if found is None:
            own = self._pseudonyms.of_purpose(purpose)
            values = [*own, *self.subject.identities().values()]
            keys = frozenset(v.encode() for v in [*own, *self._clear_keys])
            found = own, (keys, tuple(f'"{v}"'.encode() for v in values))
            self._purposes[purpose] = found
        return found

    def select(
        self,
        route: Route,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        timestamp_ms: int,
    ) -> Found | None:
        """The subject's output, or ``None`` (another person's, or unreadable)."""
        if value is None:
            return None
        copies = route.rules.copies_record
        own, needles = self._of_purpose(route.purpose)
        if not copies and key not in needles[0] and not any(n in value for n in needles[1]):
            # Analytics and billing values hold identifiers normalized or as pseudonyms, each a
            # JSON string: without one of the subject's quoted, it is not theirs (no parsing).
            return None
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(doc, dict):
            return None
        fields = doc.get("record") if copies else doc
        if not isinstance(fields, dict):
            return None
        text_key = None if key is None else key.decode("utf-8", "replace")
        key_is_own = (
            not copies
            and text_key is not None
            and (text_key in own or text_key in self._clear_keys)
        )
        in_clear, pseudonymized = self._identified(fields, own, normalize=copies)
        if not (key_is_own or in_clear or pseudonymized):
            return None
        matched = {*in_clear, *pseudonymized}
        as_served = key_is_own or any(FIELDS[n][1] is Owner.SERVED for n in matched)
        copy = handover(fields, matched, as_served)
        if copies:
            copy = {**{k: v for k, v in doc.items() if k != "record"}, "record": copy}
        document = {
            "route": route.name,
            "publishedAt": _time(timestamp_ms),
            "key": text_key if key_is_own or copies else None,
            "matchedBy": (["key"] if key_is_own else []) + sorted(matched),
            "asServedSubscriber": as_served,
            "inClear": sorted(in_clear),
            "pseudonymized": sorted(pseudonymized),
            "withheld": sorted(_withheld(fields, copy if not copies else copy["record"])),
            "headers": {
                name: raw.decode("utf-8", "replace")
                for name, raw in headers
                if name.startswith("cdrveil.") and (as_served or name != _CONSENT_VERSION)
            },
            "value": copy,
        }
        return Found(
            route.name,
            timestamp_ms,
            as_served,
            tuple(sorted(in_clear)),
            tuple(sorted(pseudonymized)),
            document,
        )

    def _identified(
        self, fields: dict[str, Any], own: dict[str, str], normalize: bool
    ) -> tuple[set[str], set[str]]:
        """The identifier fields that hold the subject: in clear, and as their pseudonym."""
        in_clear: set[str] = set()
        pseudonymized: set[str] = set()
        for name, value in fields.items():
            if not _is_identifier(name) or not isinstance(value, str):
                continue
            kind = FIELDS[name][0]
            if value in own and own[value] == ID_TYPE[kind]:
                pseudonymized.add(name)
                continue
            clear = self._normalized(kind, value) if normalize else value
            if clear is not None and clear == self._clear[kind]:
                in_clear.add(name)
        return in_clear, pseudonymized

    def _normalized(self, kind: Kind, value: str) -> str | None:
        if kind is Kind.MSISDN:
            return self._normalizer(value)
        if kind is Kind.IMSI:
            return normalize_imsi(value)
        return normalize_imei(value)


def handover(fields: dict[str, Any], own: set[str], as_served: bool) -> dict[str, Any]:
    """The copy of an output's fields for the subject: what is another person's is withheld.

    Withheld: every identifier field that is not the subject's (in clear, masked or as a
    pseudonym), and, where the subject is the other party, the served subscriber's own
    data other than the event's times (their location and handset), and fields the
    catalog does not know (mediation's own, on lawful-intercept copies).
    """
    copy: dict[str, Any] = {}
    for name, value in fields.items():
        if name in own or name in _ALWAYS:
            copy[name] = value
            continue
        known = FIELDS.get(name)
        if known is None:
            copy[name] = value if as_served else WITHHELD
            continue
        kind, owner = known
        withhold = _is_identifier(name) or (
            owner is Owner.SERVED and not as_served and kind is not Kind.TIME
        )
        copy[name] = WITHHELD if withhold else value
    return copy


#: Kept in every copy: what an erasure request downstream names the output by.
_ALWAYS: Final = frozenset({"recordId", "purpose"})


def _withheld(original: dict[str, Any], copy: dict[str, Any]) -> list[str]:
    return [name for name in original if copy.get(name) == WITHHELD]


def _time(timestamp_ms: int) -> str:
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class RouteSummary:
    """What one route published about the subject: counts, times, fields in clear."""

    route: str
    topic: str
    kind: RouteKind
    scanned: int = 0
    found: int = 0
    as_served: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    in_clear: Counter[str] = field(default_factory=Counter)
    pseudonymized: Counter[str] = field(default_factory=Counter)

    def add(self, found: Found) -> None:
        """Count one of the subject's outputs."""
        self.found += 1
        self.as_served += found.as_served
        ms = found.timestamp_ms
        self.first_ms = ms if self.first_ms is None else min(self.first_ms, ms)
        self.last_ms = ms if self.last_ms is None else max(self.last_ms, ms)
        self.in_clear.update(found.in_clear)
        self.pseudonymized.update(found.pseudonymized)

    def document(self) -> dict[str, Any]:
        """As JSON; names of fields only, never a value."""
        return {
            "route": self.route,
            "topic": self.topic,
            "kind": str(self.kind),
            "scanned": self.scanned,
            "found": self.found,
            "asServedSubscriber": self.as_served,
            "asOtherParty": self.found - self.as_served,
            "first": None if self.first_ms is None else _time(self.first_ms),
            "last": None if self.last_ms is None else _time(self.last_ms),
            "fieldsInClear": dict(sorted(self.in_clear.items())),
            "fieldsPseudonymized": dict(sorted(self.pseudonymized.items())),
        }


def summary_table(summaries: list[RouteSummary]) -> str:
    """Per route: how many outputs are the subject's, when, and which fields were in clear."""
    lines = [f"{'route':<22} {'read':>10} {'found':>7} {'served':>7} {'other':>7}  first .. last"]
    for s in summaries:
        span = "-" if s.first_ms is None else f"{_time(s.first_ms)} .. {_time(s.last_ms or 0)}"
        lines.append(
            f"{s.route:<22} {s.scanned:>10,} {s.found:>7,} {s.as_served:>7,} "
            f"{s.found - s.as_served:>7,}  {span}"
        )
        clear = ", ".join(f"{n} ({c:,})" for n, c in sorted(s.in_clear.items())) or "none"
        hidden = ", ".join(f"{n} ({c:,})" for n, c in sorted(s.pseudonymized.items())) or "none"
        lines.append(f"{'':<22}   in clear: {clear}; pseudonymized: {hidden}")
    return "\n".join(lines) + "\n"
