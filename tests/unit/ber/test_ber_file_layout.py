"""The TS 32.297 file layout: headers, framing, and recovery from damaged files."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ber.file import (
    BAD_CDR_HEADER,
    BAD_FILE_HEADER,
    CDR_LENGTH_MISMATCH,
    TRUNCATED_CDR,
    CdrFileReader,
    CdrFrame,
    FramingError,
    build_cdr_file,
    not_a_cdr_file,
    parse_file_header,
)
from pipeline.ber.layout import CdrHeader, FileHeader, HeaderTimestamp

OPENED = datetime(2026, 11, 21, 6, 0, tzinfo=timezone(timedelta(hours=1)))
CLOSED = datetime(2026, 11, 21, 6, 15, tzinfo=timezone(timedelta(hours=1)))


def record(index: int, size: int = 20) -> bytes:
    """A stand-in BER record: [0] constructed, holding one [1] element of ``size`` octets."""
    inner = b"\x81" + bytes([size]) + bytes([index % 256]) * size
    return b"\xa0" + bytes([len(inner)]) + inner


def frames_and_errors(data: bytes) -> list[CdrFrame | FramingError]:
    return list(CdrFileReader(data).frames())


def offsets_of_records(data: bytes, header_length: int, cdrs: list[bytes]) -> list[int]:
    """Where each CDR header starts in a file built by build_cdr_file (release >= 10)."""
    offsets, pos = [], header_length
    for cdr in cdrs:
        offsets.append(pos)
        pos += 5 + len(cdr)
    return offsets


# --- headers --------------------------------------------------------------------------


def test_file_header_round_trips_every_field() -> None:
    data = build_cdr_file(
        [record(1), record(2)],
        opened=OPENED,
        last_appended=CLOSED,
        release=16,
        version=3,
        sequence_number=4711,
        closure_reason=2,
        lost_cdr_indicator=0,
        routeing_filter=b"filter",
        private_extension=b"vendor",
    )
    header = parse_file_header(data)
    assert isinstance(header, FileHeader)
    assert header.file_length == len(data)
    assert header.header_length == 52 + len(b"filter") + len(b"vendor") + 2
    assert (header.high_release, header.high_version) == (16, 3)
    assert (header.low_release, header.low_version) == (16, 3)
    assert header.opened == HeaderTimestamp(11, 21, 6, 0, 60)
    assert header.last_appended == HeaderTimestamp(11, 21, 6, 15, 60)
    assert header.cdr_count == 2
    assert header.sequence_number == 4711
    assert header.closure_reason == 2
    assert header.routeing_filter == b"filter"
    assert header.private_extension == b"vendor"
    assert str(header.node_ip) == "192.0.2.1"


def test_file_header_bytes_follow_the_documented_offsets() -> None:
    data = build_cdr_file([record(1)], opened=OPENED, release=8, version=2, sequence_number=9)
    assert data[0:4] == len(data).to_bytes(4, "big")
    assert data[4:8] == (52).to_bytes(4, "big")  # no extension octets below Release 10
    assert data[8] == data[9] == (5 << 5) | 2  # Release 8 = identifier 5
    assert data[18:22] == (1).to_bytes(4, "big")
    assert data[22:26] == (9).to_bytes(4, "big")
    assert data[48:52] == b"\x00\x00\x00\x00"  # empty filter, empty private extension
    # CDR header: length, Release 8 / version 2, BER (1) / TS 32.250 (6)
    assert data[52:56] == bytes([0, len(record(1)), 0xA2, 0x26])


def test_header_timestamp_packs_month_day_hour_minute_and_offset() -> None:
    stamp = HeaderTimestamp(11, 21, 6, 0, 60)
    expected = 11 << 28 | 21 << 23 | 6 << 18 | 0 << 12 | 1 << 11 | 1 << 6 | 0
    assert stamp.pack() == expected
    assert HeaderTimestamp.unpack(expected) == stamp
    west = HeaderTimestamp(2, 28, 23, 59, -(5 * 60 + 30))
    assert west.pack() >> 11 & 1 == 0
    assert HeaderTimestamp.unpack(west.pack()) == west


@pytest.mark.parametrize(
    ("release", "octets"),
    [
        (99, bytes([0, 7, 0x00, 0x26])),
        (4, bytes([0, 7, 0x20, 0x26])),
        (9, bytes([0, 7, 0xC0, 0x26])),
        (10, bytes([0, 7, 0xE0, 0x26, 0])),
        (18, bytes([0, 7, 0xE0, 0x26, 8])),
    ],
)
def test_cdr_header_encodes_release_with_its_extension_octet(release: int, octets: bytes) -> None:
    header = CdrHeader(7, release, 0, 1, 6)
    assert header.pack() == octets
    assert header.size == len(octets)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: d[:40], "file shorter than a file header"),
        (lambda d: d[:4] + (10).to_bytes(4, "big") + d[8:], "header length out of range"),
        (lambda d: d[:4] + (10**6).to_bytes(4, "big") + d[8:], "header length out of range"),
        (lambda d: d[:48] + b"\x01\x00" + d[50:], "CDR routeing filter overruns the header"),
        (lambda d: d[:50] + b"\x01\x00" + d[52:], "private extension overruns the header"),
    ],
)
def test_inconsistent_file_headers_are_refused(damage: object, reason: str) -> None:
    data = build_cdr_file([record(1)], opened=OPENED, release=8)
    assert callable(damage)
    assert parse_file_header(damage(data)) == reason


# --- framing --------------------------------------------------------------------------


def test_every_cdr_of_an_intact_file_is_framed_in_order() -> None:
    cdrs = [record(i, size=5 + i) for i in range(30)]
    data = build_cdr_file(cdrs, opened=OPENED)
    header = parse_file_header(data)
    assert isinstance(header, FileHeader)
    items = frames_and_errors(data)
    assert all(isinstance(item, CdrFrame) for item in items)
    frames = [item for item in items if isinstance(item, CdrFrame)]
    assert [f.data for f in frames] == cdrs
    assert [f.offset for f in frames] == offsets_of_records(data, header.header_length, cdrs)
    assert all(f.header.release == 15 and f.header.data_format == 1 for f in frames)


def test_framing_resumes_from_a_given_offset() -> None:
    cdrs = [record(i) for i in range(5)]
    data = build_cdr_file(cdrs, opened=OPENED)
    all_frames = list(CdrFileReader(data).frames())
    third = all_frames[2]
    assert isinstance(third, CdrFrame)
    resumed = list(CdrFileReader(data).frames(start=third.offset))
    assert resumed == all_frames[2:]


def _split(items: list[CdrFrame | FramingError]) -> tuple[list[bytes], list[FramingError]]:
    good = [item.data for item in items if isinstance(item, CdrFrame)]
    bad = [item for item in items if isinstance(item, FramingError)]
    return good, bad


def test_truncated_last_cdr_is_an_error_and_the_others_are_framed() -> None:
    cdrs = [record(i) for i in range(4)]
    data = build_cdr_file(cdrs, opened=OPENED)
    good, bad = _split(frames_and_errors(data[:-7]))
    assert good == cdrs[:3]
    assert [(e.code, len(e.data)) for e in bad] == [(TRUNCATED_CDR, 5 + len(cdrs[3]) - 7)]


def test_truncated_cdr_header_at_the_end_is_an_error() -> None:
    cdrs = [record(i) for i in range(2)]
    data = build_cdr_file(cdrs, opened=OPENED) + b"\x00\x10"
    good, bad = _split(frames_and_errors(data))
    assert good == cdrs
    assert [(e.code, e.offset, e.data) for e in bad] == [
        (TRUNCATED_CDR, len(data) - 2, b"\x00\x10")
    ]


@pytest.mark.parametrize("delta", [-3, -1, 1, 4])
def test_a_wrong_cdr_length_costs_that_cdr_only(delta: int) -> None:
    cdrs = [record(i) for i in range(5)]
    data = bytearray(build_cdr_file(cdrs, opened=OPENED))
    header = parse_file_header(bytes(data))
    assert isinstance(header, FileHeader)
    at = offsets_of_records(bytes(data), header.header_length, cdrs)[2]
    data[at : at + 2] = (len(cdrs[2]) + delta).to_bytes(2, "big")
    good, bad = _split(frames_and_errors(bytes(data)))
    assert good == cdrs[:2] + cdrs[3:]
    assert [(e.code, e.offset, len(e.data)) for e in bad] == [
        (CDR_LENGTH_MISMATCH, at, 5 + len(cdrs[2]))
    ]


def test_octets_lost_inside_a_cdr_cost_that_cdr_only() -> None:
    """Lengths intact, contents shorter: the CDR runs into the next one, which survives."""
    cdrs = [record(i) for i in range(5)]
    clean = build_cdr_file(cdrs, opened=OPENED)
    header = parse_file_header(clean)
    assert isinstance(header, FileHeader)
    at = offsets_of_records(clean, header.header_length, cdrs)[2]
    data = clean[: at + 12] + clean[at + 15 :]
    good, bad = _split(frames_and_errors(data))
    assert good == cdrs[:2] + cdrs[3:]
    assert [(e.code, e.offset, len(e.data)) for e in bad] == [
        (CDR_LENGTH_MISMATCH, at, 5 + len(cdrs[2]) - 3)
    ]


def test_garbage_between_cdrs_is_reported_with_its_offset() -> None:
    cdrs = [record(i) for i in range(4)]
    clean = build_cdr_file(cdrs, opened=OPENED)
    header = parse_file_header(clean)
    assert isinstance(header, FileHeader)
    at = offsets_of_records(clean, header.header_length, cdrs)[2]
    garbage = b"\xde\xad\xbe\xef\x00\x11\x22"
    data = clean[:at] + garbage + clean[at:]
    good, bad = _split(frames_and_errors(data))
    assert good == cdrs
    assert [(e.code, e.offset, e.data) for e in bad] == [(BAD_CDR_HEADER, at, garbage)]


def test_a_bad_file_header_is_reported_and_the_cdrs_are_still_found() -> None:
    cdrs = [record(i) for i in range(3)]
    data = bytearray(build_cdr_file(cdrs, opened=OPENED))
    data[4:8] = (7).to_bytes(4, "big")  # header length smaller than any header
    reader = CdrFileReader(bytes(data))
    assert reader.header is None
    assert reader.header_error == "header length out of range"
    items = list(reader.frames())
    good, bad = _split(items)
    assert good == cdrs
    assert [(e.code, e.offset, len(e.data)) for e in bad] == [(BAD_FILE_HEADER, 0, 54)]


def test_a_file_that_is_not_a_cdr_file_is_one_error() -> None:
    data = b"this is not a CDR file at all, just text" * 3
    items = frames_and_errors(data)
    assert [(type(i), i.offset) for i in items] == [(FramingError, 0)]
    assert items[0].data == data


def test_an_empty_file_has_no_items_and_is_a_cdr_file() -> None:
    """A rotation boundary with no CDR: no stretch to report, and not the wrong file."""
    assert frames_and_errors(b"") == []
    assert not_a_cdr_file(b"") is None


def test_a_non_ber_cdr_is_framed_by_its_header() -> None:
    per_header = CdrHeader(6, 15, 0, 2, 6).pack()  # unaligned PER: cannot be checked
    data = build_cdr_file([record(1)], opened=OPENED) + per_header + b"\x01\x02\x03\x04\x05\x06"
    items = frames_and_errors(data)
    assert [type(i) for i in items] == [CdrFrame, CdrFrame]
    per = items[1]
    assert isinstance(per, CdrFrame)
    assert per.header.data_format == 2


# --- properties -----------------------------------------------------------------------


def _covers_the_file_contiguously(data: bytes, items: list[CdrFrame | FramingError]) -> None:
    """Nothing lost, nothing repeated: the items tile the file from header (or 0) to end."""
    header = parse_file_header(data)
    pos = header.header_length if isinstance(header, FileHeader) else 0
    for item in items:
        assert item.offset == pos
        if isinstance(item, FramingError):
            pos += len(item.data)
        else:
            pos += item.header.size + len(item.data)
    assert pos == len(data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=12),
    st.data(),
)
def test_any_damage_never_raises_and_items_tile_the_file(
    sizes: list[int], draw: st.DataObject
) -> None:
    cdrs = [record(i, size) for i, size in enumerate(sizes)]
    data = bytearray(build_cdr_file(cdrs, opened=OPENED))
    for _ in range(draw.draw(st.integers(min_value=0, max_value=3))):
        kind = draw.draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        at = draw.draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw.draw(st.integers(min_value=1, max_value=255))
        elif kind == "cut":
            del data[at : at + draw.draw(st.integers(min_value=1, max_value=8))]
        elif kind == "insert":
            data[at:at] = draw.draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at:]
    _covers_the_file_contiguously(bytes(data), frames_and_errors(bytes(data)))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    _covers_the_file_contiguously(data, frames_and_errors(data))
