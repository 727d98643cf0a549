"""``cdrveil demo`` (``make demo``): the whole job on the embedded broker, then a summary.

Starts the embedded broker on a free port (``--apache-kafka``, ``make demo-kafka``: a
three-node Apache Kafka cluster from :mod:`pipeline.shell.kafka_cluster`, replication
factor 3, the worker exactly-once), creates the topics, starts a real worker process,
publishes consent for 10,000 subscribers, two warrants and 100,000 voice and SMS records
(1 % malformed on purpose), waits until every input offset is committed, reads
every topic back (``read_committed`` on Apache Kafka) and prints what happened. Then it
stops the worker (SIGTERM, which must give exit status 0) and the broker: nothing is left
running.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from pipeline.core.fields import IDENTIFIER_FIELDS
from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.linkage import source_ids
from pipeline.core.policy import Policy, RouteKind
from pipeline.errors import CdrveilError
from pipeline.harness import WorkerProcess, http_get, scan, worker_env
from pipeline.harness.brokers import BrokerHandle
from pipeline.settings import Settings
from pipeline.shell import deadletter
from pipeline.shell.broker import EmbeddedBroker, free_port
from pipeline.shell.messages import header_text
from pipeline.shell.offsets import wait_until_committed
from pipeline.shell.topics import TopicNames, create_topics
from pipeline.synth import Workload, consent_states
from pipeline.tools.generate import publish

PSEUDONYM = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}:[A-Za-z0-9_-]{22}$")


@dataclass
class DemoConfig:
    """Sizes of the demo run."""

    subscribers: int = 10_000
    records: int = 100_000
    warrants: int = 2
    malformed_share: float = 0.01
    seed: int = 1
    wait_seconds: float = 180.0
    #: Three Apache Kafka nodes instead of the embedded broker, and the worker exactly-once.
    apache_kafka: bool = False


#: How many Apache Kafka nodes the demo starts (replication factor 3, 2 in sync to write).
DEMO_NODES = 3


@contextlib.asynccontextmanager
async def _broker(config: DemoConfig) -> AsyncIterator[tuple[BrokerHandle, dict[str, Any]]]:
    """The demo's broker, and the settings that go with it; stopped on the way out."""
    if not config.apache_kafka:
        async with EmbeddedBroker() as broker:
            print(f"embedded broker on {broker.bootstrap_servers} (memory storage, demo only)")
            yield broker, {}
        return
    from pipeline.shell.kafka_cluster import KafkaCluster, kafka_libs, kafka_version

    cluster = KafkaCluster(DEMO_NODES)
    await asyncio.to_thread(cluster.start)
    try:
        print(
            f"Apache Kafka {kafka_version(kafka_libs())}, {cluster.size} nodes (KRaft) on "
            f"{cluster.bootstrap_servers}; replication factor {cluster.replication_factor}, "
            "the worker exactly-once"
        )
        yield (
            cluster,
            {
                "replication_factor": cluster.replication_factor,
                "processing_guarantee": "exactly_once",
            },
        )
    finally:
        await asyncio.to_thread(cluster.stop)


@dataclass
class Readback:
    """Every message of the topics read back, grouped by topic."""

    messages: dict[str, list[ConsumerRecord[bytes, bytes]]] = field(default_factory=dict)


async def read_topics(settings: Settings, topics: list[str]) -> Readback:
    """Read every message of ``topics`` from the beginning to the current end."""
    result = Readback({topic: [] for topic in topics})
    await scan(
        settings,
        topics,
        lambda message: result.messages[message.topic].append(message),
        max_wait=120,
        client_id="cdrveil-demo-reader",
    )
    return result


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _classify(value: Any) -> str:
    if not isinstance(value, str):
        return "generalized"
    if PSEUDONYM.match(value):
        return "pseudonymized"
    if value.isdigit() and len(value) == 8:
        return "generalized"  # an IMEI's type allocation code
    return "kept in clear"


def _objection_lines(
    names: TopicNames,
    policy: Policy,
    back: Readback,
    keys: Pseudonymizer,
    objectors: dict[str, set[str]],
) -> list[str]:
    """What the objections (Art. 21) did: per route on legitimate interest, how many of the
    objectors' records it published (read from the topic, matched by the output key)."""
    lines = ["", "objections (GDPR Art. 21), read back per route:"]
    for route in policy.routes.values():
        if route.on_objection is None:
            continue
        people = objectors.get(route.purpose, set())
        wanted = {keys.pseudonym(route.purpose, "msisdn", m).encode() for m in people}
        published = sum(1 for m in back.messages.get(names(route.topic), []) if m.key in wanted)
        what = (
            "excluded"
            if route.excludes_objections
            else f"overridden on the policy's ground: {route.override_ground}"
        )
        lines.append(
            f"  {route.purpose:<20} {len(people):,} objectors, {published:,} of their "
            f"records published ({what})"
        )
    return lines


def summarize(
    names: TopicNames,
    policy: Policy,
    back: Readback,
    seconds: float,
    config: DemoConfig,
    publish_seconds: float | None = None,
    keys: Pseudonymizer | None = None,
    objectors: dict[str, set[str]] | None = None,
) -> str:
    """The summary a person reads at a glance. ``keys`` (the demo's own) maps the keyed
    record ids of analytics outputs back to their inputs, as no reader of them can."""
    lines: list[str] = []
    in_counts = {t: len(back.messages.get(t, [])) for t in names.inputs}
    total_in = sum(in_counts.values())
    per_topic = ", ".join(f"{t} {n:,}" for t, n in in_counts.items())
    lines.append(f"records in: {total_in:,} ({per_topic})")

    input_time: dict[str, int] = {}
    input_obj: dict[str, dict[str, Any]] = {}
    for topic in names.inputs:
        for msg in back.messages.get(topic, []):
            try:
                obj = orjson.loads(msg.value) if msg.value is not None else None
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("recordId"), str):
                input_time[obj["recordId"]] = msg.timestamp
                input_obj[obj["recordId"]] = obj
    sources = {} if keys is None else source_ids(keys, policy.analytics_purposes, input_obj)

    lines.append("")
    lines.append("outputs per topic:")
    output_topics = [names(route.topic) for route in policy.routes.values()]
    output_topics.append(names.dead_letter(policy))
    latencies: list[float] = []
    for topic in output_topics:
        messages = back.messages.get(topic, [])
        lines.append(f"  {topic:<42} {len(messages):>9,}")
        for msg in messages:
            record_id = header_text(msg, "cdrveil.record-id")
            record_id = sources.get(record_id or "", record_id)
            if record_id is not None and record_id in input_time:
                latencies.append((msg.timestamp - input_time[record_id]) / 1000.0)

    dead = back.messages.get(names.dead_letter(policy), [])
    reasons = Counter(header_text(msg, deadletter.ERROR_CODE) or "?" for msg in dead)
    lines.append("")
    lines.append(
        f"dead letters by reason ({len(dead):,}; "
        f"{config.malformed_share:.0%} of the input was malformed on purpose):"
    )
    lines.extend(f"  {code:<22} {n:>6,}" for code, n in sorted(reasons.items()))

    lines.append("")
    lines.append("identifiers per analytics purpose (of those present in the input):")
    for route in policy.routes.values():
        if route.kind is not RouteKind.ANALYTICS:
            continue
        shares: Counter[str] = Counter()
        for msg in back.messages.get(names(route.topic), []):
            out = orjson.loads(msg.value)
            keyed = out.get("recordId", "")
            source = input_obj.get(sources.get(keyed, keyed), {})
            for name in IDENTIFIER_FIELDS:
                if source.get(name) is None:
                    continue
                shares[_classify(out[name]) if name in out else "dropped"] += 1
        total = sum(shares.values()) or 1
        parts = ", ".join(
            f"{kind} {shares[kind] / total:.0%}"
            for kind in ("kept in clear", "pseudonymized", "generalized", "dropped")
        )
        lines.append(f"  {route.purpose:<20} {parts}")

    if keys is not None and objectors:
        lines.extend(_objection_lines(names, policy, back, keys, objectors))

    lines.append("")
    lines.append("one record before and after, per route:")
    for route in policy.routes.values():
        messages = back.messages.get(names(route.topic), [])
        if not messages:
            lines.append(f"  {route.name}: no output in this run")
            continue
        sample = messages[0]
        record_id = header_text(sample, "cdrveil.record-id") or ""
        before = input_obj.get(sources.get(record_id, record_id))
        lines.append(f"  [{route.name}] -> {names(route.topic)}  (key {sample.key!r})")
        if before is not None:
            lines.append(f"    before: {orjson.dumps(before).decode()}")
        # Whole: a sample cut off mid-value shows neither what was kept nor what was dropped.
        lines.append(f"    after:  {sample.value.decode()}")

    lines.append("")
    rate = total_in / seconds if seconds else 0.0
    lines.append(
        f"throughput: {total_in:,} records in {seconds:.1f} s from first publish to last commit "
        f"({rate:,.0f} records/s, one worker, producer and broker on the same 2 cores)"
    )
    lines.append(
        "end-to-end latency (input broker timestamp -> output broker timestamp): "
        f"p50 {_percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {_percentile(latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(latencies, default=float('nan')) * 1000:.0f} ms"
    )
    if publish_seconds is not None and publish_seconds < 0.8 * seconds:
        meaning = (
            f"What it means: the demo published all {total_in:,} records in "
            f"{publish_seconds:.1f} s, faster than one worker takes them, and the last was "
            f"committed {seconds:.1f} s after the first was published; so these figures are "
            "mostly time spent waiting in that queue, not the worker's latency. They are not "
            "what the CdrveilRecordLatencyHigh alert (p99 over 5 s) watches on a worker that "
            "keeps up with its load; `python -m benchmarks` measures latency at half load."
        )
    else:
        meaning = (
            "What it means: the worker kept up with the publisher, so these figures are close "
            "to what an operator sees at this load (the CdrveilRecordLatencyHigh alert fires "
            "on a p99 over 5 s)."
        )
    lines.extend(textwrap.wrap(meaning, 96, initial_indent="  ", subsequent_indent="  "))
    return "\n".join(lines)


def _objectors(workload: Workload) -> dict[str, set[str]]:
    """Purpose -> the subscribers whose published consent state objects to it."""
    found: dict[str, set[str]] = {}
    for key, value in consent_states(workload):
        for purpose, flag in orjson.loads(value).get("objections", {}).items():
            if flag is True:
                found.setdefault(purpose, set()).add(key.decode())
    return found


def _check_read_back(names: TopicNames, back: Readback, published: Counter[str]) -> None:
    """Every count the demo prints is read from the topics; the inputs read must be the
    inputs published and acknowledged (end offsets alone undercount on the embedded broker)."""
    read = sum(len(back.messages.get(topic, [])) for topic in names.inputs)
    if read != sum(published.values()):
        raise CdrveilError(
            f"read back {read:,} input records, but {sum(published.values()):,} were published"
        )


async def _wait_for_tables(
    worker: WorkerProcess, consent: int, warrants: int, seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not worker.running():
            raise CdrveilError(
                f"the worker exited with status {worker.process.returncode}; see its log"
            )
        status, answer = http_get(worker.web_port, "/health", timeout=1.0)
        body = orjson.loads(answer) if status == 200 else {}
        if body.get("consent_states") == consent and body.get("warrants") == warrants:
            return
        await asyncio.sleep(0.2)
    raise CdrveilError("the worker did not load the consent and warrant tables in time")


async def run_demo(config: DemoConfig) -> int:
    """Run the demo; the exit status for the command line."""
    policy = Policy.load()
    with tempfile.TemporaryDirectory(prefix="cdrveil-demo-") as folder:
        workdir = Path(folder)
        keyring = workdir / "demo.keyring.json"
        Keyring.init(keyring)
        log_path = workdir / "worker.log"
        async with _broker(config) as (broker, overrides):
            settings = Settings.from_env(
                {}, bootstrap_servers=broker.bootstrap_servers, **overrides
            )
            names = TopicNames(settings.topic_prefix)
            report = await create_topics(settings, policy)
            print(f"topics: {len(report.created)} created")
            env = worker_env(
                None,
                keyring,
                CDRVEIL_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
                CDRVEIL_PROCESSING_GUARANTEE=settings.processing_guarantee,
                CDRVEIL_WEB_PORT=str(free_port()),
            )
            worker = WorkerProcess.start(env, log_path)
            try:
                # Its log lives in a temporary folder removed at the end: not worth a path.
                print(f"worker started (pid {worker.pid}; its log is shown here if it fails)")
                workload = Workload(
                    subscribers=config.subscribers,
                    seed=config.seed,
                    malformed_share=config.malformed_share,
                )
                state = await publish(settings, workload, 0, warrant_count=config.warrants)
                print(
                    f"published {state.consent_states:,} consent states and "
                    f"{state.warrants} warrants"
                )
                await _wait_for_tables(worker, config.subscribers, config.warrants, 60.0)
                print("worker ready: consent and warrant tables loaded")
                started = time.monotonic()
                sent = await publish(
                    settings, workload, config.records, warrant_count=0, with_consent=False
                )
                print("published " + sent.records_line())
                if sent.malformed:
                    print(f"  of them malformed on purpose: {sum(sent.malformed.values()):,}")
                await wait_until_committed(
                    settings, settings.group_id, list(names.inputs), config.wait_seconds
                )
                seconds = time.monotonic() - started
                print("every input offset is committed\n")
                topics = [*names.inputs, names.dead_letter(policy)]
                topics += [names(route.topic) for route in policy.routes.values()]
                back = await read_topics(settings, topics)
                _check_read_back(names, back, sent.records)
                keys = Pseudonymizer(Keyring.load(keyring))
                objectors = _objectors(workload)
                print(
                    summarize(names, policy, back, seconds, config, sent.seconds, keys, objectors)
                )
            finally:
                code = worker.stop(strict=False)
            print(f"\nworker stopped with exit status {code}; broker stopped")
            if code != 0:
                sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
                return 1
    return 0


def main(config: DemoConfig | None = None) -> int:
    """Entry point for ``cdrveil demo``."""
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_demo(config or DemoConfig()))
    return 130
