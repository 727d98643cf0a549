"""A whole TS 32.297 file to JSON records and rejections: what ``cdrveil ingest`` iterates.

Every CDR and every damaged stretch of the file comes out exactly once, in file order,
each with its byte offset, its stable record id and ``end`` (where the next item starts),
so the shell can publish, acknowledge, and resume after the last acknowledged item
without losing or repeating anything.

A rejection's ``data`` follows one rule, whatever rejected it (the framing or the record
decoder): the octets of the file from ``offset`` to ``end``, untouched. For a CDR that is
its CDR header and its record, for a damaged stretch the whole stretch; so ``offset``
(``dlq.source.offset`` in the dead letter) is where the octets came from, and the items'
octets put together give the file back (after its header). ``rejection`` is that rule's
one home.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.ber.errors import UNSUPPORTED_FORMAT, CdrRejection
from pipeline.ber.file import CdrFileReader, CdrFrame
from pipeline.ber.layout import DATA_FORMAT_BER
from pipeline.ber.records import VOICE_RECORD_TYPES, BerRecordDecoder, RecordIds

__all__ = ["DecodedCdr", "RejectedCdr", "decode_cdr_file", "rejection"]


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
    #: The file's octets from ``offset`` to ``end`` (see the module docstring).
    data: bytes


def rejection(
    data: bytes,
    offset: int,
    end: int,
    record_id: str,
    code: str,
    message: str,
    field: str | None = None,
) -> RejectedCdr:
    """The rejection of the file's octets ``data[offset:end]``, which it carries untouched."""
    return RejectedCdr(offset, end, record_id, code, message, field, bytes(data[offset:end]))


def decode_cdr_file(
    data: bytes, file_name: str, decoder: BerRecordDecoder, *, start: int | None = None
) -> Iterator[DecodedCdr | RejectedCdr]:
    """Frame and decode every CDR of one file held in memory, from ``start`` if resuming."""
    record_id_at = RecordIds(file_name)
    for item in CdrFileReader(data).frames(start):
        record_id = record_id_at(item.offset)
        if not isinstance(item, CdrFrame):
            end = item.offset + len(item.data)
            yield rejection(data, item.offset, end, record_id, item.code, item.message)
            continue
        end = item.offset + item.header.size + item.header.length
        if item.header.data_format != DATA_FORMAT_BER:
            yield rejection(
                data,
                item.offset,
                end,
                record_id,
                UNSUPPORTED_FORMAT,
                "the CDR header announces a data record format other than BER",
            )
            continue
        result = decoder(item.data, record_id)
        if isinstance(result, CdrRejection):
            yield rejection(
                data, item.offset, end, record_id, result.code, result.message, result.field
            )
        else:
            yield DecodedCdr(item.offset, end, record_id, result)
