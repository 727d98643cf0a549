"""No leaks: the canary run and consent withdrawal under traffic, small versions of
``make canary`` (``soak.canary``, ``soak.withdrawal``), with the real worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import Settings
from soak.canary import CanaryConfig, run_canary
from soak.withdrawal import WithdrawalConfig, run_withdrawal

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_no_canary_in_any_form_reaches_analytics_dead_letter_headers_or_the_log(
    settings: Settings, tmp_path: Path
) -> None:
    """100 canaries without consent, in every input form, among consenting traffic."""
    report = await run_canary(settings, tmp_path, CanaryConfig(canaries=100, background=2000))
    assert report.leaks == 0, report.summary()
    assert report.pseudonyms > 0
    assert report.pseudonyms_equal_to_unkeyed_hash == 0, report.summary()
    assert report.unkeyed_hashes_anywhere == 0, report.summary()
    # Controls: the scan finds canaries where they belong, so it could find them elsewhere.
    assert report.control_billing > 0, report.summary()
    assert report.control_dead_letter_values == report.dead_letters == 200, report.summary()
    assert report.messages_scanned["analytics messages"] > 0
    assert report.log_lines > 0
    assert report.worker_exit_code == 0


async def test_no_canary_reaches_the_worker_log_even_at_debug_level(
    settings: Settings, tmp_path: Path
) -> None:
    """``CDRVEIL_LOG_LEVEL=DEBUG`` is a documented setting; logs never carry identifiers."""
    config = CanaryConfig(canaries=20, background=200, log_level="DEBUG")
    report = await run_canary(settings, tmp_path, config)
    assert report.leaks == 0, report.summary()


async def test_a_withdrawal_applies_within_a_second_and_nothing_after_it_is_in_clear(
    settings: Settings, tmp_path: Path
) -> None:
    """Withdrawals published while the subscriber's traffic flows: every one applied, in
    order, and no output under the new consent version carries the number in clear."""
    report = await run_withdrawal(settings, tmp_path, WithdrawalConfig(withdrawals=12))
    assert len(report.delays_ms) == 12, report.summary()
    assert report.never_applied == 0
    assert report.not_monotonic == 0, report.summary()
    assert report.outputs_after > 0
    assert report.clear_after == 0, report.summary()
    assert report.marketing_after == 0, report.summary()
    assert report.clear_before > 0, "control: before the withdrawal the number is in clear"
    assert max(report.delays_ms) < 2000, report.summary()
