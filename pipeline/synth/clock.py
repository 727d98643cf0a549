"""RFC 3339 rendering of whole-second times, cached because traffic reuses nearby seconds."""

from __future__ import annotations

import functools
import time


@functools.lru_cache(maxsize=16_384)
def rfc3339(epoch_seconds: int, local: bool = False) -> str:
    """`2026-11-21T05:00:00Z`, or with `local` the same instant in CET (`...06:00:00+01:00`)."""
    if local:
        tm = time.gmtime(epoch_seconds + 3600)
        suffix = "+01:00"
    else:
        tm = time.gmtime(epoch_seconds)
        suffix = "Z"
    return (
        f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}"
        f"T{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}{suffix}"
    )
