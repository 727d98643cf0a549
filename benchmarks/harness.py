"""What every benchmark phase shares: child processes, /proc figures, health, bulk loading.

Every process a run starts goes through one :class:`Fleet`, which stops whatever is still
running when the run ends, however it ends (also on Ctrl-C); each child is a
:class:`pipeline.harness.WorkerProcess`, so it also gets SIGKILL from the kernel if the
benchmark itself dies (``PR_SET_PDEATHSIG``), like the broker.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Final, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.core.policy import Policy
from pipeline.harness import WorkerProcess, health, worker_env
from pipeline.harness.workers import STOP_GRACE_S
from pipeline.settings import Settings
from pipeline.shell import clients
from pipeline.shell.produce import OutputBatch, Partitioner, await_delivery
from pipeline.shell.recordpath import MAX_IN_FLIGHT
from pipeline.shell.topics import TopicNames, create_topics, topic_specs

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]

Message = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]
#: aiokafka's batch builder takes headers as a list only.
NO_HEADERS: list[tuple[str, bytes]] = []


# -- processes ------------------------------------------------------------------------------


#: One process the benchmark started (a worker or a baseline), with its log file.
Child = WorkerProcess


@dataclass
class Fleet:
    """Every child process of one benchmark run; :meth:`close` stops those still running."""

    workdir: Path
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str], web_port: int = 0) -> Child:
        """Start ``argv`` with ``env``, its output in a log file of the run's folder."""
        log_path = self.workdir / f"{name}.log"
        child = WorkerProcess.start(env, log_path, argv, cwd=ROOT, name=name, web_port=web_port)
        self.children.append(child)
        return child

    def stop(self, child: Child) -> int:
        """SIGTERM (the worker's graceful stop), SIGKILL if it lingers; its exit status."""
        return child.stop(wait=STOP_GRACE_S, strict=False)

    def close(self) -> None:
        """Stop every child still running (the end of a run, or an interruption)."""
        for child in self.children:
            if child.running():
                child.stop(wait=10.0, strict=False)


def child_env(settings: Settings, keyring: Path | None, web_port: int) -> dict[str, str]:
    """The environment of a worker process for ``settings`` (no inherited CDRVEIL_* variable)."""
    return worker_env(
        settings,
        keyring,
        CDRVEIL_WEB_PORT=str(web_port),
        CDRVEIL_LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )


# -- /proc and /health ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStats:
    """CPU seconds (user + system) and memory of a process, from /proc."""

    cpu_seconds: float
    rss_mb: float
    peak_rss_mb: float


def proc_stats(pid: int) -> ProcStats:
    """Read /proc/<pid>/stat (utime + stime) and /proc/<pid>/status (VmRSS, VmHWM)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    memory = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            memory[name] = int(rest.split()[0]) / 1024
    return ProcStats(ticks / os.sysconf("SC_CLK_TCK"), memory["VmRSS"], memory["VmHWM"])


async def wait_until_ready(
    children: Iterable[Child], within: float, poll: float = 0.02
) -> tuple[float, float]:
    """Wait until every child's /health says ready.

    Returns the monotonic time the first one was ready and the CPU seconds the children had
    used by the time each became ready (a worker consumes nothing before, so what they
    use after that is the work). Raises ``RuntimeError`` with the child's log if one exits
    or the wait times out.
    """
    waiting = list(children)
    first: float | None = None
    cpu = 0.0
    deadline = time.monotonic() + within
    while waiting:
        for child in list(waiting):
            if not child.running():
                raise RuntimeError(
                    f"{child.name} exited with status {child.process.returncode}:\n"
                    + child.log_tail()
                )
            if health(child.web_port).get("status") == "ready":
                cpu += proc_stats(child.pid).cpu_seconds
                first = first if first is not None else time.monotonic()
                waiting.remove(child)
        if time.monotonic() > deadline:
            names = ", ".join(c.name for c in waiting)
            raise RuntimeError(f"not ready after {within:.0f} s: {names}")
        if waiting:
            await asyncio.sleep(poll)
    assert first is not None  # noqa: S101 - at least one child
    return first, cpu


async def unless_one_exits(children: Iterable[Child], work: Awaitable[T], poll: float = 0.2) -> T:
    """Await ``work``, but raise ``RuntimeError`` with its log as soon as a child exits."""
    watched = list(children)
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll)
            if done:
                return task.result()
            for child in watched:
                if not child.running():
                    raise RuntimeError(
                        f"{child.name} exited with status {child.process.returncode}:\n"
                        + child.log_tail()
                    )
    finally:
        task.cancel()


# -- topics ---------------------------------------------------------------------------------


def output_topics(settings: Settings, policy: Policy) -> list[str]:
    """Every topic the worker writes to: the routes' and the dead-letter topic."""
    names = TopicNames(settings.topic_prefix)
    return [*(names(route.topic) for route in policy.routes.values()), names.dead_letter(policy)]


#: Output topics whose messages carry the broker's append time (Apache Kafka phases): the
#: latency is then measured up to the moment each output was written on the broker.
LOG_APPEND_TIME: Final = {"message.timestamp.type": "LogAppendTime"}


async def provision(
    settings: Settings,
    policy: Policy,
    extra: Sequence[str] = (),
    output_configs: Mapping[str, str] | None = None,
) -> None:
    """Create the topic table for ``settings.topic_prefix`` (and ``extra`` logical names).

    ``output_configs`` (e.g. :data:`LOG_APPEND_TIME`) are added to the configs of every
    output topic (each route's and the dead-letter topic) on top of the table's own
    (retention, ``min.insync.replicas``): those are created first, then the rest of the
    table as ``cdrveil topics create`` makes it.
    """
    if output_configs:
        outputs = set(output_topics(settings, policy))
        specs = [
            spec
            for spec in topic_specs(settings, policy.retention_ms_by_topic())
            if spec.name in outputs
        ]
        admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs("cdrveil-bench"))
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(
                    s.name,
                    s.partitions,
                    s.replication_factor,
                    topic_configs={**s.configs, **output_configs},
                )
                for s in specs
                if s.name not in existing
            ]
            if wanted:
                answer = await admin.create_topics(wanted)
                errors = answer.topic_errors
                failed = [(name, message) for name, code, message, *_ in errors if code]
                if failed:
                    raise RuntimeError(f"creating the output topics failed: {failed}")
        finally:
            await admin.close()
    await create_topics(settings, policy)
    if extra:
        names = TopicNames(settings.topic_prefix)
        admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs("cdrveil-bench"))
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = [names(t) for t in extra if names(t) not in existing]
            if wanted:
                await admin.create_topics(
                    [NewTopic(t, settings.partitions, settings.replication_factor) for t in wanted]
                )
        finally:
            await admin.close()


async def drop_topics(settings: Settings, names: Iterable[str] | None = None) -> None:
    """Delete ``names`` (default: every topic of the prefix): frees the broker's memory."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs("cdrveil-bench"))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if names is None:
            doomed = [t for t in existing if t.startswith(settings.topic_prefix)]
        else:
            doomed = [t for t in names if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


# -- loading data ---------------------------------------------------------------------------


async def bulk_produce(
    settings: Settings, messages: Iterable[Message], chunk: int = 20_000
) -> tuple[int, float]:
    """Produce ``messages`` as fast as the worker's own producer path allows.

    The worker's client settings (``clients.producer``: acks=all, linger, 1 MiB batches),
    partitioned and batched by ``OutputBatch``, with as many chunks in flight as the
    worker allows. Returns (messages, seconds).
    """
    producer = clients.producer(settings)
    await producer.start()
    partitioner = Partitioner()
    in_flight: deque[list[Any]] = deque()
    sent = 0
    started = time.perf_counter()
    try:
        iterator: Iterator[Message] = iter(messages)
        while True:
            part = list(islice(iterator, chunk))
            if not part:
                break
            batch = OutputBatch(partitioner, producer)
            for topic, key, value, headers in part:
                batch.add(topic, key, value, headers)
            in_flight.append(await batch.send(producer))
            sent += len(part)
            if len(in_flight) > MAX_IN_FLIGHT:
                await await_delivery(producer, in_flight.popleft())
        while in_flight:
            await await_delivery(producer, in_flight.popleft())
    finally:
        await producer.stop()
    return sent, time.perf_counter() - started


# -- the machine ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was at the start."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        memory_kb = 0
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "cpuModel": model,
        "memoryGiB": round(memory_kb / 1024 / 1024, 1),
        "python": sys.version.split()[0],
        "loadAverage": [round(x, 2) for x in load],
    }
