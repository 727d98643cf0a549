"""The process tree of a command under test, read from /proc: what it started, and whether
any of it is still alive after it ended."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def cmdline(pid: int) -> bytes:
    """``pid``'s command line, words separated by spaces (empty once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def alive(pid: int, words: Iterable[bytes]) -> bool:
    """Whether ``pid`` still runs (not a zombie) a command containing one of ``words`` (so a
    reused pid does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and any(word in cmdline(pid) for word in words)


def descendants(root: int) -> set[int]:
    """Every living descendant of ``root``."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found
