"""Another party's address that is no digit string: what ingest writes for it.

A served identity must be readable TBCD digits (or the record is rejected), but the other
party of a call or message often is not a subscriber: USSD and service codes carry the TBCD
codes for ``*`` and ``#`` (``*100#``), SMS originators can be alphanumeric (type of number 5,
GSM 7-bit packed, e.g. ``BankID``). Ingest writes such an address as a string the record
decoder classifies (``pipeline/core/party.py``) instead of rejecting the whole record, so the
JSON and the BER paths treat one call alike. An address that cannot be read at all becomes
the empty string (class ``unparseable``): the record still flows.
"""

from __future__ import annotations

from typing import Final

from pipeline.ber.tbcd import TON_ALPHANUMERIC, TON_NATIONAL, Address, address_to_number
from pipeline.core.fields import FIELDS, Owner

__all__ = ["PARTY_FIELDS", "party_address", "party_sms_address"]

#: The record fields that hold another party's number (``Owner.NUMBER``).
PARTY_FIELDS: Final = frozenset(
    name for name, (_, owner) in FIELDS.items() if owner is Owner.NUMBER
)

# TS 29.002 TBCD-STRING: 0-9, then *, #, a, b, c; F is the filler.
_TBCD: Final = "0123456789*#abc"
# The GSM 7-bit default alphabet (TS 23.038) where it agrees with ASCII; other septets are
# written as "?" (a sender name stays alphanumeric, its exact spelling is not needed).
_GSM7: Final = {
    code: chr(code)
    for code in [0x20, 0x21, 0x22, 0x23, *range(0x25, 0x40), *range(0x41, 0x5B), *range(0x61, 0x7B)]
}


def _tbcd(octets: bytes) -> str | None:
    """TBCD with its full alphabet; None if a filler is followed by anything but fillers."""
    chars: list[str] = []
    ended = False
    for octet in octets:
        for nibble in (octet & 0x0F, octet >> 4):
            if nibble == 0x0F:
                ended = True
            elif ended:
                return None
            else:
                chars.append(_TBCD[nibble])
    return "".join(chars)


def _gsm7(octets: bytes, septets: int) -> str:
    """Unpack ``septets`` GSM 7-bit characters (TS 23.038 packing, low bits first)."""
    value = int.from_bytes(octets, "little")
    return "".join(_GSM7.get((value >> (7 * i)) & 0x7F, "?") for i in range(septets))


def _render(ton: int, plan: int, text: str, trunk_prefix: str, country_code: str) -> str:
    if ton == TON_NATIONAL and text.isdigit():
        # A national number as the normalizer reads it; a code is kept as signalled.
        return address_to_number(Address(ton, plan, text), trunk_prefix, country_code)
    return text


def party_address(octets: bytes, trunk_prefix: str, country_code: str) -> str:
    """An address string (BCDDirectoryNumber) of another party, as the record carries it."""
    if not octets:
        return ""
    first = octets[0]
    start = 1 if first & 0x80 else 2
    ton = (first >> 4) & 0x07
    body = octets[start:]
    if ton == TON_ALPHANUMERIC:
        return _gsm7(body, len(body) * 8 // 7)
    text = _tbcd(body)
    if text is None:
        return ""
    return _render(ton, first & 0x0F, text, trunk_prefix, country_code)


def party_sms_address(octets: bytes, trunk_prefix: str, country_code: str) -> str:
    """A TS 23.040 address field of another party (length in semi-octets, type, value)."""
    if not octets:
        return ""
    if octets[0] & 0x80:
        return party_address(octets, trunk_prefix, country_code)
    if len(octets) < 2:
        return ""
    count, toa, body = octets[0], octets[1], octets[2:]
    ton = (toa >> 4) & 0x07
    if ton == TON_ALPHANUMERIC:
        # The length counts semi-octets of the packed value: 4 bits each.
        return _gsm7(body, min(count * 4 // 7, len(body) * 8 // 7))
    text = _tbcd(body)
    if text is None:
        return ""
    return _render(ton, toa & 0x0F, text[:count], trunk_prefix, country_code)
