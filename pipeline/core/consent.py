"""Consent states from the self-service portal, and the table that holds them.

The table answers *not consented* whenever it cannot answer yes for certain:
no state, a tombstone, a state with a missing or invalid field, or a purpose
that is absent or not literally ``true`` (fail closed, DOMAIN.md).

A state also carries the subscriber's objections (GDPR Art. 21) to legitimate-interest
purposes: absent means no objection, and a state the table cannot read counts as an
objection to every one of them (fail closed the other way round).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple

import orjson

from pipeline.core.decode import parse_time
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.unknown import CONSENT_FIELDS, count_unknown


class ConsentState(NamedTuple):
    """A subscriber's current consent: the purposes granted, those objected to, the version."""

    version: int
    granted: frozenset[str]
    #: The legitimate-interest purposes the subscriber objected to (Art. 21).
    objections: frozenset[str] = frozenset()
    #: ``False`` for the stand-in of a state that could not be read (see :data:`UNREADABLE`).
    readable: bool = True

    def allows(self, purpose: str) -> bool:
        """Whether the subscriber consented to ``purpose``."""
        return purpose in self.granted

    def objects(self, purpose: str) -> bool:
        """Whether the subscriber objected to ``purpose`` (an unreadable state objects to all)."""
        return not self.readable or purpose in self.objections


#: What the table holds for a subscriber whose latest state could not be read: no consent
#: to anything and an objection to every legitimate-interest purpose (fail closed). Outputs
#: it decides carry ``cdrveil.consent-version: none``, as with no state at all.
UNREADABLE: Final = ConsentState(0, frozenset(), frozenset(), readable=False)


#: Look up the consent of one subscriber by E.164 digits; ``None`` = no consent at all.
ConsentLookup = Callable[[str], ConsentState | None]


class ConsentProblem(NamedTuple):
    """Why a consent message was not accepted (the subscriber is then treated as not consenting)."""

    code: str
    message: str


def parse_consent(
    key: bytes | None,
    value: bytes | None,
    msisdn: MsisdnNormalizer,
    unknown: dict[str, int] | None = None,
) -> tuple[str, ConsentState | None] | ConsentProblem:
    """Parse one ``consent.state`` message into ``(msisdn, state)``; tombstone -> ``None`` state.

    Fields the schema does not define are counted into ``unknown`` (``unknown.py``)."""
    if key is None:
        return ConsentProblem("missing_key", "consent message has no key")
    try:
        subscriber = msisdn(key.decode("utf-8"))
    except UnicodeDecodeError:
        subscriber = None
    if subscriber is None:
        return ConsentProblem("bad_key", "consent message key is not a valid MSISDN")
    if value is None:
        return subscriber, None
    try:
        obj: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        return ConsentProblem("invalid_json", "consent message is not valid JSON")
    if type(obj) is not dict:
        return ConsentProblem("not_an_object", "consent message is not a JSON object")
    if unknown is not None:
        count_unknown(obj, CONSENT_FIELDS, unknown)
    body_msisdn = obj.get("msisdn")
    if type(body_msisdn) is not str or msisdn(body_msisdn) != subscriber:
        return ConsentProblem("key_mismatch", "consent 'msisdn' is missing or differs from the key")
    version = obj.get("version")
    if type(version) is not int or version < 0:
        return ConsentProblem("bad_version", "consent 'version' must be a non-negative integer")
    updated = obj.get("updatedAt")
    if type(updated) is not str or parse_time(updated) is None:
        return ConsentProblem("bad_timestamp", "consent 'updatedAt' must be RFC 3339 with offset")
    purposes = obj.get("purposes")
    if type(purposes) is not dict:
        return ConsentProblem("bad_purposes", "consent 'purposes' must be an object")
    granted = frozenset(name for name, flag in purposes.items() if flag is True)
    objections = _objections(obj.get("objections", {}))
    if objections is None:
        return ConsentProblem(
            "bad_objections", "consent 'objections' must be an object of true or false"
        )
    return subscriber, ConsentState(version, granted, objections)


def _objections(value: object) -> frozenset[str] | None:
    """The purposes objected to (``true``); ``None`` if the field is not readable."""
    if type(value) is not dict or not all(type(flag) is bool for flag in value.values()):
        return None
    return frozenset(name for name, flag in value.items() if flag is True)


class ConsentTable:
    """Every subscriber's latest consent state, held compactly in memory.

    Identical states are shared, since a million subscribers have only a few
    distinct (version, purposes) combinations; this keeps a worker holding all
    of them small.
    """

    __slots__ = ("_interned", "_states", "msisdn", "rejected", "unknown_fields")

    def __init__(self, msisdn: MsisdnNormalizer) -> None:
        self.msisdn = msisdn
        self._states: dict[str, ConsentState] = {}
        self._interned: dict[ConsentState, ConsentState] = {}
        #: Count of messages not accepted, by problem code (their subscribers lose consent).
        self.rejected: dict[str, int] = {}
        #: Count of messages carrying a field the schema does not define, by field name.
        self.unknown_fields: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._states)

    def apply(self, key: bytes | None, value: bytes | None) -> ConsentProblem | None:
        """Apply one message from ``consent.state``; return the problem if it was rejected."""
        parsed = parse_consent(key, value, self.msisdn, self.unknown_fields)
        if isinstance(parsed, ConsentProblem):
            self.rejected[parsed.code] = self.rejected.get(parsed.code, 0) + 1
            # Fail closed: a state we cannot read replaces whatever we held before, with no
            # consent and an objection to every legitimate-interest purpose.
            if parsed.code not in ("missing_key", "bad_key") and key is not None:
                subscriber = self.msisdn(key.decode("utf-8", "replace"))
                if subscriber is not None:
                    self._states[subscriber] = UNREADABLE
            return parsed
        subscriber, state = parsed
        if state is None:
            self._states.pop(subscriber, None)
        else:
            self._states[subscriber] = self._interned.setdefault(state, state)
        return None

    def get(self, msisdn: str) -> ConsentState | None:
        """The consent of the subscriber with these E.164 digits (:data:`UNREADABLE` if their
        latest state could not be read), or ``None``."""
        return self._states.get(msisdn)
