"""Which files a watcher takes (closed ones only), and the done folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.ingest.selection import SettleTracker, done_target, is_candidate, move_to_done


@pytest.mark.parametrize(
    "name",
    ["MSC01_20261121T0600+0100_0001.dat", "cdr.ber", "CDR", "a.json", "file.tmp.dat"],
)
def test_ordinary_names_are_candidates(name: str) -> None:
    assert is_candidate(name)


@pytest.mark.parametrize(
    "name",
    [
        ".MSC01_0001.dat",  # hidden: being written
        "MSC01_0001.dat.tmp",
        "MSC01_0001.dat.part",
        "MSC01_0001.dat.cdrveil-ingest.json",  # our own state
        ".MSC01_0001.dat.cdrveil-ingest.json.tmp",  # our own state, being replaced
    ],
)
def test_hidden_partial_and_state_files_are_never_candidates(name: str) -> None:
    assert not is_candidate(name)


def test_a_file_is_closed_once_unchanged_for_the_settle_interval() -> None:
    tracker = SettleTracker(settle_s=10)

    assert not tracker.observe("F", 100, 1, now=0.0)  # first look proves nothing
    assert not tracker.observe("F", 100, 1, now=9.9)
    assert tracker.observe("F", 100, 1, now=10.0)


@pytest.mark.parametrize(("size", "mtime"), [(101, 1), (100, 2)])
def test_a_change_of_size_or_mtime_restarts_the_settle_interval(size: int, mtime: int) -> None:
    tracker = SettleTracker(settle_s=10)
    tracker.observe("F", 100, 1, now=0.0)

    assert not tracker.observe("F", size, mtime, now=9.0)
    assert not tracker.observe("F", size, mtime, now=18.9)
    assert tracker.observe("F", size, mtime, now=19.0)


def test_an_empty_file_is_closed_once_settled_like_any_other() -> None:
    """An empty file is what a network element closes at a rotation boundary with no CDR."""
    tracker = SettleTracker(settle_s=1)
    tracker.observe("F", 0, 1, now=0.0)

    assert not tracker.observe("F", 0, 1, now=0.5)
    assert tracker.observe("F", 0, 1, now=1.0)


def test_a_zero_settle_interval_still_needs_two_looks() -> None:
    tracker = SettleTracker(settle_s=0)

    assert not tracker.observe("F", 10, 1, now=5.0)
    assert tracker.observe("F", 10, 1, now=5.0)


def test_a_forgotten_file_starts_over() -> None:
    tracker = SettleTracker(settle_s=1)
    tracker.observe("F", 10, 1, now=0.0)
    tracker.forget("F")

    assert not tracker.observe("F", 10, 1, now=5.0)


def test_a_negative_settle_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="settle"):
        SettleTracker(settle_s=-1)


def _write(path: Path, data: bytes, mtime_s: int) -> None:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_s * 10**9, mtime_s * 10**9))


def test_closed_lists_settled_candidates_of_a_directory_oldest_first(tmp_path: Path) -> None:
    _write(tmp_path / "B.dat", b"b", mtime_s=1000)
    _write(tmp_path / "A.dat", b"a", mtime_s=2000)
    _write(tmp_path / "C.dat.part", b"c", mtime_s=500)
    _write(tmp_path / ".D.dat", b"d", mtime_s=500)
    _write(tmp_path / "E.dat", b"", mtime_s=500)
    (tmp_path / "done").mkdir()
    tracker = SettleTracker(settle_s=5)

    assert tracker.closed(tmp_path, now=0.0) == []
    assert tracker.closed(tmp_path, now=5.0) == [
        tmp_path / "E.dat",  # empty, settled: taken (and done without publishing)
        tmp_path / "B.dat",
        tmp_path / "A.dat",
    ]


def test_closed_waits_again_for_a_file_that_grew(tmp_path: Path) -> None:
    _write(tmp_path / "A.dat", b"a", mtime_s=1000)
    tracker = SettleTracker(settle_s=5)
    tracker.closed(tmp_path, now=0.0)
    _write(tmp_path / "A.dat", b"ab", mtime_s=1001)

    assert tracker.closed(tmp_path, now=5.0) == []
    assert tracker.closed(tmp_path, now=10.0) == [tmp_path / "A.dat"]


def test_closed_forgets_files_that_went_away(tmp_path: Path) -> None:
    _write(tmp_path / "A.dat", b"a", mtime_s=1000)
    tracker = SettleTracker(settle_s=5)
    tracker.closed(tmp_path, now=0.0)
    (tmp_path / "A.dat").unlink()
    tracker.closed(tmp_path, now=1.0)
    _write(tmp_path / "A.dat", b"a", mtime_s=1000)

    # The same size and mtime again, but a new file: its settle interval starts now.
    assert tracker.closed(tmp_path, now=5.0) == []


def test_a_done_file_keeps_its_name_when_free(tmp_path: Path) -> None:
    assert done_target(tmp_path, "A.dat") == tmp_path / "A.dat"


def test_a_done_file_never_overwrites_one_of_the_same_name(tmp_path: Path) -> None:
    inbox, done = tmp_path / "in", tmp_path / "done"
    inbox.mkdir()
    done.mkdir()
    (done / "A.dat").write_bytes(b"first")
    (done / "A.dat.1").write_bytes(b"second")
    (inbox / "A.dat").write_bytes(b"third")

    moved = move_to_done(inbox / "A.dat", done)

    assert moved == done / "A.dat.2"
    assert [(done / n).read_bytes() for n in ("A.dat", "A.dat.1", "A.dat.2")] == [
        b"first",
        b"second",
        b"third",
    ]
    assert not (inbox / "A.dat").exists()


def test_the_done_folder_is_created_when_missing(tmp_path: Path) -> None:
    (tmp_path / "A.dat").write_bytes(b"a")

    moved = move_to_done(tmp_path / "A.dat", tmp_path / "x" / "done")

    assert moved.read_bytes() == b"a"
