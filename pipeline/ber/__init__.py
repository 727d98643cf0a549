"""Ingest of the network's own format: TS 32.297 CDR files of BER-encoded TS 32.298 records.

Pure code (no Kafka): bytes in, JSON record dicts and rejections out. Importing this
package does not import pycrate; only ``BerRecordDecoder(engine="pycrate")`` and
``pipeline.ber.synth`` need it (the ``cdrveil[ber]`` extra).

- ``decode_cdr_file(data, file_name, BerRecordDecoder())``: every CDR of a file, in order,
  as ``DecodedCdr`` (offset, end, record id, JSON dict) or ``RejectedCdr``.
- ``CdrFileReader`` / ``build_cdr_file``: the TS 32.297 file layout alone.
- ``BerRecordDecoder``: one BER CDR to its JSON dict, or a ``CdrRejection``.
"""

from pipeline.ber.errors import BerSupportMissing, CdrRejection
from pipeline.ber.file import CdrFileReader, CdrFrame, FramingError, build_cdr_file
from pipeline.ber.layout import CdrHeader, FileHeader, HeaderTimestamp
from pipeline.ber.reader import DecodedCdr, RejectedCdr, decode_cdr_file
from pipeline.ber.records import BerRecordDecoder, record_id_for

__all__ = [
    "BerRecordDecoder",
    "BerSupportMissing",
    "CdrFileReader",
    "CdrFrame",
    "CdrHeader",
    "CdrRejection",
    "DecodedCdr",
    "FileHeader",
    "FramingError",
    "HeaderTimestamp",
    "RejectedCdr",
    "build_cdr_file",
    "decode_cdr_file",
    "record_id_for",
]
