"""Dead-letter messages of a file's rejected items, the run summary and its exit status."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

import pipeline
from pipeline.ingest.decoding import Rejected
from pipeline.ingest.metrics import render_metrics
from pipeline.ingest.publish import DEAD_LETTER_CHUNK, dead_letter_messages
from pipeline.ingest.report import FileOutcome, FileResult, IngestReport
from pipeline.shell.deadletter import file_dead_letter_headers

NOW = datetime(2026, 11, 21, 5, 0, 1, 250000, tzinfo=UTC)


def test_file_dead_letter_headers_say_why_where_when_and_which_version() -> None:
    headers = file_dead_letter_headers("bad_ber", "record: broken", "F.dat", 1234, NOW)

    assert dict(headers) == {
        "dlq.error.code": b"bad_ber",
        "dlq.error.message": b"record: broken",
        "dlq.source.file": b"F.dat",
        "dlq.source.offset": b"1234",
        "dlq.timestamp": b"2026-11-21T05:00:01.250Z",
        "cdrveil.version": pipeline.__version__.encode(),
    }


def rejected(offset: int, data: bytes) -> Rejected:
    """A rejected stretch of a file."""
    return Rejected(offset, "bad_cdr_header", "x", data)


def test_a_rejected_item_is_one_dead_letter_with_its_octets() -> None:
    [(value, headers)] = dead_letter_messages(rejected(100, b"\x00garbage"), "F.dat", NOW)

    assert value == b"\x00garbage"
    assert dict(headers)["dlq.source.offset"] == b"100"


def test_a_long_rejected_stretch_is_split_into_chunks_with_their_own_offsets() -> None:
    data = bytes(range(256)) * ((2 * DEAD_LETTER_CHUNK) // 256) + b"tail"

    messages = list(dead_letter_messages(rejected(52, data), "F.dat", NOW))

    assert [len(value) for value, _ in messages] == [DEAD_LETTER_CHUNK, DEAD_LETTER_CHUNK, 4]
    assert b"".join(value for value, _ in messages) == data
    offsets = [dict(h)["dlq.source.offset"] for _, h in messages]
    assert offsets == [
        b"52",
        str(52 + DEAD_LETTER_CHUNK).encode(),
        str(52 + 2 * DEAD_LETTER_CHUNK).encode(),
    ]
    assert dict(messages[2][1])["dlq.error.message"] == b"x (part 3 of 3)"


def result(outcome: FileOutcome, **counts: int) -> FileResult:
    """A file result with some records."""
    return FileResult(Path("/in/F.dat"), outcome, records=Counter(counts), seconds=0.5)


@pytest.mark.parametrize(
    ("outcomes", "code"),
    [
        ([], 0),
        ([FileOutcome.DONE, FileOutcome.ALREADY_DONE], 0),
        ([FileOutcome.DONE, FileOutcome.FAILED], 1),
        ([FileOutcome.FAILED, FileOutcome.INTERRUPTED], 130),
    ],
)
def test_the_exit_status_says_whether_work_is_left(outcomes: list[FileOutcome], code: int) -> None:
    report = IngestReport()
    for outcome in outcomes:
        report.add(result(outcome))

    assert report.exit_code == code


def test_the_summary_counts_records_per_type_rejections_per_code_and_the_rate() -> None:
    report = IngestReport()
    report.add(result(FileOutcome.DONE, moCallRecord=1500, mtSMSRecord=500))
    done = result(FileOutcome.DONE, moCallRecord=500)
    done.rejected.update(bad_ber=2, truncated_cdr=1)
    done.resumed_from = 4096
    report.add(done)
    stopped = result(FileOutcome.INTERRUPTED)
    stopped.offset = 77
    report.add(stopped)

    lines = report.summary().splitlines()

    assert lines[0] == "ingested 2 files (1 resumed), 1 interrupted"
    assert lines[1] == (
        "records: 2,500 (moCallRecord 2,000, mtSMSRecord 500) in 1.5 s, 1,667 records/s"
    )
    assert lines[2] == "rejected to the dead-letter topic: 3 (bad_ber 2, truncated_cdr 1)"
    assert lines[3] == "interrupted: /in/F.dat at offset 77; run again to resume"


def test_empty_files_done_are_counted_in_the_summary() -> None:
    report = IngestReport()
    report.add(result(FileOutcome.DONE, moCallRecord=3))
    report.add(FileResult(Path("/in/E.dat"), FileOutcome.DONE, empty=True))

    assert report.empty == 1
    assert report.summary().splitlines()[0] == "ingested 2 files (1 empty)"


def test_the_metrics_carry_files_by_outcome_empty_files_records_and_dead_letters() -> None:
    report = IngestReport()
    done = result(FileOutcome.DONE, moCallRecord=7, mtSMSRecord=2)
    done.rejected.update(bad_ber=3)
    report.add(done)
    report.add(FileResult(Path("/in/E.dat"), FileOutcome.DONE, empty=True))
    report.add(result(FileOutcome.FAILED))

    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in render_metrics(report).decode().splitlines()
        if line and not line.startswith("#")
    }

    assert samples == {
        'cdrveil_ingest_files_total{outcome="done"}': 2.0,
        'cdrveil_ingest_files_total{outcome="already_done"}': 0.0,
        'cdrveil_ingest_files_total{outcome="interrupted"}': 0.0,
        'cdrveil_ingest_files_total{outcome="failed"}': 1.0,
        "cdrveil_ingest_empty_files_total": 1.0,
        'cdrveil_ingest_records_total{record_type="moCallRecord"}': 7.0,
        'cdrveil_ingest_records_total{record_type="mtSMSRecord"}': 2.0,
        'cdrveil_ingest_dead_letters_total{reason="bad_ber"}': 3.0,
    }
