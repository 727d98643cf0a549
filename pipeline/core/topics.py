"""The topics the pipeline reads: the two record topics and the two state topics.

These names are fixed (consumers and producers code against them); a deployment may only
prefix them (``CDRVEIL_TOPIC_PREFIX``). The topics the pipeline *writes* (each route's and
the dead-letter topic) are the policy's (``pipeline/policies/default.toml``), and the
policy is refused if it names one of these.
"""

from __future__ import annotations

from typing import Final

#: Voice CDRs in (key: the served MSISDN as the record carries it, or none).
VOICE: Final = "cdr.voice"
#: SMS records in.
SMS: Final = "cdr.sms"
#: Consent states, compacted (key: the subscriber's MSISDN, E.164 digits).
CONSENT: Final = "consent.state"
#: LI warrants, compacted (key: the LIID).
WARRANTS: Final = "li.warrants"

#: The record topics the worker consumes, in this order.
INPUTS: Final = (VOICE, SMS)
#: The compacted state topics every worker reads whole.
STATE_TOPICS: Final = (CONSENT, WARRANTS)
#: Every topic the pipeline reads: no output may be written to one of them.
READ_TOPICS: Final = frozenset(INPUTS + STATE_TOPICS)
