"""Which files of a watched directory are closed and ready to ingest, and the done folder.

The convention: a file is closed once its size and modification time have not changed
for a settle interval. Nothing has to be agreed with the charging gateway, and the
write-then-rename convention works with it too: names that are hidden (``.name``) or end
in ``.tmp`` or ``.part`` are never taken, so a writer that renames a finished file into
place has it picked up one settle interval later. An empty file is taken like any other
once settled: a network element closes one at a rotation boundary when it had no CDR to
write, and it is done without publishing anything. The state files of this command
(``*.cdrveil-ingest.json``) are not CDR files.

A done file is moved into the done folder under its own name, or ``name.1``, ``name.2``...
if that name is taken there: nothing in the done folder is ever overwritten.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pipeline.ingest.state import STATE_SUFFIX

__all__ = ["IGNORED_SUFFIXES", "SettleTracker", "done_target", "is_candidate", "move_to_done"]

IGNORED_SUFFIXES: Final = (".tmp", ".part", STATE_SUFFIX)


def is_candidate(name: str) -> bool:
    """Whether a directory entry named ``name`` may be a CDR file to ingest."""
    return not name.startswith(".") and not name.endswith(IGNORED_SUFFIXES)


@dataclass(slots=True)
class _Seen:
    size: int
    mtime_ns: int
    since: float


class SettleTracker:
    """Remembers each file's size and mtime, and since when they have not changed."""

    def __init__(self, settle_s: float) -> None:
        """Files count as closed once unchanged for ``settle_s`` seconds."""
        if settle_s < 0:
            raise ValueError("settle interval must be >= 0")
        self.settle_s = settle_s
        self._seen: dict[str, _Seen] = {}

    def observe(self, name: str, size: int, mtime_ns: int, now: float) -> bool:
        """Record one look at a file; True if it is closed (unchanged long enough)."""
        seen = self._seen.get(name)
        if seen is None or seen.size != size or seen.mtime_ns != mtime_ns:
            self._seen[name] = _Seen(size, mtime_ns, now)
            # A zero settle interval still needs two looks: one look proves nothing.
            return False
        return now - seen.since >= self.settle_s

    def forget(self, name: str) -> None:
        """Drop what is known of ``name`` (it was ingested and moved away)."""
        self._seen.pop(name, None)

    def closed(self, directory: Path, now: float) -> list[Path]:
        """Look at every candidate in ``directory``; the closed ones, oldest first."""
        found: list[tuple[int, str, Path]] = []
        present: set[str] = set()
        with os.scandir(directory) as entries:
            for entry in entries:
                if not is_candidate(entry.name) or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed between listing and looking
                present.add(entry.name)
                if self.observe(entry.name, stat.st_size, stat.st_mtime_ns, now):
                    found.append((stat.st_mtime_ns, entry.name, Path(entry.path)))
        for gone in self._seen.keys() - present:
            del self._seen[gone]
        return [path for _, _, path in sorted(found)]


def done_target(done_dir: Path, name: str) -> Path:
    """A path in ``done_dir`` for a file named ``name`` that does not exist yet."""
    target = done_dir / name
    counter = 1
    while target.exists():
        target = done_dir / f"{name}.{counter}"
        counter += 1
    return target


def move_to_done(path: Path, done_dir: Path) -> Path:
    """Move a done file into ``done_dir`` (created if needed) without overwriting; its new path."""
    done_dir.mkdir(parents=True, exist_ok=True)
    target = done_target(done_dir, path.name)
    # shutil.move renames within a file system and copies across file systems.
    return Path(shutil.move(path, target))
