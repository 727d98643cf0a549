"""Decode throughput of TS 32.297 / BER CDR files (records/s), fast engine vs pycrate.

Builds one file of ``--records`` distinct CDRs (a seeded mix of the four CS record types,
most optional fields present, encoded by pycrate), then times, best and median of
``--repeat`` runs over the whole file:

- framing only (file header, CDR headers, BER length checks);
- the fast engine: framing + decoding + the JSON dict of every record;
- the same plus ``orjson.dumps`` of every record (what ``cdrveil ingest`` publishes);
- the pycrate engine: framing + decoding with pycrate + the JSON dict.

Run: ``.venv/bin/python benchmarks/ber_decode.py`` (needs the ``ber`` extra: pycrate).
The target is >= 20,000 CDRs/s decoded; machines here are shared, so compare ratios.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from pipeline.ber import (
    BerRecordDecoder,
    CdrFileReader,
    DecodedCdr,
    RejectedCdr,
    build_cdr_file,
    decode_cdr_file,
)
from pipeline.ber.synth import BerRecordEncoder

FILE_NAME = "MSC01_20261121T0600+0100_0001.dat"
OPENED = datetime(2026, 11, 21, 6, 0, tzinfo=timezone(timedelta(hours=1)))


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def make_record(rng: random.Random) -> dict[str, Any]:
    """One plausible CDR as a JSON record (the input of the BER encoder)."""
    kind = rng.choices(
        ["moCallRecord", "mtCallRecord", "moSMSRecord", "mtSMSRecord"], [4, 3, 2, 1]
    )[0]
    zone = timezone(timedelta(hours=rng.choice([-5, 0, 1, 2])))
    start = OPENED.astimezone(zone) + timedelta(seconds=rng.randrange(3600))
    served = "4670" + _digits(rng, 7)
    record: dict[str, Any] = {
        "recordType": kind,
        "servedIMSI": "24001" + _digits(rng, 10),
        "servedIMEI": "35" + _digits(rng, 12),
        "servedMSISDN": served if rng.random() < 0.7 else "0" + served[2:],
        "recordingEntity": "4670000" + _digits(rng, 4),
        "location": {
            "mccMnc": rng.choice(["24001", "24001", "24202", "310260"]),
            "locationAreaCode": rng.randrange(1, 65535),
            "cellId": rng.randrange(65536),
        },
        "systemType": rng.choice(["gERAN", "iuUTRAN"]),
    }
    if kind in ("moCallRecord", "mtCallRecord"):
        duration = rng.choice([0, rng.randrange(1, 3600)])
        record.update(
            callingNumber="46" + _digits(rng, 9),
            basicService="telephony",
            seizureTime=_time(start),
            answerTime=_time(start + timedelta(seconds=5)),
            releaseTime=_time(start + timedelta(seconds=5 + duration)),
            callDuration=duration,
            causeForTerm=rng.choice(["normalRelease", "partialRecord", "abnormalRelease"]),
            diagnostics=rng.choice([16, 17, 31]),
            callReference=_digits(rng, 8),
            sequenceNumber=rng.randrange(100),
        )
        if kind == "moCallRecord":
            record["calledNumber"] = rng.choice(["46", "47", "0"]) + _digits(rng, 9)
            if rng.random() < 0.3:
                record["changeOfLocation"] = [
                    {
                        "location": {"locationAreaCode": 7, "cellId": rng.randrange(65536)},
                        "changeTime": _time(start + timedelta(seconds=30)),
                    }
                ]
    else:
        record.update(serviceCentre="4670000000" + _digits(rng, 1), smsResult=0)
        if kind == "moSMSRecord":
            record.update(
                messageReference=rng.randrange(256),
                originationTime=_time(start),
                destinationNumber="46" + _digits(rng, 9),
            )
        else:
            record["deliveryTime"] = _time(start)
    return record


def build_file(count: int, seed: int) -> bytes:
    """A TS 32.297 file of ``count`` distinct BER CDRs."""
    rng = random.Random(seed)
    encode = BerRecordEncoder()
    cdrs = [encode(make_record(rng)) for _ in range(count)]
    return build_cdr_file(cdrs, opened=OPENED, last_appended=OPENED + timedelta(minutes=15))


def measure(run: Callable[[], int], repeat: int) -> tuple[int, float, float]:
    """Records per run, best and median records/s over ``repeat`` runs."""
    rates, count = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - started))
    return count, max(rates), statistics.median(rates)


def main() -> None:
    """Build the file, time each path, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    started = time.perf_counter()
    data = build_file(args.records, args.seed)
    print(
        f"built {args.records} CDRs, {len(data) / 1e6:.1f} MB, "
        f"in {time.perf_counter() - started:.1f} s (pycrate encoding)"
    )
    fast = BerRecordDecoder()
    strict = BerRecordDecoder(engine="pycrate")

    def framing() -> int:
        return sum(1 for _ in CdrFileReader(data).frames())

    def decode(decoder: BerRecordDecoder) -> Callable[[], int]:
        def run() -> int:
            return sum(1 for _ in decode_cdr_file(data, FILE_NAME, decoder))

        return run

    def decode_and_serialize() -> int:
        count = 0
        for item in decode_cdr_file(data, FILE_NAME, fast):
            if isinstance(item, DecodedCdr):
                orjson.dumps(item.record)
                count += 1
        return count

    rejected = [i for i in decode_cdr_file(data, FILE_NAME, fast) if isinstance(i, RejectedCdr)]
    if rejected:
        raise SystemExit(f"benchmark file has {len(rejected)} rejected CDRs: a bug")

    print(f"{'path':44} {'CDRs':>7} {'best/s':>10} {'median/s':>10}")
    for label, run, repeat in (
        ("framing only", framing, args.repeat),
        ("fast engine: frame + decode + JSON dict", decode(fast), args.repeat),
        ("fast engine + orjson.dumps", decode_and_serialize, args.repeat),
        ("pycrate engine: frame + decode + JSON dict", decode(strict), max(1, args.repeat // 2)),
    ):
        count, best, median = measure(run, repeat)
        print(f"{label:44} {count:>7} {best:>10,.0f} {median:>10,.0f}")


if __name__ == "__main__":
    main()
