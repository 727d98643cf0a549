"""Interrupted ingests resume without loss or repeats; the watcher takes closed files only."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.core.topics import SMS, VOICE
from pipeline.ingest.report import FileOutcome
from pipeline.ingest.run import ingest_files, watch_directory
from pipeline.ingest.state import IngestState, load_state, state_path
from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames
from tests.support.ingest import (
    CdrFile,
    build_file,
    make_topics,
    read_topics,
    record_offset,
)
from tests.support.kafka import POLICY

ROOT = Path(__file__).resolve().parents[2]
NAME = "SMSC02_20261121T0600+0100_0042.dat"


async def published_ids(settings: Settings, expected: int) -> tuple[Counter[str], int]:
    """How often each record id was published, and how many dead letters there are."""
    names = TopicNames(settings.topic_prefix)
    messages = await read_topics(
        settings, [names(VOICE), names(SMS), names.dead_letter(POLICY)], expected
    )
    ids: Counter[str] = Counter()
    dead = 0
    for message in messages:
        if message.topic == names.dead_letter(POLICY):
            dead += 1
        else:
            ids[orjson.loads(message.value)["recordId"]] += 1
    return ids, dead


def expected_ids(built: CdrFile, name: str = NAME) -> set[str]:
    """The record id of every CDR of the file."""
    return {f"{name}:{offset}" for offset in built.offsets}


async def test_a_stopped_ingest_resumes_where_it_stopped_without_loss_or_repeat(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    await make_topics(ingest_settings)
    built = build_file(800)
    path = tmp_path / NAME
    path.write_bytes(built.data)
    stop = asyncio.Event()
    checkpoints: list[IngestState] = []

    def after_three(_: Path, state: IngestState) -> None:
        checkpoints.append(state)
        if len(checkpoints) == 3:
            stop.set()

    first = await ingest_files(
        ingest_settings, [path], window=100, stop=stop, show_progress=False,
        on_checkpoint=after_three,
    )  # fmt: skip

    assert first.exit_code == 130
    [result] = first.files
    assert result.outcome is FileOutcome.INTERRUPTED
    state = load_state(path)
    assert state is not None and not state.done
    assert state == checkpoints[-1]
    assert 300 <= state.items < 800
    assert sum(result.records.values()) == state.items
    ids, _ = await published_ids(ingest_settings, state.items)
    assert set(ids) == {i for i in expected_ids(built) if record_offset(i) < state.offset}

    second = await ingest_files(ingest_settings, [path], window=100, show_progress=False)

    assert second.exit_code == 0
    assert second.files[0].resumed_from == state.offset
    assert sum(second.files[0].records.values()) == 800 - state.items
    ids, dead = await published_ids(ingest_settings, 800)
    assert set(ids) == expected_ids(built)
    assert max(ids.values()) == 1
    assert dead == 0


async def test_a_state_that_does_not_match_the_file_starts_it_over(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    """Another file under a done file's name: ingested in full, not skipped."""
    await make_topics(ingest_settings)
    path = tmp_path / NAME
    path.write_bytes(build_file(3).data)
    await ingest_files(ingest_settings, [path], show_progress=False)
    other = build_file(5)
    path.write_bytes(other.data)

    report = await ingest_files(ingest_settings, [path], show_progress=False)

    assert [f.outcome for f in report.files] == [FileOutcome.DONE]
    assert report.files[0].resumed_from is None
    assert sum(report.records.values()) == 5


def spawn_ingest(
    settings: Settings, path: Path, window: int, jobs: int, *extra: str
) -> subprocess.Popen[bytes]:
    """``cdrveil ingest FILE`` in a process group of its own, as a terminal would start it.

    Its output goes to ``FILE.log``: a pipe would hang the test if a stray child held it.
    With ``extra`` arguments (``--watch DIR``), ``path`` only names the log.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDRVEIL_")}
    env.update(
        CDRVEIL_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        CDRVEIL_TOPIC_PREFIX=settings.topic_prefix,
        PYTHONPATH=str(ROOT),
    )
    with log_of(path).open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", "ingest", *(extra or [str(path)]),
             "--window", str(window), "--jobs", str(jobs), "--no-progress"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def log_of(path: Path) -> Path:
    """Where the ingest of ``path`` writes its output."""
    return path.with_name(path.name + ".log")


def children(process: subprocess.Popen[bytes]) -> list[int]:
    """Process ids of the children of ``process`` (its decoding workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == process.pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_for_checkpoint(process: subprocess.Popen[bytes], path: Path) -> None:
    """Wait until the process has acknowledged its first window."""
    deadline = time.monotonic() + 30
    while not state_path(path).exists():
        assert process.poll() is None, log_of(path).read_text()
        assert time.monotonic() < deadline, "no checkpoint within 30 s"
        await asyncio.sleep(0.005)


def finish(process: subprocess.Popen[bytes], path: Path) -> tuple[int, str]:
    """Exit status and output of a process that was told to stop."""
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the ingest did not stop: {log_of(path).read_text()}")
    return process.returncode, log_of(path).read_text()


async def test_ctrl_c_acknowledges_the_window_in_flight_saves_and_exits_130(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    """Ctrl-C reaches the whole process group, decoding workers included."""
    await make_topics(ingest_settings)
    built = build_file(24_000)
    path = tmp_path / NAME
    path.write_bytes(built.data)
    process = spawn_ingest(ingest_settings, path, window=200, jobs=1)
    await wait_for_checkpoint(process, path)

    os.killpg(process.pid, signal.SIGINT)
    code, output = finish(process, path)

    assert code == 130, output
    assert "run again to resume" in output
    state = load_state(path)
    assert state is not None and not state.done
    ids, _ = await published_ids(ingest_settings, state.items)
    assert sum(ids.values()) == state.items
    assert all(record_offset(i) < state.offset for i in ids)

    resumed = await ingest_files(ingest_settings, [path], show_progress=False)

    assert resumed.files[0].resumed_from == state.offset
    ids, _ = await published_ids(ingest_settings, len(built.offsets))
    assert set(ids) == expected_ids(built)
    assert max(ids.values()) == 1


async def test_after_a_hard_kill_nothing_is_lost_and_nothing_before_the_checkpoint_repeats(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    """At-least-once: only the windows in flight at the kill may be published twice."""
    await make_topics(ingest_settings)
    built = build_file(24_000)
    path = tmp_path / NAME
    path.write_bytes(built.data)
    process = spawn_ingest(ingest_settings, path, window=200, jobs=2)
    await wait_for_checkpoint(process, path)
    await asyncio.sleep(0.05)
    workers = children(process)
    assert len(workers) >= 2  # two decoding processes (and multiprocessing's tracker)

    process.kill()
    finish(process, path)
    await wait_until(
        # Death signals are immediate; the slack is for a machine loaded by parallel runs.
        lambda: not any(alive(pid) for pid in workers),
        20,
        "decoding workers die with the ingest",
    )
    state = load_state(path)
    assert state is not None and not state.done
    resumed = await ingest_files(ingest_settings, [path], show_progress=False)

    assert resumed.exit_code == 0
    assert resumed.files[0].resumed_from == state.offset
    ids, _ = await published_ids(ingest_settings, len(built.offsets))
    assert set(ids) == expected_ids(built)
    repeated = [i for i, n in ids.items() if n > 1]
    assert all(record_offset(i) >= state.offset for i in repeated)


async def wait_until(condition: Any, within: float = 15.0, what: str = "condition") -> None:
    """Poll ``condition()`` until it is true."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not met within {within} s"
        await asyncio.sleep(0.02)


async def test_the_watcher_takes_closed_files_only_resumes_and_moves_them_to_done(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    await make_topics(ingest_settings)
    inbox, done = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    # C: an ingest stopped after its first window, left in the watched folder.
    c_file = build_file(40)
    (inbox / "C.dat").write_bytes(c_file.data)
    stop_c = asyncio.Event()
    interrupted = await ingest_files(
        ingest_settings, [inbox / "C.dat"], window=8, stop=stop_c, show_progress=False,
        on_checkpoint=lambda _p, _s: stop_c.set(),
    )  # fmt: skip
    assert interrupted.exit_code == 130
    stop = asyncio.Event()
    watcher = asyncio.create_task(
        watch_directory(
            ingest_settings, inbox, done_dir=done, settle_s=0.3, poll_s=0.03, stop=stop,
            show_progress=False,
        )
    )  # fmt: skip

    # A: written in two parts; taken half-written, it would leave a truncated CDR.
    a_file = build_file(16)
    half = len(a_file.data) // 2
    (inbox / "A.dat").write_bytes(a_file.data[:half])
    await asyncio.sleep(0.1)
    with (inbox / "A.dat").open("ab") as out:
        out.write(a_file.data[half:])
    # B: written under a .part name, renamed once complete.
    b_file = build_file(8)
    (inbox / "B.dat.part").write_bytes(b_file.data)
    await asyncio.sleep(0.6)
    assert (inbox / "B.dat.part").exists()
    (inbox / "B.dat.part").rename(inbox / "B.dat")
    await wait_until(lambda: {p.name for p in done.glob("*")} == {"A.dat", "B.dat", "C.dat"})

    stop.set()
    report = await watcher

    assert report.exit_code == 0
    assert sorted(os.listdir(inbox)) == []
    assert (done / "A.dat").read_bytes() == a_file.data
    outcomes = {f.path.name: (f.outcome, f.resumed_from) for f in report.files}
    assert outcomes["A.dat"] == (FileOutcome.DONE, None)
    assert outcomes["C.dat"][1] == interrupted.files[0].offset
    ids, dead = await published_ids(ingest_settings, 16 + 8 + 40)
    want = expected_ids(a_file, "A.dat") | expected_ids(b_file, "B.dat")
    assert set(ids) == want | expected_ids(c_file, "C.dat")
    assert max(ids.values()) == 1
    assert dead == 0


async def test_the_watcher_takes_an_empty_file_and_moves_it_to_done_counted(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    """An empty file at a rotation boundary is done: moved, exit 0, nothing published."""
    await make_topics(ingest_settings)
    inbox, done = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    (inbox / "E.dat").write_bytes(b"")
    stop = asyncio.Event()
    watcher = asyncio.create_task(
        watch_directory(
            ingest_settings, inbox, done_dir=done, settle_s=0.1, poll_s=0.02, stop=stop,
            show_progress=False, jobs=2,
        )
    )  # fmt: skip

    await wait_until(lambda: (done / "E.dat").exists(), what="E.dat moved to done")
    stop.set()
    report = await watcher

    assert report.exit_code == 0
    assert ([f.outcome for f in report.files], report.empty) == ([FileOutcome.DONE], 1)
    assert sorted(os.listdir(inbox)) == []
    assert await published_ids(ingest_settings, 0) == (Counter(), 0)


async def test_a_watcher_stopped_while_idle_exits_0(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    stop = asyncio.Event()
    watcher = asyncio.create_task(
        watch_directory(ingest_settings, tmp_path, settle_s=0.1, poll_s=0.02, stop=stop)
    )
    await asyncio.sleep(0.2)
    stop.set()

    report = await watcher

    assert report.exit_code == 0
    assert report.files == []


async def test_the_watch_command_ingests_dropped_files_and_exits_0_on_sigterm_when_idle(
    ingest_settings: Settings, tmp_path: Path
) -> None:
    await make_topics(ingest_settings)
    inbox = tmp_path / "in"
    inbox.mkdir()
    process = spawn_ingest(
        ingest_settings, tmp_path / "watch", 100, 1, "--watch", str(inbox), "--settle", "0.2"
    )
    built = build_file(300)
    (inbox / "D.dat").write_bytes(built.data)
    await wait_until(lambda: (inbox / "done" / "D.dat").exists(), what="D.dat moved to done")

    process.send_signal(signal.SIGTERM)
    code, output = finish(process, tmp_path / "watch")

    assert code == 0, output
    assert "ingested 1 files" in output
    ids, dead = await published_ids(ingest_settings, 300)
    assert set(ids) == expected_ids(built, "D.dat")
    assert (max(ids.values()), dead) == (1, 0)
