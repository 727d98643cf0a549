"""The two-generation memo is transparent, bounded, and keeps recently used entries."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.cache import TwoGenerationCache
from tests.support.properties import EXAMPLES


class CountingSquare:
    """A compute function that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, key: str) -> str:
        self.calls += 1
        return key * 2


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.sampled_from("abcdefghij"), max_size=60), st.integers(1, 4))
def test_the_cache_answers_like_the_function_and_stays_bounded(keys: list[str], limit: int) -> None:
    """Whatever the access pattern and limit, answers equal compute(key); size <= 2 * limit."""
    cache = TwoGenerationCache(CountingSquare(), limit)
    for key in keys:
        assert cache(key) == key * 2
        assert len(cache) <= 2 * limit


def test_a_hit_does_not_recompute() -> None:
    """A repeated key is served from memory."""
    compute = CountingSquare()
    cache = TwoGenerationCache(compute, 8)
    for _ in range(5):
        cache("a")
    assert compute.calls == 1


def test_an_entry_used_in_the_last_generation_survives_a_swap() -> None:
    """A hot key survives the young generation filling up; a cold one is recomputed later."""
    compute = CountingSquare()
    cache = TwoGenerationCache(compute, 2)
    cache("hot")
    cache("cold")
    cache("x")  # young is full: it becomes the old generation, "x" starts the new one
    cache("hot")  # found in the old generation, promoted
    calls = compute.calls
    cache("y")  # young (x, hot) is full: swap again
    cache("hot")
    assert compute.calls == calls + 1  # only "y" was computed
    cache("z")
    cache("w")  # two swaps later "cold" is gone
    before = compute.calls
    cache("cold")
    assert compute.calls == before + 1


def test_the_young_generation_is_the_same_dict_for_the_caches_life() -> None:
    """Hot paths hold a reference to .young; a swap must not rebind it."""
    cache = TwoGenerationCache(CountingSquare(), 1)
    young = cache.young
    for key in "abcdef":
        cache(key)
    assert cache.young is young
    assert young == {"f": "ff"}
