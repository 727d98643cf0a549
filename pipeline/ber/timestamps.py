"""The 32.298 ``TimeStamp``: 9 octets of BCD local time plus the offset to UTC, to RFC 3339.

Layout (TS 32.298, GenericChargingDataTypes)::

    YY MM DD hh mm ss   six octets, BCD with the tens digit in the high nibble
    S                   the sign of the offset, ASCII "+" (0x2B) or "-" (0x2D)
    hh mm               the offset to UTC, BCD

The record carries no century: YY is read as 20YY (2000-2099). An offset of zero becomes
"Z", matching the JSON records' "2026-11-21T05:00:00Z"; any other offset is kept, so
"2026-11-21T06:00:00+01:00" stays local time with its offset, as the JSON path carries it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["decode_timestamp", "encode_timestamp_octets"]

_PLUS: Final = 0x2B
_MINUS: Final = 0x2D
# Octet -> its two-digit BCD value, or 100 for a non-decimal nibble (out of every range).
_BCD: Final = tuple(
    (b >> 4) * 10 + (b & 0xF) if b >> 4 < 10 and b & 0xF < 10 else 100 for b in range(256)
)
_DAYS: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def decode_timestamp(octets: bytes) -> str | None:
    """Decode a 9-octet BCD TimeStamp to an RFC 3339 string with offset; None if invalid."""
    if len(octets) != 9:
        return None
    sign = octets[6]
    if sign != _PLUS and sign != _MINUS:
        return None
    year, month, day, hour, minute, second, off_hour, off_minute = (
        _BCD[octets[0]], _BCD[octets[1]], _BCD[octets[2]], _BCD[octets[3]],
        _BCD[octets[4]], _BCD[octets[5]], _BCD[octets[7]], _BCD[octets[8]],
    )  # fmt: skip
    if (
        year > 99
        or not 1 <= month <= 12
        or day < 1
        # Years are 2000-2099, where every fourth year is a leap year.
        or day > (29 if month == 2 and year % 4 == 0 else _DAYS[month])
        or hour > 23
        or minute > 59
        or second > 59
        or off_hour > 23
        or off_minute > 59
    ):
        return None
    text = octets.hex()
    date_time = f"20{text[0:2]}-{text[2:4]}-{text[4:6]}T{text[6:8]}:{text[8:10]}:{text[10:12]}"
    if off_hour == 0 and off_minute == 0:
        return date_time + "Z"
    return f"{date_time}{chr(sign)}{text[14:16]}:{text[16:18]}"


def encode_timestamp_octets(
    year: int, month: int, day: int, hour: int, minute: int, second: int, offset_minutes: int
) -> bytes:
    """Encode local time and its offset to UTC (minutes, signed) as a 9-octet TimeStamp.

    Used to build test files and benchmarks; raises ValueError on values the format
    cannot hold, since a caller building a file has a bug, not bad data.
    """
    if not 2000 <= year <= 2099 or abs(offset_minutes) >= 24 * 60:
        raise ValueError("year must be 2000-2099 and the offset under 24 hours")
    sign = _MINUS if offset_minutes < 0 else _PLUS
    off_hour, off_minute = divmod(abs(offset_minutes), 60)
    digits = f"{year % 100:02d}{month:02d}{day:02d}{hour:02d}{minute:02d}{second:02d}"
    return bytes.fromhex(digits) + bytes([sign]) + bytes.fromhex(f"{off_hour:02d}{off_minute:02d}")
