"""A real worker process with a stand-in engine, for the integration tests.

Run as ``python -m tests.support.fake_worker``; settings come from ``CDRVEIL_*``.
The engine maps each JSON input to one output on the policy's billing topic (the input bytes,
the record id and the subscriber's consent version in headers), rejects what is not JSON,
and raises on ``{"boom": true}`` to stand for an engine bug. ``FAKE_ENGINE_DELAY_US``
slows it down so a test can stop the worker mid-stream.
"""

from __future__ import annotations

import os
import time

import orjson

from pipeline.core.consent import ConsentLookup
from pipeline.core.decode import Rejection
from pipeline.core.engine import Output
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from pipeline.factory import wrap_record_engine
from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames
from pipeline.shell.worker import run_worker


class FakeEngine:
    """One output per JSON object; a rejection for anything else."""

    def __init__(self, settings: Settings, policy: Policy) -> None:
        self.topic = TopicNames(settings.topic_prefix)(policy.routes["billing"].topic)
        self.delay = int(os.environ.get("FAKE_ENGINE_DELAY_US", "0")) / 1e6

    def process(
        self, raw: bytes | None, consent: ConsentLookup, warrants: WarrantIndex
    ) -> Rejection | list[Output]:
        """Echo the input with its record id and consent version."""
        if self.delay:
            time.sleep(self.delay)
        if raw is None:
            return Rejection("null_value", "the message has no value")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return Rejection("invalid_json", "the message is not valid JSON")
        if type(obj) is not dict:
            return Rejection("not_an_object", "the JSON value is not an object")
        if obj.get("boom"):
            raise KeyError(obj.get("servedMSISDN"))
        state = consent(str(obj.get("servedMSISDN")))
        headers = [
            ("cdrveil.record-id", str(obj.get("recordId")).encode()),
            ("cdrveil.consent-version", b"none" if state is None else str(state.version).encode()),
        ]
        return [Output(self.topic, None, raw, headers)]


if __name__ == "__main__":
    run_worker(Settings.from_env(), lambda s, p: wrap_record_engine(s, FakeEngine(s, p)))
