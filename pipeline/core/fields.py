"""The catalog of record fields: their type and whose personal data they are.

The policy refers to fields by their 3GPP TS 32.298 names; this catalog says,
for each, how it is validated and whose consent decides what happens to it.
Fields not listed here may arrive (mediation adds its own) but only the
lawful-intercept route ever carries them: every other route is an allow-list.
"""

from __future__ import annotations

from enum import Enum
from typing import Final


class Kind(Enum):
    """How a field's value is validated and normalized."""

    MSISDN = "msisdn"
    IMSI = "imsi"
    IMEI = "imei"
    TIME = "time"
    TEXT = "text"
    COUNT = "count"
    TEXT_OR_COUNT = "text_or_count"
    LOCATION = "location"
    LOCATION_CHANGES = "location_changes"


class Owner(Enum):
    """Whose consent decides the field's fate."""

    #: The served subscriber (their identities, handset, location and times).
    SERVED = "served subscriber"
    #: The person the number itself identifies, judged by that number's own consent.
    NUMBER = "the number's own subscriber"
    #: Not personal data about a subscriber (network elements, counters, causes).
    NONE = "nobody (not personal)"


#: The field every record must carry and every output carries as received: it traces an
#: output to its input (no policy rule applies to it; the policy refuses one).
RECORD_ID: Final = "recordId"

#: Field name -> (kind, owner). Names are TS 32.298's.
FIELDS: Final[dict[str, tuple[Kind, Owner]]] = {
    RECORD_ID: (Kind.TEXT, Owner.NONE),
    "recordType": (Kind.TEXT, Owner.NONE),
    "servedIMSI": (Kind.IMSI, Owner.SERVED),
    "servedIMEI": (Kind.IMEI, Owner.SERVED),
    "servedMSISDN": (Kind.MSISDN, Owner.SERVED),
    "callingNumber": (Kind.MSISDN, Owner.NUMBER),
    "calledNumber": (Kind.MSISDN, Owner.NUMBER),
    "translatedNumber": (Kind.MSISDN, Owner.NUMBER),
    "connectedNumber": (Kind.MSISDN, Owner.NUMBER),
    "roamingNumber": (Kind.MSISDN, Owner.NUMBER),
    "destinationNumber": (Kind.MSISDN, Owner.NUMBER),
    "originationNumber": (Kind.MSISDN, Owner.NUMBER),
    # The SMS centre is a network element, validated as an E.164 address.
    "serviceCentre": (Kind.MSISDN, Owner.NONE),
    "recordingEntity": (Kind.TEXT, Owner.NONE),
    "location": (Kind.LOCATION, Owner.SERVED),
    "changeOfLocation": (Kind.LOCATION_CHANGES, Owner.SERVED),
    "basicService": (Kind.TEXT, Owner.NONE),
    "seizureTime": (Kind.TIME, Owner.SERVED),
    "answerTime": (Kind.TIME, Owner.SERVED),
    "releaseTime": (Kind.TIME, Owner.SERVED),
    "originationTime": (Kind.TIME, Owner.SERVED),
    "deliveryTime": (Kind.TIME, Owner.SERVED),
    "callDuration": (Kind.COUNT, Owner.NONE),
    "causeForTerm": (Kind.TEXT, Owner.NONE),
    "diagnostics": (Kind.TEXT_OR_COUNT, Owner.NONE),
    "callReference": (Kind.TEXT, Owner.NONE),
    "sequenceNumber": (Kind.COUNT, Owner.NONE),
    "systemType": (Kind.TEXT, Owner.NONE),
    "messageReference": (Kind.COUNT, Owner.NONE),
    "smsResult": (Kind.TEXT_OR_COUNT, Owner.NONE),
}

VOICE_TYPES: Final = frozenset({"moCallRecord", "mtCallRecord"})
SMS_TYPES: Final = frozenset({"moSMSRecord", "mtSMSRecord"})
MO_TYPES: Final = frozenset({"moCallRecord", "moSMSRecord"})

#: The kinds of value that identify a person or a device (a number, an IMSI, an IMEI).
IDENTIFIER_KINDS: Final = (Kind.MSISDN, Kind.IMSI, Kind.IMEI)

#: Fields that hold a subscriber's identifier: never in clear on an analytics topic without
#: consent (the SMS centre's address is a network element, not one of them).
IDENTIFIER_FIELDS: Final = tuple(
    name
    for name, (kind, owner) in FIELDS.items()
    if kind in IDENTIFIER_KINDS and owner is not Owner.NONE
)

#: Fields that hold a subscriber's number and are matched against MSISDN warrant targets.
NUMBER_FIELDS: Final = tuple(
    name
    for name, (kind, owner) in FIELDS.items()
    if kind is Kind.MSISDN and owner is not Owner.NONE
)
