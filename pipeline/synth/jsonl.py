"""The "JSON lines to a file" mode: one message value per line, as it would go on the topic."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipeline.synth.traffic import Generated


def write_jsonl(path: str | Path, records: Iterable[Generated]) -> int:
    """Write each value on its own line; return the number of lines written.

    Values are written byte for byte, defects included (no value contains a newline).
    A null value (a Kafka tombstone) has no line form, so it is skipped.
    """
    written = 0
    with Path(path).open("wb") as out:
        for message in records:
            if message.value is None:
                continue
            out.write(message.value)
            out.write(b"\n")
            written += 1
    return written
