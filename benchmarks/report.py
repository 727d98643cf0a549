"""The one table ``python -m benchmarks`` prints, and each target checked against the figures.

The embedded broker's rows first, then Apache Kafka's (each part only when it ran). Every
verdict is computed from the run's own figures against :mod:`benchmarks.targets` (issues 14
and 15); nothing here is a stored result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmarks.targets import (
    CONSENT_RSS_MB,
    CONSENT_SECONDS,
    CORE_RECORDS_PER_SECOND,
    E2E_CPU_US_PER_RECORD,
    E2E_OVER_OUTPUTS_ONLY,
    E2E_RECORDS_PER_SECOND,
    LOAD_P99_MS,
    NATIVE_OVER_PYTHON,
)

#: A figure of an earlier issue, kept in the table without a target of its own.
NAIVE_FAUST_NOTE = "no target now (the throughput issue's was 8x)"


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
    if "core" in results:
        _embedded_rows(table, results, records, naive_records)
    if "apacheKafka" in results:
        embedded = results.get("workers", {}).get("1", {}).get("recordsPerSecond")
        _apache_kafka_rows(table, results["apacheKafka"], records, embedded)
    return table


def _load_measured(load: dict[str, Any], seconds: float) -> str:
    return (
        f"p50 {load['p50Ms']:,.0f} ms; p99 {load['p99Ms']:,.0f} ms; max {load['maxMs']:,.0f} ms "
        f"at {load['achievedRecordsPerSecond']:,} records/s for {seconds:.0f} s"
    )


def _worst_second(load: dict[str, Any]) -> str:
    """Where in the run the worst second's p99 was (start-up stall, one pause, throughout)."""
    by_second = load.get("p99MsBySecond") or []
    if not by_second:
        return ""
    worst = max(range(len(by_second)), key=by_second.__getitem__)
    over = sum(p99 > LOAD_P99_MS for p99 in by_second)
    return (
        f"; worst second +{worst} s (p99 {by_second[worst]:,.0f} ms); "
        f"{over} of {len(by_second)} seconds over {LOAD_P99_MS:.0f} ms"
    )


def _phases_row(split: dict[str, Any]) -> Row:
    """The worker's CPU per input record by phase (py-spy), or why it was not measured."""
    name = "  worker CPU by phase (py-spy)"
    if "skipped" in split:
        return Row(name, f"not measured: {split['skipped']}", {})
    per = split["microsecondsPerRecord"]
    parts = ", ".join(f"{phase} {value}" for phase, value in per.items())
    return Row(
        f"{name}, {split['engine']} engine",
        f"{parts} us/record of {split['cpuMicrosecondsPerRecord']} "
        f"({split['records']:,} inputs, {split['samples']:,} samples)",
        {f"{phase}MicrosecondsPerRecord": value for phase, value in per.items() if value > 0},
        detail="a run of its own, py-spy attached",
    )


def _embedded_rows(table: Table, results: dict[str, Any], records: int, naive_records: int) -> None:
    """Issue 14's figures, on the embedded broker."""
    core = results["core"]
    rate = core["recordsPerSecond"]
    python = core["python"]["recordsPerSecond"]
    table.add(
        Row(
            "core: native engine alone, one core",
            f"{rate:,} records/s; {core['microsecondsPerRecord']} us/record; "
            f"{core['outputsPerRecord']} outputs/record; python {python:,} records/s "
            f"({core['python']['microsecondsPerRecord']} us/record)",
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
            f"embedded broker: end to end, one worker, {records:,} inputs, "
            f"{results['engine']} engine",
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
            f"CPU {e2e['cpuSeconds']} s processing ({cpu} us/record), "
            f"{e2e['cpuSecondsTotal']} s in all; peak RSS {e2e['peakRssMb']:,.0f} MB",
            {
                "cpuSeconds": e2e["cpuSeconds"],
                "cpuSecondsTotal": e2e["cpuSecondsTotal"],
                "peakRssMb": e2e["peakRssMb"],
            },
            f"<= {E2E_CPU_US_PER_RECORD:g} us/record",
            cpu <= E2E_CPU_US_PER_RECORD,
        )
    )
    table.add(_phases_row(results["cpuByPhase"]))
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
            detail=NAIVE_FAUST_NOTE,
        )
    )
    load = results["latencyUnderLoad"]
    table.add(
        Row(
            f"latency at {results['loadShare']:.0%} load, embedded broker",
            _load_measured(load, results["loadSeconds"]),
            {k: load[k] for k in ("p50Ms", "p99Ms", "achievedRecordsPerSecond")},
            detail="create times (no LogAppendTime); the target is judged on Apache Kafka",
        )
    )
    consent = results["consentAtScale"]
    table.add(
        Row(
            f"consent table, {consent['states']:,} states, {consent['engine']} engine",
            f"ready {consent['readySeconds']} s after start (tables loaded at "
            f"{consent['tablesLoadedSeconds']} s); RSS {consent['rssMb']:,.0f} MB",
            {k: consent[k] for k in ("readySeconds", "tablesLoadedSeconds", "rssMb")},
            f"<= {CONSENT_SECONDS:g} s and <= {CONSENT_RSS_MB:g} MB",
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


def _apache_kafka_rows(
    table: Table,
    kafka: dict[str, Any],
    records: int,
    embedded_rate: float | None,
) -> None:
    """Issue 15's figures: the same worker on Apache Kafka, the p99 target judged there."""
    load_target = f"p99 <= {LOAD_P99_MS:.0f} ms"
    if "skipped" in kafka:
        table.add(
            Row(
                "Apache Kafka: latency at 50% load",
                f"not run: {kafka['skipped']}",
                {},
                load_target,
                False,
                "not measured",
            )
        )
        return
    where = f"Apache Kafka {kafka['version']}, {kafka['nodes']} node(s)"
    run = kafka["worker"]
    rate = run["recordsPerSecond"]
    beside = (
        f"{rate / embedded_rate:.2f}x the embedded broker's rate in this run"
        if embedded_rate
        else ""
    )
    table.add(
        Row(
            f"{where}: end to end, one worker, {records:,} inputs, {kafka['engine']} engine",
            f"{rate:,} records/s in; {run['outputMessagesPerSecond']:,} messages/s out; CPU "
            f"{run['cpuMicrosecondsPerRecord']} us/record; peak RSS {run['peakRssMb']:,.0f} MB",
            {
                "recordsPerSecond": rate,
                "outputMessagesPerSecond": run["outputMessagesPerSecond"],
                "cpuMicrosecondsPerRecord": run["cpuMicrosecondsPerRecord"],
                "peakRssMb": run["peakRssMb"],
            },
            detail=beside,
        )
    )
    load = kafka["latencyUnderLoad"]
    matched, stamped = load["matchedOutputs"], load["logAppendTimeOutputs"]
    append_time = matched > 0 and stamped == matched
    table.add(
        Row(
            f"  latency at {kafka['loadShare']:.0%} load, LogAppendTime outputs",
            _load_measured(load, kafka["loadSeconds"])
            + f"; {stamped:,} of {matched:,} outputs stamped by the broker"
            + _worst_second(load),
            {k: load[k] for k in ("p50Ms", "p99Ms", "achievedRecordsPerSecond")},
            load_target,
            append_time and load["p99Ms"] <= LOAD_P99_MS,
            "" if append_time else "the outputs did not all carry LogAppendTime",
        )
    )
