"""A minimal BER (X.690) tag-length-value reader: just what the CDR walker and framing need.

Supports single- and multi-octet tags, short and long definite lengths (up to 4 length
octets, which covers any CDR), and indefinite lengths on constructed values (nesting
bounded by ``MAX_DEPTH`` so hostile input cannot exhaust the stack). Malformed input
raises ``BerError``; callers at the module boundary turn it into a rejection value.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["MAX_DEPTH", "BerError", "Tlv", "read_tlv"]

MAX_DEPTH: Final = 16

CLASS_UNIVERSAL: Final = 0x00
CLASS_CONTEXT: Final = 0x80
CONSTRUCTED: Final = 0x20


class BerError(ValueError):
    """The octets are not well-formed BER (internal: never leaves the ``pipeline.ber`` API)."""


class Tlv(NamedTuple):
    """One BER element: class bits and constructed bit of the first octet, tag number, value span.

    ``value_end`` is the end of the contents; ``next`` is where the following element
    starts (they differ by the two end-of-contents octets of an indefinite length).
    """

    flags: int
    number: int
    value_start: int
    value_end: int
    next: int


def read_tlv(buf: bytes, pos: int, end: int, depth: int = 0) -> Tlv:
    """Read the element starting at ``pos``, which must lie entirely before ``end``."""
    if pos >= end:
        raise BerError("element expected, end of data found")
    first = buf[pos]
    pos += 1
    number = first & 0x1F
    if number == 0x1F:
        number = 0
        for _ in range(4):
            if pos >= end:
                raise BerError("tag runs past the end of the data")
            octet = buf[pos]
            pos += 1
            number = (number << 7) | (octet & 0x7F)
            if not octet & 0x80:
                break
        else:
            raise BerError("tag number too long")
    if pos >= end:
        raise BerError("length missing")
    length = buf[pos]
    pos += 1
    if length < 0x80:
        value_end = pos + length
        if value_end > end:
            raise BerError("value runs past the end of its container")
        return Tlv(first & 0xE0, number, pos, value_end, value_end)
    if length == 0x80:
        if not first & CONSTRUCTED:
            raise BerError("indefinite length on a primitive value")
        value_end = _indefinite_end(buf, pos, end, depth)
        return Tlv(first & 0xE0, number, pos, value_end, value_end + 2)
    count = length & 0x7F
    if count > 4 or pos + count > end:
        raise BerError("invalid long-form length")
    value_len = int.from_bytes(buf[pos : pos + count], "big")
    pos += count
    value_end = pos + value_len
    if value_end > end:
        raise BerError("value runs past the end of its container")
    return Tlv(first & 0xE0, number, pos, value_end, value_end)


def _indefinite_end(buf: bytes, pos: int, end: int, depth: int) -> int:
    """Return where the end-of-contents octets of an indefinite-length value start."""
    if depth >= MAX_DEPTH:
        raise BerError("nesting too deep")
    while True:
        if pos + 2 > end:
            raise BerError("end-of-contents missing")
        if buf[pos] == 0 and buf[pos + 1] == 0:
            return pos
        pos = read_tlv(buf, pos, end, depth + 1).next
