"""The KRaft cluster id the launcher formats its nodes with is never one the storage tool
misreads as an option."""

from __future__ import annotations

import base64
import re

from pipeline.shell.kafka_cluster import _cluster_id

DASH_FIRST = bytes([0xF8]) + bytes(15)  # encodes to "-AAA...": the tool read it as a flag
PLAIN = bytes(range(1, 17))


def test_an_id_starting_with_a_dash_is_drawn_again() -> None:
    assert base64.urlsafe_b64encode(DASH_FIRST).decode().startswith("-")
    draws = iter([DASH_FIRST, DASH_FIRST, PLAIN])
    cluster_id = _cluster_id(lambda: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(PLAIN).decode().rstrip("=")
    assert next(draws, None) is None  # all three were drawn


def test_random_ids_are_22_url_safe_characters_not_starting_with_a_dash() -> None:
    for _ in range(2000):  # ~31 of 2,000 random ids start with "-" before the redraw
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", _cluster_id())
