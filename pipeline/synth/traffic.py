"""Voice and SMS records of the workload's subscribers, as the bytes a mediation would publish."""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Iterator
from datetime import datetime
from typing import Literal, NamedTuple

import orjson

from pipeline.synth.clock import rfc3339
from pipeline.synth.malformed import plant_defect
from pipeline.synth.population import (
    Population,
    Subscriber,
    other_operator_nsn,
    population,
    render_number,
)
from pipeline.synth.workload import DEFAULT_START, Workload

Kind = Literal["voice", "sms"]
Record = dict[str, object]

# Foreign mobile numbering: country code, leading digits of the national number, its length.
_FOREIGN: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("45", ("2", "3", "4", "5", "6"), 8),
    ("47", ("4", "9"), 8),
    ("49", ("151", "160", "171", "176"), 11),
    ("358", ("40", "44", "50"), 9),
    ("44", ("7",), 10),
)
# Visited networks for roaming subscribers: MCC-MNC, country code, the visited MSC's address.
_VISITED: tuple[tuple[str, str, str], ...] = (
    ("23820", "45", "4520000010"),
    ("24201", "47", "4792000010"),
    ("26201", "49", "491720000010"),
    ("24491", "358", "358405000010"),
    ("23415", "44", "447785000010"),
)
_FOREIGN_OFF_NET = 0.5  # of off-net parties, the share abroad (the rest: other home operators)
_AT_HOME_CELL = 0.7
_NO_IMEI = 0.02
_LOCAL_TIME = 0.1  # records whose times carry +01:00 (CET) instead of Z
_WITHHELD_CLI = 0.05  # MT calls whose calling number is withheld
_SYSTEM_TYPES = ("gERAN", "iuUTRAN")
_UNANSWERED_DIAGNOSTICS: tuple[int | str, ...] = (17, 18, 19, 21, 31, "gsm0408Cause:19")


class Generated(NamedTuple):
    """One generated input message and, for a planted defect, the decoder's expected code."""

    kind: Kind  # which input topic: "voice" (cdr.voice) or "sms" (cdr.sms)
    key: bytes | None
    value: bytes | None
    expected_reason: str | None  # None for a valid record
    record_id: str  # "<seed>-<n>"; also in the value unless the defect removed it


def _dumps(rec: Record) -> bytes:
    # orjson writes into a 1 KiB buffer and shrinks it in place; keeping hundreds of thousands
    # of those (a benchmark pre-generating its input) fragments the C heap and halves the
    # rate. An exact-size copy lets the next dumps reuse the buffer.
    return memoryview(orjson.dumps(rec)).tobytes()


def _digits(rng: random.Random, n: int) -> str:
    return f"{int(rng.random() * 10**n):0{n}d}"


class _Traffic:
    """The generator's state: one seeded stream, a clock, precomputed tables."""

    def __init__(self, workload: Workload, start: datetime) -> None:
        self.w = workload
        self.pop: Population = population(workload)
        self.rng = random.Random(f"cdrveil/traffic/{workload.seed}")  # noqa: S311 -- seeded test data
        self.t = start.timestamp()
        self.cc = workload.country_code
        cc = self.cc
        self.home_mscs = tuple(f"{cc}1070010{i}" for i in range(1, 9))
        self.smsc_nsn = "107009000"
        self.reasons = workload.malformed_reasons
        self.forms: dict[str, tuple[str, ...]] = {}

    def home_forms(self, nsn: str) -> tuple[str, ...]:
        """Every input form of a home number (memoized: a few subscribers make most calls)."""
        forms = self.forms.get(nsn)
        if forms is None:
            cc, trunk = self.cc, self.w.trunk_prefix
            forms = tuple(render_number(cc, nsn, f, cc, trunk) for f in range(5))
            self.forms[nsn] = forms
        return forms

    def number(self, cc: str, nsn: str) -> str:
        """The number in a random input form."""
        if cc == self.cc:
            return self.home_forms(nsn)[int(self.rng.random() * 5)]
        return render_number(cc, nsn, int(self.rng.random() * 5), self.cc, self.w.trunk_prefix)

    def other_party(self, sub: Subscriber) -> tuple[str, str]:
        """Country code and national number of whoever the subscriber talks to."""
        r = self.rng.random
        pop = self.pop
        subs = pop.subscribers
        if r() >= self.w.off_net_share and len(subs) > 1:
            peer = subs[bisect(pop.cum_weights, r() * pop.total_weight)]
            if peer is sub:
                peer = subs[(pop.index[sub.msisdn] + 1) % len(subs)]
            return self.cc, peer.msisdn[len(self.cc) :]
        if r() >= _FOREIGN_OFF_NET:
            return self.cc, other_operator_nsn(self.rng, pop, self.cc)
        cc, leads, length = _FOREIGN[int(r() * len(_FOREIGN))]
        lead = leads[int(r() * len(leads))]
        return cc, lead + _digits(self.rng, length - len(lead))

    def common(self, sub: Subscriber, rid: str, record_type: str) -> tuple[Record, str, str, bool]:
        """The fields every record shares; also the serving MCC-MNC, its country, roaming."""
        r = self.rng.random
        w = self.w
        rec: Record = {"recordId": rid, "recordType": record_type}
        if r() >= w.imsi_only_share:
            rec["servedMSISDN"] = self.number(self.cc, sub.msisdn[len(self.cc) :])
        rec["servedIMSI"] = sub.imsi
        x = r()
        if x >= _NO_IMEI:
            # Mostly the 15-digit IMEI; some elements report IMEISV (16) or the bare 14.
            if x < 0.8:
                rec["servedIMEI"] = sub.imei
            elif x < 0.95:
                rec["servedIMEI"] = f"{sub.imei[:14]}{int(r() * 100):02d}"
            else:
                rec["servedIMEI"] = sub.imei[:14]
        if r() < w.roaming_share:
            mcc_mnc, visited_cc, msc = _VISITED[int(r() * len(_VISITED))]
            location = {
                "mccMnc": mcc_mnc,
                "locationAreaCode": int(r() * 65_536),
                "cellId": int(r() * 65_536),
            }
            roaming = True
        else:
            nets = w.home_networks
            mcc_mnc = nets[0] if len(nets) == 1 else nets[int(r() * len(nets))]
            if r() < _AT_HOME_CELL:
                location = {
                    "mccMnc": mcc_mnc,
                    "locationAreaCode": sub.home_lac,
                    "cellId": sub.home_cell,
                }
            else:
                location = {
                    "mccMnc": mcc_mnc,
                    "locationAreaCode": int(r() * 65_536),
                    "cellId": int(r() * 65_536),
                }
            visited_cc = self.cc
            msc = self.home_mscs[sub.home_lac % len(self.home_mscs)]
            roaming = False
        rec["recordingEntity"] = msc
        rec["location"] = location
        return rec, mcc_mnc, visited_cc, roaming

    def voice(
        self, sub: Subscriber, rid: str, ts: int, local: bool, duration: int = -1, ring: int = 0
    ) -> Record:
        """A voice record; `duration` < 0 draws answered or not, else answered after `ring` s."""
        r = self.rng.random
        w = self.w
        cc = self.cc
        mo = r() < w.mo_share
        record_type = "moCallRecord" if mo else "mtCallRecord"
        rec, mcc_mnc, visited_cc, roaming = self.common(sub, rid, record_type)
        occ, onsn = self.other_party(sub)
        served_nsn = sub.msisdn[len(cc) :]
        answered = duration >= 0 or r() < w.answered_share
        if mo:
            rec["callingNumber"] = self.number(cc, served_nsn)
            rec["calledNumber"] = self.number(occ, onsn)
            if r() < 0.3:
                rec["translatedNumber"] = occ + onsn
            if answered and r() < 0.5:
                rec["connectedNumber"] = self.number(occ, onsn)
        else:
            if r() >= _WITHHELD_CLI:
                rec["callingNumber"] = self.number(occ, onsn)
            rec["calledNumber"] = self.number(cc, served_nsn)
            if roaming:
                rec["roamingNumber"] = visited_cc + _digits(self.rng, 8)
        rec["basicService"] = "telephony"
        rec["seizureTime"] = rfc3339(ts, local)
        if answered:
            if duration < 0:
                ring = 1 + int(r() * 15)
                duration = min(1 + int(self.rng.expovariate(1 / 90)), 7200)
            answer = ts + ring
            release = answer + duration
            rec["answerTime"] = rfc3339(answer, local)
            rec["releaseTime"] = rfc3339(release, local)
            if r() < 0.05:
                change = answer + int(r() * duration)
                rec["changeOfLocation"] = [
                    {
                        "location": {
                            "mccMnc": mcc_mnc,
                            "locationAreaCode": int(r() * 65_536),
                            "cellId": int(r() * 65_536),
                        },
                        "changeTime": rfc3339(change, local),
                    }
                ]
            rec["callDuration"] = duration
            rec["causeForTerm"] = "abnormalRelease" if r() < 0.03 else "normalRelease"
        else:
            rec["releaseTime"] = rfc3339(ts + 1 + int(r() * 30), local)
            rec["callDuration"] = 0
            rec["causeForTerm"] = "unsuccessfulCallAttempt"
            rec["diagnostics"] = _UNANSWERED_DIAGNOSTICS[int(r() * len(_UNANSWERED_DIAGNOSTICS))]
        rec["callReference"] = f"{self.rng.getrandbits(64):016x}"
        rec["systemType"] = _SYSTEM_TYPES[int(r() * 2)]
        return rec

    def sms(self, sub: Subscriber, rid: str, ts: int, local: bool) -> Record:
        """An SMS record (never any message content)."""
        r = self.rng.random
        mo = r() < self.w.mo_share
        rec, _, _, _ = self.common(sub, rid, "moSMSRecord" if mo else "mtSMSRecord")
        rec["serviceCentre"] = self.number(self.cc, self.smsc_nsn)
        rec["messageReference"] = int(r() * 256)
        occ, onsn = self.other_party(sub)
        if mo:
            rec["originationTime"] = rfc3339(ts, local)
            rec["destinationNumber"] = self.number(occ, onsn)
        else:
            rec["deliveryTime"] = rfc3339(ts, local)
            rec["originationNumber"] = self.number(occ, onsn)
        if r() < 0.03:
            rec["smsResult"] = 27 if r() < 0.5 else "absentSubscriber"
        rec["systemType"] = _SYSTEM_TYPES[int(r() * 2)]
        return rec

    def partial_chain(self, sub: Subscriber, ids: list[str], ts: int, local: bool) -> list[Record]:
        """A long call cut into partial records sharing one callReference."""
        total = 1800 + int(self.rng.random() * 5400)
        ring = 1 + int(self.rng.random() * 15)
        first = self.voice(sub, ids[0], ts, local, total, ring)
        # A change time belongs to one segment only; keep the chain simple rather than split it.
        first.pop("changeOfLocation", None)
        answer = ts + ring
        seg = total // len(ids)
        chain = []
        for i, rid in enumerate(ids):
            last = i == len(ids) - 1
            length = total - seg * i if last else seg
            rec = dict(first)
            rec["recordId"] = rid
            rec["answerTime"] = rfc3339(answer + seg * i, local)
            rec["releaseTime"] = rfc3339(answer + seg * i + length, local)
            rec["callDuration"] = length
            rec["causeForTerm"] = "normalRelease" if last else "partialRecord"
            rec["sequenceNumber"] = i + 1
            chain.append(rec)
        return chain

    def key(self, sub: Subscriber, rec: Record) -> bytes | None:
        """The served MSISDN in a random input form, or no key."""
        if "servedMSISDN" not in rec or self.rng.random() < self.w.keyless_share:
            return None
        return self.number(self.cc, sub.msisdn[len(self.cc) :]).encode()

    def run(self, count: int) -> Iterator[Generated]:
        """Yield `count` messages with non-decreasing event times."""
        rng = self.rng
        r = rng.random
        w = self.w
        pop = self.pop
        subs, cum, total = pop.subscribers, pop.cum_weights, pop.total_weight
        rate = w.events_per_second
        malformed, reasons = w.malformed_share, self.reasons
        seed = w.seed
        dumps = _dumps
        n = 0
        while n < count:
            self.t += rng.expovariate(rate)
            ts = int(self.t)
            local = r() < _LOCAL_TIME
            sub = subs[bisect(cum, r() * total)]
            rid = f"{seed}-{n}"
            reason = reasons[int(r() * len(reasons))] if malformed and r() < malformed else None
            # Negative durations are the one bad_value the spec pins down, and only voice has one.
            if reason == "bad_value" or r() < w.voice_share:
                kind: Kind = "voice"
                if reason is None and r() < w.partial_share and count - n > 1:
                    size = min(2 + int(r() * 2), count - n)
                    ids = [f"{seed}-{n + i}" for i in range(size)]
                    chain = self.partial_chain(sub, ids, ts, local)
                    key = self.key(sub, chain[0])
                    for rec, rid in zip(chain, ids, strict=True):
                        yield Generated(kind, key, dumps(rec), None, rid)
                    n += size
                    continue
                rec = self.voice(sub, rid, ts, local)
            else:
                kind = "sms"
                rec = self.sms(sub, rid, ts, local)
            key = self.key(sub, rec)
            if reason is None:
                yield Generated(kind, key, dumps(rec), None, rid)
            else:
                value = plant_defect(rng, reason, kind, rec, w.max_record_bytes)
                yield Generated(kind, key, value, reason, rid)
            n += 1


def records(workload: Workload, count: int, start: datetime = DEFAULT_START) -> Iterator[Generated]:
    """`count` voice and SMS messages of the workload, starting at `start` (timezone-aware)."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if count < 0:
        raise ValueError("count must be >= 0")
    return _Traffic(workload, start).run(count)
