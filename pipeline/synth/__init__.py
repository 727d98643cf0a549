"""Seeded synthetic traffic: subscribers, consent states, warrants, voice and SMS records.

Pure (no Kafka): the CLI's `cdrveil generate`, the demo, the tests and the benchmarks all
draw from it. The same `Workload` gives the same bytes, on any machine, in any order of
calls: each stream (population, consent, warrants, traffic) has its own seeded generator.

    w = Workload(subscribers=10_000, seed=7, malformed_share=0.01)
    for key, value in consent_states(w): ...
    for warrant in warrants(w): ...
    for message in records(w, 100_000): ...  # Generated(kind, key, value, expected_reason, ...)
"""

from pipeline.synth.clock import rfc3339
from pipeline.synth.jsonl import write_jsonl
from pipeline.synth.population import (
    NUMBER_FORMS,
    TACS,
    Population,
    Subscriber,
    luhn_check_digit,
    population,
    render_number,
)
from pipeline.synth.state import GeneratedWarrant, consent_states, warrants
from pipeline.synth.traffic import Generated, Kind, records
from pipeline.synth.workload import (
    DEFAULT_CONSENT_SHARES,
    DEFAULT_START,
    MALFORMED_REASONS,
    Workload,
)

__all__ = [
    "DEFAULT_CONSENT_SHARES",
    "DEFAULT_START",
    "MALFORMED_REASONS",
    "NUMBER_FORMS",
    "TACS",
    "Generated",
    "GeneratedWarrant",
    "Kind",
    "Population",
    "Subscriber",
    "Workload",
    "consent_states",
    "luhn_check_digit",
    "population",
    "records",
    "render_number",
    "rfc3339",
    "warrants",
    "write_jsonl",
]
