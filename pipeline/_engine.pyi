"""Type stub of the compiled engine (the Rust crate in engine/, built by maturin)."""

from collections.abc import Sequence
from typing import Any

from pipeline.core.engine import Output

class ConsentTable:
    """The consent table in native memory."""

    def apply(self, key: bytes | None, value: bytes | None) -> tuple[str, str] | None: ...
    def __len__(self) -> int: ...
    def get(self, msisdn: str) -> tuple[int, list[str]] | None: ...

class WarrantIndex:
    """The warrant index in native memory."""

    def apply(self, key: bytes | None, value: bytes | None) -> tuple[str, str] | None: ...
    def __len__(self) -> int: ...
    @property
    def active(self) -> bool: ...

class Engine:
    """The record engine, built from a plan and the derived keys."""

    def __init__(
        self, plan: dict[str, Any], keys: list[bytes], output_type: type[Output]
    ) -> None: ...
    @property
    def consent(self) -> ConsentTable: ...
    @property
    def warrants(self) -> WarrantIndex: ...
    def process_batch(
        self, values: Sequence[bytes | None]
    ) -> tuple[list[Output], list[tuple[int, str, str, str | None]]]: ...
