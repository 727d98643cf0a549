"""Progress for long work: a live bar on a terminal, a line every few seconds elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Report ``done`` of ``total`` units of work, throttled, to ``stream`` (stderr)."""

    def __init__(
        self, label: str, total: int, unit: str = "records", stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.total = max(total, 1)
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty()
        self.started = time.monotonic()
        self._last = 0.0
        self.done = 0

    def update(self, done: int) -> None:
        """Record progress; prints at most 10 times a second (live) or every 5 s (logs)."""
        self.done = done
        now = time.monotonic()
        if now - self._last < (0.1 if self.live else 5.0):
            return
        self._last = now
        self._print(end="\r" if self.live else "\n")

    def finish(self, done: int | None = None) -> float:
        """Print the final line; return the elapsed seconds."""
        if done is not None:
            self.done = done
        self._print(end="\n")
        return time.monotonic() - self.started

    def _print(self, end: str) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        share = min(self.done / self.total, 1.0)
        bar = "#" * int(share * 30)
        rate = self.done / elapsed
        self.stream.write(
            f"{self.label:<16} [{bar:<30}] {self.done:>9,}/{self.total:,} {self.unit} "
            f"{rate:>9,.0f}/s {elapsed:6.1f}s{end}"
        )
        self.stream.flush()
