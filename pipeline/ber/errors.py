"""Rejections and errors of the BER ingest decoder.

Expected bad data is a value (``CdrRejection``, or ``FramingError`` from ``file.py``);
exceptions are for a missing optional dependency and for bugs::

    CdrRejection              a CDR that cannot become a JSON record (value, not raised)
    BerSupportMissing(ImportError)
                              pycrate is needed for this call and is not installed

Rejection codes reuse the pipeline's stable codes where the meaning is the same
(missing_field, unknown_record_type, bad_msisdn, bad_imsi, bad_imei, bad_timestamp,
bad_value) and add ``bad_ber`` (the record's BER structure is broken) and
``unsupported_format`` (the CDR header announces PER or XER, not BER). Messages name
fields and tags, never a field's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "BAD_BER",
    "BAD_IMEI",
    "BAD_IMSI",
    "BAD_MSISDN",
    "BAD_TIMESTAMP",
    "BAD_VALUE",
    "MISSING_FIELD",
    "UNKNOWN_RECORD_TYPE",
    "UNSUPPORTED_FORMAT",
    "BerSupportMissing",
    "CdrRejection",
]

BAD_BER: Final = "bad_ber"
UNSUPPORTED_FORMAT: Final = "unsupported_format"
MISSING_FIELD: Final = "missing_field"
UNKNOWN_RECORD_TYPE: Final = "unknown_record_type"
BAD_MSISDN: Final = "bad_msisdn"
BAD_IMSI: Final = "bad_imsi"
BAD_IMEI: Final = "bad_imei"
BAD_TIMESTAMP: Final = "bad_timestamp"
BAD_VALUE: Final = "bad_value"


@dataclass(frozen=True, slots=True)
class CdrRejection:
    """Why one CDR cannot become a JSON record: stable code, message, field if one is at fault."""

    code: str
    message: str
    field: str | None = None


class BerSupportMissing(ImportError):
    """pycrate (the ``cdrveil[ber]`` extra) is needed for this call and is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "this needs pycrate, which is not installed: "
            "pip install 'cdrveil[ber]' (pycrate==0.8.1)"
        )
