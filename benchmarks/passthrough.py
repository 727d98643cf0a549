"""The passthrough baseline: the worker's own record path with an engine that does nothing.

Every input goes out once, its value unchanged, to ``bench.passthrough``: the same consumer,
batches, producer, acknowledgements and commits as the worker, minus the engine. The engine
interface sees values only, so the copy is keyless (spread round-robin over the partitions)
and carries no headers, like the inputs.

Run as ``python -m benchmarks.passthrough`` with the worker's ``CDRVEIL_*`` variables.
"""

from __future__ import annotations

from typing import Final

from pipeline.core.consent import ConsentLookup
from pipeline.core.decode import Rejection
from pipeline.core.engine import Output
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from pipeline.factory import wrap_record_engine
from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames
from pipeline.shell.worker import run_worker

#: The logical name of the topic the copies go to.
TOPIC: Final = "bench.passthrough"
_NO_HEADERS: Final[list[tuple[str, bytes]]] = []


class Passthrough:
    """An engine that returns each input as its one output."""

    def __init__(self, settings: Settings, policy: Policy) -> None:
        self.topic = TopicNames(settings.topic_prefix)(TOPIC)

    def process(
        self, raw: bytes | None, consent: ConsentLookup, warrants: WarrantIndex
    ) -> Rejection | list[Output]:
        """The input, unchanged."""
        if raw is None:
            return Rejection("null_value", "the message has no value")
        return [Output(self.topic, None, raw, _NO_HEADERS)]


if __name__ == "__main__":
    run_worker(Settings.from_env(), lambda s, p: wrap_record_engine(s, Passthrough(s, p)))
