"""The batch interface: the Python engine behind it, the engine setting and its refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import factory
from pipeline.core.batch import INTERNAL_ERROR, BatchResult, PythonBatchEngine
from pipeline.core.consent import ConsentLookup
from pipeline.core.decode import Rejection
from pipeline.core.engine import Engine, Output
from pipeline.core.keys import Pseudonymizer
from pipeline.core.policy import Policy
from pipeline.core.warrants import WarrantIndex
from pipeline.errors import ConfigError
from pipeline.settings import Settings
from tests.support.core import OTHER, SERVED, add_warrant, encode, grant, mo_call, mo_sms, mt_sms
from tests.support.properties import EXAMPLES

MALFORMED: list[bytes | None] = [None, b"", b"{", b"[]", b'{"recordType": "moCall"}', b"\xff"]


@pytest.fixture(scope="module")
def batch_engine(policy: Policy, pseudonymizer: Pseudonymizer) -> PythonBatchEngine:
    """The Python batch engine with a consenting served subscriber and one warrant."""
    built = PythonBatchEngine.build(policy, pseudonymizer)
    grant(built.consent, SERVED, "marketing", "network_planning", version=3)
    add_warrant(
        built.warrants,
        "LI-7",
        [("msisdn", OTHER)],
        valid_from="2026-01-01T00:00:00Z",
        valid_until="2027-01-01T00:00:00Z",
    )
    return built


def one_by_one(engine: PythonBatchEngine, values: list[bytes | None]) -> BatchResult:
    """What the per-record engine says for each value, gathered the batch way."""
    reference = engine.engine
    assert isinstance(reference, Engine)
    outputs: list[Output] = []
    rejections: list[tuple[int, Rejection]] = []
    for index, raw in enumerate(values):
        result = reference.process(raw, engine.consent.get, engine.warrants)
        if isinstance(result, Rejection):
            rejections.append((index, result))
        else:
            outputs += result
    return BatchResult(outputs, rejections, reference.take_party_numbers())


def test_a_batch_gives_the_per_record_outputs_in_input_order(
    batch_engine: PythonBatchEngine,
) -> None:
    """Outputs flattened in input order, rejections by index, as record-at-a-time gives."""
    values: list[bytes | None] = [
        encode(mo_call()),
        None,
        encode(mt_sms()),
        b"{",
        encode(mo_sms(destinationNumber="0739876543")),
    ]
    result = batch_engine.process_batch(values)
    assert result == one_by_one(batch_engine, values)
    assert [index for index, _ in result.rejections] == [1, 3]
    assert [r.code for _, r in result.rejections] == ["null_value", "invalid_json"]
    # The warrant on OTHER matched the SMS to them: lawful intercept among the outputs.
    assert any(out.key == b"LI-7" for out in result.outputs)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(MALFORMED),
            st.builds(lambda make: encode(make()), st.sampled_from([mo_call, mo_sms, mt_sms])),
            st.binary(max_size=40),
        ),
        max_size=12,
    )
)
def test_any_batch_equals_its_records_one_by_one(
    batch_engine: PythonBatchEngine, values: list[bytes | None]
) -> None:
    """Whatever the mix of good and malformed values, the batch is the records in order."""
    assert batch_engine.process_batch(values) == one_by_one(batch_engine, values)


def test_an_empty_batch_gives_nothing(batch_engine: PythonBatchEngine) -> None:
    assert batch_engine.process_batch([]) == BatchResult([], [], {})


def test_a_batch_counts_its_party_numbers_by_class(batch_engine: PythonBatchEngine) -> None:
    """Each party-number field of an accepted record is counted in its class; a rejected
    record counts nothing."""
    values: list[bytes | None] = [
        encode(mo_call(calledNumber="*100#")),
        encode(mo_sms(destinationNumber="BankID")),
        encode(mo_call(calledNumber="112", servedMSISDN="not a number")),
        None,
    ]
    result = batch_engine.process_batch(values)
    assert [index for index, _ in result.rejections] == [2, 3]
    assert dict(result.parties) == {"msisdn": 1, "service_code": 1, "alphanumeric": 1}


class _Exploding:
    """A stand-in engine that raises on one value, quoting an identifier in its message."""

    def process(
        self, raw: bytes | None, consent: ConsentLookup, warrants: WarrantIndex
    ) -> Rejection | list[Output]:
        if raw == b"boom":
            raise KeyError(SERVED)
        return [Output("out", None, raw or b"", [])]


def test_an_engine_that_raises_rejects_that_record_only() -> None:
    """internal_error at the record's index; the others processed; no identifier in it."""
    engine = PythonBatchEngine.around(_Exploding())
    result = engine.process_batch([b"a", b"boom", b"c"])
    assert [out.value for out in result.outputs] == [b"a", b"c"]
    ((index, rejection),) = result.rejections
    assert index == 1
    assert rejection.code == INTERNAL_ERROR
    assert rejection.message.startswith("the engine raised KeyError at test_core_batch.py:")
    assert SERVED not in rejection.message


def test_the_python_engine_has_the_attributes_the_worker_reads(
    batch_engine: PythonBatchEngine, pseudonymizer: Pseudonymizer
) -> None:
    """Name, tables the consumers feed, and the policy and key id for the metrics."""
    assert batch_engine.name == "python"
    assert len(batch_engine.consent) == 1
    assert len(batch_engine.warrants) == 1
    assert batch_engine.policy is not None
    assert batch_engine.key_id == pseudonymizer.key_id
    assert PythonBatchEngine.around(_Exploding()).policy is None


# --- the setting and the factory -------------------------------------------------------------


def test_the_engine_setting_defaults_to_native_and_reads_its_variable() -> None:
    assert Settings.from_env({}).engine == "native"
    assert Settings.from_env({"CDRVEIL_ENGINE": " Python "}).engine == "python"
    assert Settings.from_env({}, engine="python").engine == "python"
    assert Settings.from_env({}, engine="python").to_env()["CDRVEIL_ENGINE"] == "python"


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(ConfigError, match="engine must be native or python"):
        Settings.from_env({"CDRVEIL_ENGINE": "rust"})


def test_the_factory_builds_the_python_engine(keyring_file: Path) -> None:
    settings = Settings.from_env({}, engine="python", keyring_path=keyring_file)
    engine = factory.build_engine(settings)
    assert isinstance(engine, PythonBatchEngine)
    assert engine.process_batch([None]).rejections[0][1].code == "null_value"


def test_native_without_the_native_module_refuses_and_names_the_way_out(
    keyring_file: Path, monkeypatch: Any
) -> None:
    """Never a silent fallback: the refusal says CDRVEIL_ENGINE=python."""
    monkeypatch.setattr(factory, "NATIVE_MODULE", "pipeline.core.no_such_engine")
    settings = Settings.from_env({}, engine="native", keyring_path=keyring_file)
    with pytest.raises(ConfigError, match="CDRVEIL_ENGINE=python") as refused:
        factory.build_engine(settings)
    assert "not built" in str(refused.value)


def test_a_bad_keyring_is_refused_before_the_engine_is_looked_for(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The keyring's refusal comes first, whatever the engine setting."""
    monkeypatch.setattr(factory, "NATIVE_MODULE", "pipeline.core.no_such_engine")
    bad = tmp_path / "k.json"
    bad.write_text("{}")
    bad.chmod(0o600)
    settings = Settings.from_env({}, engine="native", keyring_path=bad)
    with pytest.raises(ConfigError) as refused:
        factory.build_engine(settings)
    assert "CDRVEIL_ENGINE" not in str(refused.value)
