"""A new user's first mistakes get one clear line and the right exit status, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from pipeline.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "schemas" / "examples"
RECORD = EXAMPLES / "voice-cdr.mo-call.json"
CONSENT = EXAMPLES / "consent-state.subscriber.json"
#: The `cdrveil` fixture (tests/unit/conftest.py): exit status and first line of the message.
CliRun = Callable[..., tuple[int, str]]


def test_generate_into_a_missing_folder_says_so(cdrveil: CliRun, tmp_path: Path) -> None:
    """It was a FileNotFoundError traceback."""
    target = tmp_path / "no-such-folder" / "out.jsonl"
    code, line = cdrveil("generate", "--records", "10", "--output", str(target))
    assert (code, line) == (
        2,
        f"cdrveil: error: cannot write {target}: the folder {target.parent} does not exist",
    )


def test_generate_refuses_a_negative_count(cdrveil: CliRun, tmp_path: Path) -> None:
    """`--records -5` was a traceback from deep in the generator."""
    code, line = cdrveil("generate", "--records", "-5", "--output", str(tmp_path / "x"))
    assert (code, line) == (2, "cdrveil: error: --records must be 0 or more")


def test_generate_says_why_lines_are_missing_from_the_file(
    cdrveil: CliRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1,000 records with 5 % malformed wrote 994 lines: the 6 tombstones are now counted."""
    target = tmp_path / "out.jsonl"
    code, line = cdrveil(
        "generate", "--records", "1000", "--malformed-share", "0.05", "--output", str(target)
    )
    lines = len(target.read_bytes().splitlines())
    assert code == 0
    assert lines < 1000
    assert line == f"wrote {lines:,} records to {target} (JSON lines)"
    main(["generate", "--records", "1000", "--malformed-share", "0.05", "--output", str(target)])
    out = capsys.readouterr().out.splitlines()
    assert out[1] == (
        f"{1000 - lines:,} of the 1,000 records are Kafka tombstones (malformed on purpose: "
        "null value) and have no JSON-lines form; left out"
    )


def test_replay_refuses_a_code_that_is_no_reason_code(cdrveil: CliRun) -> None:
    """`--code oversise` matched nothing and said nothing; refused before any connection."""
    code, line = cdrveil("replay", "--code", "oversise", "--dry-run")
    assert (code, line) == (
        2,
        "cdrveil: error: --code oversise is not a reason code: did you mean oversize?",
    )


def test_replay_lists_the_codes_when_none_is_close(cdrveil: CliRun) -> None:
    code, line = cdrveil("replay", "--code", "typo", "--dry-run")
    assert code == 2
    assert line.startswith("cdrveil: error: --code typo is not a reason code: known: bad_ber, ")
    assert "internal_error" in line and "oversize" in line


def test_explain_of_truncated_json_gives_no_keyring_hint(
    cdrveil: CliRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rejected record has no output values, so the --keyring hint was beside the point."""
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(RECORD.read_bytes()[:100])
    assert main(["explain", str(truncated)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "REJECTED -> dead-letter topic"
    assert "keyring" not in out


def test_explain_says_when_the_consent_file_is_another_subscribers(
    cdrveil: CliRun, tmp_path: Path
) -> None:
    """It was silently "not consented"."""
    other = orjson.loads(CONSENT.read_bytes())
    other["msisdn"] = "46709999999"
    consent = tmp_path / "other.json"
    consent.write_bytes(orjson.dumps(other))
    code, line = cdrveil("explain", str(RECORD), "--consent", str(consent))
    assert (code, line) == (
        0,
        f"cdrveil: note: {consent} holds no consent state for this record's served "
        "subscriber (1 for other subscribers), so the served subscriber counts as not "
        "consenting",
    )


def test_explain_with_the_right_consent_file_adds_no_note(cdrveil: CliRun) -> None:
    code, line = cdrveil("explain", str(RECORD), "--consent", str(CONSENT))
    assert code == 0
    assert line.startswith("record msc01-20261121-000001 (moCallRecord)")


def test_explain_refuses_a_consent_file_that_holds_no_consent(cdrveil: CliRun) -> None:
    """The record passed as --consent (arguments swapped)."""
    code, line = cdrveil("explain", str(CONSENT), "--consent", str(RECORD))
    assert (code, line) == (
        2,
        f"cdrveil: error: {RECORD} holds no readable consent state (an object with msisdn, "
        "version and purposes, as on consent.state): is it the right file? --consent takes "
        "consent states, --warrants warrants",
    )


def test_ropa_names_the_policy_once(cdrveil: CliRun, capsys: pytest.CaptureFixture[str]) -> None:
    """The header said `cdrveil default policy, default policy (...)`."""
    assert main(["ropa"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = [line for line in out if line.startswith("- Policy: ")]
    assert len(header) == 1
    assert header[0].startswith("- Policy: cdrveil default policy, version sha256:")
    assert header[0].endswith(", from pipeline/policies/default.toml (packaged)")
    assert header[0].count("default policy") == 1


def cdrveil_process(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `python -m pipeline` as a user does: exit status and the first line of stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CDRVEIL_")}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *argv],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = (done.stderr or done.stdout).splitlines()
    return done.returncode, lines[0] if lines else ""


#: A port nothing listens on: a broker that is down.
NO_BROKER = {"CDRVEIL_BOOTSTRAP_SERVERS": "127.0.0.1:9"}


def test_ingest_of_a_missing_file_names_the_file_not_the_broker(tmp_path: Path) -> None:
    """Inputs are checked before connecting: with no broker it said "Kafka unreachable"."""
    missing = tmp_path / "missing.dat"
    code, line = cdrveil_process("ingest", "--no-progress", str(missing), env=NO_BROKER)
    assert (code, line) == (
        1,
        f"cdrveil: ERROR {missing}: not ingested: cannot be read (No such file or directory)",
    )


def test_ingest_refuses_a_json_lines_file_as_a_whole(tmp_path: Path) -> None:
    """It exited 0 with eight dead letters; a file that is no TS 32.297 file is refused."""
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_bytes(b"".join(RECORD.read_bytes().replace(b"\n", b"") + b"\n" for _ in range(50)))
    code, line = cdrveil_process("ingest", "--no-progress", str(jsonl), env=NO_BROKER)
    assert (code, line) == (
        1,
        f"cdrveil: ERROR {jsonl}: not ingested: not a TS 32.297 CDR file: no valid file "
        "header (header length out of range) and no CDR in it; nothing published",
    )
