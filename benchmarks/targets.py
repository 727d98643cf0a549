"""Every benchmark target, in one place: issues 14 (the compiled engine) and 15 (Apache Kafka).

The table of ``python -m benchmarks`` (:mod:`benchmarks.report`) and the lines of
``python -m benchmarks.core`` take their verdicts from here. Ratios are what count;
absolute figures drift with the machine.
"""

from __future__ import annotations

from typing import Final

#: Issue 14: the native engine alone, one core, the standard workload, through the batch
#: interface with the record batches (<= 4 us per record). The Python engine has no speed
#: target: it is the reference.
CORE_RECORDS_PER_SECOND: Final = 250_000
#: Issue 14: one worker on the embedded broker, the default (native) engine.
E2E_RECORDS_PER_SECOND: Final = 40_000
E2E_OVER_OUTPUTS_ONLY: Final = 0.8
NATIVE_OVER_PYTHON: Final = 3.0
E2E_CPU_US_PER_RECORD: Final = 12.0
#: Issue 14: 1,000,000 consent states in the native engine's table.
CONSENT_STATES: Final = 1_000_000
CONSENT_SECONDS: Final = 10.0
CONSENT_RSS_MB: Final = 300.0
#: Issue 15: latency at 50 % load, measured on Apache Kafka (outputs' LogAppendTime).
LOAD_P99_MS: Final = 500.0
