"""A bounded memo that keeps hot entries: two generations instead of LRU bookkeeping.

Subscribers repeat on a skewed distribution, so caching normalized numbers and
pseudonyms pays; but clearing a full cache throws away the hot entries with the
cold ones. Here a full young generation becomes the old one: an entry used in
the last two generations survives, at the price of one dict lookup on a miss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Generic, TypeVar, cast

V = TypeVar("V")

#: What a generation returns for a key it does not hold (values may be ``None``).
_MISSING: Final = object()


class TwoGenerationCache(Generic[V]):
    """Memoize ``compute`` for string keys with at most ``2 * limit`` entries."""

    __slots__ = ("_compute", "_limit", "_old", "young")

    def __init__(self, compute: Callable[[str], V], limit: int) -> None:
        self._compute = compute
        self._limit = limit
        #: The young generation; hot paths may ``.get()`` from it directly before calling.
        #: It stays the same dict object for the cache's life (swaps copy, not rebind).
        self.young: dict[str, V] = {}
        self._old: dict[str, V] = {}

    def __call__(self, key: str) -> V:
        """The memoized value for ``key``."""
        # .get with a sentinel, not try/except KeyError: misses are common (every new
        # subscriber), and a raised KeyError costs more than the lookup.
        young = self.young
        found = young.get(key, _MISSING)
        if found is not _MISSING:
            return cast(V, found)
        found = self._old.get(key, _MISSING)
        value = self._compute(key) if found is _MISSING else cast(V, found)
        if len(young) >= self._limit:
            self._old = young.copy()
            young.clear()
        young[key] = value
        return value

    def __len__(self) -> int:
        return len(self.young) + len(self._old)
