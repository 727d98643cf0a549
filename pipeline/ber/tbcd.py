"""Digit-string codecs of 3GPP records: TBCD, address strings, PLMN ids, location octets.

Every decoder here takes octets and returns a value or ``None`` when the octets are not a
valid encoding; none of them raises on any input (a property test checks this), so the
caller decides which rejection code an invalid field earns.

Address strings (MAP ``AddressString``/``ISDN-AddressString``, TS 29.002; 32.298
``BCDDirectoryNumber`` = TS 24.008 "Calling/Called party BCD number") start with a
type-of-number/numbering-plan octet::

    bit 8     extension (1 = no further octet; 0 = a presentation/screening octet follows,
              which only BCDDirectoryNumber uses)
    bits 7-5  type of number: 0 unknown, 1 international, 2 national, 3 network specific,
              4 subscriber, 5 alphanumeric (TS 23.040 only), 6 abbreviated
    bits 4-1  numbering plan: 1 = ISDN/telephony (E.164)

How an address becomes the JSON string the pipeline's ``MsisdnNormalizer`` reads:

- international: the E.164 digits as they are ("46701234567");
- national: the trunk prefix (a setting, "0" by default) and the national significant
  number ("0701234567"), unless the digits already start with the prefix (some switches
  mark numbers national yet keep the prefix; a national significant number never starts
  with it), so the normalizer adds the home country code. Where the numbering plan has
  no trunk prefix (setting ""), the home country code and the number: E.164 directly;
- unknown, network specific, subscriber, abbreviated: the digits as signalled. With an
  unknown type the digits are usually what was dialled, prefixes included, so adding a
  prefix would corrupt "0046..." or "0701..."; the normalizer judges them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "TON_INTERNATIONAL",
    "TON_NATIONAL",
    "TON_UNKNOWN",
    "Address",
    "address_to_number",
    "decode_address",
    "decode_plmn_id",
    "decode_sms_address",
    "decode_tbcd",
    "decode_uint16",
]

TON_UNKNOWN: Final = 0
TON_INTERNATIONAL: Final = 1
TON_NATIONAL: Final = 2
TON_ALPHANUMERIC: Final = 5

# TBCD puts the first digit in the low nibble; swapping nibbles first lets bytes.hex()
# (written in C) produce the digits in order, which is what makes this decoder fast.
_SWAP_NIBBLES: Final = bytes(((b & 0x0F) << 4) | (b >> 4) for b in range(256))


def decode_tbcd(octets: bytes) -> str | None:
    """Decode a TBCD digit string (low nibble first, filler F at the end); None if invalid.

    Filler nibbles are accepted only after the last digit (some encoders pad whole 0xFF
    octets). Any other non-digit nibble (the TBCD codes for *, #, a, b, c) makes the
    string invalid, since every field this module decodes is a digit string.
    """
    text = octets.translate(_SWAP_NIBBLES).hex().rstrip("f")
    if not text or not text.isdigit():
        return None
    return text


@dataclass(frozen=True, slots=True)
class Address:
    """A decoded address string: type of number, numbering plan and digits."""

    type_of_number: int
    numbering_plan: int
    digits: str


def decode_address(octets: bytes) -> Address | None:
    """Decode an address string with its leading type-of-number octet; None if invalid.

    Returns None for an empty value, a value with no digits, or non-digit content.
    """
    if not octets:
        return None
    first = octets[0]
    # Extension bit 0: octet 3a (presentation/screening indicators) follows and carries
    # no digits.
    start = 1 if first & 0x80 else 2
    if len(octets) <= start:
        return None
    ton = (first >> 4) & 0x07
    if ton == TON_ALPHANUMERIC:
        return None
    digits = decode_tbcd(octets[start:])
    if digits is None:
        return None
    return Address(ton, first & 0x0F, digits)


def decode_sms_address(octets: bytes) -> Address | None:
    """Decode a TS 23.040 address field (32.298 ``SmsTpDestinationNumber``); None if invalid.

    The field is: address length (number of digits), type of address, TBCD digits. A first
    octet with bit 8 set cannot be a length (at most 20 digits), so such a value is read as
    type of address followed by digits, the way some vendors encode it.
    """
    if not octets:
        return None
    if octets[0] & 0x80:
        return decode_address(octets)
    count = octets[0]
    if len(octets) < 2 or len(octets) != 2 + (count + 1) // 2 or count == 0:
        return None
    toa = octets[1]
    ton = (toa >> 4) & 0x07
    if not toa & 0x80 or ton == TON_ALPHANUMERIC:
        return None
    digits = decode_tbcd(octets[2:])
    if digits is None or len(digits) != count:
        return None
    return Address(ton, toa & 0x0F, digits)


def address_to_number(address: Address, trunk_prefix: str, country_code: str) -> str:
    """Render an address the way the JSON records carry numbers (see the module docstring)."""
    if address.type_of_number != TON_NATIONAL:
        return address.digits
    if not trunk_prefix:
        return country_code + address.digits
    if address.digits.startswith(trunk_prefix):
        return address.digits
    return trunk_prefix + address.digits


def decode_plmn_id(octets: bytes) -> str | None:
    """Decode a 3-octet PLMN id (TS 24.008 MCC/MNC layout) to "mccMnc" digits; None if invalid.

    Octet 1: MCC digit 2 | MCC digit 1; octet 2: MNC digit 3 | MCC digit 3;
    octet 3: MNC digit 2 | MNC digit 1 (high | low nibble). MNC digit 3 = F means a
    two-digit MNC.
    """
    if len(octets) != 3:
        return None
    text = octets.translate(_SWAP_NIBBLES).hex()
    mcc, mnc3, mnc = text[0:3], text[3], text[4:6]
    if mnc3 != "f":
        mnc += mnc3
    plmn = mcc + mnc
    if not plmn.isdigit():
        return None
    return plmn


def decode_uint16(octets: bytes) -> int | None:
    """Decode a 2-octet big-endian unsigned value (location area code, cell id); None if invalid."""
    if len(octets) != 2:
        return None
    return int.from_bytes(octets, "big")
