"""The worker's table follower: fields the schemas do not define are counted and each name
is logged once (the name only), never silently ignored."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from pipeline.core.consent import ConsentTable
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.warrants import WarrantIndex
from pipeline.shell.tables import StateTables
from pipeline.shell.telemetry import Metrics
from tests.support.core import SERVED, consent_value


def test_each_undefined_name_is_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    msisdn = MsisdnNormalizer()
    consent, warrants = ConsentTable(msisdn), WarrantIndex(msisdn)
    metrics = Metrics()
    follower = SimpleNamespace(
        consent=consent,
        warrants=warrants,
        metrics=metrics,
        _unknown_logged={"consent.state": set(), "li.warrants": set()},
    )
    caplog.set_level(logging.WARNING, logger="cdrveil.tables")
    for version in (1, 2, 3):
        changes = {"objection": {"network_planning": True}, "note": "secret 46701234567"}
        consent.apply(SERVED.encode(), consent_value(SERVED, {}, version, changes))
        StateTables._note_unknown_fields(follower)  # type: ignore[arg-type]
    warnings = [r.getMessage() for r in caplog.records]
    assert len([w for w in warnings if "'objection'" in w]) == 1
    assert len([w for w in warnings if "'note'" in w]) == 1
    assert not any("46701234567" in w for w in warnings)  # names only, never a value
    body = metrics.render()[0].decode()
    assert 'cdrveil_state_unknown_fields_total{field="objection",topic="consent.state"} 3.0' in body
