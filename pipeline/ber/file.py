"""Read and write TS 32.297 CDR files (byte layout in ``layout.py``).

``CdrFileReader(data).frames()`` yields, in file order, a ``CdrFrame`` for each CDR
(offset of its header, the header, the record's bytes) or a ``FramingError`` (offset,
code, the bytes it covers) for each stretch that is not a well-formed CDR. It never
raises on bad input. After an error it resynchronises: it searches forward for the next
offset where a CDR header announces BER and is followed by a context-tagged BER element
spanning exactly the announced CDR length (random octets pass that test about once in
four million offsets). A CDR that frames well but is not followed by another CDR is
searched for a CDR starting inside it (octets lost inside a record, lengths intact). So
a damaged record usually costs that record alone, and the rest of the file still flows.
The items tile the file: each starts where the previous one ended. An empty file has no
items (no octets, so no stretch to report).

Framing error codes: ``bad_file_header`` (the file header is inconsistent: the CDRs are
then found by resynchronising), ``bad_cdr_header`` (no CDR header at an offset where one
was due, e.g. garbage between records), ``truncated_cdr`` (a CDR runs past the end of
the file), ``cdr_length_mismatch`` (the CDR length disagrees with the BER length of the
record, or the CDR runs into the next one).

``build_cdr_file`` writes such files (tests, benchmarks, demos).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pipeline.ber.layout import (
    CDR_HEADER_SIZE,
    DATA_FORMAT_BER,
    DATA_FORMATS,
    FILE_HEADER_MIN_SIZE,
    RELEASE_EXTENDED,
    TS_32250,
    CdrHeader,
    FileHeader,
    HeaderTimestamp,
    decode_release,
    encode_release,
)
from pipeline.ber.tlv import CLASS_CONTEXT, CONSTRUCTED, BerError, read_tlv

__all__ = [
    "BAD_CDR_HEADER",
    "BAD_FILE_HEADER",
    "CDR_LENGTH_MISMATCH",
    "TRUNCATED_CDR",
    "CdrFileReader",
    "CdrFrame",
    "FramingError",
    "build_cdr_file",
    "parse_file_header",
]

BAD_FILE_HEADER: Final = "bad_file_header"
BAD_CDR_HEADER: Final = "bad_cdr_header"
TRUNCATED_CDR: Final = "truncated_cdr"
CDR_LENGTH_MISMATCH: Final = "cdr_length_mismatch"

_RECORD_TAG_FLAGS: Final = CLASS_CONTEXT | CONSTRUCTED


@dataclass(frozen=True, slots=True)
class CdrFrame:
    """One CDR of a file: where its header starts, the header, the record's octets."""

    offset: int
    header: CdrHeader
    data: bytes


@dataclass(frozen=True, slots=True)
class FramingError:
    """A stretch of a file that is not a well-formed CDR: where, why, and its octets."""

    offset: int
    code: str
    message: str
    data: bytes


def parse_file_header(data: bytes) -> FileHeader | str:
    """Decode the file header at the start of ``data``; a message saying why not, if not."""
    if len(data) < FILE_HEADER_MIN_SIZE:
        return "file shorter than a file header"
    header_length = int.from_bytes(data[4:8], "big")
    if header_length < FILE_HEADER_MIN_SIZE or header_length > len(data):
        return "header length out of range"
    filter_length = int.from_bytes(data[48:50], "big")
    private_at = 50 + filter_length
    if private_at + 2 > header_length:
        return "CDR routeing filter overruns the header"
    private_length = int.from_bytes(data[private_at : private_at + 2], "big")
    extensions_at = private_at + 2 + private_length
    if extensions_at > header_length:
        return "private extension overruns the header"
    high_id, low_id = data[8] >> 5, data[9] >> 5
    extensions = data[extensions_at:header_length]
    high_ext = extensions[0] if high_id == RELEASE_EXTENDED and extensions else None
    low_at = 1 if high_ext is not None else 0
    low_ext = (
        extensions[low_at] if low_id == RELEASE_EXTENDED and len(extensions) > low_at else None
    )
    return FileHeader(
        file_length=int.from_bytes(data[0:4], "big"),
        header_length=header_length,
        high_release=decode_release(high_id, high_ext),
        high_version=data[8] & 0x1F,
        low_release=decode_release(low_id, low_ext),
        low_version=data[9] & 0x1F,
        opened=HeaderTimestamp.unpack(int.from_bytes(data[10:14], "big")),
        last_appended=HeaderTimestamp.unpack(int.from_bytes(data[14:18], "big")),
        cdr_count=int.from_bytes(data[18:22], "big"),
        sequence_number=int.from_bytes(data[22:26], "big"),
        closure_reason=data[26],
        node_address=bytes(data[27:47]),
        lost_cdr_indicator=data[47],
        routeing_filter=bytes(data[50:private_at]),
        private_extension=bytes(data[private_at + 2 : extensions_at]),
    )


def _frame_at(data: bytes, pos: int, end: int) -> CdrFrame | tuple[str, str]:
    """The CDR whose header starts at ``pos``, or (error code, message)."""
    if end - pos < CDR_HEADER_SIZE:
        return TRUNCATED_CDR, "CDR header runs past the end of the file"
    third, fourth = data[pos + 2], data[pos + 3]
    identifier = third >> 5
    size = CDR_HEADER_SIZE + (identifier == RELEASE_EXTENDED)
    if end - pos < size:
        return TRUNCATED_CDR, "CDR header runs past the end of the file"
    length = int.from_bytes(data[pos : pos + 2], "big")
    data_format = fourth >> 5
    if length == 0 or data_format not in DATA_FORMATS:
        return BAD_CDR_HEADER, "no valid CDR header at this offset"
    start = pos + size
    stop = start + length
    if data_format == DATA_FORMAT_BER:
        try:
            element = read_tlv(data, start, end)
        except BerError:
            if stop > end:
                return TRUNCATED_CDR, "CDR runs past the end of the file"
            return BAD_CDR_HEADER, "no BER record after the CDR header"
        if element.next != stop:
            return CDR_LENGTH_MISMATCH, "CDR length disagrees with the record's BER length"
    elif stop > end:
        return TRUNCATED_CDR, "CDR runs past the end of the file"
    extension = data[pos + 4] if size > CDR_HEADER_SIZE else None
    header = CdrHeader(
        length, decode_release(identifier, extension), third & 0x1F, data_format, fourth & 0x1F
    )
    return CdrFrame(pos, header, bytes(data[start:stop]))


def _is_sync_point(data: bytes, pos: int, end: int) -> bool:
    """A BER CDR starts at ``pos``: header, then a context-tagged record of exactly its length."""
    size = CDR_HEADER_SIZE + ((data[pos + 2] >> 5) == RELEASE_EXTENDED)
    if data[pos + 3] >> 5 != DATA_FORMAT_BER or pos + size >= end:
        return False
    if data[pos + size] & 0xE0 != _RECORD_TAG_FLAGS:
        return False
    return isinstance(_frame_at(data, pos, end), CdrFrame)


def _next_sync_point(data: bytes, pos: int, end: int, limit: int | None = None) -> int:
    """The first sync point at or after ``pos`` (and before ``limit``), else ``end``."""
    stop = end - CDR_HEADER_SIZE if limit is None else min(limit, end - CDR_HEADER_SIZE)
    for candidate in range(pos, stop):
        if _is_sync_point(data, candidate, end):
            return candidate
    return end


class CdrFileReader:
    """Frames the CDRs of one TS 32.297 file held in memory."""

    def __init__(self, data: bytes) -> None:
        """Parse the file header; ``header`` is None (and ``header_error`` says why) if invalid."""
        self._data = data
        parsed = parse_file_header(data)
        self.header: FileHeader | None = parsed if isinstance(parsed, FileHeader) else None
        self.header_error: str | None = parsed if isinstance(parsed, str) else None

    def frames(self, start: int | None = None) -> Iterator[CdrFrame | FramingError]:
        """Yield every CDR and framing error in file order, from ``start`` if given.

        ``start`` resumes an interrupted ingest: pass the offset after the last CDR that
        was handled (a frame's ``offset + header.size + header.length``). Without it,
        a bad file header is reported first, covering the octets up to the first CDR found.
        """
        data, end = self._data, len(self._data)
        if end == 0:
            return  # an empty file: nothing in it, not even a bad header
        if start is not None:
            pos = start
        elif self.header is not None:
            pos = self.header.header_length
        else:
            pos = _next_sync_point(data, 1, end)
            yield FramingError(0, BAD_FILE_HEADER, self.header_error or "", bytes(data[:pos]))
        found = _frame_at(data, pos, end) if pos < end else None
        while found is not None:
            if isinstance(found, CdrFrame):
                stop = pos + found.header.size + found.header.length
                following = _frame_at(data, stop, end) if stop < end else None
                # A CDR that looks whole but is not followed by another may have run into
                # its neighbour (octets lost inside it, lengths intact): if a CDR starts
                # within it, it is damaged and the one inside is real.
                inner = end
                if isinstance(following, tuple):
                    inner = _next_sync_point(data, pos + 1, end, limit=stop)
                if inner < stop:
                    yield FramingError(
                        pos,
                        CDR_LENGTH_MISMATCH,
                        f"CDR runs into the next CDR; {inner - pos} octets skipped",
                        bytes(data[pos:inner]),
                    )
                    pos, found = inner, _frame_at(data, inner, end)
                    continue
                yield found
                pos, found = stop, following
                continue
            code, message = found
            resume = _next_sync_point(data, pos + 1, end)
            yield FramingError(
                pos, code, f"{message}; {resume - pos} octets skipped", bytes(data[pos:resume])
            )
            pos = resume
            found = _frame_at(data, pos, end) if pos < end else None


def not_a_cdr_file(data: bytes) -> str | None:
    """Why ``data`` is no TS 32.297 file at all, or None if it may be one (damaged or not).

    A file whose header cannot be read but which holds CDRs is a damaged CDR file: its
    header is a dead letter and its CDRs flow. One with neither (a JSON-lines file, a log)
    is the wrong file: cut into dead letters, it would only hide the mistake. An empty file
    is no mistake: network elements close one at a rotation boundary with nothing in it.
    """
    if not data:
        return None
    reader = CdrFileReader(data)
    if reader.header is not None:
        return None
    if any(isinstance(item, CdrFrame) for item in reader.frames()):
        return None
    return (
        f"not a TS 32.297 CDR file: no valid file header ({reader.header_error}) "
        "and no CDR in it; nothing published"
    )


def build_cdr_file(
    cdrs: Iterable[bytes],
    *,
    opened: datetime,
    last_appended: datetime | None = None,
    release: int = 15,
    version: int = 0,
    ts_number: int = TS_32250,
    sequence_number: int = 0,
    closure_reason: int = 0,
    node_address: bytes = b"\xff" * 4 + bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 1]),
    lost_cdr_indicator: int = 0,
    routeing_filter: bytes = b"",
    private_extension: bytes = b"",
) -> bytes:
    """Build a TS 32.297 file of BER CDRs (all with the same release and TS number)."""
    if len(node_address) != 20:
        raise ValueError("node_address must be 20 octets")
    identifier, extension = encode_release(release)
    body = bytearray()
    count = 0
    for cdr in cdrs:
        body += CdrHeader(len(cdr), release, version, DATA_FORMAT_BER, ts_number).pack()
        body += cdr
        count += 1
    variable = (
        len(routeing_filter).to_bytes(2, "big")
        + routeing_filter
        + len(private_extension).to_bytes(2, "big")
        + private_extension
        + (bytes([extension, extension]) if extension is not None else b"")
    )
    header_length = 48 + len(variable)
    fixed = (
        bytes([identifier << 5 | version, identifier << 5 | version])
        + HeaderTimestamp.from_datetime(opened).pack().to_bytes(4, "big")
        + HeaderTimestamp.from_datetime(last_appended or opened).pack().to_bytes(4, "big")
        + count.to_bytes(4, "big")
        + sequence_number.to_bytes(4, "big")
        + bytes([closure_reason])
        + node_address
        + bytes([lost_cdr_indicator])
    )
    file_length = header_length + len(body)
    return (
        file_length.to_bytes(4, "big")
        + header_length.to_bytes(4, "big")
        + fixed
        + variable
        + bytes(body)
    )
