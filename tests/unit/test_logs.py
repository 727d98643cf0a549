"""Thinning Kafka clients' repeated log lines."""

from __future__ import annotations

import logging

from pipeline.shell.logs import RepeatFilter, thin_client_logs


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_one_line_of_a_kind_per_window_then_the_count_of_those_held_back() -> None:
    now = [0.0]
    thin = RepeatFilter(window=10.0, clock=lambda: now[0])
    template = "Unable connect to node with id %s: %s"
    passed = []
    for i in range(50):
        now[0] = i * 0.1  # 50 lines in 5 s
        record = _record("aiokafka.conn", template, 111, "refused")
        if thin.filter(record):
            passed.append(record.getMessage())
    assert passed == ["Unable connect to node with id 111: refused"]
    now[0] = 10.5
    record = _record("aiokafka.conn", template, 111, "refused")
    assert thin.filter(record)
    assert record.getMessage() == (
        "Unable connect to node with id 111: refused [49 more like this in 10 s]"
    )


def test_other_kinds_and_our_own_lines_are_never_held_back() -> None:
    thin = RepeatFilter(window=10.0, clock=lambda: 0.0)
    assert thin.filter(_record("aiokafka.conn", "a %s", 1))
    assert thin.filter(_record("aiokafka.conn", "b %s", 1))  # another template
    assert thin.filter(_record("aiokafka.client", "a %s", 1))  # another logger
    for _ in range(5):
        assert thin.filter(_record("cdrveil.worker", "Kafka is unreachable"))


def test_thin_client_logs_filters_every_root_handler_once() -> None:
    root = logging.Logger("test-root")
    handler = logging.StreamHandler()
    root.addHandler(handler)
    thin_client_logs(root)
    thin_client_logs(root)
    assert sum(isinstance(f, RepeatFilter) for f in handler.filters) == 1


def test_header_lookups_on_a_consumed_message() -> None:
    from types import SimpleNamespace

    from pipeline.shell.messages import header, header_text

    message = SimpleNamespace(headers=[("a", b"1"), ("b", b"\xff")])
    assert header(message, "a") == b"1"
    assert header_text(message, "b") == "\ufffd"
    assert header(message, "c") is None and header_text(message, "c") is None
    assert header(SimpleNamespace(headers=None), "a") is None
