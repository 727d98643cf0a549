"""Shared by the ingest tests: JSON records, the BER files built from them, a reader.

The records are written as the JSON the topics carry and encoded to BER by pycrate's own
TS 32.298 definitions (``BerRecordEncoder``), so an ingest test compares what comes out
of Kafka with what went into the file, field by field.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any

from pipeline.ber import CdrFileReader, build_cdr_file
from pipeline.ber.synth import BerRecordEncoder
from pipeline.core.policy import Policy
from pipeline.harness import read_settled
from pipeline.settings import Settings
from pipeline.shell.messages import header_text
from pipeline.shell.topics import create_topics

#: The policy ingest runs with (the packaged default): its dead-letter topic.
POLICY = Policy.load()
HOME = "24001"
OPENED = datetime(2026, 11, 21, 6, 0, tzinfo=timezone(timedelta(hours=1)))
CDR_HEADER_SIZE = 5  # release 15: the CDR header carries a release extension octet

IMSI = "240011234567890"
IMEI = "35209900176148"

# Every record type; optional fields present and absent; international ("46..."),
# national ("07...") and unknown-type ("00...") numbers; UTC, positive, negative and
# half-hour offsets; a location without MCC-MNC (the ingest fills in the home network).
RECORDS: tuple[dict[str, Any], ...] = (
    {
        "recordType": "moCallRecord",
        "servedIMSI": IMSI,
        "servedIMEI": IMEI,
        "servedMSISDN": "46701234567",
        "callingNumber": "46701234567",
        "calledNumber": "0709876543",
        "translatedNumber": "00471234567",
        "connectedNumber": "4712345678",
        "roamingNumber": "46700000099",
        "recordingEntity": "4670000001",
        "location": {"mccMnc": HOME, "locationAreaCode": 42, "cellId": 4660},
        "changeOfLocation": [
            {
                "location": {"locationAreaCode": 1, "cellId": 65535},
                "changeTime": "2026-11-21T06:00:30+01:00",
            },
            {
                "location": {"mccMnc": "310260", "locationAreaCode": 65534, "cellId": 0},
                "changeTime": "2026-11-21T06:00:45+01:00",
            },
        ],
        "basicService": "telephony",
        "seizureTime": "2026-11-21T06:00:00+01:00",
        "answerTime": "2026-11-21T06:00:05+01:00",
        "releaseTime": "2026-11-21T06:01:05+01:00",
        "callDuration": 60,
        "causeForTerm": "normalRelease",
        "diagnostics": 16,
        "callReference": "0102030405060708",
        "sequenceNumber": 3,
        "systemType": "gERAN",
    },
    {
        "recordType": "moCallRecord",
        "servedMSISDN": "0701234567",
        "recordingEntity": "4670000001",
        "seizureTime": "2026-11-20T23:30:00-05:00",
        "callDuration": 0,
        "causeForTerm": "unsuccessfulCallAttempt",
        "callReference": "00",
    },
    {
        "recordType": "mtCallRecord",
        "servedIMSI": IMSI,
        "servedIMEI": IMEI,
        "servedMSISDN": "0701234567",
        "callingNumber": "4712345678",
        "recordingEntity": "4670000001",
        "location": {"mccMnc": "310260", "locationAreaCode": 42, "cellId": 4660},
        "basicService": "telephony",
        "seizureTime": "2026-11-20T23:30:00-05:00",
        "answerTime": "2026-11-20T23:30:10-05:00",
        "releaseTime": "2026-11-20T23:31:15-05:00",
        "callDuration": 65,
        "causeForTerm": "partialRecord",
        "callReference": "abcd",
        "sequenceNumber": 0,
        "systemType": "iuUTRAN",
    },
    {
        "recordType": "mtCallRecord",
        "servedIMSI": IMSI,
        "recordingEntity": "4670000001",
        "location": {"locationAreaCode": 7, "cellId": 8},
        "answerTime": "2026-11-21T05:00:00Z",
        "callDuration": 1,
        "causeForTerm": "abnormalRelease",
        "callReference": "01",
    },
    {
        "recordType": "moSMSRecord",
        "servedIMSI": IMSI,
        "servedIMEI": IMEI,
        "servedMSISDN": "46701234567",
        "serviceCentre": "46700000001",
        "recordingEntity": "4670000001",
        "location": {"locationAreaCode": 42, "cellId": 4660},
        "messageReference": 127,
        "originationTime": "2028-02-29T09:30:45+05:30",
        "smsResult": 0,
        "destinationNumber": "0709876543",
        "systemType": "unknown",
    },
    {
        "recordType": "moSMSRecord",
        "servedIMSI": IMSI,
        "serviceCentre": "46700000001",
        "recordingEntity": "4670000001",
        "messageReference": 0,
        "originationTime": "2026-11-21T02:00:00-03:30",
    },
    {
        "recordType": "mtSMSRecord",
        "serviceCentre": "46700000001",
        "servedIMSI": IMSI,
        "servedIMEI": IMEI,
        "servedMSISDN": "0701234567",
        "recordingEntity": "4670000001",
        "location": {"mccMnc": HOME, "locationAreaCode": 42, "cellId": 4660},
        "deliveryTime": "2026-11-21T06:00:00+01:00",
        "smsResult": "gsm0902MapErrorValue:32",
        "systemType": "gERAN",
    },
    {
        "recordType": "mtSMSRecord",
        "serviceCentre": "4712345678",
        "servedIMSI": IMSI,
        "recordingEntity": "4670000001",
        "deliveryTime": "2026-11-21T05:00:00Z",
    },
)

#: Every identifier value in RECORDS: none may appear in a dead-letter header.
IDENTIFIERS = (IMSI, IMEI, "46701234567", "0701234567", "0709876543", "4712345678")


@cache
def encoder() -> BerRecordEncoder:
    """pycrate's encoder, loaded once (loading takes seconds)."""
    return BerRecordEncoder()


@cache
def encoded(index: int) -> bytes:
    """The BER CDR of ``RECORDS[index]``."""
    return encoder()(RECORDS[index])


@dataclass(frozen=True)
class CdrFile:
    """A built file: its octets, and the record and offset of each CDR in it."""

    data: bytes
    records: tuple[dict[str, Any], ...]
    offsets: tuple[int, ...]

    def expected(self, name: str, index: int) -> dict[str, Any]:
        """The JSON the ingest must publish for CDR ``index`` of the file named ``name``."""
        record = copy.deepcopy(self.records[index])
        record["recordId"] = f"{name}:{self.offsets[index]}"
        for location in _locations(record):
            location.setdefault("mccMnc", HOME)
        return record


def _locations(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "location" in record:
        yield record["location"]
    for change in record.get("changeOfLocation", ()):
        yield change["location"]


def build_file(count: int = len(RECORDS), replace: dict[int, bytes] | None = None) -> CdrFile:
    """A TS 32.297 file of ``count`` CDRs cycling through RECORDS (some ``replace``d)."""
    indexes = [i % len(RECORDS) for i in range(count)]
    cdrs = [encoded(i) for i in indexes]
    for index, cdr in (replace or {}).items():
        cdrs[index] = cdr
    data = build_cdr_file(cdrs, opened=OPENED, release=15)
    header = CdrFileReader(data).header
    assert header is not None
    offsets, pos = [], header.header_length
    for cdr in cdrs:
        offsets.append(pos)
        pos += CDR_HEADER_SIZE + len(cdr)
    assert pos == len(data)
    return CdrFile(data, tuple(RECORDS[i] for i in indexes), tuple(offsets))


async def make_topics(settings: Settings) -> None:
    """Create the test's topics."""
    await create_topics(settings, POLICY)


async def read_topics(
    settings: Settings, topics: Sequence[str], expected: int, idle: float = 0.5
) -> list[Any]:
    """Every message of ``topics``: at least ``expected``, then until ``idle`` s pass quietly.

    Waiting past the expected count is what lets a test see a repeated message.
    """
    return await read_settled(settings, topics, expected, idle)


header = header_text  # the tests here compare headers as text


def record_offset(record_id: str) -> int:
    """The byte offset in a record id (``name:offset``)."""
    return int(record_id.rsplit(":", 1)[1])
