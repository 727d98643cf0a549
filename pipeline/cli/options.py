"""The flags behind settings: one table, so each flag is declared once and every command
reads its settings the same way (:func:`settings_of`).

A command lists the settings it takes a flag for (:func:`add_setting_flags`); each flag's
help names its ``CDRVEIL_*`` variable and the default from :class:`~pipeline.settings.Settings`.
Every command, with flags or not, builds its :class:`~pipeline.settings.Settings` through
:func:`settings_of`, so an unknown or wrong ``CDRVEIL_*`` variable is refused by all of them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pipeline.settings import (
    ENGINES,
    LOG_LEVELS,
    PROCESSING_GUARANTEES,
    SECURITY_PROTOCOLS,
    Settings,
    default_text,
    variable,
)


@dataclass(frozen=True)
class Flag:
    """How one setting appears on the command line."""

    option: str
    help: str
    metavar: str | None = None
    type: Any = None
    choices: Sequence[str] | None = None
    #: Said after the variable and default.
    note: str = ""


#: Every setting that has a flag (README's settings table lists the commands that take it).
FLAGS: Final[dict[str, Flag]] = {
    "bootstrap_servers": Flag("--bootstrap-servers", "Kafka brokers", "HOST:PORT[,...]"),
    "topic_prefix": Flag("--topic-prefix", "prefix of every topic name", "PREFIX"),
    "security_protocol": Flag(
        "--security-protocol",
        "how to talk to Kafka",
        choices=SECURITY_PROTOCOLS,
        note="; SASL user and password and the TLS files come from the CDRVEIL_SASL_* and "
        "CDRVEIL_SSL_* variables only (never from flags, which ps shows)",
    ),
    "keyring_path": Flag("--keyring", "keyring file", "PATH", Path),
    "policy_path": Flag("--policy", "policy file", "PATH", Path),
    "partitions": Flag("--partitions", "partitions per topic", "N", int),
    "replication_factor": Flag("--replication-factor", "replicas per topic", "N", int),
    "country_code": Flag("--country-code", "home country code for national numbers", "CC"),
    "trunk_prefix": Flag("--trunk-prefix", "national trunk prefix", "DIGITS"),
    "home_networks": Flag("--home-networks", "home MCC-MNC list, comma separated", "LIST"),
    "max_record_bytes": Flag(
        "--max-record-bytes", "larger inputs are dead letters (oversize)", "N", int
    ),
    "group_id": Flag("--group-id", "consumer group of the workers", "NAME"),
    "web_port": Flag(
        "--web-port", "port of /healthz, /readyz, /metrics and /health (0: off)", "PORT", int
    ),
    "log_level": Flag("--log-level", "log level", choices=LOG_LEVELS),
    "engine": Flag(
        "--engine",
        "the record engine: native (compiled, the fast path) or python (the reference it is "
        "proven equal to; 10-20 times slower)",
        choices=ENGINES,
    ),
    "web_host": Flag("--web-host", "address the web endpoints listen on", "HOST"),
    "processing_guarantee": Flag(
        "--processing-guarantee",
        "delivery guarantee",
        choices=PROCESSING_GUARANTEES,
        note="; exactly_once needs Apache Kafka (the embedded broker has no transactions)",
    ),
    "batch_max_records": Flag("--batch-max-records", "input records per batch", "N", int),
    "linger_ms": Flag("--linger-ms", "producer linger", "MS", int),
    "fetch_max_wait_ms": Flag(
        "--fetch-max-wait-ms", "how long a fetch may wait for input", "MS", int
    ),
    "session_timeout_ms": Flag("--session-timeout-ms", "consumer-group session timeout", "MS", int),
    "stop_timeout_ms": Flag(
        "--stop-timeout-ms",
        "how long a stop waits for Kafka to acknowledge what is in flight",
        "MS",
        int,
    ),
}

#: Settings with no flag at all: credentials and TLS files (a flag shows in ``ps``).
ENV_ONLY: Final = (
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
)

#: How national numbers are read; every command that decodes records takes them.
NUMBERING: Final = ("country_code", "trunk_prefix", "home_networks")

#: The flags every Kafka command shares.
CONNECTION: Final = ("bootstrap_servers", "topic_prefix", "security_protocol")


def add_setting_flags(
    parser: argparse.ArgumentParser,
    *names: str,
    title: str | None = None,
    notes: dict[str, str] | None = None,
) -> None:
    """Give ``parser`` a flag for each setting of ``names``; ``notes`` adds to a flag's help."""
    target: Any = parser if title is None else parser.add_argument_group(title)
    for name in names:
        flag = FLAGS[name]
        note = flag.note + (notes or {}).get(name, "")
        target.add_argument(
            flag.option,
            dest=name,
            metavar=flag.metavar,
            type=flag.type,
            choices=flag.choices,
            help=f"{flag.help} (env {variable(name)}, default {default_text(name)}){note}",
        )
    known: tuple[str, ...] = parser.get_default("setting_flags") or ()
    parser.set_defaults(setting_flags=(*known, *names))


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """The Kafka connection flags, in their own help section."""
    add_setting_flags(
        parser, *CONNECTION, title="Kafka connection (flags override CDRVEIL_* variables)"
    )


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of this command: ``CDRVEIL_*`` variables, overridden by its flags."""
    names: tuple[str, ...] = getattr(args, "setting_flags", None) or ()
    return Settings.from_env(
        flag_names={name: FLAGS[name].option for name in names},
        **{name: getattr(args, name) for name in names},
    )
