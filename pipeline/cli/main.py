"""The ``cdrveil`` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from pipeline import __version__
from pipeline.cli.options import NUMBERING, add_setting_flags, settings_of
from pipeline.errors import CdrveilError, ConfigError

EPILOG = """\
Settings come from CDRVEIL_* environment variables, overridden by flags.
Start here:
  cdrveil keys init --keyring ./cdrveil.keyring.json   create the pseudonymization keys
  cdrveil explain record.json --consent consent.json   see what one record becomes
  cdrveil ropa                                         the GDPR Art. 30 record
  cdrveil subject pseudonyms --msisdn N --keyring K    one person's pseudonyms (Art. 15, 17)
  make demo                                            the whole pipeline on a local broker
"""

Handler = Callable[[argparse.Namespace], int]


def _need_keyring(args: argparse.Namespace) -> Path:
    path: Path | None = args.settings.keyring_path
    if path is None:
        raise ConfigError(
            "no keyring given: pass --keyring PATH (e.g. --keyring ./cdrveil.keyring.json) "
            "or set CDRVEIL_KEYRING_PATH"
        )
    return path


def _keys(args: argparse.Namespace) -> int:
    from pipeline.core.keys import Keyring

    path = _need_keyring(args)
    if args.keys_command == "init":
        keyring = Keyring.init(path, args.key_id)
        print(f"created keyring {path} (mode 0600) with active key {keyring.active}")
        print("keep it in a secret store; losing it makes existing pseudonyms unlinkable")
        return 0
    keyring = Keyring.load(path)
    if args.keys_command == "rotate":
        rotated = keyring.rotate(args.key_id)
        print(f"new active key {rotated.active}; {keyring.active} is retired")
        print("restart the workers to use it; shred the old key when its data has expired")
    elif args.keys_command == "shred":
        keyring.shred(args.kid)
        print(f"key {args.kid} shredded: its pseudonyms can no longer be reproduced")
        print("remember backups: copies of the old keyring file still hold the key")
    else:
        rows = keyring.describe()
        if args.json:
            print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        else:
            for row in rows:
                extra = f"  shredded {row['shreddedAt']}" if "shreddedAt" in row else ""
                print(f"{row['keyId']:<12} {row['status']:<9} created {row['createdAt']}{extra}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from pipeline.core.consent import ConsentTable
    from pipeline.core.engine import Engine
    from pipeline.core.keys import KeyEpoch, Keyring, Pseudonymizer
    from pipeline.core.normalize import MsisdnNormalizer
    from pipeline.core.policy import Policy
    from pipeline.core.warrants import WarrantIndex
    from pipeline.reports.explain import explain, load_consent, load_warrants, render

    settings = args.settings
    policy = Policy.load(settings.policy_path)
    show_values = settings.keyring_path is not None
    if show_values:
        keyring = Keyring.load(settings.keyring_path)
    else:
        # Without the real keyring, decisions are shown but pseudonym values are not.
        epoch = KeyEpoch("explain", "", secrets.token_bytes(32))
        keyring = Keyring(Path("<ephemeral>"), "explain", {"explain": epoch})
    engine = Engine.build(
        policy,
        Pseudonymizer(keyring),
        country_code=settings.country_code,
        trunk_prefix=settings.trunk_prefix,
        max_record_bytes=settings.max_record_bytes,
        home_networks=frozenset(settings.home_networks),
        topic_prefix=settings.topic_prefix,
    )
    normalizer = MsisdnNormalizer(settings.country_code, settings.trunk_prefix)
    consent, warrants = ConsentTable(normalizer), WarrantIndex(normalizer)
    try:
        raw = args.record.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{args.record} cannot be read ({exc.strerror})") from None
    states = load_consent(consent, args.consent)
    load_warrants(warrants, args.warrants)
    result = explain(engine, raw, consent, warrants)
    served = getattr(engine.decoder(raw), "served_msisdn", None)
    if states and served and consent.get(served) is None:
        # Another subscriber's consent file reads as "not consented": say why.
        print(
            f"cdrveil: note: {args.consent} holds no consent state for this record's served "
            f"subscriber ({states} for other subscribers), so the served subscriber counts "
            "as not consenting",
            file=sys.stderr,
        )
    if args.json:
        if not show_values:
            result.pop("outputs", None)
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2, default=_bytes).decode())
    else:
        sys.stdout.write(render(result, show_values))
        if not show_values and result["accepted"]:
            print("(pass --keyring to also see the output values with real pseudonyms)")
    return 0


def _bytes(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError


def _ropa(args: argparse.Namespace) -> int:
    from pipeline.core.policy import Policy
    from pipeline.reports.ropa import ropa_document, ropa_markdown

    policy = Policy.load(args.settings.policy_path)
    if args.json:
        print(orjson.dumps(ropa_document(policy), option=orjson.OPT_INDENT_2).decode())
    else:
        sys.stdout.write(ropa_markdown(policy))
    return 0


def _policy_check(args: argparse.Namespace) -> int:
    from pipeline.core.policy import Policy

    policy = Policy.load(args.file or args.settings.policy_path)
    print(f"{policy.source}: OK, version {policy.version}")
    for route in policy.routes.values():
        print(f"  {route.name:<22} {route.kind:<17} {route.legal_basis:<20} -> {route.topic}")
    # What every route with a rule for another party's number does when it is no MSISDN.
    parties = ", ".join(f"{c.value} {a.value}" for c, a in policy.party_numbers.items())
    print(f"  party numbers that are no MSISDN: {parties}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate from main() so tests and docs can inspect it)."""
    parser = argparse.ArgumentParser(
        prog="cdrveil",
        description="Consent-aware pseudonymization and routing of telecom CDRs and SMS "
        "records on Kafka.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cdrveil {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    keys = commands.add_parser(
        "keys",
        help="manage the pseudonymization keyring",
        description="Create, rotate, list and shred key epochs. Key material is never printed.",
    )
    keys_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    for name, text in (
        ("init", "create a new keyring with one random 32-byte key (refuses to overwrite)"),
        ("rotate", "add a new random key and make it active (new, unlinkable pseudonyms)"),
        ("list", "list key ids, their status and creation time"),
        ("shred", "destroy a retired key for good (crypto-shredding)"),
    ):
        sub = keys_commands.add_parser(name, help=text, description=text)
        add_setting_flags(sub, "keyring_path", notes={"keyring_path": "; required"})
        if name in ("init", "rotate"):
            sub.add_argument("--key-id", help="id of the new key (default k<N>)")
        if name == "shred":
            sub.add_argument("kid", metavar="KID", help="the key id to shred (not the active one)")
        if name == "list":
            sub.add_argument("--json", action="store_true", help="machine-readable output")
        sub.set_defaults(handler=_keys)

    explain = commands.add_parser(
        "explain",
        help="show what one record becomes on every route, and why",
        description="Apply the policy to one record and show, per route, whether it goes "
        "there and why (legal basis, consent, warrant), and each field's action; another "
        "party's number that is no MSISDN (service code, short number, sender name, "
        "unparseable) is shown with its class and the policy's [party_numbers] action.",
    )
    explain.add_argument("record", type=Path, metavar="RECORD.json", help="one input record")
    explain.add_argument(
        "--consent", type=Path, help="consent states: a JSON object, array or JSON lines"
    )
    explain.add_argument("--warrants", type=Path, help="warrants: a JSON object, array or lines")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    add_setting_flags(
        explain,
        *NUMBERING,
        "max_record_bytes",
        "topic_prefix",
        "policy_path",
        "keyring_path",
        notes={"keyring_path": "; optional: with it, output values are shown too"},
    )
    explain.set_defaults(handler=_explain)

    ropa = commands.add_parser(
        "ropa",
        help="print the GDPR Art. 30 record of processing generated from the policy",
        description="Purposes, legal bases, data categories and subjects, recipients "
        "(topics), retention and security measures, from the policy file.",
    )
    ropa.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    add_setting_flags(ropa, "policy_path")
    ropa.set_defaults(handler=_ropa)

    policy = commands.add_parser(
        "policy-check",
        help="validate a policy file and summarise its routes",
        description="Load a policy with every check the worker applies at start-up, and show "
        "its routes and its [party_numbers] actions (what a route gets of another party's "
        "number that is no MSISDN).",
    )
    policy.add_argument("file", nargs="?", type=Path, help="policy file (default: --policy)")
    add_setting_flags(policy, "policy_path")
    policy.set_defaults(handler=_policy_check)

    from pipeline.cli.subject import add_subject_command

    add_subject_command(commands)
    _add_shell_commands(commands)
    return parser


def _add_shell_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands that talk to Kafka; their modules load only when they run."""
    from pipeline.cli.commands import add_commands

    add_commands(commands)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        # Every command reads its settings here, the one way: CDRVEIL_* variables checked
        # (an unknown one refused), then overridden by the command's flags.
        args.settings = settings_of(args)
        return handler(args)
    except CdrveilError as exc:
        print(f"cdrveil: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; that is not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
