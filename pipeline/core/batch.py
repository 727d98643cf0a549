"""The batch interface both engines offer: one call per consumed batch.

Only the contract's types live here on this branch (the engine-shell branch adds the
Python implementation, ``PythonBatchEngine``); ``pipeline/core/native.py`` implements it
natively.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from pipeline.core.decode import Rejection
from pipeline.core.engine import Output


class BatchResult(NamedTuple):
    """What one batch produced."""

    #: (topic, key, value, headers), in input order, each input's outputs in the engine's order.
    outputs: list[Output]
    #: (index of the input in the batch, rejection).
    rejections: list[tuple[int, Rejection]]


class StateTable(Protocol):
    """A table the consumers feed one message at a time (consent states, warrants)."""

    rejected: dict[str, int]

    def apply(self, key: bytes | None, value: bytes | None) -> object:
        """Apply one message (``None`` value = tombstone); the problem if it was refused."""

    def __len__(self) -> int:
        """How many entries the table holds."""


class BatchEngine(Protocol):
    """An engine that processes a consumed batch in one call."""

    name: str
    consent: StateTable
    warrants: StateTable

    def process_batch(self, values: Sequence[bytes | None]) -> BatchResult:
        """Every output and rejection of the batch's message values."""
