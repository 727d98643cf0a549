"""Party numbers that are not a subscriber's MSISDN: what they are and what a route gets.

The other party of a call or message is not always a subscriber: ``*100#`` is a USSD code,
``112`` an emergency service, ``BankID`` an SMS sender name, and some networks write an empty
or digit-less calling number. Such a value is no reason to refuse the record (only an
unreadable *served* identity is): it is classified, counted, and treated as the policy's
``[party_numbers]`` table says. A non-MSISDN has no subscriber and so no consent.

The compiled engine classifies and decides the same way (``engine/src/party.rs``).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Final

from pipeline.core.actions import Action
from pipeline.core.normalize import E164_MIN_DIGITS
from pipeline.errors import PolicyError


class PartyClass(Enum):
    """What a party-number field holds (the value is the policy file's and the metric's word)."""

    #: A valid E.164 number after normalization: judged by that number's own consent.
    MSISDN = "msisdn"
    #: Contains ``*`` or ``#`` (USSD, supplementary-service codes), no embedded number.
    SERVICE_CODE = "service_code"
    #: Digits only (separators aside), too short for E.164: services, not persons.
    SHORT_NUMBER = "short_number"
    #: Contains ASCII letters (SMS sender names); a name can be a person's.
    ALPHANUMERIC = "alphanumeric"
    #: Anything else: empty, no digits, too long, a code that embeds a number.
    UNPARSEABLE = "unparseable"


#: What each class is, for ``cdrveil ropa`` and ``explain``.
PARTY_DESCRIPTIONS: Final = {
    PartyClass.MSISDN: "a subscriber's E.164 number: the route's field rule and its consent",
    PartyClass.SERVICE_CODE: "contains * or # (USSD and service codes such as *100#)",
    PartyClass.SHORT_NUMBER: "digits only, fewer than 7 (112, 1177): a service, not a person",
    PartyClass.ALPHANUMERIC: "contains letters (SMS sender names); may be a person's name",
    PartyClass.UNPARSEABLE: "anything else: empty, no digits, too long, or a code that "
    "embeds a number of 7 or more digits (call forwarding to a person)",
}

#: The classes a policy gives an action to (an MSISDN follows the route's field rule).
POLICY_CLASSES: Final[tuple[PartyClass, ...]] = tuple(
    c for c in PartyClass if c is not PartyClass.MSISDN
)

#: The actions a class may take; a number that is no MSISDN cannot be masked or generalized.
CLASS_ACTIONS: Final = (Action.KEEP, Action.DROP, Action.PSEUDONYMIZE)

#: Classes that may hold a person's identifier: never kept in clear (there is no consent).
NEVER_KEPT: Final = frozenset({PartyClass.ALPHANUMERIC, PartyClass.UNPARSEABLE})

#: The action of every class when a policy has no ``[party_numbers]`` table: fail closed.
ABSENT: Final[dict[PartyClass, Action]] = {c: Action.DROP for c in POLICY_CLASSES}

#: The identifier type (key domain) non-MSISDN values are pseudonymized under, so their
#: pseudonyms can never equal an MSISDN's (another derived key).
PARTY_ID_TYPE: Final = "party"

#: A run of this many digits in a service code may be a person's number
#: (``**21*+46701234567#`` forwards calls to it): such a code is ``unparseable``.
EMBEDDED_NUMBER_DIGITS: Final = 7

_EMBEDDED: Final = re.compile(rf"[0-9]{{{EMBEDDED_NUMBER_DIGITS}}}")
_LETTER: Final = re.compile(r"[A-Za-z]")
# The separators the MSISDN normalizer removes (normalize._SEPARATORS).
_SEPARATORS: Final = str.maketrans("", "", " -.()/\t")


def classify(value: str) -> PartyClass:
    """The class of a party-number value that did not normalize to an MSISDN."""
    if "*" in value or "#" in value:
        if _EMBEDDED.search(value):
            return PartyClass.UNPARSEABLE
        return PartyClass.SERVICE_CODE
    if _LETTER.search(value):
        return PartyClass.ALPHANUMERIC
    digits = value.translate(_SEPARATORS)
    if digits and digits.isascii() and digits.isdigit() and len(digits) < E164_MIN_DIGITS:
        return PartyClass.SHORT_NUMBER
    return PartyClass.UNPARSEABLE


def route_action(otherwise: Action, class_action: Action) -> Action:
    """What a route does with a non-MSISDN party value.

    The value has no consent, so the route's ``otherwise`` applies, and the class's action
    decides how: a route that drops the field without consent drops it; any other gets the
    class's action (keep: the value as received; pseudonymize: under the party key).
    """
    if otherwise is Action.DROP:
        return Action.DROP
    return class_action


def parse_table(table: object, source: str) -> dict[PartyClass, Action]:
    """The ``[party_numbers]`` table: one action per class; absent classes drop."""
    if table is None:
        return dict(ABSENT)
    if not isinstance(table, dict):
        raise PolicyError(f"{source}: [party_numbers] must be a table")
    actions = dict(ABSENT)
    for name, word in table.items():
        try:
            party = PartyClass(name)
        except ValueError:
            party = None
        if party is None or party is PartyClass.MSISDN:
            known = ", ".join(c.value for c in POLICY_CLASSES)
            raise PolicyError(
                f"{source}: unknown class {name!r} in [party_numbers] (one of {known}; an "
                "MSISDN follows each route's field rule)"
            )
        choices = ", ".join(a.value for a in CLASS_ACTIONS)
        action = next((a for a in CLASS_ACTIONS if a.value == word), None)
        if action is None:
            raise PolicyError(
                f"{source}: [party_numbers] {name} = {word!r}: a number that is no MSISDN "
                f"can only be one of {choices}"
            )
        if action is Action.KEEP and party in NEVER_KEPT:
            raise PolicyError(
                f"{source}: [party_numbers] {name} = 'keep' would put a value that may be a "
                "person's identifier in clear without anyone's consent; use pseudonymize "
                "or drop"
            )
        actions[party] = action
    return actions
