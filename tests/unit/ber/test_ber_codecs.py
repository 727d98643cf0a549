"""TBCD, address strings, PLMN ids, BCD timestamps and the BER TLV reader."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ber.tbcd import (
    Address,
    address_to_number,
    decode_address,
    decode_plmn_id,
    decode_sms_address,
    decode_tbcd,
    decode_uint16,
)
from pipeline.ber.timestamps import decode_timestamp, encode_timestamp_octets
from pipeline.ber.tlv import BerError, read_tlv


def tbcd(digits: str) -> bytes:
    """Independent test encoder: pairs of digits, first digit in the low nibble, F filler."""
    padded = digits + "F" * (len(digits) % 2)
    return bytes(int(padded[i + 1] + padded[i], 16) for i in range(0, len(padded), 2))


# --- TBCD -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("octets", "digits"),
    [
        ("42001132547698f0", "240011234567890"),  # IMSI, odd length, filler
        ("53029900711684ff", "35209900176148"),  # 14-digit IMEI padded with a filler octet
        ("5302990071168412", "3520990017614821"),  # IMEISV, 16 digits
        ("10", "01"),
        ("f1", "1"),  # digit in the low nibble, filler in the high one
        ("1f", None),  # filler before a digit
        ("1a", None),  # TBCD '*' is not a digit
        ("ff", None),  # no digits at all
        ("", None),
    ],
)
def test_tbcd_decodes_low_nibble_first_with_trailing_filler(
    octets: str, digits: str | None
) -> None:
    assert decode_tbcd(bytes.fromhex(octets)) == digits


@given(st.text(alphabet="0123456789", min_size=1, max_size=20))
def test_tbcd_round_trips_any_digit_string(digits: str) -> None:
    assert decode_tbcd(tbcd(digits)) == digits


@given(st.binary(max_size=24))
def test_tbcd_never_raises_and_returns_only_digits(octets: bytes) -> None:
    digits = decode_tbcd(octets)
    assert digits is None or (digits.isdigit() and digits.isascii())


# --- address strings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("octets", "expected"),
    [
        ("916407214365f7", Address(1, 1, "46701234567")),  # international, ISDN
        ("a107214365f7", Address(2, 1, "701234567")),  # national
        ("810064072143f5", Address(0, 1, "00467012345")),  # unknown
        ("1180640721436587", Address(1, 1, "467012345678")),  # octet 3a (ext bit 0) skipped
        ("91", None),  # no digits
        ("d1640721", None),  # alphanumeric type of number
        ("91640a21", None),  # non-digit nibble
        ("", None),
    ],
)
def test_address_reads_type_of_number_and_digits(octets: str, expected: Address | None) -> None:
    assert decode_address(bytes.fromhex(octets)) == expected


@pytest.mark.parametrize(
    ("address", "number"),
    [
        (Address(1, 1, "46701234567"), "46701234567"),
        (Address(1, 1, "4712345678"), "4712345678"),
        (Address(2, 1, "701234567"), "0701234567"),
        (Address(2, 1, "0701234567"), "0701234567"),  # prefix already there: not doubled
        (Address(0, 1, "0046701234567"), "0046701234567"),
        (Address(4, 1, "1234567"), "1234567"),
    ],
)
def test_numbers_are_e164_when_international_and_prefixed_when_national(
    address: Address, number: str
) -> None:
    assert address_to_number(address, "0", "46") == number


def test_national_numbers_take_the_configured_trunk_prefix() -> None:
    assert address_to_number(Address(2, 1, "612345678"), "8", "7") == "8612345678"


def test_without_a_trunk_prefix_national_numbers_get_the_country_code() -> None:
    """Norway and Denmark dial no trunk prefix: the number becomes E.164 directly."""
    assert address_to_number(Address(2, 1, "41234567"), "", "47") == "4741234567"
    assert address_to_number(Address(1, 1, "4741234567"), "", "47") == "4741234567"


@pytest.mark.parametrize(
    ("octets", "expected"),
    [
        ("09a107896745f3", Address(2, 1, "709876543")),  # TS 23.040: 9 digits
        ("0b916407214365f7", Address(1, 1, "46701234567")),
        ("a107896745f3", Address(2, 1, "709876543")),  # no length octet (bit 8 set)
        ("0aa107896745f3", None),  # length says 10 digits, 9 present
        ("09a107896745f3ff", None),  # octets beyond the announced length
        ("00a1", None),
        ("09210789", None),  # type-of-address octet without bit 8
        ("05d0c4f23c", None),  # alphanumeric
    ],
)
def test_sms_address_reads_the_23040_length_octet(octets: str, expected: Address | None) -> None:
    assert decode_sms_address(bytes.fromhex(octets)) == expected


@given(st.binary(max_size=24))
def test_address_decoders_never_raise(octets: bytes) -> None:
    for address in (decode_address(octets), decode_sms_address(octets)):
        assert address is None or address.digits.isdigit()


# --- PLMN id and location octets ------------------------------------------------------


@pytest.mark.parametrize(
    ("octets", "mcc_mnc"),
    [
        ("42f010", "24001"),  # Sweden, 2-digit MNC
        ("42f220", "24202"),  # Norway
        ("130062", "310260"),  # 3-digit MNC
        ("42f01a", None),
        ("42f0", None),
        ("42f01000", None),
    ],
)
def test_plmn_id_decodes_to_mcc_and_mnc(octets: str, mcc_mnc: str | None) -> None:
    assert decode_plmn_id(bytes.fromhex(octets)) == mcc_mnc


@given(st.binary(max_size=5))
def test_plmn_and_uint16_decoders_never_raise(octets: bytes) -> None:
    plmn = decode_plmn_id(octets)
    assert plmn is None or len(plmn) in (5, 6)
    value = decode_uint16(octets)
    assert value is None or 0 <= value <= 0xFFFF


def test_location_octets_are_big_endian() -> None:
    assert decode_uint16(b"\x12\x34") == 0x1234
    assert decode_uint16(b"\x12") is None


# --- BCD timestamps -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("octets", "text"),
    [
        ("2611210600002b0100", "2026-11-21T06:00:00+01:00"),
        ("2611202330002d0500", "2026-11-20T23:30:00-05:00"),
        ("2611210500002b0000", "2026-11-21T05:00:00Z"),
        ("2611210500002d0000", "2026-11-21T05:00:00Z"),
        ("2802290930452b0530", "2028-02-29T09:30:45+05:30"),
        ("0001010000002b0000", "2000-01-01T00:00:00Z"),
        ("9912312359592d2359", "2099-12-31T23:59:59-23:59"),
    ],
)
def test_timestamp_becomes_rfc3339_with_its_offset(octets: str, text: str) -> None:
    assert decode_timestamp(bytes.fromhex(octets)) == text


@pytest.mark.parametrize(
    "octets",
    [
        "2613210600002b0100",  # month 13
        "2600210600002b0100",  # month 0
        "2611310600002b0100",  # 31 November
        "2602290600002b0100",  # 29 February 2026
        "2611212400002b0100",  # hour 24
        "2611210660002b0100",  # minute 60
        "2611210600602b0100",  # second 60
        "261121060000000100",  # sign octet neither + nor -
        "2611210600002b2400",  # offset hour 24
        "2611210600002b0160",  # offset minute 60
        "2611210a00002b0100",  # non-decimal nibble
        "2611210600002b01",  # 8 octets
    ],
)
def test_invalid_timestamps_are_refused(octets: str) -> None:
    assert decode_timestamp(bytes.fromhex(octets)) is None


# hypothesis wants naive bounds for datetimes(); each test attaches its own offset.
FIRST_LOCAL = datetime(2000, 1, 1)  # noqa: DTZ001
LAST_LOCAL = datetime(2099, 12, 31, 23, 59, 59)  # noqa: DTZ001


@given(
    st.datetimes(min_value=FIRST_LOCAL, max_value=LAST_LOCAL),
    st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
)
def test_timestamp_round_trips_local_time_and_offset(local: datetime, offset: int) -> None:
    moment = local.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=offset)))
    octets = encode_timestamp_octets(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, offset
    )
    expected = moment.isoformat()
    if offset == 0:
        expected = expected.replace("+00:00", "Z")
    assert decode_timestamp(octets) == expected
    assert datetime.fromisoformat(expected) == moment


@given(st.binary(min_size=0, max_size=12))
def test_timestamp_decoder_never_raises(octets: bytes) -> None:
    text = decode_timestamp(octets)
    assert text is None or datetime.fromisoformat(text).tzinfo is not None


# --- BER TLV reader -------------------------------------------------------------------


def test_tlv_reads_multi_octet_tags_and_long_lengths() -> None:
    element = bytes.fromhex("9f3d0102")  # [61] primitive, 1 octet
    assert read_tlv(element, 0, 4)[:4] == (0x80, 61, 3, 4)
    long_form = bytes.fromhex("a0820003") + b"\x80\x01\x00"
    tlv = read_tlv(long_form, 0, len(long_form))
    assert (tlv.flags, tlv.number, tlv.value_start, tlv.value_end) == (0xA0, 0, 4, 7)


def test_tlv_finds_the_end_of_an_indefinite_length() -> None:
    data = bytes.fromhex("a080" + "800100" + "a1800000" + "0000") + b"tail"
    tlv = read_tlv(data, 0, len(data))
    assert (tlv.value_start, tlv.value_end, tlv.next) == (2, 9, 11)


@pytest.mark.parametrize(
    "octets",
    ["", "80", "8005010203", "9f", "9fffffffff7f00", "808500000000", "0080", "a080800100"],
)
def test_tlv_rejects_malformed_elements(octets: str) -> None:
    data = bytes.fromhex(octets)
    with pytest.raises(BerError):
        read_tlv(data, 0, len(data))


@given(st.binary(max_size=64))
def test_tlv_reader_raises_only_ber_errors_and_stays_in_bounds(data: bytes) -> None:
    try:
        tlv = read_tlv(data, 0, len(data))
    except BerError:
        return
    assert tlv.value_start <= tlv.value_end <= tlv.next <= len(data)


def test_deeply_nested_indefinite_lengths_are_refused_not_recursed() -> None:
    data = b"\xa0\x80" * 5000 + b"\x00\x00" * 5000
    with pytest.raises(BerError):
        read_tlv(data, 0, len(data))
