"""Identifier normalization: one value per identity, ``None`` for anything else, never an error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.normalize import (
    MsisdnNormalizer,
    luhn_check_digit,
    normalize_imei,
    normalize_imsi,
    tac_of,
)
from tests.support.core import SERVED, SERVED_FORMS, SERVED_IMEI14, SERVED_IMEI15, SERVED_IMEISV
from tests.support.properties import EXAMPLES

PROPERTY = settings(max_examples=EXAMPLES, deadline=None)
normalize = MsisdnNormalizer()


@pytest.mark.parametrize("form", SERVED_FORMS)
def test_every_accepted_form_of_one_number_gives_its_e164_digits(form: str) -> None:
    """+46 70-123 45 67, 0046..., 46..., 070... and +46... are one subscriber."""
    assert normalize(form) == SERVED


def test_every_form_of_one_number_gives_one_value() -> None:
    """All the forms together normalize to a single value."""
    assert {normalize(form) for form in SERVED_FORMS} == {SERVED}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+47 912 34 567", "4791234567"),
        ("004791234567", "4791234567"),
        ("+45 12 34 56 78", "4512345678"),
        ("4512345678", "4512345678"),
        ("+1 202-555-0143", "12025550143"),
    ],
)
def test_other_country_codes_keep_their_own_country_code(raw: str, expected: str) -> None:
    """International forms of foreign numbers are not re-prefixed with the home country code."""
    assert normalize(raw) == expected


def test_national_form_uses_the_configured_country_code_and_trunk_prefix() -> None:
    """Country code and trunk prefix are settings: a Norwegian-style setup with trunk 8."""
    assert MsisdnNormalizer(country_code="47", trunk_prefix="8")("891234567") == "4791234567"


@pytest.mark.parametrize(
    "raw",
    [
        "+461234",  # 6 digits: too short for E.164
        "123456",
        "+4670123456789012",  # 16 digits: longer than E.164 allows
        "004670123456789012",
        "0",
        "00",
        "+",
    ],
)
def test_wrong_lengths_are_rejected(raw: str) -> None:
    """Fewer than 7 or more than 15 digits is no MSISDN."""
    assert normalize(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        "+46 70-123 45 6\u0663",  # an Arabic-Indic digit three
        "\u0664\u0666\u0667\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667",  # all Arabic-Indic
        "\uff14\uff16\uff17\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # full-width
        "4670123456\u00b2",  # superscript two: isdigit() but not a decimal digit
    ],
)
def test_non_ascii_digits_are_rejected(raw: str) -> None:
    """Identifiers are ASCII digits; other scripts' digits are not accepted."""
    assert normalize(raw) is None


@pytest.mark.parametrize(
    "raw", ["+46 70-ABC 45 67", "4670123456x", "tel:+46701234567", "4670123456\x00"]
)
def test_letters_and_other_characters_are_rejected(raw: str) -> None:
    """Anything but digits and separators makes the value invalid."""
    assert normalize(raw) is None


@pytest.mark.parametrize("raw", ["", " ", " - "])
def test_empty_or_only_separators_is_rejected(raw: str) -> None:
    """An empty number is no number."""
    assert normalize(raw) is None


def test_a_zero_after_the_international_prefix_is_rejected() -> None:
    """E.164 country codes never start with 0."""
    assert normalize("+0701234567") is None
    assert normalize("000701234567") is None


def test_the_cache_does_not_change_answers() -> None:
    """Asking twice gives the same answer (the memo is transparent)."""
    fresh = MsisdnNormalizer()
    assert [fresh("0701234567"), fresh("0701234567"), fresh("bad"), fresh("bad")] == [
        SERVED,
        SERVED,
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("country_code", "trunk_prefix", "international_prefix"),
    [("", "0", "00"), ("4a", "0", "00"), ("1234", "0", "00"), ("46", "x", "00"), ("46", "0", "0")],
)
def test_invalid_numbering_settings_are_refused(
    country_code: str, trunk_prefix: str, international_prefix: str
) -> None:
    """Bad numbering settings fail at construction, not per record."""
    with pytest.raises(ValueError, match="must be"):
        MsisdnNormalizer(country_code, trunk_prefix, international_prefix)


# --- hypothesis properties -------------------------------------------------------------------


@PROPERTY
@given(st.text())
def test_normalizer_never_raises_on_arbitrary_text(raw: str) -> None:
    """Any text gives a string or None, never an exception."""
    result = normalize(raw)
    assert result is None or isinstance(result, str)


@PROPERTY
@given(st.text(alphabet=st.sampled_from("0123456789+-() ./\t\u0663x"), max_size=24))
def test_anything_accepted_is_7_to_15_ascii_digits(raw: str) -> None:
    """Whatever the normalizer accepts is E.164 digits: 7-15 ASCII digits, no leading zero."""
    result = normalize(raw)
    if result is not None:
        assert result.isascii()
        assert result.isdigit()
        assert 7 <= len(result) <= 15
        assert result[0] != "0"


@st.composite
def rendered_national_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """A Swedish national significant number and one rendering of it (any accepted form)."""
    nsn = draw(st.from_regex(r"[1-9][0-9]{6,12}", fullmatch=True))
    prefix = draw(st.sampled_from(["+46", "0046", "46", "0"]))
    text = prefix + nsn
    rendered = [text[0]]
    for char in text[1:]:
        # Spaces and dashes anywhere between digits, as people and mediation write them.
        rendered.append(draw(st.sampled_from(["", "", "", " ", "-"])))
        rendered.append(char)
    return "46" + nsn, "".join(rendered)


@PROPERTY
@given(rendered_national_numbers())
def test_any_rendering_of_a_valid_number_normalizes_to_the_same_value(
    case: tuple[str, str],
) -> None:
    """+46 / 0046 / 46 / 0 prefixes with spaces and dashes all give the same E.164 digits."""
    e164, rendered = case
    assert normalize(rendered) == e164


# --- IMSI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["24001123456789", "240011234567890"])
def test_imsi_of_14_or_15_digits_is_accepted(raw: str) -> None:
    """IMSI = MCC + MNC + MSIN, 14 or 15 digits."""
    assert normalize_imsi(raw) == raw


@pytest.mark.parametrize(
    "raw",
    [
        "2400112345678",
        "2400112345678901",
        "",
        "24001123456789X",
        "24001123456789\u0663",
        "2400 1123456789",
    ],
)
def test_imsi_of_other_lengths_or_characters_is_rejected(raw: str) -> None:
    """13 or 16 digits, letters, other scripts or separators are no IMSI."""
    assert normalize_imsi(raw) is None


# --- IMEI ------------------------------------------------------------------------------------


def test_imei_of_14_digits_is_its_identity() -> None:
    """14 digits: TAC + serial, no check digit."""
    assert normalize_imei(SERVED_IMEI14) == SERVED_IMEI14


def test_imei_of_15_digits_with_correct_luhn_gives_its_first_14() -> None:
    """15 digits: the check digit is verified and dropped."""
    assert luhn_check_digit(SERVED_IMEI14) == 8  # the textbook example 49015420323751-8
    assert normalize_imei(SERVED_IMEI15) == SERVED_IMEI14


@pytest.mark.parametrize("wrong", "012345679")
def test_imei_of_15_digits_with_wrong_luhn_is_rejected(wrong: str) -> None:
    """Every check digit but the right one is refused."""
    assert normalize_imei(SERVED_IMEI14 + wrong) is None


def test_imeisv_of_16_digits_gives_its_first_14() -> None:
    """IMEISV: the last two digits are the software version, not part of the identity."""
    assert normalize_imei(SERVED_IMEISV) == SERVED_IMEI14
    assert normalize_imei(SERVED_IMEI14 + "99") == SERVED_IMEI14


@pytest.mark.parametrize(
    "raw", ["4901542032375", "49015420323751071", "", "4901542032375X", "49015420323751\u0663"]
)
def test_imei_of_other_lengths_or_characters_is_rejected(raw: str) -> None:
    """13 or 17 digits, letters and non-ASCII digits are no IMEI."""
    assert normalize_imei(raw) is None


def test_tac_is_the_first_8_digits() -> None:
    """The type allocation code names the handset model."""
    assert tac_of(SERVED_IMEI14) == "49015420"


@PROPERTY
@given(st.text(max_size=20))
def test_imsi_and_imei_normalizers_never_raise(raw: str) -> None:
    """Any text gives a value or None."""
    imsi, imei = normalize_imsi(raw), normalize_imei(raw)
    assert imsi is None or (imsi.isascii() and imsi.isdigit() and len(imsi) in (14, 15))
    assert imei is None or (imei.isascii() and imei.isdigit() and len(imei) == 14)


@PROPERTY
@given(st.from_regex(r"[0-9]{14}", fullmatch=True))
def test_a_luhn_completed_imei_and_its_imeisv_identify_the_same_device(digits14: str) -> None:
    """14, 15 (with its Luhn digit) and 16 digits of one device all give the same 14."""
    with_check = digits14 + str(luhn_check_digit(digits14))
    assert normalize_imei(digits14) == normalize_imei(with_check) == normalize_imei(digits14 + "07")
    assert normalize_imei(with_check) == digits14
