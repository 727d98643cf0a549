"""``cdrveil ingest`` throughput: a TS 32.297 file of BER CDRs into the embedded broker.

Builds one file of ``--records`` CDRs (``--distinct`` records of the four CS types encoded
by pycrate, repeated: decoding costs the same, and every CDR still has its own offset and
record id), starts the embedded broker, and times ``ingest_files`` on it ``--repeat``
times, each into fresh topics: decoding, JSON, publishing, waiting for every
acknowledgement and checkpointing the resume state, with ``--jobs`` decoding processes
as the command uses them; the CDRs of each run are then read back and counted (outside the
timing). For comparison it also times decoding + JSON alone, in one process. Target:
>= 20,000 CDRs/s decoded and published.

Run: ``.venv/bin/python -m benchmarks.ingest`` (needs the ``dev`` extra: pycrate and the
embedded broker). Machines here are shared and noisy: compare ratios, repeat runs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import orjson

from benchmarks.ber_decode import FILE_NAME, OPENED, make_record
from pipeline.ber import BerRecordDecoder, DecodedCdr, build_cdr_file, decode_cdr_file
from pipeline.ber.synth import BerRecordEncoder
from pipeline.core.policy import Policy
from pipeline.core.topics import SMS, VOICE
from pipeline.harness import scan
from pipeline.ingest.run import DEFAULT_JOBS, ingest_files
from pipeline.settings import Settings
from pipeline.shell.broker import EmbeddedBroker
from pipeline.shell.topics import TopicNames, create_topics


def build_file(records: int, distinct: int, seed: int) -> bytes:
    """A TS 32.297 file of ``records`` CDRs cycling through ``distinct`` encoded records."""
    rng = random.Random(seed)
    encode = BerRecordEncoder()
    cdrs = [encode(make_record(rng)) for _ in range(min(distinct, records))]
    return build_cdr_file(
        (cdrs[i % len(cdrs)] for i in range(records)),
        opened=OPENED,
        last_appended=OPENED + timedelta(minutes=15),
    )


def decode_only(data: bytes) -> float:
    """CDRs/s of decoding and serializing the file, without Kafka."""
    decoder = BerRecordDecoder(default_mcc_mnc="24001")
    started = time.perf_counter()
    count = 0
    for item in decode_cdr_file(data, FILE_NAME, decoder):
        if isinstance(item, DecodedCdr):
            orjson.dumps(item.record)
            count += 1
    return count / (time.perf_counter() - started)


async def ingest_once(
    broker: EmbeddedBroker, data: bytes, window: int, jobs: int
) -> tuple[int, float, float]:
    """Ingest the file once into fresh topics; (records acknowledged, seconds, CPU seconds)."""
    settings = Settings.from_env(
        {},
        bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
        partitions=8,
    )
    await create_topics(settings, Policy.load())
    with tempfile.TemporaryDirectory(prefix="cdrveil-ingest-bench-") as folder:
        path = Path(folder) / FILE_NAME
        path.write_bytes(data)
        started, cpu = time.perf_counter(), time.process_time()
        report = await ingest_files(settings, [path], window=window, show_progress=False, jobs=jobs)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if report.rejected or report.exit_code != 0:
        raise SystemExit(f"benchmark ingest went wrong:\n{report.summary()}")
    acknowledged = sum(report.records.values())
    # The count is checked by reading the topics (outside the timed window): the embedded
    # broker's end offsets undercount what a consumer reads.
    names = TopicNames(settings.topic_prefix)
    read = await scan(settings, [names(VOICE), names(SMS)], lambda _message: None)
    if read != acknowledged:
        raise SystemExit(f"{acknowledged:,} CDRs acknowledged, but {read:,} read back")
    return read, seconds, cpu


def main() -> None:
    """Build the file, ingest it ``--repeat`` times, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--distinct", type=int, default=5_000)
    parser.add_argument("--window", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        help=f"decoding processes, 0: in the ingesting process ({DEFAULT_JOBS}, as the command)",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    print(
        "command: "
        + " ".join([Path(sys.executable).name, "-m", "benchmarks.ingest", *sys.argv[1:]])
    )
    started = time.perf_counter()
    data = build_file(args.records, args.distinct, args.seed)
    print(
        f"built {args.records:,} CDRs ({args.distinct:,} distinct), {len(data) / 1e6:.1f} MB, "
        f"in {time.perf_counter() - started:.1f} s"
    )
    print(f"decode + JSON only (no Kafka): {decode_only(data):,.0f} CDRs/s")
    rates = []
    with EmbeddedBroker() as broker:
        for run in range(1, args.repeat + 1):
            count, seconds, cpu = asyncio.run(ingest_once(broker, data, args.window, args.jobs))
            rates.append(count / seconds)
            print(
                f"run {run}: {count:,} CDRs decoded, published and acknowledged in "
                f"{seconds:.2f} s = {rates[-1]:,.0f} CDRs/s "
                f"(publishing process CPU {cpu:.2f} s; {args.jobs} decoding processes)"
            )
    print(
        f"ingest: best {max(rates):,.0f} CDRs/s, median {statistics.median(rates):,.0f} CDRs/s "
        "(target >= 20,000)"
    )


if __name__ == "__main__":
    main()
