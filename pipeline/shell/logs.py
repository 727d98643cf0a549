"""Keeping Kafka clients' repeated complaints from flooding a worker's log.

With the broker gone, aiokafka logs every failed connect, fetch, metadata update and
produce retry: ~160 lines a second measured here, which buries the worker's own lines (and
fills disks). :class:`RepeatFilter` lets one line of each kind through per window and says
how many like it were held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

#: Loggers whose repeated lines are thinned.
THINNED: Final = ("aiokafka", "kafka")
#: At most one line of each kind per window.
WINDOW_S: Final = 10.0


class RepeatFilter(logging.Filter):
    """Pass the first record of each (logger, template) per window; count the rest."""

    def __init__(
        self,
        prefixes: tuple[str, ...] = THINNED,
        window: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.window = window
        self._clock = clock
        # (logger name, message template) -> (when last let through, held back since).
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is written (it may get a count of held-back lines appended)."""
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        if seen is not None and seen[1]:
            # Appended to the template, so the record's own arguments still apply.
            record.msg = f"{record.msg} [{seen[1]} more like this in {self.window:.0f} s]"
        if len(self._seen) > 1000:  # templates are few; this only bounds a surprise
            self._seen.clear()
        self._seen[key] = (now, 0)
        return True


def thin_client_logs(root: logging.Logger | None = None) -> None:
    """Put a :class:`RepeatFilter` on every handler of the root logger (once)."""
    for handler in (root or logging.getLogger()).handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())
