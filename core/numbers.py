"""Phone numbers as CRMs and phone systems write them, normalised for caching and matching.

Every CRM number is cached in two forms: its E.164 (``+31201234567``), the key for exact matching, and its
``national`` form, the digits a person in the tenant's country dials (used in scripts). When a call comes
in, the caller's number goes through the same :func:`normalize` and is looked up by E.164; for partial
matching, :func:`suffix_key` gives the reversed digits, so that "ends with these N digits" becomes a prefix
range query on an index.

A wrong match is worse than none, so this module is strict:

- A number must be *valid* by libphonenumber's metadata (``is_valid_number``), not merely *possible*
  (right length). Possible-but-invalid numbers are mostly typos, truncations and two numbers run together;
  letting them in would only add chances of matching the wrong contact, so they raise. The cost is that a
  number in a range newer than our ``phonenumbers`` release is refused until the library is updated.
- Letters are never turned into digits: a vanity number (``0800-FLOWERS``) or a number with a word stuck
  to it (``020 123 call``) raises instead of becoming a different, possibly valid, number.
- Up to six bare digits without ``+``/``00`` (``201``, ``1234``) are an *internal* number (a device or
  extension on the phone system): it has no E.164 and is never matched against CRM numbers. In countries
  whose full national numbers have six digits or fewer, such numbers must be written with ``+`` or ``00``.

All failures raise :class:`~core.errors.PhoneNumberError`, whatever the input; :func:`split_numbers`, for
whole CRM fields, never raises for the field's content.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    NumberParseException,
    PhoneMetadata,
    PhoneNumberFormat,
    ValidationResult,
)

from core.errors import PhoneNumberError

__all__ = [
    "PhoneNumber",
    "is_valid_country",
    "national_form",
    "normalize",
    "significant_digits",
    "split_calling_code",
    "split_numbers",
    "suffix_key",
    "written_as_e164",
]

MAX_LENGTH = 100
"""Longest single number :func:`normalize` looks at; longer input raises without being parsed."""

MAX_FIELD_LENGTH = 1000
"""Longest CRM field :func:`split_numbers` splits; a longer one is returned whole as unparsed."""

MAX_INTERNAL_DIGITS = 6
"""Bare digit strings up to this length are internal numbers (devices, extensions), never matched."""

_MAX_E164_DIGITS = 20  # libphonenumber allows 17 national digits after a country code of up to 3
_MIN_NSN, _MAX_NSN = 2, 17  # the national significant number's length as libphonenumber's parse allows it
_NON_DIGITS = re.compile(r"[^0-9]")

# Separators between numbers in one CRM field (lines are split first). ";" followed by "name=" is a tel URI
# parameter (";ext=12", ";phone-context=+31"), not a separator. No unbounded repetition next to an
# alternative that could match the same characters: the pattern is linear on any input.
_FIELD_SEPARATORS = re.compile(r"\s/\s|[,|]|;(?!\s*[a-z][a-z0-9-]*=)|\sor\s", re.IGNORECASE)
# Tried only on a piece that does not parse as a whole: "/" and "-" are also written inside one number.
_FINER_SEPARATORS = re.compile(r"/|\s-\s")


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """One normalised phone number.

    ``raw`` is the input as given. ``e164`` is ``None`` only for internal numbers. ``national`` is the
    digits a person in the tenant's country dials (see :func:`national_form`); for an internal number it is
    its digits. ``extension`` is kept apart and is not part of matching.
    """

    raw: str
    e164: str | None
    national: str
    extension: str | None
    internal: bool


def is_valid_country(code: str) -> bool:
    """Whether ``code`` is an upper-case ISO 3166 alpha-2 code that phonenumbers knows a calling code for."""
    return isinstance(code, str) and code in phonenumbers.SUPPORTED_REGIONS


def normalize(raw: str, *, country: str) -> PhoneNumber:
    """Parse one number as written in a CRM or sent by a phone system.

    National numbers are read with ``country`` (the tenant's, e.g. ``"NL"``) as default region, so
    ``020-123 4567`` is ``+31201234567``; so are ``0031201234567``, ``+31 (0)20 123 4567``,
    ``tel:+31-20-123-4567`` and the same in full-width or other Unicode digits. The country's own
    international prefix works too (``011`` for ``"US"``). Extensions (``x12``, ``ext. 12``, ``;ext=12``,
    ``#12``) go to ``.extension``. Raises :class:`PhoneNumberError` for anything that is not a valid number
    (see the module docstring for how strict that is), and with ``field="country"`` for an unknown country.
    """
    _check_country(country)
    if not isinstance(raw, str):
        raise PhoneNumberError(f"A phone number must be text, not {type(raw).__name__}.")
    if len(raw) > MAX_LENGTH:
        raise PhoneNumberError(f"{_shown(raw)} is too long to be a phone number (over {MAX_LENGTH} characters).")
    return _normalize(raw, country)


def written_as_e164(raw: str) -> str | None:
    """``raw`` without surrounding blanks if it is written in E.164 form (``+`` and ASCII digits), else None.

    Shape only, nothing is parsed: a lookup uses it to try the cache before parsing, since every E.164 in the
    cache came out of :func:`normalize` and an E.164 that :func:`normalize` produced reads back as itself.
    """
    if not isinstance(raw, str) or len(raw) > MAX_LENGTH:
        return None
    text = raw.strip()
    return text if _looks_like_e164(text) else None


def split_numbers(raw: str, *, country: str) -> tuple[list[PhoneNumber], list[str]]:
    """Split a CRM field that may hold several numbers, or none, into numbers and unparsable pieces.

    Pieces are separated by line breaks, ``,``, ``;`` (but not ``;ext=``), ``|``, `` / `` and `` or ``.
    A piece that does not parse as a whole is split further on ``/`` and `` - ``, but only if *every*
    part then is a full (non-internal) number: ``020 1234567/06 12345678`` gives two numbers, while
    ``0201234567/8`` ("...67 or ...68") stays one unparsed piece rather than a number and a stray ``8``.

    Returns the numbers (first occurrence of each, in field order) and the stripped pieces that could not
    be parsed (``n/a``, ``-``, ...). Empty pieces are dropped, so a blank field gives ``([], [])``. Never
    raises for the field's content; an unknown ``country`` is the caller's mistake and raises like
    :func:`normalize`.
    """
    _check_country(country)
    if not isinstance(raw, str) or not raw.strip():
        return [], []
    if len(raw) > MAX_FIELD_LENGTH:
        return [], [raw.strip()]
    numbers: list[PhoneNumber] = []
    unparsed: list[str] = []
    for line in raw.splitlines():
        for piece in _FIELD_SEPARATORS.split(line):
            piece = piece.strip()
            if piece:
                _parse_piece(piece, country, numbers, unparsed)
    return _unique(numbers), unparsed


def national_form(e164: str, *, country: str) -> str:
    """The digits a person in ``country`` dials for the stored number ``e164``, as used in scripts.

    For a number of the tenant's own country this is its national format without separators
    (NL ``0201234567``, DE ``0301234567``, US ``2025550123``). For any other number it is not that number's
    own national format (which would dial a different number from the tenant's country) but what
    phonenumbers' ``format_out_of_country_calling_number`` gives from ``country``, without separators: from
    NL a German number is ``0049301234567``, from the US ``01149301234567``; a Canadian number from the US
    is ``14165550123`` and a Jersey number from GB ``01534456789`` (shared calling codes). A few countries
    have no single international prefix (e.g. BR, KR); from there a foreign number keeps its ``+``
    (``+49301234567``) rather than becoming digits that would dial something else.
    """
    _check_country(country)
    return _national(_parse_e164(e164), country)


def significant_digits(e164: str) -> str:
    """The national significant number of ``e164``: no country code, no trunk prefix (``201234567``)."""
    return str(phonenumbers.national_significant_number(_parse_e164(e164)))


def suffix_key(e164: str) -> str:
    """The digits of ``e164`` reversed (``+31201234567`` -> ``76543210213``), for "ends with" look-ups.

    With an index on this key, "numbers ending in the caller's last N digits" is a prefix range query.
    Only checks the shape (``+`` and digits), so it is cheap enough for every cached row.
    """
    if not _looks_like_e164(e164):
        raise PhoneNumberError(f"{_shown(e164)} is not a number in E.164 form (+ and digits).")
    return e164[:0:-1]


def _normalize(raw: str, country: str) -> PhoneNumber:
    """Parse ``raw`` (type and length already checked): an internal number, or one for phonenumbers."""
    text = _ascii_digits(raw).strip()
    if not text:
        raise PhoneNumberError("The phone number is empty.")
    if text.isascii() and text.isdigit() and len(text) <= MAX_INTERNAL_DIGITS and not text.startswith("00"):
        return PhoneNumber(raw=raw, e164=None, national=text, extension=None, internal=True)
    return _parse_external(raw, text, country)


@lru_cache(maxsize=8192)
def _parse_external(raw: str, text: str, country: str) -> PhoneNumber:
    """Parse a non-internal number with phonenumbers; cached because CRMs repeat numbers a lot.

    Only results are cached (a frozen dataclass, safe to share); failures raise again each time.
    """
    number = _parse_plus_digits(text[1:]) if text[:1] == "+" else None  # "+" and digits: no letters to check
    if number is None:
        try:
            number = phonenumbers.parse(text, country)
        except NumberParseException as exc:
            raise PhoneNumberError(_parse_failure(raw, exc)) from exc
        if any(char.isalpha() for char in text) and not _digits_written(number, text):
            raise PhoneNumberError(f"{_shown(raw)} contains letters; write the number in digits.")
    _check_valid(raw, number)
    extension = number.extension or None
    number.extension = None
    return PhoneNumber(
        raw=raw,
        e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        national=_national(number, country),
        extension=extension,
        internal=False,
    )


def split_calling_code(digits: str) -> tuple[str, str] | None:
    """(calling code, the rest) of the ASCII digits after an E.164's ``+``; None if no calling code starts them.

    Calling codes are prefix-free, so the first one to three digits that are a known code are it.
    """
    for size in (1, 2, 3):
        if int(digits[:size]) in COUNTRY_CODE_TO_REGION_CODE:
            return digits[:size], digits[size:]
    return None


def _parse_plus_digits(digits: str) -> phonenumbers.PhoneNumber | None:
    """What ``phonenumbers.parse`` gives for ``"+" + digits`` whatever the default region, or None: parse it.

    For such input ``parse`` splits off the country code (the first one to three digits that are one) and
    may strip a national prefix written after it (``+31 0 20...``). This does the first, and leaves the
    second, and every input ``parse`` would refuse, to ``parse``: a new caller's number (an E.164 the cache
    does not hold) costs a tenth of what ``parse`` costs for it. tests/core/test_numbers.py checks that it
    gives what ``parse`` gives.
    """
    if not (2 < len(digits) <= _MAX_E164_DIGITS and digits.isascii() and digits.isdigit()) or digits[0] == "0":
        return None
    parts = split_calling_code(digits)
    if parts is None:
        return None
    code, national = int(parts[0]), parts[1]
    if not _MIN_NSN <= len(national) <= _MAX_NSN:
        return None
    region = phonenumbers.region_code_for_country_code(code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    if metadata is None:
        return None
    prefix = metadata.national_prefix_for_parsing
    if prefix and re.match(prefix, national):
        return None  # whether this is a national prefix to strip is parse's to decide
    number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    if len(national) > 1 and national[0] == "0":  # leading zeros that belong to the number (Italy)
        number.italian_leading_zero = True
        zeros = min(len(national) - len(national.lstrip("0")), len(national) - 1)
        if zeros != 1:
            number.number_of_leading_zeros = zeros
    return number


def _parse_piece(piece: str, country: str, numbers: list[PhoneNumber], unparsed: list[str]) -> None:
    """Parse one piece of a CRM field into ``numbers``, splitting it finer if needed, else ``unparsed``."""
    try:
        numbers.append(normalize(piece, country=country))
        return
    except PhoneNumberError:
        pass
    parts = _FINER_SEPARATORS.split(piece)
    found = _all_external(parts, country) if len(parts) > 1 else None
    if found:
        numbers.extend(found)
    else:
        unparsed.append(piece)


def _all_external(parts: list[str], country: str) -> list[PhoneNumber] | None:
    """Every part as a full (non-internal) number, or ``None`` if any part is not one."""
    found: list[PhoneNumber] = []
    for part in parts:
        try:
            number = normalize(part, country=country)
        except PhoneNumberError:
            return None
        if number.internal:
            return None
        found.append(number)
    return found


def _unique(numbers: list[PhoneNumber]) -> list[PhoneNumber]:
    """The first of each number (same E.164 or internal digits, same extension), in order."""
    seen: set[tuple[str, str | None]] = set()
    unique: list[PhoneNumber] = []
    for number in numbers:
        key = (number.e164 or number.national, number.extension)
        if key not in seen:
            seen.add(key)
            unique.append(number)
    return unique


def _check_country(country: str) -> None:
    """Raise, naming the field ``country``, unless ``country`` is a region phonenumbers knows."""
    if not is_valid_country(country):
        raise PhoneNumberError(
            f"{_shown(country)} is not a known country: use an upper-case two-letter ISO code such as 'NL'.",
            field="country",
        )


def _check_valid(raw: str, number: phonenumbers.PhoneNumber) -> None:
    """Raise unless ``number`` is a valid number; the message says what is wrong with it."""
    if phonenumbers.is_valid_number(number):
        return
    reason = phonenumbers.is_possible_number_with_reason(number)
    problems = {
        ValidationResult.INVALID_COUNTRY_CODE: "its country code does not exist",
        ValidationResult.TOO_SHORT: "it is too short",
        ValidationResult.TOO_LONG: "it is too long",
        ValidationResult.INVALID_LENGTH: "it has the wrong number of digits",
        ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "it lacks the area code",
    }
    problem = problems.get(reason, "no such number is in use")
    raise PhoneNumberError(f"{_shown(raw)} is not a valid phone number: {problem}.")


def _parse_failure(raw: str, exc: NumberParseException) -> str:
    """An admin-readable message for a phonenumbers parse error."""
    problems = {
        NumberParseException.INVALID_COUNTRY_CODE: "its country code does not exist",
        NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short",
        NumberParseException.TOO_SHORT_NSN: "it is too short",
        NumberParseException.TOO_LONG: "it is too long",
    }
    problem = problems.get(exc.error_type, "it does not look like one")
    return f"{_shown(raw)} is not a valid phone number: {problem}."


def _parse_e164(e164: str) -> phonenumbers.PhoneNumber:
    """Parse a stored E.164 string, refusing anything not in exactly that form."""
    if _looks_like_e164(e164):
        try:
            number = phonenumbers.parse(e164, None)
        except NumberParseException:
            pass
        else:
            if phonenumbers.format_number(number, PhoneNumberFormat.E164) == e164:
                return number
    raise PhoneNumberError(f"{_shown(e164)} is not a number in E.164 form (+ and digits).")


def _looks_like_e164(text: str) -> bool:
    """Whether ``text`` is ``+`` and 2 to 20 ASCII digits, the first not zero (shape only)."""
    digits = text[1:] if isinstance(text, str) and text.startswith("+") else ""
    return 2 <= len(digits) <= _MAX_E164_DIGITS and digits.isascii() and digits.isdigit() and not digits.startswith("0")


def _national(number: phonenumbers.PhoneNumber, country: str) -> str:
    """Digits dialled from ``country`` for ``number`` (which has no extension); see :func:`national_form`."""
    if phonenumbers.region_code_for_number(number) == country:
        # Not format_out_of_country_calling_number: within the NANP it adds the "1" (US -> "12025550123").
        formatted = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    else:
        formatted = phonenumbers.format_out_of_country_calling_number(number, country)
    digits = _NON_DIGITS.sub("", formatted)
    return "+" + digits if formatted.startswith("+") else digits


def _digits_written(number: phonenumbers.PhoneNumber, text: str) -> bool:
    """Whether the significant digits of ``number`` were written as digits in ``text`` (not as letters)."""
    written = "".join(char for char in text if "0" <= char <= "9")
    return str(phonenumbers.national_significant_number(number)) in written


def _ascii_digits(text: str) -> str:
    """``text`` with each Unicode decimal digit (full-width, Arabic-Indic, ...) made its ASCII digit."""
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(char)) if char.isdecimal() else char for char in text)


def _shown(value: object) -> str:
    """``value`` quoted for an error message, shortened so a huge input does not flood the message."""
    text = repr(value[:40] if isinstance(value, str) else value)
    return text if len(text) <= 40 else text[:37] + "..."
