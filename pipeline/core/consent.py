"""Consent states from the self-service portal, and the table that holds them.

The table answers *not consented* whenever it cannot answer yes for certain:
no state, a tombstone, a state with a missing or invalid field, or a purpose
that is absent or not literally ``true`` (fail closed, DOMAIN.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from pipeline.core.decode import parse_time
from pipeline.core.normalize import MsisdnNormalizer


class ConsentState(NamedTuple):
    """A subscriber's current consent: the purposes granted and the state's version."""

    version: int
    granted: frozenset[str]

    def allows(self, purpose: str) -> bool:
        """Whether the subscriber consented to ``purpose``."""
        return purpose in self.granted


#: Look up the consent of one subscriber by E.164 digits; ``None`` = no consent at all.
ConsentLookup = Callable[[str], ConsentState | None]


class ConsentProblem(NamedTuple):
    """Why a consent message was not accepted (the subscriber is then treated as not consenting)."""

    code: str
    message: str


def parse_consent(
    key: bytes | None, value: bytes | None, msisdn: MsisdnNormalizer
) -> tuple[str, ConsentState | None] | ConsentProblem:
    """Parse one ``consent.state`` message into ``(msisdn, state)``; tombstone -> ``None`` state."""
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
    return subscriber, ConsentState(version, granted)


class ConsentTable:
    """Every subscriber's latest consent state, held compactly in memory.

    Identical states are shared, since a million subscribers have only a few
    distinct (version, purposes) combinations; this keeps a worker holding all
    of them small.
    """

    __slots__ = ("_interned", "_states", "msisdn", "rejected")

    def __init__(self, msisdn: MsisdnNormalizer) -> None:
        self.msisdn = msisdn
        self._states: dict[str, ConsentState] = {}
        self._interned: dict[ConsentState, ConsentState] = {}
        #: Count of messages not accepted, by problem code (their subscribers lose consent).
        self.rejected: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._states)

    def apply(self, key: bytes | None, value: bytes | None) -> ConsentProblem | None:
        """Apply one message from ``consent.state``; return the problem if it was rejected."""
        parsed = parse_consent(key, value, self.msisdn)
        if isinstance(parsed, ConsentProblem):
            self.rejected[parsed.code] = self.rejected.get(parsed.code, 0) + 1
            # Fail closed: a state we cannot read replaces whatever we held before.
            if parsed.code not in ("missing_key", "bad_key") and key is not None:
                subscriber = self.msisdn(key.decode("utf-8", "replace"))
                if subscriber is not None:
                    self._states.pop(subscriber, None)
            return parsed
        subscriber, state = parsed
        if state is None:
            self._states.pop(subscriber, None)
        else:
            self._states[subscriber] = self._interned.setdefault(state, state)
        return None

    def get(self, msisdn: str) -> ConsentState | None:
        """The consent of the subscriber with these E.164 digits, or ``None``."""
        return self._states.get(msisdn)
