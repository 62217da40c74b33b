"""Tests for core.numbers: table tests per country, then properties over generated numbers and junk."""

# Full-width and other non-ASCII digits are what these tests are about, so don't flag them as confusable.
# ruff: noqa: RUF001

from __future__ import annotations

import string

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from core.errors import PhoneNumberError
from core.numbers import (
    MAX_LENGTH,
    PhoneNumber,
    _parse_plus_digits,
    is_valid_country,
    national_form,
    normalize,
    significant_digits,
    split_numbers,
    suffix_key,
    written_as_e164,
)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (tenant country, as written, E.164, national form for the tenant)
SAME_NUMBER = [
    # Netherlands
    ("NL", "+31201234567", "+31201234567", "0201234567"),
    ("NL", "0031201234567", "+31201234567", "0201234567"),
    ("NL", "020-123 4567", "+31201234567", "0201234567"),
    ("NL", "0201234567", "+31201234567", "0201234567"),
    ("NL", "+31 (0)20 123 4567", "+31201234567", "0201234567"),
    ("NL", "0031 (0)20 1234567", "+31201234567", "0201234567"),
    ("NL", "+31 020 1234567", "+31201234567", "0201234567"),
    ("NL", "020.123.4567", "+31201234567", "0201234567"),
    ("NL", "020/1234567", "+31201234567", "0201234567"),
    ("NL", "(020) 1234567", "+31201234567", "0201234567"),
    ("NL", "[020] 123-45-67", "+31201234567", "0201234567"),
    ("NL", " 020 123 4567 ", "+31201234567", "0201234567"),
    ("NL", "020\u00a0123\u00a04567", "+31201234567", "0201234567"),
    ("NL", "020\u2013123\u20134567", "+31201234567", "0201234567"),
    ("NL", "tel:+31-20-123-4567", "+31201234567", "0201234567"),
    ("NL", "TEL:+31201234567", "+31201234567", "0201234567"),
    ("NL", "tel:020-1234567;phone-context=+31", "+31201234567", "0201234567"),
    ("NL", "06 12345678", "+31612345678", "0612345678"),
    ("NL", "+31 6 1234 5678", "+31612345678", "0612345678"),
    ("NL", "+31 (0) 6-12345678", "+31612345678", "0612345678"),
    ("NL", "Fax 020 1234567", "+31201234567", "0201234567"),
    # Germany
    ("DE", "+49 30 1234567", "+49301234567", "0301234567"),
    ("DE", "0049 30 1234567", "+49301234567", "0301234567"),
    ("DE", "030 1234567", "+49301234567", "0301234567"),
    ("DE", "030/1234567", "+49301234567", "0301234567"),
    ("DE", "(030) 123 45 67", "+49301234567", "0301234567"),
    ("DE", "+49 (0)30 1234567", "+49301234567", "0301234567"),
    ("DE", "tel:+49-30-1234567", "+49301234567", "0301234567"),
    ("DE", "0151 12345678", "+4915112345678", "015112345678"),
    # United States
    ("US", "+1 202 555 0123", "+12025550123", "2025550123"),
    ("US", "(202) 555-0123", "+12025550123", "2025550123"),
    ("US", "202.555.0123", "+12025550123", "2025550123"),
    ("US", "202-555-0123", "+12025550123", "2025550123"),
    ("US", "1 202 555 0123", "+12025550123", "2025550123"),
    ("US", "1-202-555-0123", "+12025550123", "2025550123"),
    ("US", "tel:+1-202-555-0123", "+12025550123", "2025550123"),
    ("US", "011 31 20 123 4567", "+31201234567", "01131201234567"),
    # United Kingdom
    ("GB", "020 7946 0958", "+442079460958", "02079460958"),
    ("GB", "+44 20 7946 0958", "+442079460958", "02079460958"),
    ("GB", "+44 (0)20 7946 0958", "+442079460958", "02079460958"),
    ("GB", "0044 20 7946 0958", "+442079460958", "02079460958"),
    ("GB", "(020) 7946-0958", "+442079460958", "02079460958"),
    ("GB", "07911 123456", "+447911123456", "07911123456"),
    ("GB", "tel:+44-20-7946-0958", "+442079460958", "02079460958"),
    # Belgium
    ("BE", "02 555 12 12", "+3225551212", "025551212"),
    ("BE", "02/555.12.12", "+3225551212", "025551212"),
    ("BE", "+32 2 555 12 12", "+3225551212", "025551212"),
    ("BE", "+32 (0)2 555 12 12", "+3225551212", "025551212"),
    ("BE", "0032 2 555 12 12", "+3225551212", "025551212"),
    ("BE", "0470 12 34 56", "+32470123456", "0470123456"),
    ("BE", "tel:+32-2-555-12-12", "+3225551212", "025551212"),
]


@pytest.mark.parametrize(("country", "raw", "e164", "national"), SAME_NUMBER)
def test_normalize_accepts_what_crms_and_phone_systems_send(country: str, raw: str, e164: str, national: str) -> None:
    number = normalize(raw, country=country)
    assert number == PhoneNumber(
        raw=raw,
        e164=e164,
        national=national,
        extension=None,
        internal=False,
    )


# A foreign number renders as a person in the tenant's country dials it, not in its own national format.
FOREIGN = [
    ("NL", "+49 30 1234567", "+49301234567", "0049301234567", "DE"),
    ("NL", "0049 30 1234567", "+49301234567", "0049301234567", "DE"),
    ("NL", "+1 202 555 0123", "+12025550123", "0012025550123", "US"),
    ("NL", "+44 20 7946 0958", "+442079460958", "00442079460958", "GB"),
    ("NL", "+32 2 555 12 12", "+3225551212", "003225551212", "BE"),
    ("DE", "0031 20 1234567", "+31201234567", "0031201234567", "NL"),
    ("US", "+31 20 123 4567", "+31201234567", "01131201234567", "NL"),
    ("US", "+1 416 555 0123", "+14165550123", "14165550123", "CA"),
    ("GB", "+44 1534 456789", "+441534456789", "01534456789", "JE"),
    ("GB", "+31 20 123 4567", "+31201234567", "0031201234567", "NL"),
    ("BE", "+31 (0)20 123 4567", "+31201234567", "0031201234567", "NL"),
    ("BR", "+49 30 1234567", "+49301234567", "+49301234567", "DE"),
    ("NL", "+800 1234 5678", "+80012345678", "0080012345678", None),
]


@pytest.mark.parametrize(("country", "raw", "e164", "national", "region"), FOREIGN)
def test_foreign_numbers_render_as_dialled_from_the_tenants_country(
    country: str, raw: str, e164: str, national: str, region: str | None
) -> None:
    number = normalize(raw, country=country)
    assert (number.e164, number.national) == (e164, national)
    assert national_form(e164, country=country) == national
    assert phonenumbers.region_code_for_number(phonenumbers.parse(e164)) == (region or "001")  # the table's premise


EXTENSIONS = [
    ("NL", "020 1234567 x123", "+31201234567", "123"),
    ("NL", "020 1234567 x 12", "+31201234567", "12"),
    ("NL", "020 1234567 ext. 123", "+31201234567", "123"),
    ("NL", "020 1234567 ext 12", "+31201234567", "12"),
    ("NL", "020 1234567;ext=123", "+31201234567", "123"),
    ("NL", "020 1234567#123", "+31201234567", "123"),
    ("NL", "tel:+31201234567;ext=12", "+31201234567", "12"),
    ("NL", "tel:+31-20-123-4567;ext=12", "+31201234567", "12"),
    ("NL", "020 1234567 x１２", "+31201234567", "12"),
    ("DE", "030 1234567 ext. 89", "+49301234567", "89"),
    ("US", "+1 (202) 555-0123 x45", "+12025550123", "45"),
    ("US", "202-555-0123 ext. 45", "+12025550123", "45"),
    ("GB", "020 7946 0958 ext 201", "+442079460958", "201"),
    ("BE", "02 555 12 12 #7", "+3225551212", "7"),
]


@pytest.mark.parametrize(("country", "raw", "e164", "extension"), EXTENSIONS)
def test_extensions_are_kept_apart_from_the_number(country: str, raw: str, e164: str, extension: str) -> None:
    number = normalize(raw, country=country)
    assert (number.e164, number.extension) == (e164, extension)
    assert number.national == national_form(e164, country=country)


UNICODE_DIGITS = [
    ("NL", "＋３１ ２０ １２３ ４５６７", "+31201234567"),  # full-width
    ("NL", "٠٢٠١٢٣٤٥٦٧", "+31201234567"),  # Arabic-Indic
    ("NL", "۰۲۰-۱۲۳-۴۵۶۷", "+31201234567"),  # Extended Arabic-Indic (Persian)
    ("NL", "०२० १२३ ४५६७", "+31201234567"),  # Devanagari
    ("NL", "𝟎𝟐𝟎 𝟏𝟐𝟑 𝟒𝟓𝟔𝟕", "+31201234567"),  # mathematical bold
    ("DE", "＋４９ ３０ １２３４５６７", "+49301234567"),
    ("US", "（２０２） ５５５－０１２３", "+12025550123"),
    ("GB", "٠٢٠ ٧٩٤٦ ٠٩٥٨", "+442079460958"),
    ("BE", "０２ ５５５ １２ １２", "+3225551212"),
]


@pytest.mark.parametrize(("country", "raw", "e164"), UNICODE_DIGITS)
def test_unicode_digits_are_read_as_digits(country: str, raw: str, e164: str) -> None:
    number = normalize(raw, country=country)
    assert number.e164 == e164
    assert number.national.isascii()
    assert number.raw == raw


@pytest.mark.parametrize(
    ("raw", "national"),
    [("201", "201"), ("1234", "1234"), ("123456", "123456"), ("0", "0"), (" 42 ", "42"), ("٢٠١", "201")],
)
@pytest.mark.parametrize("country", ["NL", "DE", "US", "GB", "BE"])
def test_short_digit_strings_are_internal_numbers(raw: str, national: str, country: str) -> None:
    assert normalize(raw, country=country) == PhoneNumber(
        raw=raw, e164=None, national=national, extension=None, internal=True
    )


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "n/a",
        "-",
        "call reception",
        "unknown",
        "+",
        "+31",
        "00",
        "00123",  # international prefix: not internal, and too short
        "+201",
        "1234567",  # seven digits: not internal, and not a Dutch number
        "+31 20 123",  # truncated
        "+3120123",  # possible by length, not a number in use
        "0201234567/8",  # two numbers written as one
        "020 1234567 06 12345678",  # two numbers run together
        "+999 1234 5678",  # no such country code
        "0800-FLOWERS",  # letters are never turned into digits
        "020 123 call",  # ... which would make this a valid, wrong, number
        "020 1234567²",
        "1" * (MAX_LENGTH + 1),
        "+31 20 123 4567" + " " * 200,
        "\x00\x00",
    ],
)
def test_garbage_raises_phone_number_error(raw: str) -> None:
    with pytest.raises(PhoneNumberError) as caught:
        normalize(raw, country="NL")
    assert caught.value.field is None
    assert len(caught.value.message) < 200


@pytest.mark.parametrize(
    ("country", "raw"),
    [
        ("BE", "+32 2 123 45 67"),  # possible by length, but no such Brussels number
        ("US", "202 555 012"),  # too short
        ("US", "0031 20 123 4567"),  # 00 is not the international prefix in the US
        ("GB", "07700 900123"),  # reserved for drama: never in use
        ("DE", "0151 1234"),  # too short for a mobile
    ],
)
def test_numbers_that_are_not_valid_are_refused(country: str, raw: str) -> None:
    with pytest.raises(PhoneNumberError):
        normalize(raw, country=country)


@pytest.mark.parametrize("country", ["nl", "XX", "", "NLD", "001", "ZZ", "Nl"])
def test_unknown_country_raises_naming_the_country_field(country: str) -> None:
    assert not is_valid_country(country)
    for call in (
        lambda: normalize("+31201234567", country=country),
        lambda: split_numbers("+31201234567", country=country),
        lambda: national_form("+31201234567", country=country),
    ):
        with pytest.raises(PhoneNumberError) as caught:
            call()
        assert caught.value.field == "country"


def test_valid_countries() -> None:
    assert all(is_valid_country(code) for code in ("NL", "DE", "US", "GB", "BE", "JE", "CA"))
    assert not is_valid_country(None)  # type: ignore[arg-type]


def test_non_text_input_raises_phone_number_error() -> None:
    with pytest.raises(PhoneNumberError):
        normalize(None, country="NL")  # type: ignore[arg-type]
    with pytest.raises(PhoneNumberError):
        normalize(31201234567, country="NL")  # type: ignore[arg-type]


def e164s(numbers: list[PhoneNumber]) -> list[str | None]:
    return [number.e164 for number in numbers]


@pytest.mark.parametrize(
    ("country", "field", "expected", "unparsed"),
    [
        ("NL", "020 1234567 / 06 12345678", ["+31201234567", "+31612345678"], []),
        ("NL", "+31 20 1234567, +31 6 12345678", ["+31201234567", "+31612345678"], []),
        ("NL", "020 1234567\n06 12345678", ["+31201234567", "+31612345678"], []),
        ("NL", "020 1234567\r\n\r\n06 12345678\n", ["+31201234567", "+31612345678"], []),
        ("NL", "020 1234567; 06 12345678", ["+31201234567", "+31612345678"], []),
        ("NL", "020 1234567 or 06 12345678", ["+31201234567", "+31612345678"], []),
        ("NL", "020 1234567 OR 06 12345678", ["+31201234567", "+31612345678"], []),
        ("NL", "020 1234567 | 06 12345678", ["+31201234567", "+31612345678"], []),
        ("NL", "020 1234567/06 12345678", ["+31201234567", "+31612345678"], []),
        ("NL", "020 123 4567 - 06 1234 5678", ["+31201234567", "+31612345678"], []),
        ("NL", "020/1234567", ["+31201234567"], []),
        ("NL", "020-1234567", ["+31201234567"], []),
        ("NL", "020 - 1234567", ["+31201234567"], []),
        ("NL", "tel:+31201234567;ext=12", ["+31201234567"], []),
        ("NL", "020 1234567;ext=12; 06 12345678", ["+31201234567", "+31612345678"], []),
        ("NL", "020 1234567, +31 20 123 4567", ["+31201234567"], []),  # duplicates once
        ("NL", "020 1234567, n/a", ["+31201234567"], ["n/a"]),
        ("NL", "0201234567/8", [], ["0201234567/8"]),  # not "...67" and a stray "8"
        ("NL", "020 1234567, 201", ["+31201234567", None], []),  # 201: internal
        ("NL", "n/a", [], ["n/a"]),
        ("NL", "-", [], ["-"]),
        ("NL", "call reception", [], ["call reception"]),
        ("NL", "", [], []),
        ("NL", "   \n\t ", [], []),
        ("NL", ",;|", [], []),
        ("DE", "030 1234567 / 0151 12345678", ["+49301234567", "+4915112345678"], []),
        ("US", "(202) 555-0123, 202.555.0124", ["+12025550123", "+12025550124"], []),
        ("GB", "020 7946 0958 or 07911 123456", ["+442079460958", "+447911123456"], []),
        ("BE", "02/555.12.12 ; 0470 12 34 56", ["+3225551212", "+32470123456"], []),
    ],
)
def test_split_numbers(country: str, field: str, expected: list[str | None], unparsed: list[str]) -> None:
    numbers, rest = split_numbers(field, country=country)
    assert (e164s(numbers), rest) == (expected, unparsed)


def test_split_numbers_keeps_each_piece_as_raw_and_extensions_apart() -> None:
    numbers, rest = split_numbers("020 1234567 x12 / 020 1234567 x13", country="NL")
    assert [(n.raw, n.e164, n.extension) for n in numbers] == [
        ("020 1234567 x12", "+31201234567", "12"),
        ("020 1234567 x13", "+31201234567", "13"),
    ]
    assert rest == []


def test_split_numbers_returns_a_huge_field_unparsed() -> None:
    field = "020 1234567, " * 500
    assert split_numbers(field, country="NL") == ([], [field.strip()])


@pytest.mark.parametrize(
    ("e164", "country", "national"),
    [
        ("+31201234567", "NL", "0201234567"),
        ("+49301234567", "DE", "0301234567"),
        ("+12025550123", "US", "2025550123"),
        ("+442079460958", "GB", "02079460958"),
        ("+3225551212", "BE", "025551212"),
        ("+49301234567", "NL", "0049301234567"),
        ("+49301234567", "US", "01149301234567"),
    ],
)
def test_national_form(e164: str, country: str, national: str) -> None:
    assert national_form(e164, country=country) == national


@pytest.mark.parametrize("bad", ["", "+", "31201234567", "+31 20 1234567", "+031201234567", "+３１２０", "x"])
def test_functions_on_stored_e164_refuse_anything_else(bad: str) -> None:
    with pytest.raises(PhoneNumberError):
        national_form(bad, country="NL")
    with pytest.raises(PhoneNumberError):
        significant_digits(bad)
    with pytest.raises(PhoneNumberError):
        suffix_key(bad)


def test_suffix_key_and_significant_digits() -> None:
    assert suffix_key("+31201234567") == "76543210213"
    assert significant_digits("+31201234567") == "201234567"
    assert significant_digits("+390612345678") == "0612345678"  # Italy keeps its leading zero
    assert significant_digits("+12025550123") == "2025550123"


def test_suffix_key_supports_ends_with_lookups() -> None:
    caller = normalize("0612345678", country="NL")
    stored = normalize("+31 6 12345678", country="NL")
    assert caller.e164 is not None and stored.e164 is not None
    last_eight = significant_digits(caller.e164)[-8:][::-1]
    assert suffix_key(stored.e164).startswith(last_eight)


# --- properties ----------------------------------------------------------------------------------------

NUMBER_TYPES = [
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
]


def _examples() -> list[tuple[str, phonenumbers.PhoneNumber]]:
    """(region, number) for every example number phonenumbers has, all valid."""
    examples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in NUMBER_TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None and phonenumbers.is_valid_number(number):
                examples.append((region, number))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            examples.append(("001", number))
    return examples


EXAMPLES = _examples()
INTERNATIONAL_FORMATS = [PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.RFC3966]
SEPARATORS = [" ", "  ", "-", ".", "/", "\u00a0", "\u2013"]
DIGIT_ZEROS = [ord("0"), ord("０"), ord("٠"), ord("۰"), ord("०")]  # ASCII, full-width, Arabic-Indic, ...
COUNTRIES = sorted(phonenumbers.SUPPORTED_REGIONS)


@st.composite
def written_numbers(draw: st.DrawFn) -> tuple[str, str, str]:
    """(tenant country, a valid number written some way, its E.164)."""
    region, number = draw(st.sampled_from(EXAMPLES))
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    national_digits = sum(char.isdigit() for char in national)
    if region != "001" and national_digits > 6 and draw(st.booleans()):
        country, text = region, national  # national numbers need their own country
    else:
        country = draw(st.sampled_from(COUNTRIES))
        text = phonenumbers.format_number(number, draw(st.sampled_from(INTERNATIONAL_FORMATS)))
    zero = draw(st.sampled_from(DIGIT_ZEROS))
    written = []
    for index, char in enumerate(text):
        if char in string.digits:
            written.append(chr(zero + int(char)))
            if index + 1 < len(text) and text[index + 1] in string.digits and draw(st.booleans()):
                written.append(draw(st.sampled_from(SEPARATORS)))
        else:
            written.append(char)
    return country, "".join(written), e164


@PROPERTY_SETTINGS
@given(written_numbers())
def test_any_writing_of_a_valid_number_normalises_to_its_e164(case: tuple[str, str, str]) -> None:
    country, written, e164 = case
    number = normalize(written, country=country)
    assert number.e164 == e164
    assert number.national == national_form(e164, country=country)
    assert not number.internal and number.extension is None


PHONEISH = st.text(alphabet="0123456789０٣+-()./ \u00a0x#;=,|telTEL:extpho-ncr\n", max_size=60)
HUGE = st.builds(lambda piece, times: piece * times, st.text(min_size=1, max_size=12), st.integers(1, 20_000))
ANY_TEXT = st.one_of(st.text(), PHONEISH, HUGE)


def _check_result(number: PhoneNumber, country: str) -> None:
    """Whatever normalize returns is well-formed, and its E.164 normalises to itself."""
    if number.internal:
        assert number.e164 is None and number.national.isascii() and number.national.isdigit()
        return
    assert number.e164 is not None and number.e164.startswith("+") and number.e164[1:].isdigit()
    assert number.e164.isascii()
    assert number.extension is None or (number.extension.isascii() and number.extension.isdigit())
    assert normalize(number.e164, country=country).e164 == number.e164
    assert suffix_key(number.e164) == number.e164[1:][::-1]


@PROPERTY_SETTINGS
@given(ANY_TEXT, st.sampled_from(["NL", "DE", "US", "GB", "BE", "BR", "IT", "AR"]))
def test_normalize_raises_nothing_but_phone_number_error(text: str, country: str) -> None:
    try:
        number = normalize(text, country=country)
    except PhoneNumberError:
        return
    _check_result(number, country)


@PROPERTY_SETTINGS
@given(ANY_TEXT, st.sampled_from(["NL", "DE", "US", "GB", "BE"]))
def test_split_numbers_never_raises(text: str, country: str) -> None:
    numbers, unparsed = split_numbers(text, country=country)
    for number in numbers:
        _check_result(number, country)
    assert all(piece and piece == piece.strip() for piece in unparsed)


@PROPERTY_SETTINGS
@given(st.lists(written_numbers(), min_size=1, max_size=4), st.sampled_from([", ", "\n", " / ", "; ", " or "]))
def test_split_numbers_finds_every_number_in_a_field(cases: list[tuple[str, str, str]], separator: str) -> None:
    country = cases[0][0]
    same_country = [written for case_country, written, _ in cases if case_country == country]
    field = separator.join(same_country)
    numbers, unparsed = split_numbers(field, country=country)
    expected = list(dict.fromkeys(e164 for case_country, _, e164 in cases if case_country == country))
    assert (e164s(numbers), unparsed) == (expected, [])


# --- the lookup's shortcut: an E.164 the cache holds is not parsed again ------------------------------------


@pytest.mark.parametrize("country", ["NL", "US", "GB", "BR", "IT"])
def test_every_e164_normalize_makes_reads_back_as_itself(country: str) -> None:
    """The premise of ``core.lookup``'s shortcut: the cache's E.164 and national form are what parsing gives."""
    for _, number in EXAMPLES:
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        parsed = normalize(e164, country=country)
        assert written_as_e164(e164) == parsed.e164 == e164
        assert parsed.national == national_form(e164, country=country)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [("+31201234567", "+31201234567"), (" +31201234567\t", "+31201234567"), ("+12", "+12")],
)
def test_written_as_e164_takes_only_the_e164_shape(raw: str, e164: str) -> None:
    assert written_as_e164(raw) == e164


@pytest.mark.parametrize(
    "raw",
    ["0201234567", "+31 20 1234567", "+31-20-1234567", "+031201234567", "+", "++31201234567", "+３１２０",
     "tel:+31201234567", "+31201234567x12", "+" + "1" * 21, 31201234567],
)  # fmt: skip
def test_written_as_e164_refuses_every_other_writing(raw: object) -> None:
    assert written_as_e164(raw) is None  # type: ignore[arg-type]


# --- the new caller's shortcut: "+" and digits split without phonenumbers.parse's general machinery ---------

_CALLING_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@st.composite
def plus_digits(draw: st.DrawFn) -> str:
    """Digits after a "+": a real calling code and any digits (a national prefix, zeros...), or any digits."""
    if draw(st.booleans()):
        code = str(draw(st.sampled_from(_CALLING_CODES)))
        return code + draw(st.sampled_from(["", "0", "00", "1", "8"])) + draw(st.text("0123456789", max_size=16))
    return draw(st.text("0123456789", min_size=1, max_size=21))


@PROPERTY_SETTINGS
@given(plus_digits(), st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)))
def test_the_plus_digits_shortcut_gives_what_parse_gives(digits: str, country: str) -> None:
    try:
        expected = phonenumbers.parse("+" + digits, country)
    except phonenumbers.NumberParseException:
        expected = None
    got = _parse_plus_digits(digits)
    assert got is None or got == expected  # None: left to parse


@pytest.mark.parametrize(
    ("digits", "taken"),
    [("31612345678", True), ("390612345678", True), ("12025550123", True), ("310201234567", False),
     ("3", False), ("0031201234567", False)],
)  # fmt: skip
def test_the_plus_digits_shortcut_leaves_national_prefixes_and_refusals_to_parse(digits: str, taken: bool) -> None:
    assert (_parse_plus_digits(digits) is not None) is taken
    for _, number in EXAMPLES:
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        assert _parse_plus_digits(e164[1:]) in (None, phonenumbers.parse(e164, None))
