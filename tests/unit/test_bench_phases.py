"""The py-spy phase classifier of ``benchmarks.phases``: each stack lands in the phase of
its innermost phase frame, as py-spy names frames (``Class.method (path:line)``)."""

from __future__ import annotations

import pytest

from benchmarks.phases import phase_of, tally

ROOT = "<module> (pipeline/__main__.py:3);BaseEventLoop._run_once (asyncio/base_events.py:1922)"
LOOP = ROOT + ";Handle._run (asyncio/events.py:80)"
PATH = LOOP + ";RecordPath._consume_loop (/src/pipeline/shell/recordpath.py:310)"


@pytest.mark.parametrize(
    ("leaf", "phase"),
    [
        (
            PATH + ";RecordPath._process (/src/pipeline/shell/recordpath.py:356)"
            ";PythonBatchEngine.process_batch (/src/pipeline/core/batch.py:180)"
            ";Engine.route (/src/pipeline/core/engine.py:200)",
            "engine/decide",
        ),
        (
            PATH + ";RecordPath._process (/src/pipeline/shell/recordpath.py:361)"
            ";OutputBatch.add (/src/pipeline/shell/produce.py:208)"
            ";BatchBuilder.append (aiokafka/producer/message_accumulator.py:77)",
            "produce/append",
        ),
        (
            PATH + ";RecordPath._process (/src/pipeline/shell/recordpath.py:361)"
            ";OutputBatch.add (/src/pipeline/shell/produce.py:206)"
            ";Partitioner.partition (/src/pipeline/shell/produce.py:99)",
            "produce/append",
        ),
        (
            LOOP + ";Sender._send_produce_req (aiokafka/producer/sender.py:288)"
            ";AIOKafkaClient.send (aiokafka/client.py:474)"
            ";AIOKafkaConnection.send (aiokafka/conn.py:420)"
            ";Schema.encode (aiokafka/protocol/types.py:198)",
            "produce/send",
        ),
        (
            PATH + ";AIOKafkaConsumer.getmany (aiokafka/consumer/consumer.py:1200)"
            ";PartitionRecords._unpack_records (aiokafka/consumer/fetcher.py:256)",
            "fetch/fetch",
        ),
        (
            LOOP + ";RecordPath._commit_loop (/src/pipeline/shell/recordpath.py:500)"
            ";RecordPath._commit (/src/pipeline/shell/recordpath.py:520)"
            ";AIOKafkaConsumer.commit (aiokafka/consumer/consumer.py:700)",
            "commit/commit",
        ),
        (LOOP + ";AIOKafkaConnection._read (aiokafka/conn.py:524)", "other/network"),
        (ROOT + ";EpollSelector.select (selectors.py:468)", "other/loop"),
        ("<module> (somewhere.py:1)", "other/rest"),
    ],
)
def test_a_stack_lands_in_the_phase_of_its_innermost_phase_frame(leaf: str, phase: str) -> None:
    assert phase_of(leaf) == phase


def test_samples_are_summed_per_phase_and_empty_stacks_ignored() -> None:
    raw = f"{ROOT};EpollSelector.select (selectors.py:468) 7\n 3\n<module> (x.py:1) 2\n"
    assert tally(raw) == {"other/loop": 7, "other/rest": 2}
