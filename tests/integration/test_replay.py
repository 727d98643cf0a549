"""`cdrveil replay`: dead letters back into their input topic after a fix, byte for byte."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.harness import read_all
from pipeline.settings import Settings
from pipeline.shell.deadletter import file_dead_letter_headers
from pipeline.shell.messages import header
from pipeline.shell.offsets import log_end_offsets, wait_until_committed
from pipeline.shell.topics import TopicNames
from pipeline.synth import Workload, records
from pipeline.tools.replay import REPLAYED_FROM
from tests.support.kafka import (
    POLICY,
    ROOT,
    all_topics,
    expected_outputs,
    output_topics,
    produce,
    publish_state,
    wait_ready,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: The first worker's record size limit: about half of the synthetic records are larger.
SMALL_LIMIT = 512


async def cdrveil(settings: Settings, *args: str) -> tuple[int, str]:
    """Run the command line in a child process; its exit status and its stdout + stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDRVEIL_")}
    env.update(settings.to_env())
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeline",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


def count(summary: str, label: str) -> int:
    """The number on the summary line that starts with ``label``."""
    match = re.search(rf"^{re.escape(label)}\s+([\d,]+)", summary, re.MULTILINE)
    assert match, summary
    return int(match.group(1).replace(",", ""))


async def input_ends(settings: Settings) -> int:
    """How many messages the input topics hold."""
    return sum(
        (await log_end_offsets(settings, list(TopicNames(settings.topic_prefix).inputs))).values()
    )


async def test_oversize_dead_letters_replayed_after_raising_the_limit_get_their_outputs(
    settings: Settings, producer: AIOKafkaProducer, real_worker: Any, keyring: Path
) -> None:
    """Records dead-lettered as ``oversize`` under a too-small limit are replayed (selected
    by code, in two runs joined by the printed offsets) into their input topics with their
    keys and bytes, and a worker with the right limit then gives each its outputs. Other
    codes and dead letters from CDR files stay; no key or value is ever printed."""
    await all_topics(settings)
    names = TopicNames(settings.topic_prefix)
    workload = Workload(subscribers=200, seed=41)
    await publish_state(producer, settings, workload)
    valid = [m for m in records(workload, 300) if m.expected_reason is None]
    broken = [(b"j-%d" % i, b'{"recordId": "j%d", ' % i) for i in range(20)]
    for kind, topic in (("voice", names.inputs[0]), ("sms", names.inputs[1])):
        await produce(producer, topic, [(m.key, m.value) for m in valid if m.kind == kind])
    await produce(producer, names.inputs[1], broken)
    ber = file_dead_letter_headers("bad_ber", "not BER", "MSC01_0001.dat", 96, datetime.now(UTC))
    await producer.send_and_wait(names.dead_letter(POLICY), b"\x30\x80\xff", key=None, headers=ber)
    large = [m for m in valid if m.value is not None and len(m.value) > SMALL_LIMIT]
    assert 20 < len(large) < len(valid)

    first = real_worker(settings, CDRVEIL_MAX_RECORD_BYTES=str(SMALL_LIMIT))
    await wait_until_committed(settings, settings.group_id, list(names.inputs), 60)
    assert first.stop() == 0
    dead = Counter(
        header(m, "dlq.error.code") for m in await read_all(settings, [names.dead_letter(POLICY)])
    )
    assert dead == {b"oversize": len(large), b"invalid_json": len(broken), b"bad_ber": 1}
    before = await input_ends(settings)

    # A dry run counts and publishes nothing.
    status, out = await cdrveil(settings, "replay", "--dry-run", "--no-progress")
    assert status == 0, out
    assert count(out, "would replay") == len(large) + len(broken)
    assert "1  from CDR files" in out
    assert await input_ends(settings) == before

    # The oversize ones, in two runs: a limit, then on from the offsets it printed.
    status, out = await cdrveil(settings, "replay", "--code", "oversize", "--limit", "7")
    assert status == 0, out
    assert count(out, "replayed") == 7
    resume = re.search(r"to go on from here: --offsets (\S+)", out)
    assert resume, out
    status, rest = await cdrveil(
        settings, "replay", "--code", "oversize", "--offsets", resume.group(1), "--no-progress"
    )
    assert status == 0, rest
    assert count(rest, "replayed") == len(large) - 7
    assert "read to the end" in rest
    for text in (out, rest):
        assert not any(m.record_id in text for m in valid)
        assert not any(m.key is not None and m.key.decode() in text for m in valid)

    # In the input topics: each oversize record once more, byte for byte, with its key.
    inputs = await read_all(settings, list(names.inputs))
    replayed = [m for m in inputs if header(m, REPLAYED_FROM) is not None]
    assert Counter((m.topic, m.key, m.value) for m in replayed) == Counter(
        (names.inputs[0] if m.kind == "voice" else names.inputs[1], m.key, m.value) for m in large
    )
    assert all(
        header(m, REPLAYED_FROM).startswith(names.dead_letter(POLICY).encode()) for m in replayed
    )

    # The fix: a worker with the default limit gives every replayed record its outputs.
    second = real_worker(settings)
    await wait_ready(second)
    await wait_until_committed(settings, settings.group_id, list(names.inputs), 60)
    assert second.stop() == 0
    consumed = await read_all(settings, output_topics(settings))
    outputs = Counter(
        (m.topic, m.key, m.value, tuple(m.headers))
        for m in consumed
        if m.topic != names.dead_letter(POLICY)
    )
    expected, rejected = expected_outputs(settings, keyring, workload, valid)
    assert not rejected
    assert outputs == Counter(
        {
            (settings.topic_prefix + t, key, value, h): n
            for (t, key, value, h), n in expected.items()
        }
    )
    # and nothing was dead-lettered again
    assert len([m for m in consumed if m.topic == names.dead_letter(POLICY)]) == sum(dead.values())
