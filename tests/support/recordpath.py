"""Stand-ins for the record path's unit tests: a consumed record and an echoing engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from pipeline.core.consent import ConsentLookup
from pipeline.core.decode import Rejection
from pipeline.core.engine import Output
from pipeline.core.warrants import WarrantIndex


class ConsumedRecord(NamedTuple):
    """The fields of aiokafka's ConsumerRecord the record path reads."""

    key: bytes | None
    value: bytes | None
    offset: int
    timestamp: int


class EchoEngine:
    """One output on ``topic`` per value; ``bad`` is rejected; ``boom`` raises ``boom()``.

    ``keyed``: the output's key is the value (else none); ``headers``: the output's headers.
    Without ``boom``, ``boom`` is echoed like any value.
    """

    def __init__(
        self,
        topic: str,
        *,
        keyed: bool = False,
        headers: Sequence[tuple[str, bytes]] = (),
        boom: Callable[[], Exception] | None = None,
    ) -> None:
        self.topic = topic
        self.keyed = keyed
        self.headers = list(headers)
        self.boom = boom

    def process(
        self, raw: bytes | None, consent: ConsentLookup, warrants: WarrantIndex
    ) -> Rejection | list[Output]:
        if raw == b"bad":
            return Rejection("invalid_json", "the message is not valid JSON")
        if raw == b"boom" and self.boom is not None:
            raise self.boom()
        return [Output(self.topic, raw if self.keyed else None, raw or b"", list(self.headers))]
