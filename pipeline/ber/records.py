"""One BER CDR (a TS 32.298 ``CSRecord``) to the JSON record of the cdr.voice / cdr.sms topics.

``BerRecordDecoder()(cdr_bytes, record_id)`` returns the JSON object as a dict (3GPP
field names, ``recordType`` moCallRecord/mtCallRecord/moSMSRecord/mtSMSRecord) or a
``CdrRejection``. It never raises on bad input.

``recordId`` is ``"<file name>:<byte offset of the CDR header>"`` (``record_id_for``):
the same file ingested twice gives the same ids, so downstream de-duplicates, and the id
says where to look in the file. The offset rather than the CDR's index, because an
index shifts when the framing of a damaged file changes between versions, an offset never.
The base name rather than the path, so moving a file to the done folder keeps its ids.
32.297 file names carry the node, date and a sequence number, so they are unique per
network; a name too long for the 128-character limit is replaced by a hash of it.

Besides the ASN.1 rules, a record must carry what the JSON contract requires (a served
MSISDN or IMSI; callDuration and seizureTime or answerTime for calls; originationTime /
deliveryTime for SMS), so a record the worker would reject is rejected here, where the
file name and offset are still known. Digit-count rules (IMSI 14-15 digits...) stay with
the worker's normalizers, to keep one owner.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePath
from typing import Final, Literal

from pipeline import defaults
from pipeline.ber.errors import BAD_VALUE, MISSING_FIELD, CdrRejection
from pipeline.ber.fast import decode_fast
from pipeline.ber.fields import CONVERTERS, DecodeOptions, RawRecord
from pipeline.ber.reference import PycrateEngine
from pipeline.ber.schema import Kind, RecordSchema

__all__ = ["VOICE_RECORD_TYPES", "BerRecordDecoder", "Engine", "RecordIds", "record_id_for"]

Engine = Literal["fast", "pycrate"]

VOICE_RECORD_TYPES: Final = frozenset({"moCallRecord", "mtCallRecord"})
MAX_RECORD_ID: Final = 128

_SERVED: Final = ("servedMSISDN", "servedIMSI")
_CALL_START: Final = ("seizureTime", "answerTime")
_EVENT_TIME: Final = {"moSMSRecord": "originationTime", "mtSMSRecord": "deliveryTime"}


def record_id_for(file_name: str, offset: int) -> str:
    """The stable record id of the CDR whose header starts at ``offset`` in ``file_name``.

    Only the base name counts: a path (e.g. the done folder) does not change the id.
    """
    return RecordIds(file_name)(offset)


class RecordIds:
    """``record_id_for`` of one file, with the name worked out once (not once per CDR)."""

    __slots__ = ("_hashed", "_name")

    def __init__(self, file_name: str) -> None:
        """The ids of the file ``file_name`` (a path or a base name)."""
        self._name = PurePath(file_name).name
        digest = hashlib.sha256(self._name.encode("utf-8", "surrogateescape")).hexdigest()
        self._hashed = f"sha256-{digest[:32]}"

    def __call__(self, offset: int) -> str:
        """The id of the CDR whose header starts at ``offset``."""
        suffix = f":{offset}"
        if len(self._name) + len(suffix) <= MAX_RECORD_ID:
            return self._name + suffix
        return self._hashed + suffix


class BerRecordDecoder:
    """Decode BER CDRs to JSON record dicts; configured once, then called per record."""

    def __init__(
        self,
        *,
        trunk_prefix: str = defaults.TRUNK_PREFIX,
        country_code: str = defaults.COUNTRY_CODE,
        default_mcc_mnc: str | None = None,
        engine: Engine = "fast",
    ) -> None:
        """Configure numbering, the serving network to assume, and the engine.

        ``trunk_prefix`` and ``country_code`` must be the settings the worker's
        normalizer uses (national numbers become ``trunk_prefix`` + number, or
        ``country_code`` + number where there is no trunk prefix). ``default_mcc_mnc``
        fills ``location.mccMnc`` when a record's location carries no MCC-MNC (it is
        optional in TS 32.298; a cell in a CS record belongs to the network of the MSC
        that wrote it, so the operator's own network is the natural value); None leaves
        it absent. ``engine="pycrate"`` needs the ``ber`` extra (else BerSupportMissing).
        """
        if trunk_prefix and not (trunk_prefix.isascii() and trunk_prefix.isdigit()):
            raise ValueError("trunk_prefix must be digits or empty")
        if not (country_code.isascii() and country_code.isdigit() and len(country_code) <= 3):
            raise ValueError("country_code must be 1-3 digits")
        if default_mcc_mnc is not None and not (
            default_mcc_mnc.isascii()
            and default_mcc_mnc.isdigit()
            and len(default_mcc_mnc) in (5, 6)
        ):
            raise ValueError("default_mcc_mnc must be 5-6 digits")
        self._options = DecodeOptions(trunk_prefix, country_code, default_mcc_mnc)
        self._pycrate: PycrateEngine | None
        if engine == "fast":
            self._pycrate = None
        elif engine == "pycrate":
            self._pycrate = PycrateEngine()
        else:
            raise ValueError("engine must be 'fast' or 'pycrate'")

    def __call__(self, cdr: bytes, record_id: str) -> dict[str, object] | CdrRejection:
        """Return the JSON record of one BER CDR, or why it cannot be one."""
        if self._pycrate is None:
            decoded = decode_fast(cdr, record_id, self._options)
        else:
            raw = self._pycrate(cdr)
            decoded = raw if isinstance(raw, CdrRejection) else self._convert(raw, record_id)
        if isinstance(decoded, CdrRejection):
            return decoded
        return _check_required(decoded[1], decoded[0].record_type)

    def _convert(
        self, raw: RawRecord, record_id: str
    ) -> tuple[RecordSchema, dict[str, object]] | CdrRejection:
        """The JSON values of the raw fields the pycrate engine extracted."""
        schema = raw.schema
        record: dict[str, object] = {"recordId": record_id, "recordType": schema.record_type}
        options = self._options
        for spec, value in raw.values:
            kind = spec.kind
            if kind == Kind.IGNORED:
                continue
            converted = CONVERTERS[kind](spec, value, options)
            if isinstance(converted, CdrRejection):
                return converted
            if kind == Kind.RECORD_TYPE:
                if converted != schema.choice_tag:
                    return CdrRejection(
                        BAD_VALUE, "recordType: differs from the CHOICE tag", "recordType"
                    )
                continue
            record[spec.name] = converted
        return schema, record


def _check_required(
    record: dict[str, object], record_type: str
) -> dict[str, object] | CdrRejection:
    if not any(name in record for name in _SERVED):
        return CdrRejection(MISSING_FIELD, "servedMSISDN or servedIMSI required", "servedMSISDN")
    if record_type in VOICE_RECORD_TYPES:
        if not any(name in record for name in _CALL_START):
            return CdrRejection(MISSING_FIELD, "seizureTime or answerTime required", "seizureTime")
        return record
    event_time = _EVENT_TIME[record_type]
    if event_time not in record:
        return CdrRejection(MISSING_FIELD, f"{event_time}: required", event_time)
    return record
