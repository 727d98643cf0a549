"""Reading consumed Kafka messages: one place for the header lookups every reader needs
(the demo, the benchmarks, the soak runs and the tests)."""

from __future__ import annotations

from typing import Any


def header(message: Any, name: str) -> bytes | None:
    """The value of header ``name`` of a consumed message (``None`` if absent)."""
    for key, value in message.headers or ():
        if key == name:
            return bytes(value)
    return None


def header_text(message: Any, name: str) -> str | None:
    """The value of header ``name`` as text (bad UTF-8 replaced), or ``None``."""
    value = header(message, name)
    return None if value is None else value.decode("utf-8", "replace")
