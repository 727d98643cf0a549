"""``cdrveil subject``: the DPO's answers to access and erasure requests (GDPR Art. 15, 17)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.cli.options import add_connection_flags, add_setting_flags
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

DESCRIPTION = """\
Answer a data subject's request. Only the operator, holding the keyring, can compute which
pseudonyms are this person's: one per analytics purpose, identifier type and key epoch that
is not shredded (a shredded epoch's pseudonyms can no longer be linked to anyone).

  pseudonyms  print them, to find this person's records downstream or to ask the holders
              of the analytics topics' copies to delete them (Art. 17, Art. 19)
  access      read the analytics and billing topics to their end and write every output
              that is this person's to a file, for the access report (Art. 15)

The identifiers are normalized as the worker normalizes them, so every input form of a
number (+46 70-123 45 67, 0046701234567, 0701234567) finds the same outputs.
"""

ACCESS_DESCRIPTION = """\
Read the policy's analytics and billing topics (lawful intercept only with
--include-lawful-intercept) from the beginning to their end as it is when the command
starts, and select this person's outputs: by the message key (their pseudonym on
analytics, their MSISDN or IMSI on billing) and by every identifier field holding them, in
clear or as their pseudonym of that route's purpose under any key epoch not shredded. Record
ids are never used to select (an analytics record id is per purpose).

Each output found is one JSON line in FILE (created with mode 0600, never overwritten):
topic, partition, offset, publish time, which fields matched, which were in clear or
pseudonymized, the cdrveil.* headers and the value as published, except that another
person's data is withheld (the other party's number in any form, the served subscriber's
location and handset when this person is the other party; each named in "withheld").
The summary printed per route gives counts (as the served subscriber and as the other
party), the first and last publish time and the fields in clear; it never shows an
identifier. Exit 0 when every topic was read to its end, 1 when --max-seconds ran out
(FILE then holds only what was found so far), 3 when Kafka cannot be reached.

What a topic no longer holds (past its retention) is not found: README, "What erasure
means here".
"""

EXAMPLES = """\
examples:
  cdrveil subject pseudonyms --msisdn '+46 70-123 45 67' --keyring ./cdrveil.keyring.json
  cdrveil subject pseudonyms --msisdn 0701234567 --imsi 240011234567890 --json --keyring K
  cdrveil subject access --msisdn 0701234567 --keyring K --output request-118.jsonl \\
      --since 2026-11-01T00:00:00Z
"""


def _subject_flags(parser: argparse.ArgumentParser) -> None:
    who = parser.add_argument_group("the person (any input form; normalized first)")
    who.add_argument("--msisdn", required=True, metavar="N", help="their phone number")
    who.add_argument("--imsi", metavar="I", help="their SIM's IMSI (14-15 digits)")
    who.add_argument("--imei", metavar="E", help="their handset's IMEI (14-16 digits)")
    add_setting_flags(
        parser,
        "keyring_path",
        "policy_path",
        "country_code",
        "trunk_prefix",
        notes={"keyring_path": "; required"},
    )


def _prepare(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The policy, the subject and their pseudonyms."""
    from pipeline.core.keys import Keyring
    from pipeline.core.normalize import MsisdnNormalizer
    from pipeline.core.policy import Policy
    from pipeline.reports.subject import Subject, subject_pseudonyms

    settings = args.settings
    if settings.keyring_path is None:
        raise ConfigError(
            "no keyring given: pass --keyring PATH or set CDRVEIL_KEYRING_PATH (only the "
            "keyring can say which pseudonyms are this person's)"
        )
    policy = Policy.load(settings.policy_path)
    normalizer = MsisdnNormalizer(settings.country_code, settings.trunk_prefix)
    subject = Subject.of(args.msisdn, args.imsi, args.imei, normalizer)
    pseudonyms = subject_pseudonyms(policy, Keyring.load(settings.keyring_path), subject)
    return policy, subject, pseudonyms


def _pseudonyms(args: argparse.Namespace) -> int:
    from pipeline.reports.subject import pseudonyms_table

    _policy, subject, pseudonyms = _prepare(args)
    if args.json:
        print(orjson.dumps(pseudonyms.document(subject), option=orjson.OPT_INDENT_2).decode())
    else:
        sys.stdout.write(pseudonyms_table(pseudonyms, subject))
    return 0


def _access(args: argparse.Namespace) -> int:
    from pipeline.core.normalize import MsisdnNormalizer
    from pipeline.reports.subject import SubjectSelector, summary_table
    from pipeline.tools.replay import parse_since
    from pipeline.tools.subject_access import report_document, subject_access

    if args.max_seconds <= 0:
        raise ConfigError("--max-seconds must be more than 0")
    since_ms = None if args.since is None else parse_since(args.since)
    policy, subject, pseudonyms = _prepare(args)
    settings = args.settings
    normalizer = MsisdnNormalizer(settings.country_code, settings.trunk_prefix)
    report = asyncio.run(
        subject_access(
            settings,
            policy,
            SubjectSelector(subject, pseudonyms, normalizer),
            args.output,
            since_ms=since_ms,
            include_lawful_intercept=args.include_lawful_intercept,
            max_seconds=args.max_seconds,
            show_progress=not args.no_progress,
        )
    )
    if args.json:
        print(orjson.dumps(report_document(report), option=orjson.OPT_INDENT_2).decode())
    else:
        sys.stdout.write(summary_table(report.summaries))
        skipped = f" ({report.before_since:,} before --since)" if report.before_since else ""
        print(f"{report.found:,} outputs of {report.scanned:,} read{skipped} -> {args.output}")
    if not report.complete:
        print(
            f"cdrveil: error: --max-seconds ({args.max_seconds:g}) ran out before every topic "
            f"was read to its end; {args.output} is incomplete (raise --max-seconds, or narrow "
            "with --since)",
            file=sys.stderr,
        )
        return 1
    return 0


def add_subject_command(commands: Subparsers) -> None:
    """Register ``cdrveil subject pseudonyms|access``."""
    subject = commands.add_parser(
        "subject",
        help="one person's pseudonyms and published outputs (access and erasure requests)",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = subject.add_subparsers(dest="subject_command", metavar="ACTION", required=True)
    pseudonyms = actions.add_parser(
        "pseudonyms",
        help="this person's pseudonym per analytics purpose and key epoch",
        description="For each analytics purpose of the policy and each key epoch of the "
        "keyring that is not shredded, the pseudonym of each identifier given, as the worker "
        "computes it (the key of the analytics outputs is the MSISDN's, else the IMSI's). "
        "Shredded epochs are named: nothing can link their pseudonyms to anyone any more.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _subject_flags(pseudonyms)
    pseudonyms.add_argument("--json", action="store_true", help="machine-readable output")
    pseudonyms.set_defaults(handler=_pseudonyms)

    access = actions.add_parser(
        "access",
        help="write every published output of this person's to a file, with a summary",
        description=ACCESS_DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _subject_flags(access)
    access.add_argument(
        "--output", type=Path, required=True, metavar="FILE", help="JSON lines file to create"
    )
    access.add_argument(
        "--since",
        metavar="TIME",
        help="only outputs published at or after this RFC 3339 time, e.g. 2026-11-01T00:00:00Z",
    )
    access.add_argument(
        "--include-lawful-intercept",
        action="store_true",
        help="read the lawful-intercept topic too (complete records with the warrant's LIID: "
        "for an authority's request, never for the subject's own copy)",
    )
    access.add_argument(
        "--max-seconds",
        type=float,
        default=600.0,
        metavar="S",
        help="stop after this long and exit 1, saying the file is incomplete (600)",
    )
    access.add_argument("--json", action="store_true", help="the summary as JSON")
    access.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_setting_flags(access, "processing_guarantee")
    add_connection_flags(access)
    access.set_defaults(handler=_access)
