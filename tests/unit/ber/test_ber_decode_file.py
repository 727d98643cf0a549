"""Whole TS 32.297 files of pycrate-encoded records to JSON records and rejections."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.ber import (
    BerRecordDecoder,
    CdrFileReader,
    DecodedCdr,
    FileHeader,
    RejectedCdr,
    build_cdr_file,
    decode_cdr_file,
)
from pipeline.ber.errors import BAD_BER, BAD_IMSI, UNSUPPORTED_FORMAT
from pipeline.ber.file import BAD_CDR_HEADER, BAD_FILE_HEADER, CDR_LENGTH_MISMATCH, TRUNCATED_CDR
from pipeline.ber.layout import CdrHeader
from tests.support.ber_samples import SAMPLES, Sample

NAME = "MSC01_20261121T0600_0001.dat"
OPENED = datetime(2026, 11, 21, 6, 0, tzinfo=timezone(timedelta(hours=1)))
DECODER = BerRecordDecoder()


def build(samples: tuple[Sample, ...] = SAMPLES) -> tuple[bytes, list[int]]:
    """A file of the samples, and the offset of each CDR header."""
    cdrs = [s.ber for s in samples]
    data = build_cdr_file(cdrs, opened=OPENED, release=15)
    header = CdrFileReader(data).header
    assert isinstance(header, FileHeader)
    offsets, pos = [], header.header_length
    for cdr in cdrs:
        offsets.append(pos)
        pos += 5 + len(cdr)
    return data, offsets


def decode(data: bytes) -> list[DecodedCdr | RejectedCdr]:
    return list(decode_cdr_file(data, NAME, DECODER))


def test_every_record_of_a_file_decodes_with_its_offset_and_record_id() -> None:
    data, offsets = build()
    items = decode(data)
    assert all(isinstance(item, DecodedCdr) for item in items)
    assert [item.offset for item in items] == offsets
    for item, sample, offset in zip(items, SAMPLES, offsets, strict=True):
        assert isinstance(item, DecodedCdr)
        assert item.record_id == f"{NAME}:{offset}"
        assert item.record == sample.expected_with_id(f"{NAME}:{offset}")
        assert item.is_voice == (sample.alternative in ("moCallRecord", "mtCallRecord"))
        assert item.record_type == sample.alternative


def test_record_ids_are_the_same_when_the_file_is_decoded_again() -> None:
    data, _ = build()
    first = [item.record_id for item in decode(data)]
    assert first == [item.record_id for item in decode(data)]
    assert len(set(first)) == len(first)


def test_resuming_after_an_item_yields_exactly_the_rest() -> None:
    data, _ = build()
    items = decode(data)
    resumed = list(decode_cdr_file(data, NAME, DECODER, start=items[3].end))
    assert resumed == items[4:]


def _replace(data: bytes, at: int, octets: bytes) -> bytes:
    return data[:at] + octets + data[at + len(octets) :]


def test_a_truncated_file_keeps_the_records_before_the_cut() -> None:
    data, offsets = build()
    items = decode(data[:-10])
    assert [type(i) for i in items] == [DecodedCdr] * (len(SAMPLES) - 1) + [RejectedCdr]
    last = items[-1]
    assert isinstance(last, RejectedCdr)
    assert (last.code, last.offset, last.record_id) == (
        TRUNCATED_CDR,
        offsets[-1],
        f"{NAME}:{offsets[-1]}",
    )
    assert last.data == data[offsets[-1] : -10]


def test_a_wrong_cdr_length_rejects_that_record_only() -> None:
    data, offsets = build()
    wrong = _replace(data, offsets[2], (len(SAMPLES[2].ber) - 2).to_bytes(2, "big"))
    items = decode(wrong)
    rejected = [i for i in items if isinstance(i, RejectedCdr)]
    assert [(r.code, r.offset) for r in rejected] == [(CDR_LENGTH_MISMATCH, offsets[2])]
    decoded = [i.record["recordId"] for i in items if isinstance(i, DecodedCdr)]
    assert decoded == [f"{NAME}:{o}" for i, o in enumerate(offsets) if i != 2]


def test_garbage_between_records_is_rejected_with_its_offset() -> None:
    data, offsets = build()
    garbage = bytes(range(0xF0, 0x100)) * 3
    spliced = data[: offsets[5]] + garbage + data[offsets[5] :]
    items = decode(spliced)
    rejected = [i for i in items if isinstance(i, RejectedCdr)]
    assert [(r.code, r.offset, r.data) for r in rejected] == [(BAD_CDR_HEADER, offsets[5], garbage)]
    assert sum(isinstance(i, DecodedCdr) for i in items) == len(SAMPLES)


def test_a_bad_file_header_is_rejected_and_the_records_still_decode() -> None:
    data, offsets = build()
    broken = _replace(data, 4, (2**31).to_bytes(4, "big"))
    items = decode(broken)
    first = items[0]
    assert isinstance(first, RejectedCdr)
    assert (first.code, first.offset, first.end) == (BAD_FILE_HEADER, 0, offsets[0])
    assert [i.offset for i in items[1:]] == offsets
    assert all(isinstance(i, DecodedCdr) for i in items[1:])


def test_a_corrupt_field_rejects_the_record_and_the_file_flows_on() -> None:
    data, offsets = build()
    imsi_at = data.index(bytes.fromhex("42001132547698f0"), offsets[0])
    corrupt = _replace(data, imsi_at, b"\x4a")  # a non-digit nibble in the first IMSI
    items = decode(corrupt)
    first = items[0]
    assert isinstance(first, RejectedCdr)
    assert (first.code, first.field, first.offset) == (BAD_IMSI, "servedIMSI", offsets[0])
    assert first.data == corrupt[offsets[0] : offsets[1]]  # its CDR header and record
    assert all(isinstance(i, DecodedCdr) for i in items[1:])


def test_broken_ber_inside_a_well_framed_cdr_is_a_bad_ber_rejection() -> None:
    inner = b"\xa0\x05\x80\x01\x00\x81\x09"  # second element overruns its container
    data = build_cdr_file([inner, SAMPLES[0].ber], opened=OPENED)
    items = decode(data)
    assert isinstance(items[0], RejectedCdr)
    assert items[0].code == CDR_LENGTH_MISMATCH or items[0].code == BAD_BER
    assert isinstance(items[1], DecodedCdr)


def test_a_cdr_in_another_encoding_is_rejected_as_unsupported() -> None:
    data, _ = build(SAMPLES[:1])
    per = CdrHeader(4, 15, 0, 2, 6).pack() + b"\x01\x02\x03\x04"
    items = decode(data + per)
    last = items[-1]
    assert isinstance(last, RejectedCdr)
    assert last.code == UNSUPPORTED_FORMAT


@pytest.mark.parametrize("cut", [1, 3, 5, 60])
def test_damage_never_raises_and_every_octet_is_accounted_for(cut: int) -> None:
    data, offsets = build()
    damaged = data[: offsets[3] + cut] + data[offsets[3] + cut + 7 :]
    items = decode(damaged)
    header = CdrFileReader(damaged).header
    assert isinstance(header, FileHeader)
    pos = header.header_length
    for item in items:
        assert item.offset == pos
        pos = item.end
    assert pos == len(damaged)
    assert sum(isinstance(i, DecodedCdr) for i in items) == len(SAMPLES) - 1


def test_every_rejection_carries_the_file_octets_from_its_offset_to_its_end() -> None:
    """One rule for framing and decoding rejections: dlq.source.offset is where they start."""
    data, offsets = build()
    damaged = bytearray(data)
    imsi_at = damaged.index(bytes.fromhex("42001132547698f0"), offsets[0])
    damaged[imsi_at] = 0x4A  # CDR 0: a field the decoder rejects
    damaged[offsets[2] : offsets[2]] = b"\x00\x00garbage"  # before CDR 2: no CDR header
    per = CdrHeader(4, 15, 0, 2, 6).pack() + b"\x01\x02\x03\x04"  # not BER
    whole = bytes(damaged) + per + data[offsets[1] : offsets[2]][:-3]  # a truncated CDR

    rejected = [i for i in decode(whole) if isinstance(i, RejectedCdr)]

    codes = [BAD_IMSI, BAD_CDR_HEADER, UNSUPPORTED_FORMAT, TRUNCATED_CDR]
    assert [r.code for r in rejected] == codes
    for item in rejected:
        assert item.data == whole[item.offset : item.end]
