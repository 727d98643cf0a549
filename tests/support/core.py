"""Test data for the pure core: a fixed keyring, records, consent and warrant messages.

Plain functions and constants, imported by the ``test_core_*`` modules; the pytest fixtures
built from them live in ``conftest.py``.
"""

from __future__ import annotations

import base64
import json
import os
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from pipeline.core.consent import ConsentState, ConsentTable
from pipeline.core.engine import Output
from pipeline.core.normalize import luhn_check_digit
from pipeline.core.warrants import WarrantIndex

#: A fixed 32-byte epoch secret, so pseudonyms are reproducible across runs.
SECRET = bytes(range(32))
SECRET_B64 = base64.b64encode(SECRET).decode("ascii")
KEY_ID = "k2026-11"
KEYRING_FORMAT = "cdrveil-keyring/1"

PURPOSES = ("marketing", "service_improvement", "fraud_prevention", "network_planning")
ANALYTICS_PREFIX = "traffic.analytics."
BILLING_TOPIC = "traffic.billing"
LI_TOPIC = "traffic.lawful-intercept"

#: The served subscriber, in E.164 digits and the input forms the contract accepts.
SERVED = "46701234567"
SERVED_FORMS = ("+46 70-123 45 67", "0046701234567", "46701234567", "0701234567", "+46701234567")
SERVED_IMSI = "240011234567890"
#: A real-shaped IMEI with a correct Luhn digit (8), and the 14 digits that identify it.
SERVED_IMEI15 = "490154203237518"
SERVED_IMEI14 = "49015420323751"
SERVED_IMEISV = "4901542032375107"
SERVED_TAC = "49015420"
#: The other party (another subscriber of the home network).
OTHER = "46739876543"
OTHER_NATIONAL = "0739876543"
SMSC = "46705550100"
MSC = "4610700002"

HOME_LOCATION = {"mccMnc": "24001", "locationAreaCode": 1201, "cellId": 4711}
ROAMING_LOCATION = {"mccMnc": "24201", "locationAreaCode": 77, "cellId": 3001}

# 06:17:42 at +01:00 is 05:17:42 UTC: generalized to the hour it is 05:00:00Z.
SEIZURE = "2026-11-21T06:17:42+01:00"
ANSWER = "2026-11-21T06:17:50+01:00"
RELEASE = "2026-11-21T06:22:32+01:00"
UTC_HOUR = "2026-11-21T05:00:00Z"
SMS_TIME = "2026-11-21T05:30:05Z"


def write_keyring(
    path: Path,
    secrets: dict[str, bytes | None] | None = None,
    active: str = KEY_ID,
    mode: int = 0o600,
) -> Path:
    """Write a keyring file by hand (secrets ``None`` = shredded) with the given file mode."""
    keys: dict[str, Any] = {}
    for key_id, secret in (secrets if secrets is not None else {KEY_ID: SECRET}).items():
        entry: dict[str, Any] = {"createdAt": "2026-11-01T00:00:00Z"}
        if secret is None:
            entry["shreddedAt"] = "2026-11-02T00:00:00Z"
        else:
            entry["secret"] = base64.b64encode(secret).decode("ascii")
        keys[key_id] = entry
    document = {"format": KEYRING_FORMAT, "active": active, "keys": keys}
    path.write_text(json.dumps(document), encoding="utf-8")
    os.chmod(path, mode)
    return path


def mo_call(**fields: Any) -> dict[str, Any]:
    """A complete, valid, billable MO voice record; keyword arguments replace or add fields."""
    record: dict[str, Any] = {
        "recordId": "msc01-20261121-000001",
        "recordType": "moCallRecord",
        "servedIMSI": SERVED_IMSI,
        "servedIMEI": SERVED_IMEI15,
        "servedMSISDN": "+46 70-123 45 67",
        "callingNumber": "0701234567",
        "calledNumber": OTHER_NATIONAL,
        "recordingEntity": MSC,
        "location": dict(HOME_LOCATION),
        "changeOfLocation": [
            {
                "location": {"mccMnc": "24001", "locationAreaCode": 1202, "cellId": 4712},
                "changeTime": "2026-11-21T06:20:00+01:00",
            }
        ],
        "basicService": "telephony",
        "seizureTime": SEIZURE,
        "answerTime": ANSWER,
        "releaseTime": RELEASE,
        "callDuration": 282,
        "causeForTerm": "normalRelease",
        "diagnostics": 16,
        "callReference": "0a1b2c3d",
        "sequenceNumber": 1,
        "systemType": "gERAN",
        "vendorExtension": {"switch": "msc01"},
    }
    record.update(fields)
    return _without_none(record)


def mt_call(**fields: Any) -> dict[str, Any]:
    """A valid MT voice record at home (not billable); keyword arguments replace fields."""
    record = mo_call(
        recordId="msc01-20261121-000002",
        recordType="mtCallRecord",
        callingNumber=OTHER_NATIONAL,
        calledNumber="0701234567",
        roamingNumber="46709000001",
    )
    record.update(fields)
    return _without_none(record)


def mo_sms(**fields: Any) -> dict[str, Any]:
    """A valid MO SMS record (billable); keyword arguments replace or add fields."""
    record: dict[str, Any] = {
        "recordId": "msc01-20261121-000003",
        "recordType": "moSMSRecord",
        "servedIMSI": SERVED_IMSI,
        "servedIMEI": SERVED_IMEI15,
        "servedMSISDN": "0046701234567",
        "serviceCentre": "+" + SMSC,
        "recordingEntity": MSC,
        "location": dict(HOME_LOCATION),
        "messageReference": 42,
        "originationTime": SMS_TIME,
        "smsResult": 0,
        "destinationNumber": "+46 73-987 65 43",
        "systemType": "gERAN",
    }
    record.update(fields)
    return _without_none(record)


def mt_sms(**fields: Any) -> dict[str, Any]:
    """A valid MT SMS record at home (not billable); keyword arguments replace fields."""
    record = mo_sms(
        recordId="msc01-20261121-000004",
        recordType="mtSMSRecord",
        originationTime=None,
        destinationNumber=None,
        deliveryTime=SMS_TIME,
        originationNumber=OTHER,
    )
    record.update(fields)
    return _without_none(record)


def _without_none(record: dict[str, Any]) -> dict[str, Any]:
    """Keyword ``None`` means: leave the field out."""
    return {name: value for name, value in record.items() if value is not None}


def encode(record: object) -> bytes:
    """A record as the bytes a producer sends."""
    return json.dumps(record).encode("utf-8")


def consent_value(
    msisdn: str,
    purposes: dict[str, object],
    version: int = 1,
    changes: dict[str, object] | None = None,
) -> bytes:
    """A ``consent.state`` message value; ``changes`` replace fields (None removes one)."""
    document: dict[str, object] = {
        "msisdn": msisdn,
        "purposes": purposes,
        "version": version,
        "updatedAt": "2026-11-21T05:00:00Z",
    }
    document.update(changes or {})
    return json.dumps({k: v for k, v in document.items() if v is not None}).encode()


def grant(table: ConsentTable, msisdn: str, *purposes: str, version: int = 1) -> None:
    """Record (through the real parser) that ``msisdn`` consents to exactly ``purposes``."""
    problem = table.apply(
        msisdn.encode(), consent_value(msisdn, dict.fromkeys(purposes, True), version)
    )
    assert problem is None, problem


def states(grants: dict[str, tuple[str, ...]], version: int = 7) -> dict[str, ConsentState]:
    """An in-memory consent map: E.164 digits -> a state granting the given purposes."""
    return {msisdn: ConsentState(version, frozenset(p)) for msisdn, p in grants.items()}


def warrant_value(
    liid: str,
    targets: list[tuple[str, str]],
    valid_from: str = "2026-11-01T00:00:00Z",
    valid_until: str = "2026-12-01T00:00:00Z",
) -> bytes:
    """A ``li.warrants`` message value."""
    return json.dumps(
        {
            "liid": liid,
            "targets": [{"type": kind, "value": value} for kind, value in targets],
            "validFrom": valid_from,
            "validUntil": valid_until,
            "authority": "Stockholm District Court",
        }
    ).encode()


def add_warrant(
    index: WarrantIndex, liid: str, targets: list[tuple[str, str]], **span: str
) -> None:
    """Register a warrant through the real parser."""
    problem = index.apply(liid.encode(), warrant_value(liid, targets, **span))
    assert problem is None, problem


def by_topic(outputs: list[Output]) -> dict[str, Output]:
    """Outputs by topic (for topics that receive at most one output per record)."""
    found: dict[str, Output] = {}
    for output in outputs:
        assert output.topic not in found, f"two outputs on {output.topic}"
        found[output.topic] = output
    return found


def body(output: Output) -> dict[str, Any]:
    """An output's value as JSON."""
    value: dict[str, Any] = json.loads(output.value)
    return value


def header_map(output: Output) -> dict[str, str]:
    """An output's headers as a dict (each header must occur once)."""
    names = [name for name, _value in output.headers]
    assert len(names) == len(set(names)), names
    return {name: value.decode() for name, value in output.headers}


def analytics(outputs: list[Output]) -> list[Output]:
    """The analytics outputs among ``outputs``."""
    return [output for output in outputs if output.topic.startswith(ANALYTICS_PREFIX)]


# --- hypothesis strategies: generated records and consent states ------------------------------

#: E.164 numbers the generated records draw from: home subscribers and foreign numbers.
NUMBER_POOL = (SERVED, OTHER, "46761112233", "46729998877", "4791234567", "4512345678")
IMSI_POOL = (SERVED_IMSI, "24001987654321", "242019876543210")
IMEI_POOL = (SERVED_IMEI14, "35332510123456", "86891504765432")
NETWORKS = ("24001", "24201", "23802")
OFFSETS = ("Z", "+00:00", "+01:00", "+05:30", "-04:00")
NUMBER_FORMS = ("plus", "spaced", "double_zero", "digits", "national")


def render_number(e164: str, form: str) -> str:
    """One accepted input form of an E.164 number (national only for the home country 46)."""
    if form == "national" and e164.startswith("46"):
        return "0" + e164[2:]
    if form == "spaced":
        return f"+{e164[:2]} {e164[2:4]}-{e164[4:7]} {e164[7:9]} {e164[9:]}".rstrip()
    if form == "double_zero":
        return "00" + e164
    if form == "plus":
        return "+" + e164
    return e164


def render_imei(imei14: str, form: int) -> str:
    """An IMEI as sent: 14 digits, 15 with its Luhn digit, or a 16-digit IMEISV."""
    if form == 15:
        return imei14 + str(luhn_check_digit(imei14))
    if form == 16:
        return imei14 + "03"
    return imei14


def render_time(rng: random.Random) -> str:
    """A random RFC 3339 time in 2026 with one of several offsets (and maybe milliseconds)."""
    moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(365 * 86400))
    offset = rng.choice(OFFSETS)
    if offset not in ("Z", "+00:00"):
        sign = 1 if offset[0] == "+" else -1
        moment += sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    fraction = f".{rng.randrange(1000):03d}" if rng.random() < 0.3 else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset


def random_location(rng: random.Random) -> dict[str, Any]:
    """A location with optional location area and cell."""
    location: dict[str, Any] = {"mccMnc": rng.choice(NETWORKS)}
    if rng.random() < 0.7:
        location["locationAreaCode"] = rng.randrange(0x10000)
    if rng.random() < 0.7:
        location["cellId"] = rng.randrange(0x10000)
    return location


def random_number(rng: random.Random) -> str:
    """A pool number in a random accepted form."""
    return render_number(rng.choice(NUMBER_POOL), rng.choice(NUMBER_FORMS))


#: Party numbers that are no MSISDN, by class (``pipeline.core.party``): what networks send.
PARTY_VALUES: dict[str, tuple[str, ...]] = {
    "service_code": ("*100#", "#31#", "*#06#", "**61*#", "*123456#"),
    "short_number": ("112", "1177", "72456", "90 000", "118118"),
    "alphanumeric": ("BankID", "Klarna", "abc", "SMS-Info"),
    "unparseable": (
        "",
        "+",
        "--",
        "**21*+46701234567#",
        "#31#0701234567",
        "*1234567#",
        "1234567890123456",
        "٣٣",
    ),
}


def random_party(rng: random.Random) -> str:
    """Another party's number: mostly a pool number, sometimes a value of another class."""
    if rng.random() < 0.75:
        return random_number(rng)
    return rng.choice(rng.choice(list(PARTY_VALUES.values())))


_COMMON_OPTIONAL: dict[str, Callable[[random.Random], Any]] = {
    "servedIMEI": lambda r: render_imei(r.choice(IMEI_POOL), r.choice((14, 15, 16))),
    "location": random_location,
    "recordingEntity": lambda r: MSC,
    "systemType": lambda r: r.choice(("gERAN", "uTRAN")),
    "vendorExtension": lambda r: {"switch": r.choice(("a", "b")), "n": r.randrange(9)},
}
_VOICE_OPTIONAL: dict[str, Callable[[random.Random], Any]] = {
    **_COMMON_OPTIONAL,
    "callingNumber": random_party,
    "calledNumber": random_party,
    "translatedNumber": random_party,
    "connectedNumber": random_party,
    "roamingNumber": random_party,
    "releaseTime": render_time,
    "basicService": lambda r: "telephony",
    "causeForTerm": lambda r: r.choice(("normalRelease", "partialRecord", "abnormalRelease")),
    "diagnostics": lambda r: r.choice((16, 31, "noAnswer")),
    "callReference": lambda r: f"{r.randrange(1 << 32):08x}",
    "sequenceNumber": lambda r: r.randrange(10),
    "changeOfLocation": lambda r: [
        {"location": random_location(r), "changeTime": render_time(r)}
        for _ in range(r.randrange(3))
    ],
}
_SMS_OPTIONAL: dict[str, Callable[[random.Random], Any]] = {
    **_COMMON_OPTIONAL,
    "serviceCentre": lambda r: "+" + SMSC,
    "messageReference": lambda r: r.randrange(256),
    "smsResult": lambda r: r.choice((0, 3, "deliveryFailure")),
    "destinationNumber": random_party,
    "originationNumber": random_party,
}
RECORD_TYPES = ("moCallRecord", "mtCallRecord", "moSMSRecord", "mtSMSRecord")


def random_record(
    record_type: str, identities: str, optional: frozenset[str], null: str | None, seed: int
) -> dict[str, Any]:
    """A valid record: structure from the arguments, values from a seeded generator."""
    rng = random.Random(seed)
    record: dict[str, Any] = {"recordId": f"r-{seed:x}", "recordType": record_type}
    if identities != "imsi":
        record["servedMSISDN"] = random_number(rng)
    if identities != "msisdn":
        record["servedIMSI"] = rng.choice(IMSI_POOL)
    if record_type.endswith("CallRecord"):
        record["seizureTime" if rng.random() < 0.8 else "answerTime"] = render_time(rng)
        record["callDuration"] = rng.choice((0, 1, rng.randrange(4000)))
        fields = _VOICE_OPTIONAL
    else:
        record["originationTime" if record_type == "moSMSRecord" else "deliveryTime"] = render_time(
            rng
        )
        fields = _SMS_OPTIONAL
    for name in sorted(optional & fields.keys()):
        record[name] = fields[name](rng)
    if null is not None and null in fields:
        # JSON null means absent; a producer may send it for any optional field.
        record[null] = None
    return record


OPTIONAL_FIELDS = sorted(_VOICE_OPTIONAL.keys() | _SMS_OPTIONAL.keys())


def records(nulls: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Valid records: hypothesis picks the shape (shrinkable), a seed picks the values."""
    return st.builds(
        random_record,
        st.sampled_from(RECORD_TYPES),
        st.sampled_from(("msisdn", "imsi", "both")),
        st.frozensets(st.sampled_from(OPTIONAL_FIELDS)),
        st.none() | st.sampled_from(OPTIONAL_FIELDS) if nulls else st.none(),
        st.integers(0, 2**32),
    )


_PURPOSE_CHOICES = (*PURPOSES, "newsletter")


def consent_from_mask(mask: int) -> ConsentState | None:
    """-1: no state; otherwise a state granting the purposes whose bits are set."""
    if mask < 0:
        return None
    granted = frozenset(p for bit, p in enumerate(_PURPOSE_CHOICES) if mask >> bit & 1)
    return ConsentState(mask, granted)


#: Consent for every pool number: none, or a state granting a random set of purposes.
consent_maps = st.tuples(*(st.integers(-1, 31) for _ in NUMBER_POOL)).map(
    lambda masks: {n: consent_from_mask(m) for n, m in zip(NUMBER_POOL, masks, strict=True)}
)
