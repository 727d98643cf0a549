"""``cdrveil ingest`` against the embedded broker: what reaches the topics, and when."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.ber.errors import MISSING_FIELD
from pipeline.ber.file import BAD_CDR_HEADER, BAD_FILE_HEADER, CDR_LENGTH_MISMATCH, TRUNCATED_CDR
from pipeline.cli import main
from pipeline.core.topics import SMS, VOICE
from pipeline.ingest.publish import DEAD_LETTER_CHUNK
from pipeline.ingest.report import FileOutcome
from pipeline.ingest.run import ingest_files
from pipeline.ingest.state import load_state
from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames
from tests.support.ingest import (
    IDENTIFIERS,
    POLICY,
    RECORDS,
    CdrFile,
    build_file,
    encoder,
    header,
    make_topics,
    read_topics,
)

NAME = "MSC01_20261121T0600+0100_0001.dat"


def topics(settings: Settings) -> tuple[str, str, str]:
    """The voice, SMS and dead-letter topics of the test."""
    names = TopicNames(settings.topic_prefix)
    return names(VOICE), names(SMS), names.dead_letter(POLICY)


async def ingest_and_read(
    settings: Settings, path: Path, records: int, rejected: int
) -> tuple[dict[str, Any], list[Any]]:
    """Ingest one file; its records by id (checking topic and key), and its dead letters."""
    report = await ingest_files(settings, [path], show_progress=False)
    assert report.exit_code == 0, report.summary()
    voice, sms, dead_letter = topics(settings)
    messages = await read_topics(settings, [voice, sms, dead_letter], records + rejected)
    by_id: dict[str, Any] = {}
    for message in messages:
        if message.topic == dead_letter:
            continue
        record = orjson.loads(message.value)
        is_voice = record["recordType"] in ("moCallRecord", "mtCallRecord")
        assert message.topic == (voice if is_voice else sms)
        msisdn = record.get("servedMSISDN")
        assert message.key == (None if msisdn is None else msisdn.encode())
        assert record["recordId"] not in by_id, "a record was published twice"
        by_id[record["recordId"]] = record
    dead = [m for m in messages if m.topic == dead_letter]
    assert (len(by_id), len(dead)) == (records, rejected)
    return by_id, dead


def assert_records(built: CdrFile, by_id: dict[str, Any], indexes: range | list[int]) -> None:
    """Each CDR of ``indexes`` arrived as exactly the JSON that was encoded, field by field."""
    for index in indexes:
        expected = built.expected(NAME, index)
        got = by_id[expected["recordId"]]
        assert sorted(got) == sorted(expected), expected["recordId"]
        for field, value in expected.items():
            assert got[field] == value, f"{expected['recordId']} {field}"


def assert_dead_letter(message: Any, code: str, offset: int, value: bytes) -> None:
    """A dead letter names its reason, file and offset, and carries the octets untouched:
    the file's from that offset (whether framing or decoding rejected them)."""
    assert header(message, "dlq.error.code") == code
    assert header(message, "dlq.source.file") == NAME
    assert header(message, "dlq.source.offset") == str(offset)
    assert header(message, "cdrveil.version")
    assert (header(message, "dlq.timestamp") or "").endswith("Z")
    assert message.key is None
    assert message.value == value
    text = " ".join(bytes(v).decode("utf-8", "replace") for _, v in message.headers)
    assert not any(identifier in text for identifier in IDENTIFIERS)


async def test_every_record_type_arrives_as_the_json_that_was_encoded(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    """All four types, national/international numbers, +/- offsets: field-by-field equal."""
    await make_topics(ingest_settings)
    built = build_file(2 * len(RECORDS))
    path = tmp_path / NAME
    path.write_bytes(built.data)

    by_id, dead = await ingest_and_read(ingest_settings, path, len(built.records), 0)

    assert_records(built, by_id, range(len(built.records)))
    assert dead == []
    state = load_state(path)
    assert state is not None
    assert (state.done, state.offset) == (True, len(built.data))
    assert sum(state.records.values()) == len(built.records)


async def test_a_file_already_done_is_not_published_again(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    await make_topics(ingest_settings)
    path = tmp_path / NAME
    path.write_bytes(build_file().data)
    await ingest_files(ingest_settings, [path], show_progress=False)

    again = await ingest_files(ingest_settings, [path], show_progress=False)

    assert [f.outcome for f in again.files] == [FileOutcome.ALREADY_DONE]
    assert again.exit_code == 0
    messages = await read_topics(ingest_settings, topics(ingest_settings), len(RECORDS))
    assert len(messages) == len(RECORDS)


def _cut(built: CdrFile, index: int) -> tuple[int, int]:
    """Start and end offsets of CDR ``index``."""
    end = built.offsets[index + 1] if index + 1 < len(built.offsets) else len(built.data)
    return built.offsets[index], end


async def test_a_truncated_last_record_is_dead_lettered_and_the_rest_arrives(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    await make_topics(ingest_settings)
    built = build_file()
    last = len(RECORDS) - 1
    start, end = _cut(built, last)
    data = built.data[: end - 7]
    path = tmp_path / NAME
    path.write_bytes(data)

    by_id, dead = await ingest_and_read(ingest_settings, path, last, 1)

    assert_records(built, by_id, range(last))
    assert_dead_letter(dead[0], TRUNCATED_CDR, start, data[start:])


async def test_a_wrong_cdr_length_costs_that_record_only(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    await make_topics(ingest_settings)
    built = build_file()
    start, end = _cut(built, 2)
    data = bytearray(built.data)
    (length,) = struct.unpack_from(">H", data, start)
    struct.pack_into(">H", data, start, length + 3)
    path = tmp_path / NAME
    path.write_bytes(data)

    by_id, dead = await ingest_and_read(ingest_settings, path, len(RECORDS) - 1, 1)

    assert_records(built, by_id, [i for i in range(len(RECORDS)) if i != 2])
    assert_dead_letter(dead[0], CDR_LENGTH_MISMATCH, start, bytes(data[start:end]))


async def test_garbage_between_records_is_dead_lettered_at_its_offset(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    await make_topics(ingest_settings)
    built = build_file()
    at = built.offsets[3]
    garbage = b"\x00\x00 not a CDR \xff\xfe"
    path = tmp_path / NAME
    path.write_bytes(built.data[:at] + garbage + built.data[at:])

    by_id, dead = await ingest_and_read(ingest_settings, path, len(RECORDS), 1)

    assert_records(built, by_id, range(3))
    assert_dead_letter(dead[0], BAD_CDR_HEADER, at, garbage)
    # The records after the garbage keep their place in the file: their ids name it.
    shifted = CdrFile(
        built.data, built.records, tuple(o + len(garbage) * (o >= at) for o in built.offsets)
    )
    assert_records(shifted, by_id, range(3, len(RECORDS)))


async def test_a_bad_file_header_is_dead_lettered_and_every_record_arrives(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    await make_topics(ingest_settings)
    built = build_file()
    data = bytearray(built.data)
    struct.pack_into(">I", data, 4, 3)  # header length: shorter than any header
    path = tmp_path / NAME
    path.write_bytes(data)

    by_id, dead = await ingest_and_read(ingest_settings, path, len(RECORDS), 1)

    assert_records(built, by_id, range(len(RECORDS)))
    first = built.offsets[0]
    assert_dead_letter(dead[0], BAD_FILE_HEADER, 0, bytes(data[:first]))


async def test_a_record_the_decoder_rejects_is_dead_lettered_with_its_reason(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    """A well-framed CDR that is no valid record (no served subscriber): code, CDR octets."""
    await make_topics(ingest_settings)
    anonymous = encoder()(
        {
            "recordType": "moCallRecord",
            "recordingEntity": "4670000001",
            "seizureTime": "2026-11-21T05:00:00Z",
            "callDuration": 0,
            "causeForTerm": "normalRelease",
            "callReference": "01",
        }
    )
    built = build_file(replace={4: anonymous})
    path = tmp_path / NAME
    path.write_bytes(built.data)

    by_id, dead = await ingest_and_read(ingest_settings, path, len(RECORDS) - 1, 1)

    assert_records(built, by_id, [i for i in range(len(RECORDS)) if i != 4])
    start, end = _cut(built, 4)
    assert built.data[end - len(anonymous) : end] == anonymous
    assert_dead_letter(dead[0], MISSING_FIELD, start, built.data[start:end])  # header and record
    assert "servedMSISDN" in (header(dead[0], "dlq.error.message") or "")


async def test_a_cdr_file_of_garbage_is_dead_lettered_in_chunks_that_rebuild_it(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    """No message too large for a broker, nothing lost: offsets say where each chunk was.

    Behind a valid file header (a file that is no CDR file at all is refused whole, below).
    """
    await make_topics(ingest_settings)
    head = build_file(0).data
    garbage = bytes(range(256)) * ((2 * DEAD_LETTER_CHUNK + 1000) // 256)
    path = tmp_path / NAME
    path.write_bytes(head + garbage)

    _, dead = await ingest_and_read(ingest_settings, path, 0, 3)

    dead.sort(key=lambda m: int(header(m, "dlq.source.offset") or 0))
    offsets = [int(header(m, "dlq.source.offset") or -1) for m in dead]
    assert offsets == [len(head) + k * DEAD_LETTER_CHUNK for k in range(3)]
    assert b"".join(m.value for m in dead) == garbage
    assert {header(m, "dlq.error.code") for m in dead} == {BAD_CDR_HEADER}


async def test_a_file_that_is_no_cdr_file_is_refused_whole_and_nothing_is_published(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    """No file header and no CDR anywhere (garbage, JSON lines): the wrong file, exit 1."""
    await make_topics(ingest_settings)
    path = tmp_path / NAME
    path.write_bytes(bytes(range(256)) * 300)

    report = await ingest_files(ingest_settings, [path], show_progress=False)

    assert report.exit_code == 1
    (result,) = report.files
    assert result.outcome is FileOutcome.FAILED
    assert result.reason.startswith("not a TS 32.297 CDR file: no valid file header")
    voice, sms, dead_letter = topics(ingest_settings)
    assert await read_topics(ingest_settings, [voice, sms, dead_letter], 0) == []
    assert load_state(path) is None


def test_the_command_ingests_files_skips_done_ones_and_reports(
    ingest_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As an operator does: the topics first (Apache Kafka creates none on a metadata request).
    asyncio.run(make_topics(ingest_settings))
    first, second = tmp_path / "A.dat", tmp_path / "B.dat"
    first.write_bytes(build_file().data)
    second.write_bytes(build_file(3).data)
    args = [
        "ingest",
        "--bootstrap-servers",
        ingest_settings.bootstrap_servers,
        "--topic-prefix",
        ingest_settings.topic_prefix,
        "--no-progress",
    ]

    assert main([*args, str(first), str(second)]) == 0
    out = capsys.readouterr().out
    assert "ingested 2 files" in out
    assert f"records: {len(RECORDS) + 3:,}" in out
    assert "moSMSRecord 2" in out

    assert main([*args, str(first), str(tmp_path / "missing.dat")]) == 1
    out = capsys.readouterr().out
    assert "1 already done" in out
    assert "1 failed" in out
    assert "missing.dat" in out


def test_the_command_refuses_files_and_watch_together(tmp_path: Path) -> None:
    assert main(["ingest", str(tmp_path / "A.dat"), "--watch", str(tmp_path)]) == 2
    assert main(["ingest"]) == 2


def _comparable(settings: Settings, messages: list[Any]) -> list[tuple[Any, ...]]:
    """Messages without what differs between runs (topic prefix, dead-letter time)."""
    prefix = len(settings.topic_prefix)
    return sorted(
        (
            m.topic[prefix:],
            m.key or b"",
            m.value,
            tuple((k, bytes(v)) for k, v in m.headers if k != "dlq.timestamp"),
        )
        for m in messages
    )


async def test_decoding_in_worker_processes_publishes_what_decoding_here_does(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    """Windows cut across damaged stretches, decoded in two processes: the same messages."""
    built = build_file(200)
    data = bytearray(built.data)
    struct.pack_into(">I", data, 4, 3)  # bad file header
    struct.pack_into(">H", data, built.offsets[90], 9)  # wrong length
    at = built.offsets[50]
    data[at:at] = b"\x00\x00garbage"
    path = tmp_path / NAME
    path.write_bytes(data[:-20])  # truncated
    here, pooled = (
        ingest_settings,
        ingest_settings.replace(topic_prefix="p" + ingest_settings.topic_prefix),
    )
    results = []
    for settings, jobs in ((here, 0), (pooled, 2)):
        await make_topics(settings)
        path.with_name(path.name + ".cdrveil-ingest.json").unlink(missing_ok=True)
        report = await ingest_files(settings, [path], window=16, show_progress=False, jobs=jobs)
        assert report.exit_code == 0
        assert sum(report.records.values()) == 198
        results.append(_comparable(settings, await read_topics(settings, topics(settings), 202)))

    assert results[0] == results[1]
    assert {m[3][0] for m in results[0] if m[0] == "traffic.dead-letter"} == {
        ("dlq.error.code", code.encode())
        for code in (BAD_FILE_HEADER, BAD_CDR_HEADER, CDR_LENGTH_MISMATCH, TRUNCATED_CDR)
    }


@pytest.mark.parametrize("jobs", [0, 2])
async def test_an_empty_file_is_done_with_nothing_published_and_counted(
    ingest_settings: Settings, tmp_path: Path, jobs: int
) -> None:
    """A rotation boundary with no CDR: done, exit 0, no dead letter, however it is decoded."""
    await make_topics(ingest_settings)
    path = tmp_path / NAME
    path.write_bytes(b"")

    report = await ingest_files(ingest_settings, [path], show_progress=False, jobs=jobs)

    assert report.exit_code == 0, report.summary()
    assert [f.outcome for f in report.files] == [FileOutcome.DONE]
    assert report.empty == 1
    assert (report.records, report.rejected) == ({}, {})
    assert await read_topics(ingest_settings, topics(ingest_settings), 0) == []
    state = load_state(path)
    assert state is not None
    assert (state.done, state.offset) == (True, 0)


def test_the_command_with_its_default_jobs_reports_an_empty_file_done_and_in_its_metrics(
    ingest_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(make_topics(ingest_settings))
    empty, full = tmp_path / "E.dat", tmp_path / "F.dat"
    empty.write_bytes(b"")
    full.write_bytes(build_file().data)
    metrics = tmp_path / "ingest.prom"

    code = main(
        [
            "ingest",
            "--bootstrap-servers",
            ingest_settings.bootstrap_servers,
            "--topic-prefix",
            ingest_settings.topic_prefix,
            "--no-progress",
            "--metrics-file",
            str(metrics),
            str(empty),
            str(full),
        ]
    )

    out = capsys.readouterr().out
    assert code == 0, out
    assert "ingested 2 files (1 empty)" in out
    assert "rejected to the dead-letter topic: 0" in out
    text = metrics.read_text()
    assert "cdrveil_ingest_empty_files_total 1.0" in text
    assert 'cdrveil_ingest_files_total{outcome="done"} 2.0' in text
    assert "cdrveil_ingest_dead_letters_total{" not in text
