"""What one ingest run did, per file and in total, and the exit status that follows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Final

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "FileOutcome",
    "FileResult",
    "IngestReport",
]

EXIT_OK: Final = 0
#: Some file could not be ingested (unreadable, state unusable); the others were.
EXIT_FAILED: Final = 1
#: Stopped by a signal with work left: the state is saved, the same command resumes.
EXIT_INTERRUPTED: Final = 130


class FileOutcome(Enum):
    """How the ingest of one file ended."""

    DONE = "done"  # every message acknowledged; marked done (and moved, in watch mode)
    ALREADY_DONE = "already done"  # its state said done: nothing published
    INTERRUPTED = "interrupted"  # stopped between windows; the state says where to resume
    FAILED = "failed"  # not ingested; ``reason`` says why


@dataclass
class FileResult:
    """The ingest of one file in this run."""

    path: Path
    outcome: FileOutcome
    #: Records acknowledged in this run, per record type.
    records: Counter[str] = field(default_factory=Counter)
    #: Dead-letter items acknowledged in this run, per rejection code.
    rejected: Counter[str] = field(default_factory=Counter)
    #: The offset this run resumed from (None: from the start).
    resumed_from: int | None = None
    #: Offset up to which the file is acknowledged when this run stopped.
    offset: int = 0
    seconds: float = 0.0
    reason: str = ""
    #: Where a done file went (watch mode).
    moved_to: Path | None = None
    #: The file had no octets (a rotation boundary with no CDR): done, nothing published.
    empty: bool = False


@dataclass
class IngestReport:
    """Every file of one run."""

    files: list[FileResult] = field(default_factory=list)
    #: The run was stopped by a signal (work may be left).
    stopped: bool = False

    def add(self, result: FileResult) -> None:
        """Record one file's result."""
        self.files.append(result)

    def _count(self, outcome: FileOutcome) -> int:
        return sum(1 for f in self.files if f.outcome is outcome)

    @property
    def records(self) -> Counter[str]:
        """Records published and acknowledged, per record type."""
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.records)
        return total

    @property
    def rejected(self) -> Counter[str]:
        """Items dead-lettered and acknowledged, per rejection code."""
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.rejected)
        return total

    @property
    def empty(self) -> int:
        """Empty files done (nothing in them to publish)."""
        return sum(1 for f in self.files if f.empty and f.outcome is FileOutcome.DONE)

    @property
    def seconds(self) -> float:
        """Time spent ingesting (idle time in watch mode excluded)."""
        return sum(f.seconds for f in self.files)

    @property
    def exit_code(self) -> int:
        """130 if work was left by a stop, else 1 if a file failed, else 0."""
        if self._count(FileOutcome.INTERRUPTED):
            return EXIT_INTERRUPTED
        if self._count(FileOutcome.FAILED):
            return EXIT_FAILED
        return EXIT_OK

    def summary(self) -> str:
        """A few lines a person can read."""
        records, rejected = self.records, self.rejected
        total = sum(records.values())
        seconds = self.seconds
        rate = total / seconds if seconds > 0 else 0.0
        resumed = sum(1 for f in self.files if f.resumed_from is not None)
        head = f"ingested {self._count(FileOutcome.DONE)} files"
        notes = [f"{n} {what}" for n, what in ((resumed, "resumed"), (self.empty, "empty")) if n]
        if notes:
            head += f" ({', '.join(notes)})"
        for outcome in (FileOutcome.ALREADY_DONE, FileOutcome.INTERRUPTED, FileOutcome.FAILED):
            if n := self._count(outcome):
                head += f", {n} {outcome.value}"
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(records.items())) or "none"
        lines = [
            head,
            f"records: {total:,} ({kinds}) in {seconds:.1f} s, {rate:,.0f} records/s",
        ]
        codes = ", ".join(f"{code} {n:,}" for code, n in sorted(rejected.items()))
        lines.append(
            f"rejected to the dead-letter topic: {sum(rejected.values()):,}"
            + (f" ({codes})" if codes else "")
        )
        for f in self.files:
            if f.outcome is FileOutcome.FAILED:
                lines.append(f"failed: {f.path}: {f.reason}")
            elif f.outcome is FileOutcome.INTERRUPTED:
                lines.append(f"interrupted: {f.path} at offset {f.offset:,}; run again to resume")
        return "\n".join(lines)
