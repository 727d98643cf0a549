"""The canary run: subscribers who consented to nothing, written in every input form, must
appear nowhere an analytics team, an operator's log or a dead letter's headers can see.

Each canary has an MSISDN, an IMSI and an IMEI. Its records use every MSISDN form the
normalizer accepts (E.164 with and without ``+``, ``00``, national, spaced, dashed, with a
bracketed trunk prefix), IMEIs of 14, 15 (Luhn) and 16 (IMEISV) digits and dashed, as the
served subscriber and as the other party of a consenting subscriber (in a record whose
recordId a mediation system built from the canary's number), plus a few malformed records
that quote a canary in the bad field. Half the canaries have a consent state that
grants nothing, half have none at all. Background traffic of consenting subscribers flows
alongside.

The scan looks at every key, value and header of every analytics topic, the headers of every
dead letter and every line the workers logged. A canary is found when a run of digits (with
any separators inside) contains its MSISDN's national significant number, its IMSI's MSIN or
its IMEI's 14 identifying digits. Two controls show the scan can find what it looks for: the
billing topic (the subscriber's own number, under contract) and the dead-letter values (the
original bytes) must contain canaries. Finally no pseudonym may equal an unkeyed SHA-256 of
an identifier (hex or base64url, whole or truncated), and no such digest may appear anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

import orjson

from pipeline.core.keys import Keyring
from pipeline.core.normalize import luhn_check_digit
from pipeline.harness import Workers, scan
from pipeline.settings import Settings
from pipeline.shell.topics import TopicNames
from pipeline.synth import TACS, Workload, consent_states, population, records, warrants
from soak.harness import (
    POLICY,
    Message,
    Say,
    create_all_topics,
    publish,
    quiet,
    route_topics,
    wait_committed,
)

#: Digit runs, separators allowed inside: what a number looks like wherever it is written.
_NUMBERISH: Final = re.compile(rb"[0-9](?:[0-9 ()+./\-]*[0-9])?")
_DIGITS: Final = re.compile(rb"[0-9]+")
#: A number is written in at most this many digit groups ("+46 (0)70-123 45 67": 6).
_MAX_GROUPS: Final = 8
_TOKEN: Final = re.compile(rb"[A-Za-z0-9_+/=\-]{16,}")
_PSEUDONYM: Final = re.compile(rb"[a-z0-9][a-z0-9-]{0,31}:([A-Za-z0-9_-]{22})(?![A-Za-z0-9_-])")
_DIGEST_LENGTHS: Final = (16, 22, 24, 32, 40, 43, 44, 64)


class Canary(NamedTuple):
    """One canary subscriber's identities."""

    msisdn: str  # E.164 digits
    imsi: str
    imei: str  # 15 digits, Luhn


def msisdn_forms(e164: str, cc: str = "46", trunk: str = "0") -> list[str]:
    """Every way the MSISDN is written on input (all normalize to ``e164``)."""
    nsn = e164[len(cc) :]
    a, b, c, d = nsn[:2], nsn[2:5], nsn[5:7], nsn[7:]
    return [
        f"+{e164}",
        e164,
        f"00{e164}",
        f"{trunk}{nsn}",
        f"+{cc} {a} {b} {c} {d}",
        f"+{cc}-{a}-{b}-{c}-{d}",
        f"{trunk}{a}-{b} {c} {d}",
        f"+{cc} ({trunk}){a}-{b} {c} {d}",
    ]


def imei_forms(imei15: str) -> list[str]:
    """14 digits, 15 with the Luhn digit, 16 (IMEISV) and dashed."""
    core = imei15[:14]
    return [core, imei15, f"{core}07", f"{core[:2]}-{core[2:8]}-{core[8:]}-{imei15[14]}"]


def canaries(count: int, avoid: Iterable[str], seed: int = 77) -> list[Canary]:
    """``count`` canaries whose identities differ from each other and from ``avoid`` (any
    MSISDNs, IMSIs and 14-digit IMEIs of other people: a canary must be nobody else)."""
    rng = random.Random(f"cdrveil/canary/{seed}")  # noqa: S311 - seeded test data
    taken = set(avoid)
    out: list[Canary] = []
    imsis: set[str] = set()
    imeis: set[str] = set()
    while len(out) < count:
        msisdn = f"467{rng.choice('02369')}{rng.randrange(10**7):07d}"
        imsi = f"24001{rng.randrange(10**10):010d}"
        tac = TACS[rng.randrange(len(TACS))]
        core = f"{tac}{rng.randrange(10**6):06d}"
        imei = core + str(luhn_check_digit(core))
        if msisdn in taken or imsi in imsis or imsi in taken or core in imeis or core in taken:
            continue
        taken.add(msisdn)
        imsis.add(imsi)
        imeis.add(core)
        out.append(Canary(msisdn, imsi, imei))
    return out


def _location() -> dict[str, Any]:
    return {"mccMnc": "24001", "locationAreaCode": 1201, "cellId": 30471}


def canary_records(
    birds: list[Canary], friends: list[str], start: int = 1_795_150_800
) -> Iterator[tuple[str, bytes | None, bytes, str | None]]:
    """(kind, key, value, expected rejection) for every canary record."""
    types = ("moCallRecord", "mtCallRecord", "moSMSRecord", "mtSMSRecord")
    for i, bird in enumerate(birds):
        forms = msisdn_forms(bird.msisdn)
        imeis = imei_forms(bird.imei)
        for f, form in enumerate(forms):
            friend = friends[(i * len(forms) + f) % len(friends)]
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + i * 60 + f))
            record_type = types[f % 4]
            served = _record(f"canary-{i}-s{f}", record_type, form, bird, imeis[f % 4], at)
            other_form = forms[(f + 3) % len(forms)]
            _add_party(served, record_type, bird_number=other_form, other=friend)
            kind = "voice" if "Call" in record_type else "sms"
            yield kind, form.encode(), orjson.dumps(served), None
            # The canary as the other party of a subscriber who consented to everything, in a
            # record whose id a mediation system built from the canary's number and the time:
            # analytics routes carry a record id keyed per purpose, never this one.
            party_id = f"{form}-{start + i * 60 + f}"
            party = _record(party_id, record_type, friend, None, None, at)
            _add_party(party, record_type, bird_number=None, other=form)
            yield kind, friend.encode(), orjson.dumps(party), None
        bad_time = _record(f"canary-{i}-bt", "moSMSRecord", forms[4], bird, bird.imei, "yesterday")
        bad_time["destinationNumber"] = friends[i % len(friends)]
        yield "sms", forms[4].encode(), orjson.dumps(bad_time), "bad_timestamp"
        bad_number = _record(f"canary-{i}-bn", "moSMSRecord", forms[i % 8] + "X", bird, None, at)
        bad_number["destinationNumber"] = friends[i % len(friends)]
        yield "sms", forms[0].encode(), orjson.dumps(bad_number), "bad_msisdn"


def _record(
    record_id: str, record_type: str, served: str, bird: Canary | None, imei: str | None, at: str
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "recordId": record_id,
        "recordType": record_type,
        "servedMSISDN": served,
        "recordingEntity": "46107001001",
        "location": _location(),
    }
    if bird is not None:
        rec["servedIMSI"] = bird.imsi
    if imei is not None:
        rec["servedIMEI"] = imei
    if "Call" in record_type:
        rec.update(
            {
                "basicService": "telephony",
                "seizureTime": at,
                "answerTime": at,
                "releaseTime": at,
                "callDuration": 42,
                "causeForTerm": "normalRelease",
            }
        )
    elif record_type == "moSMSRecord":
        rec["originationTime"] = at
    else:
        rec["deliveryTime"] = at
    return rec


def _add_party(rec: dict[str, Any], record_type: str, bird_number: str | None, other: str) -> None:
    """The numbers of the other party (and the served number's own copy in calls)."""
    own = bird_number if bird_number is not None else rec["servedMSISDN"]
    if record_type == "moCallRecord":
        rec.update(
            callingNumber=own, calledNumber=other, connectedNumber=other, translatedNumber=other
        )
    elif record_type == "mtCallRecord":
        rec.update(callingNumber=other, calledNumber=own)
    elif record_type == "moSMSRecord":
        rec["destinationNumber"] = other
    else:
        rec["originationNumber"] = other


class Scanner:
    """Finds canaries in bytes, in any form, and unkeyed digests of their identities.

    A run of digits (separators allowed inside) is a canary when it is, digit for digit, a
    form of a canary's number (national significant number, with ``46``, ``0046``, ``0`` or
    ``46(0)`` before it), its IMSI or MSIN, or its IMEI (14, 15 or 16 digits); or when it
    contains a canary's full E.164 number, IMSI or 14 IMEI digits anywhere. Shorter windows
    inside longer runs would match other people's numbers by chance.
    """

    def __init__(self, birds: list[Canary]) -> None:
        self.exact: dict[bytes, str] = {}
        self.windows: dict[int, dict[bytes, str]] = {11: {}, 14: {}, 15: {}}
        self.imei_cores: set[bytes] = set()
        for bird in birds:
            nsn = bird.msisdn[2:]
            for prefix in ("", "0", "46", "0046", "460"):
                self.exact[(prefix + nsn).encode()] = "msisdn"
            self.exact[bird.imsi.encode()] = "imsi"
            self.exact[bird.imsi[5:].encode()] = "imsi"
            self.exact[bird.imei.encode()] = "imei"
            self.exact[bird.imei[:14].encode()] = "imei"
            self.imei_cores.add(bird.imei[:14].encode())
            self.windows[11][bird.msisdn.encode()] = "msisdn"
            self.windows[14][bird.imei[:14].encode()] = "imei"
            self.windows[15][bird.imsi.encode()] = "imsi"
        self.digests: dict[bytes, str] = {}
        for bird in birds:
            values = [
                *msisdn_forms(bird.msisdn),
                bird.imsi,
                *imei_forms(bird.imei),
                bird.msisdn[2:],
            ]
            for value in values:
                for digest in _unkeyed(value.encode()):
                    self.digests[digest] = "sha256"

    def canaries_in(self, blob: bytes | None) -> list[str]:
        """The kinds of canary identity found in ``blob`` (empty: none)."""
        if not blob:
            return []
        found: list[str] = []
        for match in _NUMBERISH.finditer(blob):
            groups = _DIGITS.findall(match.group())
            digits = b"".join(groups)
            # Any run of whole digit groups may be the number ("offset 7 0701234567").
            kind = None
            for i in range(len(groups)):
                for j in range(i + 1, min(len(groups), i + _MAX_GROUPS) + 1):
                    run = b"".join(groups[i:j])
                    kind = self.exact.get(run)
                    if kind is None and len(run) == 16 and run[:14] in self.imei_cores:
                        kind = "imei"
                    if kind is not None:
                        break
                if kind is not None:
                    break
            if kind is not None:
                found.append(kind)
                continue
            for length, needles in self.windows.items():
                for i in range(len(digits) - length + 1):
                    kind = needles.get(digits[i : i + length])
                    if kind is not None:
                        found.append(kind)
                        break
        return found

    def digests_in(self, blob: bytes | None) -> int:
        """How many unkeyed SHA-256 digests (or truncations) of a canary ``blob`` holds."""
        if not blob:
            return 0
        hits = 0
        for match in _TOKEN.finditer(blob):
            token = match.group()
            for length in _DIGEST_LENGTHS:
                for i in range(len(token) - length + 1):
                    if token[i : i + length] in self.digests:
                        hits += 1
        return hits


def _unkeyed(value: bytes) -> Iterator[bytes]:
    digest = hashlib.sha256(value).digest()
    hexed = digest.hex().encode()
    for n in (8, 11, 12, 16, 20, 32):
        yield hexed[: 2 * n]
        part = digest[:n]
        yield base64.urlsafe_b64encode(part).rstrip(b"=")
        yield base64.b64encode(part)
        yield base64.b64encode(part).rstrip(b"=")
    yield base64.urlsafe_b64encode(digest).rstrip(b"=")
    yield base64.b64encode(digest)


@dataclass(frozen=True)
class CanaryConfig:
    """Sizes of one canary run."""

    canaries: int = 1_000
    background: int = 20_000
    subscribers: int = 5_000
    seed: int = 21
    within: float = 600.0
    #: The worker's CDRVEIL_LOG_LEVEL: INFO is the default, DEBUG what one turns on to dig.
    log_level: str = "INFO"


@dataclass
class CanaryReport:
    """What the scan found."""

    config: CanaryConfig
    canary_records: int = 0
    background_records: int = 0
    messages_scanned: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    hit_examples: list[str] = field(default_factory=list)
    log_lines: int = 0
    pseudonyms: int = 0
    pseudonyms_equal_to_unkeyed_hash: int = 0
    unkeyed_hashes_anywhere: int = 0
    #: Controls: canaries found where they belong (so the scan can find them at all).
    control_billing: int = 0
    control_dead_letter_values: int = 0
    dead_letters: int = 0
    worker_exit_code: int | None = None
    seconds: float = 0.0

    @property
    def leaks(self) -> int:
        """Canary occurrences where none may be."""
        return sum(self.hits.values())

    def summary(self) -> str:
        """The figures, for a person."""
        scanned = ", ".join(f"{what} {n:,}" for what, n in sorted(self.messages_scanned.items()))
        return (
            f"{self.config.canaries:,} canaries (MSISDN in 8 forms, IMEI in 4, IMSI; no consent):"
            f" {self.canary_records:,} canary records among {self.background_records:,} others;"
            f" {self.seconds:.0f} s\n"
            f"scanned: {scanned}, worker log lines {self.log_lines:,} "
            f"(CDRVEIL_LOG_LEVEL={self.config.log_level})\n"
            f"canary occurrences: {self.leaks} {dict(self.hits)}"
            f"{' e.g. ' + '; '.join(self.hit_examples[:3]) if self.hit_examples else ''}\n"
            f"pseudonyms checked: {self.pseudonyms:,}; equal to an unkeyed SHA-256 of an "
            f"identifier: {self.pseudonyms_equal_to_unkeyed_hash}; unkeyed digests anywhere: "
            f"{self.unkeyed_hashes_anywhere}\n"
            f"controls (canaries where they belong): billing {self.control_billing:,}, "
            f"dead-letter values {self.control_dead_letter_values:,} of {self.dead_letters:,}\n"
            f"worker exit status after SIGTERM: {self.worker_exit_code}"
        )


async def run_canary(
    settings: Settings, workdir: Path, config: CanaryConfig, say: Say = quiet
) -> CanaryReport:
    """Run the canary scenario against the broker in ``settings``; the report."""
    started = time.monotonic()
    report = CanaryReport(config)
    keyring = workdir / "keyring.json"
    Keyring.init(keyring)
    settings = settings.replace(keyring_path=keyring)
    names = TopicNames(settings.topic_prefix)
    await create_all_topics(settings)
    # Everybody in the background consents to everything, so their numbers do appear in
    # clear and the canaries' do not for want of consent.
    everything = tuple((purpose, 1.0) for purpose in POLICY.analytics_purposes)
    workload = Workload(subscribers=config.subscribers, seed=config.seed, consent_shares=everything)
    people = population(workload).subscribers
    others = [identity for s in people for identity in (s.msisdn, s.imsi, s.imei[:14])]
    birds = canaries(config.canaries, others, seed=config.seed)
    friends = [s.msisdn for s in people[:200]]
    consent = list(consent_states(workload))
    withheld = [
        (
            bird.msisdn.encode(),
            orjson.dumps(
                {
                    "msisdn": bird.msisdn,
                    "purposes": dict.fromkeys(POLICY.analytics_purposes, False),
                    "version": 3,
                    "updatedAt": "2026-11-20T08:00:00Z",
                }
            ),
        )
        for bird in birds[::2]
    ]
    await publish(settings, [(names.consent, k, v) for k, v in consent + withheld])
    await publish(settings, [(names.warrants, w.key, w.value) for w in warrants(workload, 2)])
    topic = {"voice": names.inputs[0], "sms": names.inputs[1]}
    bird_messages: list[Message] = [
        (topic[kind], key, value) for kind, key, value, _ in canary_records(birds, friends)
    ]
    report.canary_records = len(bird_messages)
    background: list[Message] = [
        (topic[m.kind], m.key if m.key is not None else m.record_id.encode(), m.value)
        for m in records(workload, config.background)
    ]
    report.background_records = len(background)
    mixed = _interleave(bird_messages, background)
    workers = Workers(settings, keyring, workdir)
    try:
        worker = workers.spawn(CDRVEIL_LOG_LEVEL=config.log_level)
        await worker.wait_for_log("assigned")
        say(f"publishing {len(mixed):,} records ({len(bird_messages):,} canary)")
        sent = await publish(settings, mixed)
        await wait_committed(settings, list(names.inputs), len(sent), config.within, worker.running)
        report.worker_exit_code = worker.stop()
    finally:
        workers.close()

    say("scanning")
    scanner = Scanner(birds)
    analytics = route_topics(settings, "analytics")

    def on_analytics(message: Any) -> None:
        report.messages_scanned["analytics messages"] += 1
        blobs = [message.key, message.value, *(bytes(v) for _, v in message.headers or ())]
        blobs += [k.encode() for k, _ in message.headers or ()]
        for blob in blobs:
            _record_hits(report, scanner.canaries_in(blob), message.topic, blob)
            report.unkeyed_hashes_anywhere += scanner.digests_in(blob)
        for blob in (message.key, message.value):
            for found in _PSEUDONYM.finditer(blob or b""):
                report.pseudonyms += 1
                if found.group(1) in scanner.digests:
                    report.pseudonyms_equal_to_unkeyed_hash += 1

    await scan(settings, analytics, on_analytics)

    def on_dead_letter(message: Any) -> None:
        report.dead_letters += 1
        report.messages_scanned["dead-letter headers"] += 1
        for name, value in message.headers or ():
            blob = name.encode() + b"=" + bytes(value)
            _record_hits(report, scanner.canaries_in(blob), "dead-letter headers", blob)
            report.unkeyed_hashes_anywhere += scanner.digests_in(blob)
        if scanner.canaries_in(message.value):
            report.control_dead_letter_values += 1

    await scan(settings, [names.dead_letter(POLICY)], on_dead_letter)

    def on_billing(message: Any) -> None:
        if scanner.canaries_in(message.value):
            report.control_billing += 1

    await scan(settings, [names("traffic.billing")], on_billing)

    log = workers.all_logs().encode()
    report.log_lines = log.count(b"\n")
    for line in log.splitlines():
        _record_hits(report, scanner.canaries_in(line), "worker log", line)
        report.unkeyed_hashes_anywhere += scanner.digests_in(line)
    report.seconds = time.monotonic() - started
    return report


def _record_hits(report: CanaryReport, kinds: list[str], where: str, blob: bytes) -> None:
    for kind in kinds:
        report.hits[f"{where}: {kind}"] += 1
    if kinds and len(report.hit_examples) < 10:
        report.hit_examples.append(f"{where}: {blob[:200]!r}")


def _interleave(
    first: list[tuple[str, bytes | None, bytes | None]],
    second: list[tuple[str, bytes | None, bytes | None]],
) -> list[tuple[str, bytes | None, bytes | None]]:
    """Both lists mixed evenly, each in its own order."""
    total = len(first) + len(second)
    out: list[tuple[str, bytes | None, bytes | None]] = []
    i = j = 0
    for n in range(total):
        if j >= len(second) or (i < len(first) and i * total <= n * len(first)):
            out.append(first[i])
            i += 1
        else:
            out.append(second[j])
            j += 1
    return out
