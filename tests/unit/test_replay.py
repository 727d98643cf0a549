"""`cdrveil replay`'s decisions: which dead letters go back, where, and what the summary says."""

from __future__ import annotations

from collections import Counter

import pytest

from pipeline.errors import ConfigError
from pipeline.tools.replay import (
    FROM_FILE,
    NO_SOURCE,
    NOT_AN_INPUT,
    NOT_SELECTED,
    Replay,
    ReplayReport,
    Selection,
    Skip,
    decide,
    parse_offsets,
    parse_since,
)

INPUTS = frozenset({"p.cdr.voice", "p.cdr.sms"})


def letter(code: str = "oversize", source: str | None = "p.cdr.voice") -> list[tuple[str, bytes]]:
    """The headers a worker gives a dead letter."""
    headers = [("dlq.error.code", code.encode()), ("dlq.error.message", b"why")]
    if source is not None:
        headers.append(("dlq.source.topic", source.encode()))
    return headers


def test_a_workers_dead_letter_goes_back_to_its_source_topic() -> None:
    assert decide(letter(), 0, Selection(), INPUTS) == Replay("p.cdr.voice")


def test_codes_and_source_topics_select() -> None:
    only_json = Selection(codes=frozenset({"invalid_json"}))
    assert decide(letter("oversize"), 0, only_json, INPUTS) == Skip(NOT_SELECTED)
    assert decide(letter("invalid_json"), 0, only_json, INPUTS) == Replay("p.cdr.voice")
    only_sms = Selection(source_topics=frozenset({"p.cdr.sms"}))
    assert decide(letter(), 0, only_sms, INPUTS) == Skip(NOT_SELECTED)
    assert decide(letter(source="p.cdr.sms"), 0, only_sms, INPUTS) == Replay("p.cdr.sms")


def test_dead_letters_older_than_since_are_not_selected() -> None:
    since = Selection(since_ms=1_000)
    assert decide(letter(), 999, since, INPUTS) == Skip(NOT_SELECTED)
    assert decide(letter(), 1_000, since, INPUTS) == Replay("p.cdr.voice")


def test_dead_letters_from_cdr_files_are_skipped_as_such() -> None:
    headers = [("dlq.error.code", b"bad_ber"), ("dlq.source.file", b"MSC01.dat")]
    assert decide(headers, 0, Selection(), INPUTS) == Skip(FROM_FILE)


def test_nothing_is_ever_written_to_a_topic_that_is_not_an_input() -> None:
    """A forged or foreign source topic (an analytics topic, another prefix) is refused."""
    for source in ("p.traffic.analytics.marketing", "q.cdr.voice", "p.traffic.dead-letter"):
        assert decide(letter(source=source), 0, Selection(), INPUTS) == Skip(NOT_AN_INPUT)
    assert decide(letter(source=None), 0, Selection(), INPUTS) == Skip(NO_SOURCE)


def test_offsets_parse_and_bad_ones_say_the_expected_form() -> None:
    assert parse_offsets("0:120, 3:40") == {0: 120, 3: 40}
    for bad in ("0", "a:1", "1:-2", "0:1,0:2", ""):
        with pytest.raises(ConfigError):
            parse_offsets(bad)


def test_since_needs_a_time_zone() -> None:
    assert parse_since("1970-01-01T00:00:01Z") == 1_000
    assert parse_since("1970-01-01T01:00:01+01:00") == 1_000
    with pytest.raises(ConfigError, match="time zone"):
        parse_since("2026-11-21T05:00:00")
    with pytest.raises(ConfigError, match="RFC 3339"):
        parse_since("yesterday")


def test_the_summary_counts_and_says_where_to_go_on_but_shows_no_record() -> None:
    report = ReplayReport(
        "p.traffic.dead-letter",
        dry_run=False,
        scanned=12,
        replayed=Counter({"p.cdr.voice": 7}),
        codes=Counter({"oversize": 7}),
        skipped=Counter({NOT_SELECTED: 4, FROM_FILE: 1}),
        next_offsets={0: 9, 1: 3},
        ends={0: 9, 1: 20},
        limit_reached=True,
    )
    text = report.summary()
    assert "replayed               7" in text
    assert "to p.cdr.voice" in text
    assert "1  " + FROM_FILE in text
    assert "--offsets 0:9,1:3" in text
    assert "limit reached; to go on from here: --offsets 0:9,1:3" in text
    done = ReplayReport("t", dry_run=True, next_offsets={0: 5}, ends={0: 5})
    assert "read to the end; dead letters written later start at --offsets 0:5" in done.summary()
    assert "dry run: nothing was published" in done.summary()
