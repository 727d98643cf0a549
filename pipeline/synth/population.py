"""Subscribers of the home network, their identities, and how numbers are written."""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass
from typing import NamedTuple

from pipeline.synth.workload import Workload

# Type allocation codes of common handsets; the TAC (first 8 IMEI digits) names the model.
TACS: tuple[str, ...] = (
    "35332510",
    "35391110",
    "35875611",
    "35209900",
    "35467809",
    "86891504",
    "35161178",
    "01326300",
)

# Swedish mobile ranges 070, 072, 073, 076, 079 (national significant number 7X + 7 digits).
_MOBILE_PREFIXES = ("70", "72", "73", "76", "79")
_BLOCK = 10_000_000

#: How a number can be written on input, in the order used by `render_number`.
NUMBER_FORMS: tuple[str, ...] = ("spaced", "double_zero", "digits", "national", "plus")


class Subscriber(NamedTuple):
    """One home-network subscription: identities in canonical form and its usual cell."""

    msisdn: str  # E.164 digits, e.g. "46701234567"
    imsi: str  # 15 digits, home MCC-MNC + MSIN
    imei: str  # 15 digits, the 15th a Luhn check digit
    home_lac: int
    home_cell: int


@dataclass(frozen=True, slots=True, eq=False)
class Population:
    """Subscribers ordered by activity rank (index 0 calls most) and the sampling table."""

    subscribers: tuple[Subscriber, ...]
    cum_weights: list[float]  # cumulative Zipf weights by rank (a list: bisect is faster)
    index: dict[str, int]  # E.164 MSISDN -> rank

    @property
    def total_weight(self) -> float:
        """The last cumulative weight: scale a uniform draw by it before bisecting."""
        return self.cum_weights[-1]


def luhn_check_digit(payload: str) -> str:
    """The Luhn check digit of a digit string (for an IMEI, of its first 14 digits)."""
    total = 0
    # The digit next to the check digit is doubled, then every second one to the left.
    for i, ch in enumerate(reversed(payload)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str(-total % 10)


def render_number(cc: str, nsn: str, form: int, home_cc: str, trunk: str) -> str:
    """Write the number `cc`+`nsn` in input form `form` (an index into NUMBER_FORMS).

    The national form exists only for home numbers; a foreign one gets "+" instead.
    """
    if form == 0:
        if cc == home_cc and len(nsn) == 9:
            return f"+{cc} {nsn[:2]}-{nsn[2:5]} {nsn[5:7]} {nsn[7:]}"
        return f"+{cc} {nsn[:3]} {nsn[3:6]} {nsn[6:]}".rstrip()
    if form == 1:
        return f"00{cc}{nsn}"
    if form == 2:
        return cc + nsn
    if form == 3 and cc == home_cc:
        return trunk + nsn
    return f"+{cc}{nsn}"


@functools.lru_cache(maxsize=4)
def population(workload: Workload) -> Population:
    """The workload's subscribers (cached: building 100,000 takes a fraction of a second)."""
    rng = random.Random(f"cdrveil/population/{workload.seed}")  # noqa: S311 -- seeded test data, not secrets
    n = workload.subscribers
    cc = workload.country_code
    plmn = workload.home_networks[0]
    msin_len = 15 - len(plmn)
    numbers = rng.sample(range(len(_MOBILE_PREFIXES) * _BLOCK), n)
    msins = rng.sample(range(10**msin_len), n)
    devices = rng.sample(range(len(TACS) * 1_000_000), n)
    subs = []
    for num, msin, dev in zip(numbers, msins, devices, strict=True):
        payload = f"{TACS[dev // 1_000_000]}{dev % 1_000_000:06d}"
        subs.append(
            Subscriber(
                msisdn=f"{cc}{_MOBILE_PREFIXES[num // _BLOCK]}{num % _BLOCK:07d}",
                imsi=f"{plmn}{msin:0{msin_len}d}",
                imei=payload + luhn_check_digit(payload),
                home_lac=1 + int(rng.random() * 65_000),
                home_cell=1 + int(rng.random() * 65_000),
            )
        )
    skew = workload.skew
    cum = list(itertools.accumulate(1.0 / (rank + 1) ** skew for rank in range(n)))
    return Population(
        subscribers=tuple(subs),
        cum_weights=cum,
        index={s.msisdn: i for i, s in enumerate(subs)},
    )


def other_operator_nsn(rng: random.Random, pop: Population, cc: str) -> str:
    """A home-country mobile number that is not one of our subscribers (no consent known)."""
    while True:
        num = int(rng.random() * len(_MOBILE_PREFIXES) * _BLOCK)
        nsn = f"{_MOBILE_PREFIXES[num // _BLOCK]}{num % _BLOCK:07d}"
        if cc + nsn not in pop.index:
            return nsn
