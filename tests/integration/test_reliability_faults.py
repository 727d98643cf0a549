"""The worker when infrastructure fails under it: the broker frozen, the broker gone, a
dead-letter write refused. Small versions of the scenarios in ``soak.faults``, each run on a
broker of its own (the session broker must not be stopped).

How "the broker process stopped" is tested on a broker that keeps everything in memory:
frozen with SIGSTOP (its data survives, so after SIGCONT the committed offsets are checked
against the outputs), and killed with SIGKILL (its data is gone, so only what the worker
says and does is judged: no exit 0, ``/health`` no longer "ready", a line saying Kafka is
unreachable). A dead-letter write is refused for real by the broker's schema registry.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from soak.faults import (
    FaultConfig,
    GoneReport,
    RefusedReport,
    run_dead_letter_refused,
    run_frozen,
    run_gone,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

SMALL = FaultConfig(records=6000, subscribers=300, outage=4, recovery=60)


async def test_a_frozen_broker_never_leads_to_a_commit_of_anything_unwritten(
    tmp_path: Path,
) -> None:
    """Broker SIGSTOPped mid-run, then continued: every committed input has all its
    outputs, and the worker recovers (or exits non-zero): never a silent loss."""
    report = await run_frozen(tmp_path, SMALL)
    assert report.committed_unwritten == 0, report.summary()
    assert report.during.exit_code != 0, report.summary()
    assert report.outcome.startswith("recovered") or (
        report.outcome.startswith("exited") and report.outcome != "exited 0"
    ), report.summary()
    assert report.verdict is not None
    assert report.verdict.inputs_missing_outputs == 0, report.summary()
    assert report.verdict.unexpected == 0, report.summary()
    assert report.verdict.differing_duplicates == 0, report.summary()


@pytest.fixture(scope="module")
async def gone(tmp_path_factory: pytest.TempPathFactory) -> GoneReport:
    """One run: the broker killed under a busy worker, watched for 8 s."""
    config = FaultConfig(records=6000, subscribers=300, outage=8)
    return await run_gone(tmp_path_factory.mktemp("gone"), config, sigterm_grace=10)


async def test_a_worker_whose_broker_is_gone_never_exits_0(gone: GoneReport) -> None:
    """No success reported by exit status while Kafka is away."""
    assert gone.during.exit_code != 0, gone.summary()


async def test_a_worker_whose_broker_is_gone_stops_saying_it_is_ready(gone: GoneReport) -> None:
    """``/health`` must not answer 200 "ready" for seconds after the broker died."""
    assert gone.during.not_ready_after is not None, gone.summary()
    assert gone.during.not_ready_after < 6, gone.summary()


async def test_a_worker_whose_broker_is_gone_says_so_in_its_own_words(gone: GoneReport) -> None:
    """A line of the worker's own that Kafka is unreachable (the client's connection errors
    are no statement of the worker's state)."""
    assert gone.during.said_after is not None, gone.summary()
    assert gone.during.said_after < 6, gone.summary()


async def test_a_worker_whose_broker_is_gone_stops_on_sigterm_and_says_it_failed(
    gone: GoneReport,
) -> None:
    """SIGTERM with nothing acknowledged: the stop gives up after stop_timeout_ms (2 s
    here) instead of waiting for ever, and exits non-zero: what was in flight is not
    committed."""
    assert not gone.sigterm_ignored, gone.summary()
    assert gone.sigterm_exit_code not in (0, None), gone.summary()
    assert gone.sigterm_seconds < 9, gone.summary()


@pytest.fixture(scope="module")
async def refused(tmp_path_factory: pytest.TempPathFactory) -> RefusedReport:
    """One run: 400 valid records, then malformed ones whose dead letters are refused."""
    return await run_dead_letter_refused(tmp_path_factory.mktemp("refused"), within=6)


async def test_an_input_whose_dead_letter_was_refused_is_never_committed(
    refused: RefusedReport,
) -> None:
    """The broker refused every dead-letter write: no partition's committed offset passes
    its first malformed input, and no dead letter was written."""
    assert refused.poisoned, refused.summary()
    assert refused.committed_past_refused == 0, refused.summary()
    assert refused.dead_letters_written == 0, refused.summary()
    assert refused.exit_code != 0, refused.summary()


async def test_a_worker_whose_dead_letters_are_refused_stops_with_an_error(
    refused: RefusedReport,
) -> None:
    """After its last attempt the worker must stop (exit non-zero) and say why, not sit
    there uncommitted and silent."""
    assert refused.exit_code is not None, refused.summary()
    assert refused.exit_code != 0, refused.summary()
    assert refused.said, refused.summary()
