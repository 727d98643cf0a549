"""Hypothesis strategies of JSON values and record-shaped objects, shared by the decoder's
properties and the native engine's differential tests."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.support.core import SERVED_IMEI14, SERVED_IMSI

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)

FIELD_NAMES = [
    "recordId", "recordType", "servedIMSI", "servedIMEI", "servedMSISDN", "callingNumber",
    "calledNumber", "location", "changeOfLocation", "seizureTime", "answerTime", "releaseTime",
    "callDuration", "originationTime", "deliveryTime", "messageReference", "smsResult",
    "diagnostics", "serviceCentre", "destinationNumber", "originationNumber",
]  # fmt: skip

field_values = st.one_of(
    json_scalars,
    st.sampled_from(["moCallRecord", "mtCallRecord", "moSMSRecord", "mtSMSRecord"]),
    st.sampled_from(["0701234567", SERVED_IMSI, SERVED_IMEI14, "2026-11-21T05:00:00Z"]),
    st.from_regex(r"\+?[0-9 -]{0,18}", fullmatch=True),
    # Party numbers of every class: service codes, short numbers, sender names, junk.
    st.from_regex(r"[*#]{0,3}[0-9+]{0,9}[*#]{0,2}[0-9]{0,8}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9 ]{1,11}", fullmatch=True),
    st.fixed_dictionaries(
        {"mccMnc": st.from_regex(r"[0-9]{4,7}", fullmatch=True)},
        optional={"locationAreaCode": json_scalars, "cellId": st.integers(-5, 70000)},
    ),
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "location": st.just({"mccMnc": "24001"}) | json_scalars,
                "changeTime": st.just("2026-11-21T05:00:00Z") | json_scalars,
            },
        ),
        max_size=2,
    ),
)

record_like = st.dictionaries(st.sampled_from(FIELD_NAMES), field_values, max_size=8)
