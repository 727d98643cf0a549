"""The command line reads settings one way: every command refuses a wrong CDRVEIL_* variable."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from pipeline.cli.main import build_parser
from pipeline.cli.options import ENV_ONLY, FLAGS
from pipeline.settings import Settings, default_text, variable

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "schemas" / "examples" / "voice-cdr.mo-call.json"
#: The `cdrveil` fixture (tests/unit/conftest.py): exit status and first line of the message.
CliRun = Callable[..., tuple[int, str]]


COMMANDS = [
    ["explain", str(RECORD)],
    ["ropa"],
    ["policy-check"],
    ["keys", "list", "--keyring", "/nonexistent/keyring.json"],
    ["generate", "--records", "1", "--output", "/nonexistent/out.jsonl"],
    ["demo"],
    ["worker"],
    ["topics", "create"],
    ["replay", "--dry-run"],
    ["ingest", "/nonexistent/file.cdr"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_command_refuses_an_unknown_variable_and_names_the_near_one(
    argv: list[str], cdrveil: CliRun
) -> None:
    """CDRVEIL_KEYRING=x is no setting: refused before anything runs, with the right name."""
    code, line = cdrveil(*argv, CDRVEIL_KEYRING="x")
    assert code == 2
    assert line == (
        "cdrveil: error: unknown setting CDRVEIL_KEYRING: did you mean CDRVEIL_KEYRING_PATH?"
    )


def test_a_near_miss_of_the_brokers_variable_is_named(cdrveil: CliRun) -> None:
    """The example of the issue: CDRVEIL_BOOTSTRAP_SERVER (no S)."""
    code, line = cdrveil("ropa", CDRVEIL_BOOTSTRAP_SERVER="127.0.0.1:9092")
    assert (code, line) == (
        2,
        "cdrveil: error: unknown setting CDRVEIL_BOOTSTRAP_SERVER: "
        "did you mean CDRVEIL_BOOTSTRAP_SERVERS?",
    )


def test_a_name_far_from_any_setting_gets_the_list(cdrveil: CliRun) -> None:
    """No guess when nothing is close: the known names instead."""
    code, line = cdrveil("ropa", CDRVEIL_COLOUR="blue")
    assert code == 2
    assert line.startswith("cdrveil: error: unknown setting CDRVEIL_COLOUR; known: ")
    assert "CDRVEIL_WEB_PORT" in line


def test_explain_refuses_a_bad_country_code_from_the_environment(cdrveil: CliRun) -> None:
    """It used to end in an uncaught ValueError: explain skipped the settings checks."""
    code, line = cdrveil("explain", str(RECORD), CDRVEIL_COUNTRY_CODE="abc")
    assert (code, line) == (
        2,
        "cdrveil: error: CDRVEIL_COUNTRY_CODE: country_code must be 1-3 digits, e.g. 46",
    )


def test_a_bad_flag_value_names_the_flag(cdrveil: CliRun) -> None:
    """The refusal says what the user typed (the flag), never the value."""
    code, line = cdrveil("explain", str(RECORD), "--country-code", "046")
    assert (code, line) == (
        2,
        "cdrveil: error: --country-code: country_code must not start with 0",
    )


def test_explain_takes_its_settings_from_the_environment(cdrveil: CliRun) -> None:
    """CDRVEIL_MAX_RECORD_BYTES reaches explain's engine, as it reaches the worker's."""
    assert RECORD.stat().st_size > 256
    code, line = cdrveil("explain", str(RECORD), CDRVEIL_MAX_RECORD_BYTES="256")
    assert (code, line) == (0, "REJECTED -> dead-letter topic")


def test_no_keyring_gives_the_whole_command_to_make_one(cdrveil: CliRun) -> None:
    """`cdrveil keys init` alone fails (it needs --keyring): the hint must give the flag."""
    code, line = cdrveil("worker")
    assert code == 2
    assert "`cdrveil keys init --keyring ./cdrveil.keyring.json`" in line
    assert line.startswith("cdrveil: error: no keyring configured")


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield path, parser
    for action in subcommands:
        for name, sub in action.choices.items():
            yield from _leaves(sub, (*path, name))


def test_help_names_the_variable_and_default_behind_every_setting_flag() -> None:
    """`topics create --help` said `(env, default 8)`: now every flag says which variable."""
    seen = 0
    for _, parser in _leaves(build_parser()):
        for action in parser._actions:
            if action.dest in (parser.get_default("setting_flags") or ()):
                seen += 1
                assert f"(env {variable(action.dest)}, default {default_text(action.dest)})" in (
                    action.help or ""
                ), action.option_strings
    assert seen > 30


def test_readme_says_which_commands_take_a_flag_for_each_setting() -> None:
    """README's settings table is the parser's truth: every setting, its flag, its commands."""
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(CDRVEIL_[A-Z_]+)` \| [^|]+ \| ([^|]+) \|", readme, re.M))
    commands: dict[str, list[str]] = {}
    for path, parser in _leaves(build_parser()):
        name = "keys" if path[0] == "keys" else " ".join(path)
        for setting in parser.get_default("setting_flags") or ():
            if name not in commands.setdefault(setting, []):
                commands[setting].append(name)
    for f in fields(Settings):
        expected = (
            "none"
            if f.name not in commands
            else f"`{FLAGS[f.name].option}`: " + ", ".join(commands[f.name])
        )
        assert rows.get(variable(f.name), "").strip() == expected, f.name
    assert {f.name for f in fields(Settings)} - set(commands) == set(ENV_ONLY)
