"""The two compacted state topics: subscribers' consent and lawful-interception warrants."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

import orjson

from pipeline.synth.clock import rfc3339
from pipeline.synth.population import Subscriber, population
from pipeline.synth.workload import DEFAULT_START, Workload

TargetType = Literal["msisdn", "imsi", "imei"]
_TARGET_TYPES: tuple[TargetType, ...] = ("msisdn", "imsi", "imei")
# Warrant targets come from the busiest subscribers so that a short run still hits them.
_TARGET_POOL = 20
#: Shares of subscribers who object (GDPR Art. 21) to the legitimate-interest purposes:
#: to network planning only, and to both it and fraud prevention.
OBJECT_TO_PLANNING = 0.02
OBJECT_TO_BOTH = 0.01


class GeneratedWarrant(NamedTuple):
    """One `li.warrants` message and the subscriber it targets."""

    key: bytes  # the LIID
    value: bytes
    liid: str
    target_type: TargetType
    subscriber: Subscriber


def consent_states(
    workload: Workload, now: datetime = DEFAULT_START
) -> Iterator[tuple[bytes, bytes]]:
    """(E.164 key, consent state JSON) for every subscriber, each purpose drawn at its share."""
    rng = random.Random(f"cdrveil/consent/{workload.seed}")  # noqa: S311 -- seeded test data
    # Its own stream, so adding objections changed no other drawn value.
    objecting = random.Random(f"cdrveil/objections/{workload.seed}")  # noqa: S311
    shares = workload.consent_shares
    now_s = int(now.timestamp())
    for sub in population(workload).subscribers:
        purposes = {purpose: rng.random() < share for purpose, share in shares}
        state: dict[str, object] = {
            "msisdn": sub.msisdn,
            "purposes": purposes,
            "version": 1 + int(rng.expovariate(0.3)),
            "updatedAt": rfc3339(now_s - 60 - int(rng.random() * 365 * 86_400)),
        }
        draw = objecting.random()
        if draw < OBJECT_TO_BOTH:
            state["objections"] = {"network_planning": True, "fraud_prevention": True}
        elif draw < OBJECT_TO_BOTH + OBJECT_TO_PLANNING:
            state["objections"] = {"network_planning": True}
        yield sub.msisdn.encode(), orjson.dumps(state)


def warrants(
    workload: Workload,
    count: int = 2,
    now: datetime = DEFAULT_START,
    valid_for: timedelta = timedelta(days=30),
) -> list[GeneratedWarrant]:
    """`count` warrants on distinct busy subscribers, valid from a day before `now`.

    Target types cycle msisdn, imsi, imei. The span [now - 1 day, now + valid_for) covers the
    traffic of `records(workload, n, start=now)` as long as n / events_per_second < valid_for.
    """
    pop = population(workload)
    if not 0 <= count <= len(pop.subscribers):
        raise ValueError("count must be between 0 and the number of subscribers")
    rng = random.Random(f"cdrveil/warrants/{workload.seed}")  # noqa: S311 -- seeded test data
    pool = max(count, min(_TARGET_POOL, len(pop.subscribers)))
    ranks = rng.sample(range(pool), count)
    now_s = int(now.timestamp())
    valid_from = rfc3339(now_s - 86_400)
    valid_until = rfc3339(now_s + int(valid_for.total_seconds()))
    out = []
    for i, rank in enumerate(ranks):
        sub = pop.subscribers[rank]
        target_type = _TARGET_TYPES[i % len(_TARGET_TYPES)]
        liid = f"LI-{now.year}-{i + 1:04d}"
        value = {
            "liid": liid,
            "targets": [{"type": target_type, "value": getattr(sub, target_type)}],
            "validFrom": valid_from,
            "validUntil": valid_until,
            "authority": "Stockholms tingsrätt",
        }
        out.append(GeneratedWarrant(liid.encode(), orjson.dumps(value), liid, target_type, sub))
    return out
