"""The knobs of a synthetic workload, read once into a frozen object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline import defaults

#: Where generated traffic starts unless told otherwise (the spec's example hour).
DEFAULT_START = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)

#: Purposes of the default policy with the share of subscribers who consent to each.
#: fraud_prevention runs on legitimate interest, so nobody needs to opt in to it.
DEFAULT_CONSENT_SHARES: tuple[tuple[str, float], ...] = (
    ("marketing", 0.3),
    ("service_improvement", 0.5),
    ("fraud_prevention", 0.0),
    ("network_planning", 0.2),
)

#: Every defect the generator can plant, named by the rejection code the decoder must give.
MALFORMED_REASONS: tuple[str, ...] = (
    "invalid_json",
    "invalid_utf8",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "unknown_record_type",
    "bad_msisdn",
    "bad_imsi",
    "bad_imei",
    "bad_timestamp",
    "bad_value",
    "oversize",
    "null_value",
)

# Shares that must be probabilities; checked in one loop so the message names the field.
_SHARE_FIELDS = (
    "voice_share",
    "mo_share",
    "answered_share",
    "partial_share",
    "roaming_share",
    "off_net_share",
    "keyless_share",
    "imsi_only_share",
    "malformed_share",
)


@dataclass(frozen=True, slots=True)
class Workload:
    """A seeded description of subscribers and their traffic; same workload, same bytes.

    Home MSISDNs are `<country_code>7X` + 7 digits (the Swedish mobile plan), IMSIs are
    `home_networks[0]` + MSIN (15 digits), IMEIs carry a valid Luhn digit. `skew` is the
    Zipf exponent of call activity (0 = uniform). `max_record_bytes` must equal the decoder's
    limit: oversize records are built just above it and every other record stays below it.

    Shares: `voice_share` of events are calls (the rest SMS), `mo_share` are mobile-originated,
    `answered_share` of calls are answered, `partial_share` of calls are long and cut into 2-3
    partial records, `off_net_share` of other parties are not our subscribers (half abroad),
    `keyless_share` of messages have no key, `imsi_only_share` of records lack servedMSISDN
    (so no key), `malformed_share` carry one defect drawn evenly from `malformed_reasons`.
    Event start times advance by exponential gaps at `events_per_second` of simulated time.
    """

    subscribers: int = 100_000
    seed: int = 1
    country_code: str = defaults.COUNTRY_CODE
    trunk_prefix: str = defaults.TRUNK_PREFIX
    home_networks: tuple[str, ...] = defaults.HOME_NETWORKS
    consent_shares: tuple[tuple[str, float], ...] = DEFAULT_CONSENT_SHARES
    voice_share: float = 0.6
    mo_share: float = 0.5
    answered_share: float = 0.8
    partial_share: float = 0.02
    roaming_share: float = 0.01
    off_net_share: float = 0.3
    keyless_share: float = 0.05
    imsi_only_share: float = 0.01
    malformed_share: float = 0.0
    malformed_reasons: tuple[str, ...] = MALFORMED_REASONS
    max_record_bytes: int = defaults.MAX_RECORD_BYTES
    skew: float = 0.8
    events_per_second: float = 1000.0

    def __post_init__(self) -> None:
        """Reject settings that would make the generator lie about what it produced."""
        if not 1 <= self.subscribers <= 10_000_000:
            raise ValueError("subscribers must be between 1 and 10,000,000")
        if not (self.country_code.isdigit() and 1 <= len(self.country_code) <= 3):
            raise ValueError("country_code must be 1 to 3 digits")
        if not self.home_networks or not all(
            n.isdigit() and len(n) in (5, 6) for n in self.home_networks
        ):
            raise ValueError("home_networks must be a non-empty tuple of 5-6 digit MCC-MNCs")
        for name in _SHARE_FIELDS:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        for purpose, share in self.consent_shares:
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"consent share of {purpose} must be between 0 and 1")
        unknown = set(self.malformed_reasons) - set(MALFORMED_REASONS)
        if unknown:
            raise ValueError(f"unknown malformed reasons: {sorted(unknown)}")
        if self.malformed_share > 0 and not self.malformed_reasons:
            raise ValueError("malformed_share > 0 needs at least one malformed reason")
        if self.max_record_bytes < 4096:
            raise ValueError("max_record_bytes must be at least 4096 (valid records must fit)")
        if self.skew < 0:
            raise ValueError("skew must be >= 0")
        if self.events_per_second <= 0:
            raise ValueError("events_per_second must be > 0")

    @property
    def purposes(self) -> tuple[str, ...]:
        """The purposes consent states are drawn for, in order."""
        return tuple(p for p, _ in self.consent_shares)
