"""The byte layout of TS 32.297 CDR files: file header, CDR headers, their small codecs.

File header (clause 6.1.1), big-endian, in this order::

    offset  size  field
     0      4     file length (whole file, header included)
     4      4     header length (whole header, these length fields included)
     8      1     high release identifier (bits 8-6) | high version identifier (bits 5-1)
     9      1     low release identifier | low version identifier
    10      4     file opening timestamp          (see HeaderTimestamp)
    14      4     timestamp when the last CDR was appended to the file
    18      4     number of CDRs in the file
    22      4     file sequence number
    26      1     file closure trigger reason
    27     20     IP address of the node that generated the file
    47      1     lost CDR indicator
    48      2     length of the CDR routeing filter, then the filter
     .      2     length of the private extension, then the extension
     .    0-1     high release identifier extension (present when the identifier is 7)
     .    0-1     low release identifier extension (present when the identifier is 7)

CDR header (clause 6.1.2)::

     0      2     CDR length (the record only, this header excluded)
     2      1     release identifier (bits 8-6) | version identifier (bits 5-1)
     3      1     data record format (bits 8-6: 1 BER, 2 unaligned PER, 3 aligned PER,
                  4 XER) | TS number (bits 5-1: 6 = TS 32.250, the CS domain)
     4    0-1     release identifier extension (present when the identifier is 7)

Release identifiers: 0 = Release 99, 1..6 = Releases 4..9, 7 = Release 10 or later, the
release being 10 + the extension octet.

Provenance: the 3GPP text itself was not available while writing this. The layout above
is where two independent open-source implementations agree: free5GC's CHF
(``cdr/cdrFile/cdrFile.go``) and SigScale's CGF (``cgf_3gpp_file.erl``). Both count the
header length over the whole header including its two length fields, exclude the CDR
header from the CDR length, and pack the timestamps and identifiers as above.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Final

__all__ = [
    "CDR_HEADER_SIZE",
    "DATA_FORMAT_BER",
    "FILE_HEADER_MIN_SIZE",
    "TS_32250",
    "CdrHeader",
    "FileHeader",
    "HeaderTimestamp",
    "decode_release",
    "encode_release",
]

FILE_HEADER_MIN_SIZE: Final = 52  # fixed part plus the two empty variable-length parts
CDR_HEADER_SIZE: Final = 4
RELEASE_EXTENDED: Final = 7
DATA_FORMAT_BER: Final = 1
DATA_FORMATS: Final = frozenset({1, 2, 3, 4})
TS_32250: Final = 6


def decode_release(identifier: int, extension: int | None) -> int:
    """Release number from a 3-bit release identifier and its extension octet (99 = R99)."""
    if identifier == 0:
        return 99
    if identifier < RELEASE_EXTENDED:
        return identifier + 3
    return 10 + (extension or 0)


def encode_release(release: int) -> tuple[int, int | None]:
    """Release identifier and extension octet (None if none) for a release number."""
    if release == 99:
        return 0, None
    if 4 <= release <= 9:
        return release - 3, None
    if 10 <= release <= 10 + 255:
        return RELEASE_EXTENDED, release - 10
    raise ValueError("release must be 99 or 4..265")


@dataclass(frozen=True, slots=True)
class HeaderTimestamp:
    """A file header timestamp: local month, day, hour, minute and the offset to UTC.

    Packed in 32 bits: month (4), day (5), hour (5), minute (6), sign (1, 1 = "+"),
    offset hours (5), offset minutes (6). There is no year and no second.
    """

    month: int
    day: int
    hour: int
    minute: int
    utc_offset_minutes: int

    @classmethod
    def unpack(cls, value: int) -> HeaderTimestamp:
        """Decode the 32-bit packed form (no validation: header metadata is informative)."""
        offset = ((value >> 6) & 0x1F) * 60 + (value & 0x3F)
        sign = 1 if (value >> 11) & 1 else -1
        return cls(
            value >> 28,
            (value >> 23) & 0x1F,
            (value >> 18) & 0x1F,
            (value >> 12) & 0x3F,
            sign * offset,
        )

    @classmethod
    def from_datetime(cls, moment: datetime) -> HeaderTimestamp:
        """The timestamp of an aware datetime (its own local time and offset)."""
        offset = moment.utcoffset()
        if offset is None:
            raise ValueError("an aware datetime is needed: the header carries the UTC offset")
        minutes = int(offset.total_seconds()) // 60
        return cls(moment.month, moment.day, moment.hour, moment.minute, minutes)

    def pack(self) -> int:
        """Encode to the 32-bit packed form."""
        hours, minutes = divmod(abs(self.utc_offset_minutes), 60)
        sign = 0 if self.utc_offset_minutes < 0 else 1
        return (
            (self.month & 0xF) << 28
            | (self.day & 0x1F) << 23
            | (self.hour & 0x1F) << 18
            | (self.minute & 0x3F) << 12
            | sign << 11
            | (hours & 0x1F) << 6
            | (minutes & 0x3F)
        )


@dataclass(frozen=True, slots=True)
class FileHeader:
    """A decoded CDR file header (fields named after TS 32.297 clause 6.1.1)."""

    file_length: int
    header_length: int
    high_release: int
    high_version: int
    low_release: int
    low_version: int
    opened: HeaderTimestamp
    last_appended: HeaderTimestamp
    cdr_count: int
    sequence_number: int
    closure_reason: int
    node_address: bytes
    lost_cdr_indicator: int
    routeing_filter: bytes
    private_extension: bytes

    @property
    def node_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The node address, read as an IPv6 address in the last 16 octets (IPv4 if mapped).

        The 20-octet field's exact convention could not be confirmed; SigScale's CGF
        writes four 0xFF octets and then the IPv6 address, which this reads.
        """
        address = ipaddress.IPv6Address(self.node_address[-16:])
        return address.ipv4_mapped or address


@dataclass(frozen=True, slots=True)
class CdrHeader:
    """A decoded CDR header (TS 32.297 clause 6.1.2)."""

    length: int
    release: int
    version: int
    data_format: int
    ts_number: int

    @property
    def size(self) -> int:
        """Octets this header takes in the file (4, or 5 with a release extension)."""
        return CDR_HEADER_SIZE + (1 if self.release >= 10 and self.release != 99 else 0)

    def pack(self) -> bytes:
        """Encode the header."""
        identifier, extension = encode_release(self.release)
        if not 0 < self.length <= 0xFFFF:
            raise ValueError("a CDR must be 1..65535 octets")
        release_version = identifier << 5 | (self.version & 0x1F)
        format_ts = (self.data_format & 7) << 5 | (self.ts_number & 0x1F)
        octets = self.length.to_bytes(2, "big") + bytes([release_version, format_ts])
        return octets if extension is None else octets + bytes([extension])
