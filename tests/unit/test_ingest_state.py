"""The resume state kept beside each ingested file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.ingest.state import (
    IngestState,
    content_matches,
    load_state,
    remove_state,
    save_state,
    state_path,
)

DATA = bytes(range(256)) * 4


def state_for(data: bytes, offset: int, **extra: object) -> IngestState:
    """A state acknowledging ``data`` up to ``offset``."""
    digest = hashlib.sha256(data[:offset]).hexdigest()
    return IngestState(file="F.dat", offset=offset, digest=digest, **extra)  # type: ignore[arg-type]


def test_the_state_lives_beside_the_file_under_its_name() -> None:
    assert state_path(Path("/in/F.dat")) == Path("/in/F.dat.cdrveil-ingest.json")


def test_a_saved_state_loads_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "F.dat"
    state = state_for(
        DATA,
        300,
        done=True,
        records={"moCallRecord": 2, "mtSMSRecord": 1},
        rejected={"bad_ber": 1},
        updated="2026-11-21T05:00:00.000Z",
    )

    save_state(path, state)

    assert load_state(path) == state
    assert state.items == 4


def test_saving_replaces_the_state_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "F.dat"
    save_state(path, state_for(DATA, 100))

    save_state(path, state_for(DATA, 200))

    loaded = load_state(path)
    assert loaded is not None and loaded.offset == 200
    assert sorted(os.listdir(tmp_path)) == ["F.dat.cdrveil-ingest.json"]


def test_no_state_file_means_no_state(tmp_path: Path) -> None:
    assert load_state(tmp_path / "F.dat") is None


@pytest.mark.parametrize(
    "contents",
    [
        b"{not json",
        b"[]",
        b'{"format": 2, "offset": 1, "sha256": "' + b"0" * 64 + b'", "done": false}',
        b'{"format": 1, "offset": -1, "sha256": "' + b"0" * 64 + b'", "done": false}',
        b'{"format": 1, "offset": true, "sha256": "' + b"0" * 64 + b'", "done": false}',
        b'{"format": 1, "offset": 1, "sha256": "abc", "done": false}',
        b'{"format": 1, "offset": 1, "sha256": "' + b"0" * 64 + b'", "done": 1}',
        b'{"format": 1, "offset": 1, "sha256": "' + b"0" * 64 + b'", "done": false,'
        b' "records": {"moCallRecord": -1}}',
    ],
)
def test_an_invalid_state_file_is_refused_with_how_to_start_over(
    tmp_path: Path, contents: bytes
) -> None:
    """Guessing could lose or repeat records: the operator decides."""
    path = tmp_path / "F.dat"
    state_path(path).write_bytes(contents)

    with pytest.raises(ConfigError, match="delete it"):
        load_state(path)


def test_removing_the_state_deletes_it_and_tolerates_none(tmp_path: Path) -> None:
    path = tmp_path / "F.dat"
    save_state(path, state_for(DATA, 10))

    remove_state(path)
    remove_state(path)

    assert not state_path(path).exists()


def test_a_state_matches_the_file_it_was_saved_for() -> None:
    assert content_matches(state_for(DATA, 500), DATA)
    assert content_matches(state_for(DATA, 0), DATA)
    assert content_matches(state_for(DATA, len(DATA)), DATA)


def test_a_state_still_matches_once_the_file_grew_after_its_offset() -> None:
    assert content_matches(state_for(DATA, 500), DATA + b"more CDRs")
    assert content_matches(state_for(DATA, 500), DATA[:500])


def test_a_state_does_not_match_a_file_changed_before_its_offset() -> None:
    changed = bytearray(DATA)
    changed[499] ^= 1

    assert not content_matches(state_for(DATA, 500), bytes(changed))
    assert content_matches(state_for(DATA, 499), bytes(changed))


def test_a_state_does_not_match_a_file_shorter_than_its_offset() -> None:
    assert not content_matches(state_for(DATA, 500), DATA[:499])
