"""atheris fuzz target: the decoder and the engine must reject, never raise, on any bytes.

    make fuzz                       # 5 minutes, prints executions and crashes found
    .venv/bin/python fuzz/fuzz_decoder.py -max_total_time=60 fuzz/corpus

Any exception other than a Rejection value is a crash: atheris stops and writes the input
to ``crash-*`` in the working directory.
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
    from pipeline.core.normalize import MsisdnNormalizer
    from pipeline.core.policy import Policy
    from pipeline.core.warrants import WarrantIndex

_FOLDER = tempfile.TemporaryDirectory()
ENGINE = Engine.build(Policy.load(), Pseudonymizer(Keyring.init(Path(_FOLDER.name) / "k.json")))
NORMALIZER = MsisdnNormalizer()
CONSENT = ConsentTable(NORMALIZER)
WARRANTS = WarrantIndex(NORMALIZER)
CONSENT.apply(
    b"46701234567",
    b'{"msisdn":"46701234567","purposes":{"marketing":true,"service_improvement":true},'
    b'"version":1,"updatedAt":"2026-11-21T05:00:00Z"}',
)
WARRANTS.apply(
    b"LI-1",
    b'{"liid":"LI-1","targets":[{"type":"msisdn","value":"46701234567"}],'
    b'"validFrom":"2000-01-01T00:00:00Z","validUntil":"2100-01-01T00:00:00Z"}',
)


def test_one_input(data: bytes) -> None:
    """Decode and route one input; a Rejection is fine, an exception is a finding."""
    result = ENGINE.process(data, CONSENT.get, WARRANTS)
    if isinstance(result, Rejection):
        assert result.code
        return
    for output in result:
        assert output.value


def main() -> None:
    """Run the fuzzer with libFuzzer's command-line options."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
