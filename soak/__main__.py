"""``python -m soak`` (``make soak``, ``make canary``): the full-size runs, with their figures.

    python -m soak soak       crash (kill -9, SIGTERM), poison, broker faults
    python -m soak canary     canaries and consent withdrawal
    python -m soak crash --records 20000 --signal TERM      one scenario, any size

Each scenario starts its own embedded broker (stopped at the end), prints what it found
and whether the promise held; the exit status is 1 if any promise did not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pipeline.harness import isolated_settings
from pipeline.settings import Settings
from pipeline.shell.broker import EmbeddedBroker
from soak.canary import CanaryConfig, CanaryReport, run_canary
from soak.crash import CrashConfig, CrashReport, run_crash
from soak.faults import FaultConfig, run_dead_letter_refused, run_frozen, run_gone
from soak.poison import PoisonConfig, run_poison
from soak.withdrawal import WithdrawalConfig, run_withdrawal


def say(text: str) -> None:
    """Progress, flushed at once (make shows it as it comes)."""
    sys.stdout.write(f"  .. {text}\n")
    sys.stdout.flush()


def section(title: str) -> None:
    """A heading in the output."""
    sys.stdout.write(f"\n== {title} ==\n")
    sys.stdout.flush()


def settings_for(broker: EmbeddedBroker) -> Settings:
    """Unique topics and group on ``broker``; fast group joins."""
    return isolated_settings(broker.bootstrap_servers, "soak")


Scenario = Callable[[Settings, Path], Awaitable[tuple[str, bool]]]


async def on_own_broker(scenario: Scenario) -> tuple[str, bool]:
    """Run ``scenario`` with a fresh embedded broker and work folder."""
    with tempfile.TemporaryDirectory(prefix="cdrveil-soak-") as folder:
        async with EmbeddedBroker() as broker:
            return await scenario(settings_for(broker), Path(folder))


def crash(records: int, stops: int, sig: int) -> Scenario:
    """The crash scenario as a runnable step."""

    async def run(settings: Settings, folder: Path) -> tuple[str, bool]:
        report: CrashReport = await run_crash(
            settings, folder, CrashConfig(records=records, stops=stops, sig=sig), say
        )
        v = report.verdict
        ok = (
            v.ok
            and len(report.stops) >= stops
            and report.final_exit_code == 0
            and (sig != signal.SIGTERM or v.duplicates == 0)
            and (sig != signal.SIGTERM or all(s.exit_code == 0 for s in report.stops))
        )
        return report.summary(), ok

    return run


def poison(valid: int, malformed: int) -> Scenario:
    """The poison scenario as a runnable step."""

    async def run(settings: Settings, folder: Path) -> tuple[str, bool]:
        report = await run_poison(
            settings, folder, PoisonConfig(valid=valid, malformed=malformed), say
        )
        return report.summary(), report.ok

    return run


def canary(count: int, log_level: str) -> Scenario:
    """The canary scenario as a runnable step."""

    async def run(settings: Settings, folder: Path) -> tuple[str, bool]:
        report: CanaryReport = await run_canary(
            settings, folder, CanaryConfig(canaries=count, log_level=log_level), say
        )
        ok = (
            report.leaks == 0
            and report.pseudonyms_equal_to_unkeyed_hash == 0
            and report.unkeyed_hashes_anywhere == 0
            and report.control_billing > 0
            and report.control_dead_letter_values == report.dead_letters > 0
        )
        return report.summary(), ok

    return run


def withdrawal(count: int) -> Scenario:
    """The withdrawal scenario as a runnable step."""

    async def run(settings: Settings, folder: Path) -> tuple[str, bool]:
        report = await run_withdrawal(settings, folder, WithdrawalConfig(withdrawals=count), say)
        ok = (
            report.never_applied == 0
            and report.not_monotonic == 0
            and report.clear_after == 0
            and report.marketing_after == 0
            and len(report.delays_ms) == count
        )
        return report.summary(), ok

    return run


async def faults(outage: float) -> list[tuple[str, str, bool]]:
    """Broker frozen, broker gone, dead letters refused (each on its own broker)."""
    results: list[tuple[str, str, bool]] = []
    config = FaultConfig(outage=outage)
    with tempfile.TemporaryDirectory(prefix="cdrveil-soak-") as folder:
        section(f"broker frozen (SIGSTOP) for {outage:.0f} s, then continued")
        frozen = await run_frozen(Path(folder) / "frozen", config, say)
        ok = (
            frozen.committed_unwritten == 0
            and frozen.during.exit_code != 0
            and (frozen.outcome.startswith("recovered") or frozen.outcome != "exited 0")
            and frozen.verdict is not None
            and frozen.verdict.ok
        )
        results.append(("broker frozen: nothing unwritten committed", frozen.summary(), ok))
        _show(results[-1])
        said = frozen.during.said_after is not None and frozen.during.not_ready_after is not None
        results.append(("broker frozen: not ready, and says so", "(see above)", said))
        _show(results[-1])
        section(f"broker killed (SIGKILL); then an empty broker on its port for {outage:.0f} s")
        gone = await run_gone(Path(folder) / "gone", config, restart_for=outage, say=say)
        ok = (
            gone.during.exit_code != 0
            and gone.during.not_ready_after is not None
            and gone.during.said_after is not None
            and not gone.sigterm_ignored
            and gone.sigterm_exit_code != 0
        )
        results.append(("broker gone", gone.summary(), ok))
        _show(results[-1])
        section("dead-letter writes refused by the broker")
        refused = await run_dead_letter_refused(Path(folder) / "refused", within=outage)
        ok = (
            refused.committed_past_refused == 0
            and refused.exit_code is not None
            and refused.exit_code != 0
        )
        results.append(("dead letters refused", refused.summary(), ok))
        _show(results[-1])
    return results


def _show(result: tuple[str, str, bool]) -> None:
    name, text, ok = result
    sys.stdout.write(text + "\n")
    sys.stdout.write(f"-> {name}: {'held' if ok else 'DID NOT HOLD'}\n")
    sys.stdout.flush()


async def run_steps(steps: list[tuple[str, Scenario]]) -> list[tuple[str, str, bool]]:
    """Run each step on its own broker; show each result as it comes."""
    results = []
    for name, scenario in steps:
        section(name)
        started = time.monotonic()
        text, ok = await on_own_broker(scenario)
        results.append((name, f"{text}\n(took {time.monotonic() - started:.0f} s)", ok))
        _show(results[-1])
    return results


def main(argv: list[str] | None = None) -> int:
    """The command line; exit status 1 if any promise did not hold."""
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("soak", help="crash (kill -9, SIGTERM), poison, broker faults at full size")
    sub.add_parser("canary", help="1,000 canaries and 120 consent withdrawals")
    one = sub.add_parser("crash", help="one crash run")
    one.add_argument("--records", type=int, default=200_000)
    one.add_argument("--stops", type=int, default=3)
    one.add_argument("--signal", choices=("KILL", "TERM"), default="KILL")
    bad = sub.add_parser("poison", help="one poison run")
    bad.add_argument("--valid", type=int, default=100_000)
    bad.add_argument("--malformed", type=int, default=2_000)
    fault = sub.add_parser("faults", help="the broker scenarios")
    fault.add_argument("--outage", type=float, default=60.0)
    bird = sub.add_parser("canaries", help="one canary run")
    bird.add_argument("--canaries", type=int, default=1_000)
    bird.add_argument("--log-level", default="INFO")
    out = sub.add_parser("withdrawal", help="one withdrawal run")
    out.add_argument("--withdrawals", type=int, default=120)
    args = parser.parse_args(argv)

    results: list[tuple[str, str, bool]] = []
    if args.what == "soak":
        results += asyncio.run(
            run_steps(
                [
                    ("crash: 200,000 records, kill -9 x 3", crash(200_000, 3, signal.SIGKILL)),
                    ("crash: 200,000 records, SIGTERM x 3", crash(200_000, 3, signal.SIGTERM)),
                    ("poison: 100,000 valid + 2,000 malformed", poison(100_000, 2_000)),
                ]
            )
        )
        results += asyncio.run(faults(60.0))
    elif args.what == "canary":
        results += asyncio.run(
            run_steps(
                [
                    ("canary: 1,000 subscribers, worker at INFO", canary(1_000, "INFO")),
                    ("canary: 100 subscribers, worker at DEBUG", canary(100, "DEBUG")),
                    ("consent withdrawal: 120 under traffic", withdrawal(120)),
                ]
            )
        )
    elif args.what == "crash":
        sig = signal.SIGKILL if args.signal == "KILL" else signal.SIGTERM
        results += asyncio.run(
            run_steps([(f"crash {args.signal}", crash(args.records, args.stops, sig))])
        )
    elif args.what == "poison":
        results += asyncio.run(run_steps([("poison", poison(args.valid, args.malformed))]))
    elif args.what == "faults":
        results += asyncio.run(faults(args.outage))
    elif args.what == "canaries":
        results += asyncio.run(
            run_steps([("canary", canary(args.canaries, args.log_level.upper()))])
        )
    else:
        results += asyncio.run(run_steps([("withdrawal", withdrawal(args.withdrawals))]))

    section("summary")
    for name, _text, ok in results:
        sys.stdout.write(f"{'held        ' if ok else 'DID NOT HOLD'}  {name}\n")
    return 0 if all(ok for _, _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
