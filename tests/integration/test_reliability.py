"""Crash and restart, and poison input, with the real worker: small versions of ``make soak``.

The scenarios are the soak's own (``soak.crash``, ``soak.poison``), run at a size that takes
seconds; ``make soak`` runs them at 200,000 and 102,000 records.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pipeline.settings import Settings
from soak.crash import CrashConfig, run_crash
from soak.poison import PoisonConfig, run_poison

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Small batches, so a stop lands while batches are produced but not yet committed; inputs
# published at 2,000/s, so the stop lands while some are still to come (the native engine
# finished all 4,000 before a SIGTERM at 30 % once they were all there at the start).
CRASH = CrashConfig(
    records=4000, subscribers=300, malformed_share=0.02, stops=1, step=0.3, within=60, rate=2000
)


async def test_a_killed_worker_loses_no_record_and_repeats_only_identical_bytes(
    settings: Settings, tmp_path: Path
) -> None:
    """kill -9 mid-stream, restart: every input has its full set of outputs (the engine's,
    run offline), nothing else was written, and every duplicate equals its first copy."""
    report = await run_crash(settings.replace(batch_max_records=100), tmp_path, CRASH)
    assert [stop.exit_code for stop in report.stops] == [-signal.SIGKILL]
    assert 0 < report.stops[0].committed_after < CRASH.records, "the kill landed mid-stream"
    assert report.final_exit_code == 0
    verdict = report.verdict
    assert verdict.inputs == CRASH.records
    assert verdict.inputs_missing_outputs == 0, verdict.summary()
    assert verdict.unexpected == 0, verdict.summary()
    assert verdict.differing_duplicates == 0, verdict.summary()
    assert verdict.incomplete_dead_letters == 0, verdict.summary()
    assert verdict.expected_dead_letters > 0  # dead letters are replayed like outputs
    assert report.tracebacks == 0


async def test_a_terminated_worker_commits_what_it_finished_so_nothing_is_repeated(
    settings: Settings, tmp_path: Path
) -> None:
    """SIGTERM mid-stream, restart: exit 0, every output present, 0 duplicates."""
    config = CrashConfig(
        records=CRASH.records,
        subscribers=CRASH.subscribers,
        malformed_share=CRASH.malformed_share,
        stops=1,
        step=CRASH.step,
        sig=signal.SIGTERM,
        within=CRASH.within,
        rate=CRASH.rate,
    )
    report = await run_crash(settings.replace(batch_max_records=100), tmp_path, config)
    assert [stop.exit_code for stop in report.stops] == [0]
    assert report.stops[0].committed_after < config.records, "the stop landed mid-stream"
    assert report.final_exit_code == 0
    verdict = report.verdict
    assert verdict.inputs_missing_outputs == 0, verdict.summary()
    assert verdict.unexpected == 0, verdict.summary()
    assert verdict.duplicates == 0, verdict.summary()


async def test_poison_input_is_dead_lettered_exactly_once_and_the_worker_runs_on(
    settings: Settings, tmp_path: Path
) -> None:
    """2 % malformed over every reason class: each exactly once in the dead-letter topic
    with its original bytes and complete headers; valid + dead letters = inputs."""
    config = PoisonConfig(valid=5000, malformed=200, subscribers=500)
    report = await run_poison(settings, tmp_path, config)
    assert len(report.planted) >= 8, report.planted
    assert sum(report.planted.values()) == config.malformed
    assert report.worker_running
    assert report.exit_code == 0
    assert report.dead_letters == config.malformed, report.summary()
    assert report.dead_letter_inputs == config.malformed, report.summary()
    assert report.not_exactly_once == 0, report.summary()
    assert report.altered == 0, report.summary()
    assert report.bad_headers == 0, report.summary()
    assert report.quoting == 0, report.summary()
    assert report.valid_dead_lettered == 0, report.summary()
    assert report.valid_with_outputs == config.valid, report.summary()
    assert report.valid_with_outputs + report.dead_letter_inputs == report.inputs
    assert report.verdict.ok, report.verdict.summary()
    assert report.ok
