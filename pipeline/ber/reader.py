"""A whole TS 32.297 file to JSON records and rejections: what ``cdrveil ingest`` iterates.

Every CDR and every damaged stretch of the file comes out exactly once, in file order,
each with its byte offset, its stable record id and ``end`` (where the next item starts),
so the shell can publish, acknowledge, and resume after the last acknowledged item
without losing or repeating anything. Rejections carry the octets they cover, for the
dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.ber.errors import UNSUPPORTED_FORMAT, CdrRejection
from pipeline.ber.file import CdrFileReader, CdrFrame
from pipeline.ber.layout import DATA_FORMAT_BER
from pipeline.ber.records import VOICE_RECORD_TYPES, BerRecordDecoder, record_id_for

__all__ = ["DecodedCdr", "RejectedCdr", "decode_cdr_file"]


@dataclass(frozen=True, slots=True)
class DecodedCdr:
    """A CDR that became a JSON record."""

    offset: int
    end: int
    record_id: str
    record: dict[str, object]

    @property
    def record_type(self) -> str:
        """moCallRecord, mtCallRecord, moSMSRecord or mtSMSRecord."""
        return str(self.record["recordType"])

    @property
    def is_voice(self) -> bool:
        """True for call records (topic cdr.voice), False for SMS records (cdr.sms)."""
        return self.record["recordType"] in VOICE_RECORD_TYPES


@dataclass(frozen=True, slots=True)
class RejectedCdr:
    """A CDR, or a stretch of the file, that could not become a JSON record."""

    offset: int
    end: int
    record_id: str
    code: str
    message: str
    field: str | None
    data: bytes


def decode_cdr_file(
    data: bytes, file_name: str, decoder: BerRecordDecoder, *, start: int | None = None
) -> Iterator[DecodedCdr | RejectedCdr]:
    """Frame and decode every CDR of one file held in memory, from ``start`` if resuming."""
    for item in CdrFileReader(data).frames(start):
        record_id = record_id_for(file_name, item.offset)
        if not isinstance(item, CdrFrame):
            end = item.offset + len(item.data)
            yield RejectedCdr(item.offset, end, record_id, item.code, item.message, None, item.data)
            continue
        end = item.offset + item.header.size + item.header.length
        if item.header.data_format != DATA_FORMAT_BER:
            yield RejectedCdr(
                item.offset,
                end,
                record_id,
                UNSUPPORTED_FORMAT,
                "the CDR header announces a data record format other than BER",
                None,
                item.data,
            )
            continue
        result = decoder(item.data, record_id)
        if isinstance(result, CdrRejection):
            yield RejectedCdr(
                item.offset, end, record_id, result.code, result.message, result.field, item.data
            )
        else:
            yield DecodedCdr(item.offset, end, record_id, result)
