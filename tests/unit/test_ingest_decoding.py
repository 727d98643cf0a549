"""Windows of a file decode to the same items as one pass, however the file is cut."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest

from pipeline.ber import BerRecordDecoder, CdrFileReader, CdrFrame, build_cdr_file
from pipeline.ber.synth import BerRecordEncoder
from pipeline.ingest.decoding import (
    DecoderPool,
    DecoderSettings,
    FileChangedError,
    Record,
    Rejected,
    Window,
    decode_range,
    local_windows,
    window_bounds,
)

NAME = "MSC01_0001.dat"
SETTINGS = DecoderSettings("0", "46", "24001")
CALL = {
    "recordType": "moCallRecord",
    "servedMSISDN": "46701234567",
    "recordingEntity": "4670000001",
    "location": {"locationAreaCode": 1, "cellId": 2},
    "seizureTime": "2026-11-21T06:00:00+01:00",
    "callDuration": 0,
    "causeForTerm": "normalRelease",
    "callReference": "01",
}
SMS = {
    "recordType": "mtSMSRecord",
    "serviceCentre": "46700000001",
    "servedIMSI": "240011234567890",
    "recordingEntity": "4670000001",
    "deliveryTime": "2026-11-21T05:00:00Z",
}


@cache
def damaged_file() -> bytes:
    """40 CDRs with a bad file header, garbage between two, a wrong length, a truncated end."""
    encode = BerRecordEncoder()
    cdrs = [encode(CALL if i % 3 else SMS) for i in range(40)]
    data = bytearray(build_cdr_file(cdrs, opened=datetime(2026, 11, 21, tzinfo=UTC)))
    offsets = [f.offset for f in CdrFileReader(bytes(data)).frames() if isinstance(f, CdrFrame)]
    struct.pack_into(">I", data, 4, 3)  # header length
    length_at = offsets[20]
    struct.pack_into(">H", data, length_at, struct.unpack_from(">H", data, length_at)[0] + 2)
    garbage_at = offsets[10]
    return bytes(data[:garbage_at]) + b"\x00\x00garbage" + bytes(data[garbage_at:-9])


def whole_pass() -> Window:
    return decode_range(damaged_file(), NAME, SETTINGS.build(), None)


def test_the_damaged_file_has_records_and_every_kind_of_rejection() -> None:
    """The premise of the tests below: they cut a file with all sorts of items."""
    window = whole_pass()
    codes = {item.code for item in window.items if isinstance(item, Rejected)}

    assert codes == {"bad_file_header", "bad_cdr_header", "cdr_length_mismatch", "truncated_cdr"}
    assert sum(isinstance(item, Record) for item in window.items) == 38  # 40 - 2 damaged
    assert (window.end, window.last) == (len(damaged_file()), True)


@pytest.mark.parametrize("per_window", [1, 3, 7, 100])
async def test_local_windows_give_the_items_of_one_pass(per_window: int) -> None:
    decoder = BerRecordDecoder(default_mcc_mnc="24001")
    windows = [w async for w in local_windows(damaged_file(), NAME, decoder, None, per_window)]

    assert [i for w in windows for i in w.items] == whole_pass().items
    assert all(0 < len(w.items) <= per_window for w in windows[:-1])
    assert [w.last for w in windows] == [False] * (len(windows) - 1) + [True]
    assert windows[-1].end == len(damaged_file())


@pytest.mark.parametrize("per_window", [1, 4, 100])
def test_windows_cut_by_framing_alone_decode_to_the_items_of_one_pass(per_window: int) -> None:
    """What worker processes rely on: each window decoded on its own, from its bounds."""
    decoder = SETTINGS.build()
    bounds = list(window_bounds(damaged_file(), None, per_window))
    windows = [
        decode_range(damaged_file(), NAME, decoder, start, stop=stop) for start, stop in bounds
    ]

    assert [i for w in windows for i in w.items] == whole_pass().items
    assert [w.end for w in windows] == [stop for _, stop in bounds]
    assert windows[-1].last


def test_resuming_at_a_window_end_gives_the_rest_of_the_items() -> None:
    first = decode_range(damaged_file(), NAME, SETTINGS.build(), None, limit=15)
    rest = decode_range(damaged_file(), NAME, SETTINGS.build(), first.end)

    assert first.items + rest.items == whole_pass().items


async def test_an_empty_file_is_one_last_window_of_no_items_cut_either_way() -> None:
    """Decoded here or cut by framing for a worker: done at once (a window that is not the
    last would leave the file interrupted, exit 130)."""
    decoder = SETTINGS.build()
    here = [w async for w in local_windows(b"", NAME, decoder, None, 5)]
    bounds = list(window_bounds(b"", None, 5))
    cut = [decode_range(b"", NAME, decoder, start, stop=stop) for start, stop in bounds]

    assert here == cut == [Window([], 0, last=True)]


def test_a_window_filled_by_the_last_item_of_the_file_is_the_last() -> None:
    """Whether a window is the last depends on where it ends, not on how it was cut."""
    data = damaged_file()

    window = decode_range(data, NAME, SETTINGS.build(), None, limit=len(whole_pass().items))

    assert (window.end, window.last) == (len(data), True)


@pytest.fixture(scope="module")
def pool() -> Iterator[DecoderPool]:
    """Two decoding processes."""
    decoders = DecoderPool(SETTINGS, jobs=2)
    yield decoders
    decoders.close()


async def test_a_pool_of_worker_processes_gives_the_same_windows_in_order(
    pool: DecoderPool, tmp_path: Path
) -> None:
    path = tmp_path / NAME
    path.write_bytes(damaged_file())

    windows = [w async for w in pool.windows(str(path), damaged_file(), NAME, None, 4)]

    assert [i for w in windows for i in w.items] == whole_pass().items
    assert windows[-1].last


async def test_a_worker_refuses_a_file_that_changed_size(pool: DecoderPool, tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_bytes(damaged_file() + b"appended")

    with pytest.raises(FileChangedError, match="changed size"):
        async for _ in pool.windows(str(path), damaged_file(), NAME, None, 4):
            pass


async def test_a_pool_finishes_an_empty_file_in_one_last_window(
    pool: DecoderPool, tmp_path: Path
) -> None:
    path = tmp_path / NAME
    path.write_bytes(b"")

    windows = [w async for w in pool.windows(str(path), b"", NAME, None, 4)]

    assert windows == [Window([], 0, last=True)]
