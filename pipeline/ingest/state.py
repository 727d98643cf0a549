"""The resume state of one CDR file, kept beside it as ``FILE.cdrveil-ingest.json``.

It says how far the file is safely in Kafka: every CDR and rejected stretch that starts
before ``offset`` has been acknowledged by the broker, none after it has been counted.
Items tile the file (``pipeline.ber.reader``), so the next run decodes from ``offset``
and neither loses nor repeats a record. ``digest`` is the SHA-256 of the file's first
``offset`` octets: a state that does not match the file's content (another file under
the same name, a file rewritten since) is not trusted, and the file is ingested from its
start. ``done`` marks a file whose every message is acknowledged.

The file is replaced atomically (written beside it under a hidden name, flushed to disk,
renamed), so a crash leaves the old state or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from pipeline.errors import ConfigError

__all__ = [
    "STATE_SUFFIX",
    "IngestState",
    "content_matches",
    "load_state",
    "remove_state",
    "save_state",
    "state_path",
]

STATE_SUFFIX: Final = ".cdrveil-ingest.json"
STATE_FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class IngestState:
    """How far one file is acknowledged, and what was published from it so far."""

    file: str
    offset: int
    digest: str
    done: bool = False
    #: Acknowledged records per record type, over every run on this file.
    records: Mapping[str, int] = field(default_factory=dict)
    #: Acknowledged dead-letter items per rejection code, over every run on this file.
    rejected: Mapping[str, int] = field(default_factory=dict)
    #: When the state was saved, RFC 3339 UTC (for a person reading the file).
    updated: str = ""

    @property
    def items(self) -> int:
        """Records and rejected items acknowledged so far."""
        return sum(self.records.values()) + sum(self.rejected.values())

    def to_json(self) -> bytes:
        """The state file's contents."""
        document: dict[str, Any] = {
            "format": STATE_FORMAT,
            "file": self.file,
            "offset": self.offset,
            "sha256": self.digest,
            "done": self.done,
            "records": dict(sorted(self.records.items())),
            "rejected": dict(sorted(self.rejected.items())),
            "updated": self.updated,
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> IngestState:
        """Parse a state file; ValueError says what is wrong with it."""
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ValueError("not JSON") from None
        if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
            raise ValueError(f"not a format {STATE_FORMAT} ingest state")
        offset, digest, done = document.get("offset"), document.get("sha256"), document.get("done")
        if type(offset) is not int or offset < 0:
            raise ValueError("offset must be a non-negative integer")
        if not (isinstance(digest, str) and len(digest) == 64):
            raise ValueError("sha256 must be 64 hex digits")
        if type(done) is not bool:
            raise ValueError("done must be true or false")
        return cls(
            file=str(document.get("file", "")),
            offset=offset,
            digest=digest,
            done=done,
            records=_counts(document.get("records"), "records"),
            rejected=_counts(document.get("rejected"), "rejected"),
            updated=str(document.get("updated", "")),
        )


def _counts(value: object, name: str) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and type(v) is int and v >= 0 for k, v in value.items()
    ):
        raise ValueError(f"{name} must map names to counts")
    return dict(value)


def state_path(path: Path) -> Path:
    """Where the state of the CDR file ``path`` is kept: beside it."""
    return path.with_name(path.name + STATE_SUFFIX)


def load_state(path: Path) -> IngestState | None:
    """The saved state of the CDR file ``path``; None if there is none.

    A state file that cannot be read or parsed raises ConfigError: guessing could lose
    or repeat records, so the operator decides (fix it, or delete it to start over).
    """
    where = state_path(path)
    try:
        raw = where.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"ingest state {where} cannot be read ({exc.strerror})") from None
    try:
        return IngestState.from_json(raw)
    except ValueError as exc:
        raise ConfigError(
            f"ingest state {where} is invalid ({exc}); delete it to ingest {path.name} "
            "from the start (downstream de-duplicates on recordId)"
        ) from None


def save_state(path: Path, state: IngestState) -> None:
    """Replace the state of the CDR file ``path`` atomically and durably."""
    where = state_path(path)
    temporary = where.with_name(f".{where.name}.tmp")
    with temporary.open("wb") as out:
        out.write(state.to_json())
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, where)
    _sync_directory(where.parent)


def remove_state(path: Path) -> None:
    """Delete the state of the CDR file ``path`` (it is in the done folder now)."""
    state_path(path).unlink(missing_ok=True)
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is; some file systems refuse
    # to open a directory, and losing only durability there is acceptable.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def content_matches(state: IngestState, data: bytes) -> bool:
    """Whether ``data`` starts with the octets the state was saved for."""
    if state.offset > len(data):
        return False
    return hashlib.sha256(memoryview(data)[: state.offset]).hexdigest() == state.digest
