"""The one table ``python -m benchmarks`` prints, and each target checked against the figures.

Every verdict is computed from the run's own figures; nothing here is a stored result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The performance issues' targets (ratios are what count; absolute figures drift). The
#: end-to-end ones are issue 14's (the compiled engine): they hold for the default engine.
CORE_RECORDS_PER_SECOND = 250_000
E2E_RECORDS_PER_SECOND = 40_000
E2E_CPU_US_PER_RECORD = 12.0
NATIVE_OVER_PYTHON = 3.0
E2E_OVER_OUTPUTS_ONLY = 0.8
E2E_OVER_NAIVE_FAUST = 8.0
LOAD_P99_MS = 500.0
CONSENT_SECONDS = 15.0
CONSENT_RSS_MB = 400.0


@dataclass
class Row:
    """One line of the table: what was measured, its figures, and the target if any."""

    name: str
    measured: str
    figures: dict[str, float]
    target: str = ""
    met: bool | None = None
    detail: str = ""

    def verdict(self) -> str:
        """``met``, ``MISSED (detail)`` or empty."""
        if self.met is None:
            return self.detail
        word = "met" if self.met else "MISSED"
        return f"{word} ({self.detail})" if self.detail else word

    def as_dict(self) -> dict[str, Any]:
        """The row for the JSON report."""
        return {
            "name": self.name,
            "measured": self.measured,
            "figures": self.figures,
            "target": self.target or None,
            "met": self.met,
        }


@dataclass
class Table:
    """The rows of one run."""

    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        """Append a row."""
        self.rows.append(row)

    def render(self) -> str:
        """A plain-text table (also valid Markdown)."""
        header = ("benchmark", "measured", "target", "verdict")
        body = [(r.name, r.measured, r.target, r.verdict()) for r in self.rows]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(4)]

        def line(cells: tuple[str, ...]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(header), rule, *(line(cells) for cells in body)])

    def targets(self) -> list[dict[str, Any]]:
        """Every row with a target, and whether it was met."""
        return [
            {"name": r.name, "target": r.target, "met": r.met, "measured": r.measured}
            for r in self.rows
            if r.met is not None
        ]


def _ratio(value: float, target: float) -> str:
    return f"{value / target:.2f}x the target"


def _engines_row(engines: dict[str, dict[str, Any]]) -> Row:
    """One worker with each engine, on the same inputs in the same run."""
    parts = []
    figures: dict[str, float] = {}
    for name, run in engines.items():
        if "skipped" in run:
            parts.append(f"{name}: {run['skipped']}")
            continue
        rate, cpu = run["recordsPerSecond"], run["cpuMicrosecondsPerRecord"]
        parts.append(f"{name} {rate:,} records/s ({cpu} us/record)")
        figures[f"{name}RecordsPerSecond"] = rate
        figures[f"{name}CpuMicrosecondsPerRecord"] = cpu
    native, python = engines.get("native", {}), engines.get("python", {})
    if "recordsPerSecond" in native and "recordsPerSecond" in python:
        times = native["recordsPerSecond"] / python["recordsPerSecond"]
        figures["nativeOverPython"] = round(times, 2)
        met, detail = times >= NATIVE_OVER_PYTHON, f"{times:.1f}x"
    else:
        met, detail = False, "native engine not built"
    return Row(
        "  engines, one worker each",
        "; ".join(parts),
        figures,
        f"native >= {NATIVE_OVER_PYTHON:g}x python",
        met,
        detail,
    )


def build(results: dict[str, Any], records: int, naive_records: int) -> Table:
    """The table for a run's ``results`` (the JSON report's ``results`` object)."""
    table = Table()
    core = results["core"]
    rate = core["recordsPerSecond"]
    python = core["python"]["recordsPerSecond"]
    table.add(
        Row(
            "core: native engine alone, one core",
            f"{rate:,} records/s; {core['microsecondsPerRecord']} us/record; "
            f"{core['outputsPerRecord']} outputs/record; python {python:,} records/s",
            {
                "recordsPerSecond": rate,
                "microsecondsPerRecord": core["microsecondsPerRecord"],
                "pythonRecordsPerSecond": python,
            },
            f">= {CORE_RECORDS_PER_SECOND:,} records/s",
            rate >= CORE_RECORDS_PER_SECOND,
            _ratio(rate, CORE_RECORDS_PER_SECOND),
        )
    )
    workers = results["workers"]
    e2e = workers["1"]
    e2e_rate = e2e["recordsPerSecond"]
    table.add(
        Row(
            f"end to end: one worker, {records:,} inputs, {results['engine']} engine",
            f"{e2e_rate:,} records/s in; {e2e['outputMessagesPerSecond']:,} messages/s out",
            {
                "recordsPerSecond": e2e_rate,
                "outputMessagesPerSecond": e2e["outputMessagesPerSecond"],
            },
            f">= {E2E_RECORDS_PER_SECOND:,} records/s",
            e2e_rate >= E2E_RECORDS_PER_SECOND,
            _ratio(e2e_rate, E2E_RECORDS_PER_SECOND),
        )
    )
    backlog = results["backlogLatency"]
    table.add(
        Row(
            "  latency, preloaded backlog",
            f"p50 {backlog['p50Ms']:,.0f} ms; p99 {backlog['p99Ms']:,.0f} ms; "
            f"max {backlog['maxMs']:,.0f} ms",
            {k: backlog[k] for k in ("p50Ms", "p99Ms", "maxMs")},
            detail="inputs queued before the worker started",
        )
    )
    cpu = e2e["cpuMicrosecondsPerRecord"]
    table.add(
        Row(
            "  worker process",
            f"CPU {e2e['cpuSeconds']} s processing ({cpu} "
            f"us/record), {e2e['cpuSecondsTotal']} s in all; peak RSS {e2e['peakRssMb']:,.0f} MB",
            {
                "cpuSeconds": e2e["cpuSeconds"],
                "cpuSecondsTotal": e2e["cpuSecondsTotal"],
                "peakRssMb": e2e["peakRssMb"],
            },
            f"<= {E2E_CPU_US_PER_RECORD:g} us/record",
            cpu <= E2E_CPU_US_PER_RECORD,
        )
    )
    table.add(_engines_row(results["engines"]))
    only = results["outputsOnly"]
    share = e2e["outputMessagesPerSecond"] / only["messagesPerSecond"]
    table.add(
        Row(
            "outputs-only baseline",
            f"{only['messagesPerSecond']:,} messages/s; end to end is {share:.2f}x this",
            {"messagesPerSecond": only["messagesPerSecond"], "endToEndShare": round(share, 3)},
            f"end to end >= {E2E_OVER_OUTPUTS_ONLY}x",
            share >= E2E_OVER_OUTPUTS_ONLY,
            f"{share:.2f}x",
        )
    )
    passthrough = results["passthrough"]
    table.add(
        Row(
            "passthrough baseline",
            f"{passthrough['recordsPerSecond']:,} records/s (1:1, no transform)",
            {"recordsPerSecond": passthrough["recordsPerSecond"]},
        )
    )
    naive = results["naiveFaust"]
    times = e2e_rate / naive["recordsPerSecond"]
    table.add(
        Row(
            f"naive faust baseline, {naive_records:,} inputs",
            f"{naive['recordsPerSecond']:,} records/s; end to end is {times:.1f}x this",
            {"recordsPerSecond": naive["recordsPerSecond"], "endToEndTimes": round(times, 2)},
            f"end to end >= {E2E_OVER_NAIVE_FAUST:.0f}x",
            times >= E2E_OVER_NAIVE_FAUST,
            f"{times:.1f}x",
        )
    )
    load = results["latencyUnderLoad"]
    table.add(
        Row(
            f"latency at {results['loadShare']:.0%} load",
            f"p50 {load['p50Ms']:,.0f} ms; p99 {load['p99Ms']:,.0f} ms; max "
            f"{load['maxMs']:,.0f} ms at {load['achievedRecordsPerSecond']:,} records/s "
            f"for {results['loadSeconds']:.0f} s",
            {k: load[k] for k in ("p50Ms", "p99Ms", "achievedRecordsPerSecond")},
            f"p99 <= {LOAD_P99_MS:.0f} ms",
            load["p99Ms"] <= LOAD_P99_MS,
        )
    )
    consent = results["consentAtScale"]
    table.add(
        Row(
            f"consent table, {consent['states']:,} states",
            f"ready {consent['readySeconds']} s after start (tables loaded at "
            f"{consent['tablesLoadedSeconds']} s); RSS {consent['rssMb']:,.0f} MB",
            {k: consent[k] for k in ("readySeconds", "tablesLoadedSeconds", "rssMb")},
            f"<= {CONSENT_SECONDS:.0f} s and <= {CONSENT_RSS_MB:.0f} MB",
            consent["readySeconds"] <= CONSENT_SECONDS and consent["rssMb"] <= CONSENT_RSS_MB,
        )
    )
    rates = {n: run["recordsPerSecond"] for n, run in workers.items()}
    table.add(
        Row(
            "workers " + "/".join(rates),
            " / ".join(f"{r:,}" for r in rates.values()) + " records/s",
            {f"workers{n}": r for n, r in rates.items()},
            detail="2 cores bound this: the workers share them with the broker",
        )
    )
    return table
