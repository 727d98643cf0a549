"""Identifier normalization: every input form of one identity gives one value.

Lookups, warrant matches and pseudonyms all work on these normalized values,
so ``+46 70-123 45 67``, ``0046701234567``, ``46701234567`` and the national
``0701234567`` are one subscriber. Functions return ``None`` for anything that
is not a valid identifier; they never raise on bad input.
"""

from __future__ import annotations

from typing import Final

from pipeline import defaults
from pipeline.core.cache import TwoGenerationCache

# Separators people and mediation systems put into numbers; removed before parsing.
_SEPARATORS: Final = str.maketrans("", "", " -.()/\t")
_CACHE_LIMIT: Final = 1 << 17

E164_MIN_DIGITS: Final = 7
E164_MAX_DIGITS: Final = 15


def _is_digits(text: str) -> bool:
    # str.isdigit alone accepts other scripts' digits ("٣"); identifiers are ASCII.
    return text.isascii() and text.isdigit()


class MsisdnNormalizer:
    """Turn an MSISDN in any accepted input form into E.164 digits (no ``+``).

    Accepted: ``+<cc><nsn>``, ``00<cc><nsn>``, ``<cc><nsn>`` and the national
    form ``<trunk><nsn>`` (home country code and trunk prefix are settings),
    with spaces, dashes, dots, slashes or parentheses anywhere.
    """

    __slots__ = ("cache", "country_code", "international_prefix", "trunk_prefix")

    def __init__(
        self,
        country_code: str = defaults.COUNTRY_CODE,
        trunk_prefix: str = defaults.TRUNK_PREFIX,
        international_prefix: str = "00",
    ) -> None:
        if not (_is_digits(country_code) and 1 <= len(country_code) <= 3):
            raise ValueError("country_code must be 1-3 digits, e.g. 46")
        if trunk_prefix and not _is_digits(trunk_prefix):
            raise ValueError("trunk_prefix must be digits (or empty), e.g. 0")
        if not (_is_digits(international_prefix) and international_prefix != trunk_prefix):
            raise ValueError(
                "international_prefix must be digits that differ from the trunk prefix"
            )
        self.country_code = country_code
        self.trunk_prefix = trunk_prefix
        self.international_prefix = international_prefix
        # Subscribers repeat (a few numbers make most calls), so a bounded cache pays.
        self.cache: TwoGenerationCache[str | None] = TwoGenerationCache(
            self._normalize, _CACHE_LIMIT
        )

    def __call__(self, raw: str) -> str | None:
        """Return the E.164 digits of ``raw``, or ``None`` if it is no valid MSISDN."""
        return self.cache(raw)

    def _normalize(self, raw: str) -> str | None:
        # "+46 (0)70-123 45 67": the bracketed trunk prefix is dialled only nationally.
        text = raw.replace("(0)", "").translate(_SEPARATORS)
        if text.startswith("+"):
            digits = text[1:]
        elif text.startswith(self.international_prefix):
            digits = text[len(self.international_prefix) :]
        elif self.trunk_prefix and text.startswith(self.trunk_prefix):
            digits = self.country_code + text[len(self.trunk_prefix) :]
        else:
            digits = text
        if not _is_digits(digits) or digits[0] == "0":
            return None
        if not E164_MIN_DIGITS <= len(digits) <= E164_MAX_DIGITS:
            return None
        return digits


def normalize_imsi(raw: str) -> str | None:
    """Return the IMSI (MCC + MNC + MSIN, 14-15 digits) or ``None``."""
    if _is_digits(raw) and 14 <= len(raw) <= 15:
        return raw
    return None


def luhn_check_digit(digits14: str) -> int:
    """The Luhn check digit of the first 14 IMEI digits (3GPP TS 23.003 annex B)."""
    total = 0
    for index, char in enumerate(digits14):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def normalize_imei(raw: str) -> str | None:
    """Return the 14 digits that identify a device (TAC + serial), or ``None``.

    Accepts 14 digits, 15 with a correct Luhn check digit, or 16 (IMEISV,
    the last two being the software version), with optional separators.
    """
    text = raw if _is_digits(raw) else raw.translate(_SEPARATORS)
    if not _is_digits(text):
        return None
    length = len(text)
    if length == 14 or length == 16:
        return text[:14]
    if length == 15 and luhn_check_digit(text[:14]) == ord(text[14]) - 48:
        return text[:14]
    return None


def tac_of(imei14: str) -> str:
    """The Type Allocation Code (handset model): the first 8 digits of an IMEI."""
    return imei14[:8]
