"""atheris fuzz target: the native engine (pipeline._engine) against the Python reference.

    make fuzz                       # prints executions and findings of both targets
    .venv/bin/python fuzz/fuzz_native.py -max_total_time=60 fuzz/corpus

Each input goes through the native decoder and engine (``NativeBatchEngine``) and through
the Python engine; a crash, an exception, or any difference in outputs or rejection is a
finding: atheris stops and writes the input to ``crash-*``. Coverage guidance comes from
the instrumented Python reference, which takes the same branches as the native code.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from pipeline.core.consent import ConsentTable
    from pipeline.core.decode import Rejection
    from pipeline.core.engine import Engine
    from pipeline.core.keys import Keyring, Pseudonymizer
    from pipeline.core.native import NativeBatchEngine
    from pipeline.core.normalize import MsisdnNormalizer
    from pipeline.core.policy import Policy
    from pipeline.core.warrants import WarrantIndex

_FOLDER = tempfile.TemporaryDirectory()
_PSEUDONYMIZER = Pseudonymizer(Keyring.init(Path(_FOLDER.name) / "k.json"))
_POLICY = Policy.load()
ENGINE = Engine.build(_POLICY, _PSEUDONYMIZER, max_record_bytes=4096)
NATIVE = NativeBatchEngine.build(_POLICY, _PSEUDONYMIZER, max_record_bytes=4096)
NORMALIZER = MsisdnNormalizer()
CONSENT = ConsentTable(NORMALIZER)
WARRANTS = WarrantIndex(NORMALIZER)
_CONSENT = (
    b"46701234567",
    b'{"msisdn":"46701234567","purposes":{"marketing":true,"service_improvement":true},'
    b'"version":1,"updatedAt":"2026-11-21T05:00:00Z"}',
)
_WARRANT = (
    b"LI-1",
    b'{"liid":"LI-1","targets":[{"type":"msisdn","value":"46701234567"}],'
    b'"validFrom":"2000-01-01T00:00:00Z","validUntil":"2100-01-01T00:00:00Z"}',
)
for table in (CONSENT, NATIVE.consent):
    table.apply(*_CONSENT)
for index in (WARRANTS, NATIVE.warrants):
    index.apply(*_WARRANT)


def test_one_input(data: bytes) -> None:
    """Both engines on one input; any difference is a finding."""
    expected = ENGINE.process(data, CONSENT.get, WARRANTS)
    got = NATIVE.process_batch([data])
    if isinstance(expected, Rejection):
        if got.outputs or got.rejections != [(0, expected)]:
            raise AssertionError(f"rejection differs: {got.rejections!r} != {expected!r}")
        return
    if got.rejections or got.outputs != expected:
        raise AssertionError("outputs differ between the native and the Python engine")


def main() -> None:
    """Run the fuzzer with libFuzzer's command-line options."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
