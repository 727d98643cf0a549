"""Infrastructure faults under a running worker: the broker frozen, the broker gone, and a
dead-letter write the broker refuses.

How each is made real on the embedded broker (tansu, memory storage):

- *frozen*: the broker process gets SIGSTOP, so connections stay open and nothing answers,
  which is what a hung or partitioned broker looks like; after SIGCONT its memory is intact,
  so the committed offsets and the outputs can be compared: every input below a committed
  offset must have all its outputs (commit only after acknowledgement).
- *gone*: the broker process gets SIGKILL. Its data is gone with it (memory storage), so
  this scenario checks only what a worker can be judged on without the data: it must not
  exit 0 by itself, its ``/health`` must stop saying ``ready`` and its log must say that
  Kafka is unreachable.
- *dead letter refused*: tansu accepts any produce on any topic (it auto-creates topics and
  enforces no ``max.message.bytes``), but with ``--schema-registry`` it validates every
  produce to a topic that has a JSON schema and refuses one that does not match. A schema on
  the dead-letter topic that no rejected input can satisfy makes every dead-letter write
  fail for real, on the broker, while every other topic takes writes as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import orjson
from aiokafka import TopicPartition

from pipeline.core.keys import Keyring
from pipeline.harness import WorkerProcess, Workers, isolated_settings, scan
from pipeline.settings import Settings
from pipeline.shell.broker import EmbeddedBroker, broker_command, free_port, kafka_answers
from pipeline.shell.offsets import committed_offsets
from pipeline.shell.topics import TopicNames
from pipeline.synth import Workload, consent_states, records
from soak.harness import (
    POLICY,
    Expectation,
    Input,
    Message,
    Say,
    Tally,
    Verdict,
    committed_total,
    compare,
    create_all_topics,
    output_topics,
    publish,
    quiet,
    wait_committed,
)

#: What a worker that lost its broker should say (a line of its own, not the client's).
SAYS_KAFKA_IS_GONE: Final = re.compile(
    r"(?i)(kafka|broker)[^\n]{0,120}(unreachable|unavailable|lost|not reachable|"
    r"cannot be reached|down|no connection)"
)
_POLL_S: Final = 0.5


def health(port: int) -> str:
    """``/health``'s status word, or why there is none (``"no answer"``)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            body = orjson.loads(answer.read())
            return f"{answer.status} {body.get('status')}"
    except urllib.error.HTTPError as error:
        with contextlib.suppress(orjson.JSONDecodeError):
            return f"{error.code} {orjson.loads(error.read()).get('status')}"
        return f"{error.code}"
    except OSError:
        return "no answer"


@dataclass
class Observation:
    """How the worker behaved while the broker was away."""

    seconds: float = 0.0
    #: Distinct ``/health`` answers, in the order first seen, with when (s after the fault).
    health: list[tuple[float, str]] = field(default_factory=list)
    #: Seconds after the fault until ``/health`` stopped saying ready (None: never).
    not_ready_after: float | None = None
    #: Seconds after the fault until the log said Kafka is unreachable (None: never).
    said_after: float | None = None
    said: str = ""
    #: Log lines written during the outage.
    log_lines: int = 0
    exit_code: int | None = None

    def summary(self) -> str:
        """One line per fact."""
        seen = ", ".join(f"{answer!r} at {t:.0f} s" for t, answer in self.health)
        return (
            f"  /health during {self.seconds:.0f} s: {seen}\n"
            f"  /health not ready after: {_secs(self.not_ready_after)}\n"
            f"  log said Kafka is unreachable after: {_secs(self.said_after)}"
            f"{' (' + self.said.strip()[:160] + ')' if self.said else ''}\n"
            f"  log lines written during the outage: {self.log_lines:,}\n"
            f"  exit status during the outage: {self.exit_code}"
        )


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


async def observe(worker: WorkerProcess, port: int, seconds: float) -> Observation:
    """Watch a worker whose broker just went away, for ``seconds``."""
    seen = Observation()
    start_offset = len(worker.log())
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        answer = health(port) if worker.running() else "exited"
        if not seen.health or seen.health[-1][1] != answer:
            seen.health.append((elapsed, answer))
        if seen.not_ready_after is None and not answer.endswith(" ready"):
            seen.not_ready_after = elapsed
        if seen.said_after is None:
            found = SAYS_KAFKA_IS_GONE.search(worker.log()[start_offset:])
            if found is not None:
                seen.said_after = elapsed
                text = worker.log()[start_offset:]
                line_start = text.rfind("\n", 0, found.start()) + 1
                seen.said = text[line_start : text.find("\n", found.end())]
        if not worker.running():
            seen.exit_code = worker.process.returncode
            break
        await asyncio.sleep(_POLL_S)
    seen.seconds = time.monotonic() - started
    seen.log_lines = worker.log()[start_offset:].count("\n")
    return seen


@dataclass(frozen=True)
class FaultConfig:
    """Sizes and durations of the broker scenarios."""

    records: int = 30_000
    subscribers: int = 2_000
    seed: int = 9
    #: Share of the inputs committed before the fault.
    at: float = 0.1
    outage: float = 60.0
    #: Once the broker is back: how long the worker gets to finish (or to exit non-zero).
    recovery: float = 120.0
    batch_max_records: int = 200


@dataclass
class FrozenReport:
    """The broker frozen (SIGSTOP) mid-run, then continued."""

    config: FaultConfig
    committed_at_fault: int = 0
    during: Observation = field(default_factory=Observation)
    #: Right after SIGCONT: offsets committed, and inputs below them without all outputs.
    committed_after: int = 0
    committed_unwritten: int = 0
    #: "recovered", "exited N" or "stuck".
    outcome: str = ""
    verdict: Verdict | None = None
    final_exit_code: int | None = None

    def summary(self) -> str:
        """The figures, for a person."""
        total = self.config.records
        lines = [
            f"broker frozen (SIGSTOP) for {self.config.outage:.0f} s at "
            f"{self.committed_at_fault / total:.0%} of {total:,} records committed",
            self.during.summary(),
            f"  after SIGCONT: {self.committed_after:,} committed, inputs committed without "
            f"all their outputs: {self.committed_unwritten}",
            f"  outcome: {self.outcome}; exit status after SIGTERM: {self.final_exit_code}",
        ]
        if self.verdict is not None:
            lines.append(self.verdict.summary())
        return "\n".join(lines)


@dataclass
class GoneReport:
    """The broker killed (SIGKILL) mid-run."""

    config: FaultConfig
    committed_at_fault: int = 0
    during: Observation = field(default_factory=Observation)
    #: With an empty broker started on the same port afterwards.
    after_restart: Observation | None = None
    sigterm_exit_code: int | None = None
    #: The worker was still running ``sigterm_grace`` s after SIGTERM (then killed).
    sigterm_ignored: bool = False
    sigterm_seconds: float = 0.0

    def summary(self) -> str:
        """The figures, for a person."""
        lines = [
            f"broker killed (SIGKILL) at {self.committed_at_fault:,} of "
            f"{self.config.records:,} records committed; watched {self.config.outage:.0f} s",
            self.during.summary(),
        ]
        if self.after_restart is not None:
            lines += ["an empty broker started on the same port:", self.after_restart.summary()]
        if self.sigterm_ignored:
            lines.append(f"  SIGTERM ignored for {self.sigterm_seconds:.0f} s (then SIGKILL)")
        else:
            lines.append(
                f"  exit status after SIGTERM: {self.sigterm_exit_code} "
                f"({self.sigterm_seconds:.1f} s)"
            )
        return "\n".join(lines)


class _Run:
    """Topics, consent, a keyring, the inputs published and one worker with a web port."""

    def __init__(self, settings: Settings, workdir: Path, config: FaultConfig) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        keyring = workdir / "keyring.json"
        Keyring.init(keyring)
        self.settings = settings.replace(
            keyring_path=keyring,
            web_port=free_port(),
            batch_max_records=config.batch_max_records,
        )
        self.config = config
        self.names = TopicNames(self.settings.topic_prefix)
        self.inputs = list(self.names.inputs)
        self.workers = Workers(self.settings, keyring, workdir)
        self.workload = Workload(subscribers=config.subscribers, seed=config.seed)
        self.consent = list(consent_states(self.workload))
        self.sent: list[Input] = []

    async def prepare(self) -> WorkerProcess:
        await create_all_topics(self.settings)
        await publish(self.settings, [(self.names.consent, k, v) for k, v in self.consent])
        topic = {"voice": self.inputs[0], "sms": self.inputs[1]}
        self.sent = await publish(
            self.settings,
            [
                (topic[m.kind], m.key if m.key is not None else m.record_id.encode(), m.value)
                for m in records(self.workload, self.config.records)
            ],
        )
        worker = self.workers.spawn()
        await wait_committed(
            self.settings,
            self.inputs,
            max(1, int(self.config.at * self.config.records)),
            120,
            alive=worker.running,
            poll=0.02,
        )
        return worker

    def expectation(self) -> Expectation:
        expectation = Expectation(self.settings, self.consent, [])
        for message in self.sent:
            expectation.add(message)
        return expectation


async def committed_unwritten(
    settings: Settings, inputs: list[str], expectation: Expectation, sent: list[Input]
) -> tuple[int, int]:
    """(records committed, committed inputs without all their outputs), read now."""
    committed = await committed_offsets(settings, settings.group_id, inputs)
    tally = Tally(settings)
    await scan(settings, output_topics(settings), tally)
    below = {
        n
        for n, message in enumerate(sent)
        if message.offset < committed.get(TopicPartition(message.topic, message.partition), 0)
    }
    missing = 0
    for ident, (content, n) in expectation.expected.items():
        if n in below:
            copies = tally.copies.get(ident)
            if copies is None or content not in copies:
                missing += 1
    return sum(committed.values()), missing


@contextlib.contextmanager
def _continued(pid: int) -> Iterator[None]:
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


async def run_frozen(workdir: Path, config: FaultConfig, say: Say = quiet) -> FrozenReport:
    """Freeze the broker under a busy worker, continue it, and judge the worker."""
    report = FrozenReport(config)
    async with EmbeddedBroker() as broker:
        settings = _settings(broker.bootstrap_servers)
        run = _Run(settings, workdir, config)
        try:
            worker = await run.prepare()
            pid = broker.pid
            assert pid is not None  # noqa: S101 - started above
            report.committed_at_fault = await committed_total(run.settings, run.inputs)
            with _continued(pid):
                os.kill(pid, signal.SIGSTOP)
                say(f"broker frozen; watching the worker for {config.outage:.0f} s")
                report.during = await observe(worker, run.settings.web_port, config.outage)
            say("broker continued")
            expectation = run.expectation()
            report.committed_after, report.committed_unwritten = await committed_unwritten(
                run.settings, run.inputs, expectation, run.sent
            )
            try:
                await wait_committed(
                    run.settings, run.inputs, config.records, config.recovery, alive=worker.running
                )
                report.outcome = "recovered: every input committed"
            except RuntimeError:
                report.outcome = f"exited {worker.process.returncode}"
            except TimeoutError:
                report.outcome = f"stuck: not finished {config.recovery:.0f} s after SIGCONT"
            if worker.running():
                report.final_exit_code = worker.stop()
            else:
                # Finish the job with a fresh worker, so the outputs can be judged in full.
                last = run.workers.spawn()
                await wait_committed(
                    run.settings, run.inputs, config.records, config.recovery, alive=last.running
                )
                report.final_exit_code = last.stop()
            report.verdict = await compare(run.settings, expectation)
        finally:
            run.workers.close()
    return report


async def run_gone(
    workdir: Path,
    config: FaultConfig,
    restart_for: float = 0.0,
    sigterm_grace: float = 60.0,
    say: Say = quiet,
) -> GoneReport:
    """Kill the broker under a busy worker and watch; optionally start an empty one."""
    report = GoneReport(config)
    broker = EmbeddedBroker().start()
    try:
        settings = _settings(broker.bootstrap_servers)
        run = _Run(settings, workdir, config)
        try:
            worker = await run.prepare()
            report.committed_at_fault = await committed_total(run.settings, run.inputs)
            pid = broker.pid
            assert pid is not None  # noqa: S101 - started above
            os.kill(pid, signal.SIGKILL)
            broker.stop()
            say(f"broker killed; watching the worker for {config.outage:.0f} s")
            report.during = await observe(worker, run.settings.web_port, config.outage)
            if restart_for > 0 and worker.running():
                broker = EmbeddedBroker(broker.port).start()
                say(f"an empty broker on the same port; watching {restart_for:.0f} s")
                report.after_restart = await observe(worker, run.settings.web_port, restart_for)
            if worker.running():
                started = time.monotonic()
                try:
                    report.sigterm_exit_code = worker.stop(wait=sigterm_grace)
                except RuntimeError:
                    report.sigterm_ignored = True
                report.sigterm_seconds = time.monotonic() - started
        finally:
            run.workers.close()
    finally:
        broker.stop()
    return report


def _settings(bootstrap: str) -> Settings:
    return isolated_settings(bootstrap, "f", stop_timeout_ms=2000)


# -- a dead-letter write refused by the broker ---------------------------------------------


#: A JSON schema no dead letter can satisfy: the input was rejected, so it is no such object.
REFUSE_EVERYTHING: Final = {
    "type": "object",
    "properties": {
        "value": {
            "type": "object",
            "properties": {"cdrveil-refuse": {"type": "string"}},
            "required": ["cdrveil-refuse"],
        }
    },
}


class RefusingBroker:
    """tansu with a schema registry whose dead-letter schema refuses every write."""

    def __init__(self, workdir: Path, refused_topics: list[str]) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        registry = workdir / "schema"
        registry.mkdir(exist_ok=True)
        for topic in refused_topics:
            (registry / f"{topic}.json").write_bytes(orjson.dumps(REFUSE_EVERYTHING))
        self._log = (workdir / "broker.log").open("wb")
        # tansu resolves a file:// registry against its working directory.
        self.process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
            [*broker_command(self.port), "--schema-registry", "file://./schema"],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not kafka_answers("127.0.0.1", self.port, timeout=0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"tansu with a schema registry did not start: {self.log()}")
            time.sleep(0.02)

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for clients."""
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        """What the broker printed."""
        self._log.flush()
        return (self.workdir / "broker.log").read_text(errors="replace")[-2000:]

    def close(self) -> None:
        """Stop the broker and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._log.close()


@dataclass
class RefusedReport:
    """A dead-letter write refused by the broker."""

    valid_before: int = 0
    #: Per input partition with a malformed record: (its offset, committed offset).
    poisoned: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Partitions whose committed offset passed the first malformed input.
    committed_past_refused: int = 0
    dead_letters_written: int = 0
    exit_code: int | None = None
    said: str = ""
    seconds_to_exit: float | None = None
    #: If it had not exited: its exit status once one more record arrived (``within`` s).
    exit_code_after_nudge: int | None = None

    def summary(self) -> str:
        """The figures, for a person."""
        parts = ", ".join(
            f"{tp}: malformed at {first}, committed {done}"
            for tp, (first, done) in sorted(self.poisoned.items())
        )
        return (
            f"every dead-letter write refused by the broker (schema registry)\n"
            f"  {self.valid_before:,} valid records committed before; then malformed ones in "
            f"{len(self.poisoned)} partitions ({parts})\n"
            f"  partitions committed past a refused dead letter: {self.committed_past_refused}\n"
            f"  dead letters in the topic: {self.dead_letters_written}\n"
            f"  worker exit status: {self.exit_code} after {_secs(self.seconds_to_exit)}; "
            f"it said: {self.said.strip()[:200]!r}\n"
            f"  exit status once one more record arrived: {self.exit_code_after_nudge}"
        )


async def run_dead_letter_refused(
    workdir: Path, valid: int = 400, malformed: int = 8, within: float = 60.0
) -> RefusedReport:
    """Valid records, then malformed ones whose dead letters the broker refuses."""
    report = RefusedReport()
    suffix = os.urandom(4).hex()
    names = TopicNames(f"r{suffix}.")
    broker = RefusingBroker(workdir, [names.dead_letter(POLICY)])
    keyring = workdir / "keyring.json"
    Keyring.init(keyring)
    settings = _settings(broker.bootstrap_servers).replace(
        topic_prefix=names.prefix, keyring_path=keyring, batch_max_records=50
    )
    inputs = list(names.inputs)
    workers = Workers(settings, keyring, workdir)
    try:
        await create_all_topics(settings)
        workload = Workload(subscribers=200, seed=13)
        generated = list(records(workload, valid))
        topic = {"voice": inputs[0], "sms": inputs[1]}
        first = await publish(
            settings,
            [(topic[m.kind], m.key or m.record_id.encode(), m.value) for m in generated],
        )
        worker = workers.spawn()
        await wait_committed(settings, inputs, len(first), within, alive=worker.running)
        report.valid_before = len(first)
        bad: list[Message] = [
            (inputs[i % 2], f"poison-{i}".encode(), b'{"recordId": "poison-%d", ' % i)
            for i in range(malformed)
        ]
        more: list[Message] = [
            (topic[m.kind], m.key or m.record_id.encode(), m.value) for m in generated[:50]
        ]
        second = await publish(settings, bad + more)
        started = time.monotonic()
        for message in second[: len(bad)]:
            key = f"{message.topic}[{message.partition}]"
            if key not in report.poisoned or message.offset < report.poisoned[key][0]:
                report.poisoned[key] = (message.offset, 0)
        report.exit_code = await worker.wait_exit(within)
        if report.exit_code is not None:
            report.seconds_to_exit = time.monotonic() - started
        else:
            # Still running: one more valid record, to see whether the worker notices then.
            await publish(settings, more[:1])
            report.exit_code_after_nudge = await worker.wait_exit(within)
        log = worker.log()
        for line in log.splitlines():
            if names.dead_letter(POLICY) in line or "dead-letter" in line or "dead letter" in line:
                report.said = line
                break
        committed = await committed_offsets(settings, settings.group_id, inputs)
        for key, (offset, _) in list(report.poisoned.items()):
            name, partition = key[:-1].split("[")
            done = committed.get(TopicPartition(name, int(partition)), 0)
            report.poisoned[key] = (offset, done)
            if done > offset:
                report.committed_past_refused += 1
        dead: list[object] = []
        await scan(settings, [names.dead_letter(POLICY)], dead.append)
        report.dead_letters_written = len(dead)
        if worker.running():
            worker.stop(signal.SIGKILL)
    finally:
        workers.close()
        broker.close()
    return report
