"""Shared fixtures of the unit tests: a fixed keyring, the default policy, an engine, fakes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.core.consent import ConsentTable
from pipeline.core.decode import Decoder
from pipeline.core.engine import Engine
from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.normalize import MsisdnNormalizer
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from tests.support.core import write_keyring


@pytest.fixture(scope="session")
def keyring_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keyring holding one epoch with the fixed test secret, mode 0600."""
    return write_keyring(tmp_path_factory.mktemp("keys") / "keyring.json")


@pytest.fixture(scope="session")
def keyring(keyring_file: Path) -> Keyring:
    """The fixed keyring, loaded through the real checks."""
    return Keyring.load(keyring_file)


@pytest.fixture(scope="session")
def pseudonymizer(keyring: Keyring) -> Pseudonymizer:
    """Pseudonyms under the fixed keyring's active epoch."""
    return Pseudonymizer(keyring)


@pytest.fixture(scope="session")
def policy() -> Policy:
    """The packaged default policy."""
    return Policy.load()


@pytest.fixture(scope="session")
def engine(policy: Policy, pseudonymizer: Pseudonymizer) -> Engine:
    """An engine with the default policy, the fixed keyring and Swedish numbering."""
    return Engine.build(policy, pseudonymizer)


@pytest.fixture(scope="session")
def twin_engine(policy: Policy, keyring_file: Path) -> Engine:
    """A second engine built independently from the same policy and keyring file."""
    return Engine.build(Policy.load(), Pseudonymizer(Keyring.load(keyring_file)))


@pytest.fixture(scope="session")
def msisdn() -> MsisdnNormalizer:
    """The default (Swedish) MSISDN normalizer."""
    return MsisdnNormalizer()


@pytest.fixture(scope="session")
def decoder(msisdn: MsisdnNormalizer) -> Decoder:
    """A decoder with the smallest allowed size limit, so oversize is cheap to produce."""
    return Decoder(msisdn, max_bytes=4096)


@pytest.fixture
def consent_table(msisdn: MsisdnNormalizer) -> ConsentTable:
    """An empty in-memory consent table (nobody has consented)."""
    return ConsentTable(msisdn)


@pytest.fixture
def warrants(msisdn: MsisdnNormalizer) -> WarrantIndex:
    """An empty warrant index."""
    return WarrantIndex(msisdn)


CliRun = Callable[..., tuple[int, str]]


@pytest.fixture
def cdrveil(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> CliRun:
    """Run the real command line in-process, with no CDRVEIL_* variable but those given.

    Returns the exit status and the first line of stderr (of stdout when stderr is empty).
    """
    from pipeline.cli.main import main

    for name in list(os.environ):
        if name.startswith("CDRVEIL_"):
            monkeypatch.delenv(name)

    def run(*argv: str, **env: str) -> tuple[int, str]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        code = main(list(argv))
        out, err = capsys.readouterr()
        text = err or out
        return code, text.splitlines()[0] if text else ""

    return run
