"""Script templates: the links an admin writes to pop the caller's CRM record or prefill a mail.

A template is URL text with placeholders in it:

* call properties from the phone system, ``#(Caller number)`` and the rest of :data:`CALL_PROPERTIES`;
* fields of the matched CRM record, ``$(DisplayName)``, ``$(Identifier)``, ``$(PopUpUri)`` and the CRM's own
  field names.

Names match case-insensitively and ignoring spaces (``#(Callernumber)`` is ``#(Caller number)``), and a
placeholder is recognised when it is written percent-encoded, wholly or in part (``%24%28DisplayName%29``,
``$%28DisplayName%29``), because admins paste already-encoded ``mailto:`` links.

Safety rules, enforced by :func:`render` for any template and any value:

* Every value is percent-encoded for the part of the URL it lands in (path segment, query, fragment,
  ``mailto:`` header, ``tel:``/``sip:`` address), so CRM data cannot add a path segment, a query parameter,
  a fragment or a recipient. A value that would make a whole path segment ``.`` or ``..`` is refused, and a
  value placed in a host name must look like a host name.
* A placeholder that starts the template (``$(PopUpUri)`` or ``$(PopUpUri)?tab=notes``) is inserted as a URL;
  its value must itself be an ``http://`` or ``https://`` URL.
* Only :data:`ALLOWED_SCHEMES` are produced. :func:`validate` refuses other schemes when a script is saved and
  :func:`render` checks the final URL again, returning ``None`` rather than an unsafe link.

Parsing is cached per template string, so rendering a saved script costs a few microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Literal
from urllib.parse import quote, unquote_to_bytes

from core.errors import TemplateError, TemplateProblem

CALL_PROPERTIES: tuple[str, ...] = (
    "Caller name",
    "Caller number",
    "Device name",
    "Device number",
    "Ddi name",
    "Ddi number",
    "Start time",
)
"""The call properties an admin can use as ``#(...)``, in their canonical spelling."""

ALLOWED_SCHEMES: frozenset[str] = frozenset({"http", "https", "mailto", "tel", "callto", "sip", "sips"})
"""The only URL schemes a script may use (lower case)."""

STANDARD_FIELDS: tuple[str, ...] = ("DisplayName", "Identifier", "PopUpUri")
"""Record fields every integration provides, in addition to the CRM's own fields."""

_OPAQUE_SCHEMES = frozenset({"mailto", "tel", "callto", "sip", "sips"})
_DIAL_SCHEMES = frozenset({"tel", "callto"})
_BLANK = "".join(chr(i) for i in range(0x21))  # C0 controls and space: what browsers strip around a URL
_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")  # browsers drop these anywhere in a URL
_OPENER = re.compile(r"(#|\$|%23|%24)(?:\(|%28)")
_PERCENT_RUN = re.compile(r"(?:%(?!29)[0-9A-Fa-f]{2})+")
_NAME_PUNCTUATION = frozenset(" \t_-.@:")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_SCHEME_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_HTTP_URL = re.compile(r"https?://[^\s/?#\\]", re.IGNORECASE)
_HOST_VALUE = re.compile(r"[A-Za-z0-9.-]*")
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SEGMENT_END = re.compile(r"[/?#]")
# What urllib's quote() never encodes, whatever ``safe``, and the space, which no context's ``safe`` holds.
_UNRESERVED_OR_SPACE = re.compile(r"[A-Za-z0-9_.~ -]*")
_URL_AS_IS = re.compile(r"[A-Za-z0-9_.~!#$&'()*+,/:;=?@\[\]-]*")  # quote(safe=_URL_SAFE) keeps these; no "%"
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"  # reserved characters kept when a value is inserted as a whole URL
_SNIPPET = 40


def _key(name: str) -> str:
    """The lookup key of a name: case-folded, without whitespace."""
    return "".join(name.split()).casefold()


_CALL_BY_KEY = {_key(name): name for name in CALL_PROPERTIES}
_STANDARD_BY_KEY = {_key(name): name for name in STANDARD_FIELDS}


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One ``#(...)`` or ``$(...)`` in a template.

    ``name`` is canonical: for a call property the spelling in :data:`CALL_PROPERTIES`; for a field the
    standard spelling if it is one of :data:`STANDARD_FIELDS`, else the name as written (percent-decoded).
    ``start``/``end`` index the placeholder in the template as typed; ``encoded`` says it was written
    (partly) percent-encoded.
    """

    kind: Literal["call", "field"]
    name: str
    start: int
    end: int
    encoded: bool

    @property
    def token(self) -> str:
        """The placeholder as an admin would write it, e.g. ``#(Caller number)``."""
        return f"{'#' if self.kind == 'call' else '$'}({self.name})"


@dataclass(frozen=True, slots=True)
class _Issue:
    """A syntax problem found while parsing; the message is made later, when the field names are known."""

    kind: Literal["unclosed", "empty"]
    placeholder_kind: Literal["call", "field"]
    start: int
    text: str


@dataclass(frozen=True, slots=True)
class _Parsed:
    tokens: tuple[Placeholder | str, ...]
    issues: tuple[_Issue, ...]


class _Context(Enum):
    """Where in the URL a placeholder lands, which decides how its value is encoded."""

    URL = "url"  # leads the template: the value is a whole http(s) URL
    SCHEME = "scheme"  # inside the scheme (never valid; encoded strictly, then refused by the scheme check)
    HOST = "host"  # inside a host name or port
    PATH = "path"
    QUERY = "query"
    FRAGMENT = "fragment"
    ADDRESS = "address"  # a mailto:/sip: address with no literal '@': the value may bring its own
    USER = "user"  # the part before a literal '@' of a mailto:/sip: address
    DIAL = "dial"  # a tel:/callto: number


_SAFE_CHARACTERS = {_Context.ADDRESS: "+@", _Context.USER: "+", _Context.DIAL: "+"}


@dataclass(slots=True)
class _Slot:
    """A placeholder in a render plan, with where it lands."""

    placeholder: Placeholder
    key: str
    context: _Context


@dataclass(frozen=True, slots=True)
class _SchemeCheck:
    """What the literal text says about the scheme: ``status`` is ok, refused, missing, placeholder or url."""

    status: Literal["ok", "refused", "missing", "placeholder", "url"]
    scheme: str
    position: int


@dataclass(frozen=True, slots=True)
class _Plan:
    steps: tuple[str | _Slot, ...]
    scheme: _SchemeCheck
    scheme_fixed: bool = False  # the leading step alone makes the scheme an allowed one: no value can change it


def _is_name_character(character: str) -> bool:
    return character.isalnum() or character in _NAME_PUNCTUATION


def _scan_name(template: str, index: int) -> tuple[str, int, bool]:
    """Read a name from ``index`` up to its ``)`` or ``%29``: (decoded name, end index, closed)."""
    chars: list[str] = []
    while index < len(template):
        character = template[index]
        if character == ")":
            return "".join(chars), index + 1, True
        if template.startswith("%29", index):
            return "".join(chars), index + 3, True
        if character == "%":
            run = _PERCENT_RUN.match(template, index)
            if run is None:
                break
            decoded = unquote_to_bytes(run.group()).decode("utf-8", "replace")
            if not all(_is_name_character(c) for c in decoded):
                break
            chars.append(decoded)
            index = run.end()
        elif _is_name_character(character):
            chars.append(character)
            index += 1
        else:
            break
    return "".join(chars), index, False


def _make_placeholder(kind: Literal["call", "field"], written: str, start: int, end: int, raw: str) -> Placeholder:
    known = _CALL_BY_KEY if kind == "call" else _STANDARD_BY_KEY
    return Placeholder(kind, known.get(_key(written), written), start, end, "%" in raw)


@lru_cache(maxsize=1024)
def _parse(template: str) -> _Parsed:
    """Split a template into literal text and placeholders (cached: a template is rendered many times)."""
    tokens: list[Placeholder | str] = []
    issues: list[_Issue] = []
    literal_start = position = 0
    while (opener := _OPENER.search(template, position)) is not None:
        start = opener.start()
        kind: Literal["call", "field"] = "call" if opener.group(1) in ("#", "%23") else "field"
        written, end, closed = _scan_name(template, opener.end())
        if not closed:
            issues.append(_Issue("unclosed", kind, start, template[start:end]))
            position = opener.end()
            continue
        if not _key(written):
            issues.append(_Issue("empty", kind, start, template[start:end]))
            position = end
            continue
        if start > literal_start:
            tokens.append(template[literal_start:start])
        tokens.append(_make_placeholder(kind, written.strip(), start, end, template[start:end]))
        literal_start = position = end
    if literal_start < len(template):
        tokens.append(template[literal_start:])
    return _Parsed(tuple(tokens), tuple(issues))


class _Walker:
    """Follows the literal text of a template to learn the scheme and where each placeholder lands."""

    def __init__(self) -> None:
        self.state = "scheme"
        self.scheme = ""
        self.scheme_chars: list[str] = []
        self.scheme_position = -1
        self.check: _SchemeCheck | None = None
        self.open_address: list[_Slot] = []

    def literal(self, text: str, offset: int) -> None:
        """Advance over literal text that starts at ``offset`` in the template."""
        index = 0
        while index < len(text):
            index = self._step(text, index, offset) + 1

    def _step(self, text: str, index: int, offset: int) -> int:
        character = text[index]
        if self.state == "scheme":
            return self._scheme_step(text, index, offset)
        if self.state in ("address", "opaque-host") and character == "@":
            for slot in self.open_address:
                slot.context = _Context.USER
            self.open_address.clear()
            self.state = "opaque-host"
        elif self.state == "opaque-host" and character == ",":
            self.state = "address"
        elif character == "#":
            self.state = "fragment"
        elif character == "?" and self.state != "fragment":
            self.state = "query"
        elif character == "/" and self.state == "authority":
            self.state = "path"
        elif character == ";" and self.state in ("address", "opaque-host") and self.scheme != "mailto":
            self.state = "query"
        return index

    def _scheme_step(self, text: str, index: int, offset: int) -> int:
        character = text[index]
        if character in "\t\n\r" or (character in _BLANK and not self.scheme_chars):
            return index
        if character == ":":
            return self._end_scheme(text, index, offset)
        if character in "/?#":
            self._set_check("missing", self.scheme_position if self.scheme_chars else offset + index)
            self.state = {"/": "path", "?": "query", "#": "fragment"}[character]
            return index
        if not self.scheme_chars:
            self.scheme_position = offset + index
        self.scheme_chars.append(character)
        return index

    def _end_scheme(self, text: str, index: int, offset: int) -> int:
        written = "".join(self.scheme_chars)
        self.scheme = written.lower()
        position = self.scheme_position if self.scheme_chars else offset + index
        if not _SCHEME.fullmatch(written):
            self._set_check("missing", position)
        elif self.scheme not in ALLOWED_SCHEMES:
            self._set_check("refused", position)
        else:
            self._set_check("ok", position)
        slashes = text.startswith("//", index + 1)
        if self.scheme in _OPAQUE_SCHEMES:
            self.state = "address"
        else:
            self.state = "authority" if slashes else "path"
        return index + 2 if slashes else index

    def _set_check(self, status: Literal["ok", "refused", "missing", "placeholder", "url"], at: int) -> None:
        if self.check is None:
            self.check = _SchemeCheck(status, self.scheme, at)

    def placeholder(self, placeholder: Placeholder, leading: bool) -> _Slot:
        """Decide where a placeholder lands and advance past it."""
        slot = _Slot(placeholder, _key(placeholder.name), self._context(placeholder, leading))
        if slot.context is _Context.ADDRESS:
            self.open_address.append(slot)
        return slot

    def _context(self, placeholder: Placeholder, leading: bool) -> _Context:
        if self.state == "scheme":
            if leading:
                self._set_check("url", placeholder.start)
                self.state = "path"
                return _Context.URL
            self._set_check("placeholder", placeholder.start)
            return _Context.SCHEME
        if self.state in ("authority", "opaque-host"):
            return _Context.HOST
        if self.state == "address":
            return _Context.DIAL if self.scheme in _DIAL_SCHEMES else _Context.ADDRESS
        return {"path": _Context.PATH, "query": _Context.QUERY, "fragment": _Context.FRAGMENT}[self.state]

    def result(self) -> _SchemeCheck:
        """The scheme check; a template that never reaches a ':' has no scheme."""
        if self.check is None:
            return _SchemeCheck("missing", "", max(self.scheme_position, 0))
        return self.check


@lru_cache(maxsize=1024)
def _plan(template: str) -> _Plan:
    """Work out, once per template, where each placeholder lands and what the scheme is."""
    walker = _Walker()
    steps: list[str | _Slot] = []
    offset = 0
    leading = True
    for token in _parse(template).tokens:
        if isinstance(token, str):
            walker.literal(token, offset)
            leading = leading and not token.strip(_BLANK)
            offset += len(token)
            steps.append(token)
        else:
            steps.append(walker.placeholder(token, leading))
            leading = False
            offset = token.end
    # A rendered link starts with its leading literal, so if that literal already passes the scheme check, so
    # does every link made from the template (see render()). A leading URL placeholder fixes it too: _as_url
    # only lets through a value that starts with http:// or https://.
    first = steps[0] if steps else None
    fixed = (isinstance(first, str) and _scheme_is_allowed(first)) or (
        isinstance(first, _Slot) and first.context is _Context.URL
    )
    return _Plan(tuple(steps), walker.result(), fixed)


def parse(template: str) -> tuple[list[Placeholder | str], list[TemplateProblem]]:
    """Split ``template`` into literal text and placeholders, and report its syntax problems.

    Syntax problems are placeholders with no closing bracket and placeholders with an empty name; their
    text stays in the literal parts. Names are not checked against the available fields here: see
    :func:`find_problems`.
    """
    parsed = _parse(template)
    problems = [_issue_problem(issue, STANDARD_FIELDS) for issue in parsed.issues]
    return list(parsed.tokens), problems


def placeholders_used(template: str) -> list[Placeholder]:
    """The placeholders in ``template``, in order of appearance."""
    return [token for token in _parse(template).tokens if isinstance(token, Placeholder)]


def _available_fields(record_fields: Iterable[str]) -> tuple[str, ...]:
    """Standard fields first, then the CRM's fields, each name once (compared case/space-insensitively)."""
    seen: dict[str, str] = {}
    for name in (*STANDARD_FIELDS, *record_fields):
        seen.setdefault(_key(name), name)
    return tuple(seen.values())


def _available(kind: Literal["call", "field"], fields: tuple[str, ...]) -> str:
    return "Available: " + ", ".join(CALL_PROPERTIES if kind == "call" else fields) + "."


def _snippet(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."


def _issue_problem(issue: _Issue, fields: tuple[str, ...]) -> TemplateProblem:
    where = f"at position {issue.start}"
    if issue.kind == "unclosed":
        message = f"Placeholder {_snippet(issue.text)} {where} has no closing ')'."
    else:
        message = f"Placeholder {issue.text} {where} has no name."
    return TemplateProblem(issue.start, f"{message} {_available(issue.placeholder_kind, fields)}")


def _unknown_problem(
    placeholder: Placeholder, field_keys: Mapping[str, str], fields: tuple[str, ...]
) -> TemplateProblem | None:
    key = _key(placeholder.name)
    where = f"at position {placeholder.start}"
    if placeholder.kind == "call":
        if key in _CALL_BY_KEY:
            return None
        message = f"Unknown call property {placeholder.token} {where}."
        if key in field_keys:
            message += f" {field_keys[key]} is a record field: write it as $({field_keys[key]})."
    else:
        if key in field_keys:
            return None
        message = f"Unknown field {placeholder.token} {where}."
        if key in _CALL_BY_KEY:
            message += f" {_CALL_BY_KEY[key]} is a call property: write it as #({_CALL_BY_KEY[key]})."
    return TemplateProblem(placeholder.start, f"{message} {_available(placeholder.kind, fields)}")


def _scheme_problem(plan: _Plan) -> TemplateProblem | None:
    check = plan.scheme
    allowed = "Allowed: " + ", ".join(f"{scheme}:" for scheme in sorted(ALLOWED_SCHEMES)) + "."
    at = check.position
    if check.status == "refused":
        return TemplateProblem(at, f"Scheme {check.scheme}: at position {at} is not allowed. {allowed}")
    if check.status == "missing":
        return TemplateProblem(at, f"No scheme at position {at}: start the script with e.g. https://. {allowed}")
    if check.status == "placeholder":
        return TemplateProblem(
            at,
            f"Placeholder at position {at} is inside the scheme: write the scheme out, e.g. https://. {allowed}",
        )
    if check.status == "url":
        first = next(step for step in plan.steps if isinstance(step, _Slot)).placeholder
        if first.kind == "call":
            return TemplateProblem(
                at,
                f"{first.token} at position {at} cannot start the script: only a field "
                f"holding a link, like $(PopUpUri), can. Or start with e.g. https://.",
            )
    return None


def find_problems(template: str, *, record_fields: Iterable[str]) -> list[TemplateProblem]:
    """Every problem in ``template``, ordered by position: syntax, unknown names and the scheme.

    ``record_fields`` are the CRM's field names; :data:`STANDARD_FIELDS` are always available. Each message
    names the position and lists the available names (or allowed schemes).
    """
    if not template.strip(_BLANK):
        return [
            TemplateProblem(
                0, "The script is empty: enter a link such as https://crm.example.com/contact/$(Identifier)."
            )
        ]
    fields = _available_fields(record_fields)
    field_keys = {_key(name): name for name in fields}
    parsed = _parse(template)
    problems = [_issue_problem(issue, fields) for issue in parsed.issues]
    scheme_problem = _scheme_problem(_plan(template))
    if scheme_problem is not None:
        problems.append(scheme_problem)
    for token in parsed.tokens:
        if isinstance(token, Placeholder):
            problem = _unknown_problem(token, field_keys, fields)
            if problem is not None:
                problems.append(problem)
    return sorted(problems, key=lambda problem: problem.position)


def validate(template: str, *, record_fields: Iterable[str]) -> None:
    """Raise :class:`~core.errors.TemplateError` if ``template`` has any problem (see :func:`find_problems`).

    The error's message and position are the first problem's; ``problems`` holds them all.
    """
    problems = find_problems(template, record_fields=record_fields)
    if problems:
        raise TemplateError(problems[0].message, position=problems[0].position, problems=problems)


def _text(value: object) -> str:
    """A value as text: ``None`` is empty, anything else that is not a string is converted."""
    if isinstance(value, str):
        return value
    return "" if value is None else str(value)


class _Values:
    """Looks up placeholder values; falls back to case/space-insensitive keys only when needed."""

    __slots__ = ("_call", "_call_keys", "_record", "_record_keys")

    def __init__(self, call: Mapping[str, str], record: Mapping[str, str] | None) -> None:
        self._call = call
        self._record: Mapping[str, str] = record if record is not None else {}
        self._call_keys: dict[str, object] | None = None
        self._record_keys: dict[str, object] | None = None

    def get(self, slot: _Slot) -> str:
        """The value for ``slot``, or an empty string when it is missing."""
        is_call = slot.placeholder.kind == "call"
        mapping = self._call if is_call else self._record
        name = slot.placeholder.name
        if name in mapping:
            return _text(mapping[name])
        if is_call:
            if self._call_keys is None:
                self._call_keys = {_key(str(key)): value for key, value in self._call.items()}
            return _text(self._call_keys.get(slot.key))
        if self._record_keys is None:
            self._record_keys = {_key(str(key)): value for key, value in self._record.items()}
        return _text(self._record_keys.get(slot.key))


def _as_url(value: str) -> str | None:
    """A value used as a whole URL: it must be http(s); characters never valid in a URL get encoded."""
    url = value.strip(_BLANK)
    if not _HTTP_URL.match(url):
        return None
    if _URL_AS_IS.fullmatch(url):
        return url  # nothing for quote() to encode and no "%" to check: what the line below returns for it
    return _LONE_PERCENT.sub("%25", quote(url, safe=_URL_SAFE, errors="replace"))


def _encode(value: str, context: _Context) -> str | None:
    """``value`` encoded for ``context``; ``None`` if it cannot be placed there safely."""
    if context is _Context.URL:
        return _as_url(value)
    if context is _Context.HOST:
        return value if _HOST_VALUE.fullmatch(value) else None
    if _UNRESERVED_OR_SPACE.fullmatch(value):
        return value.replace(" ", "%20")  # what quote() returns for it ("John Smith"), without its round trip
    return quote(value, safe=_SAFE_CHARACTERS.get(context, ""), errors="replace")


def _makes_dot_segment(url: str, start: int, end: int) -> bool:
    """Whether the path segment around ``url[start:end]`` is ``.`` or ``..`` (which browsers resolve)."""
    left = url.rfind("/", 0, start) + 1
    found = _SEGMENT_END.search(url, end)
    segment = url[left : found.start() if found else len(url)]
    return segment.lower().replace("%2e", ".") in (".", "..")


def _scheme_is_allowed(url: str) -> bool:
    """Check the scheme as a browser would read it: ignoring tabs/newlines and leading blanks, any case."""
    match = _SCHEME_PREFIX.match(url.translate(_TAB_NEWLINE).lstrip(_BLANK))
    return match is not None and match.group(1).lower() in ALLOWED_SCHEMES


def render(template: str, *, call: Mapping[str, str], record: Mapping[str, str] | None = None) -> str | None:
    """Fill in ``template`` with a call's properties and a record's fields; ``None`` if the link is refused.

    ``call`` maps call property names (canonical, e.g. ``"Caller number"``) to already formatted values;
    ``record`` maps field names to values. Keys may be in any case. A missing value renders as empty.

    Each value is percent-encoded for the part of the URL it lands in. A leading placeholder is inserted as
    a URL and must hold an http(s) URL; if that URL already has a query, a ``?`` right after it becomes ``&``.
    The link is refused if its scheme is not in :data:`ALLOWED_SCHEMES`, if a URL value is not http(s), or
    if a value would make a ``.``/``..`` path segment or an invalid host name. Never raises.
    """
    plan = _plan(template)
    values = _Values(call, record)
    parts: list[str] = []
    length = 0
    path_spans: list[tuple[int, int]] = []
    url_has_query = False
    for step in plan.steps:
        if isinstance(step, str):
            if url_has_query and step.startswith("?"):
                step = "&" + step[1:]  # "$(PopUpUri)?tab=notes" adds to the query the URL already has
            parts.append(step)
            length += len(step)
            url_has_query = False
            continue
        text = _encode(values.get(step), step.context)
        if text is None:
            return None
        url_has_query = step.context is _Context.URL and "?" in text and "#" not in text
        if step.context is _Context.PATH and text:
            path_spans.append((length, length + len(text)))
        parts.append(text)
        length += len(text)
    url = "".join(parts)
    if any(_makes_dot_segment(url, start, end) for start, end in path_spans):
        return None
    url = url.strip(_BLANK)
    return url if plan.scheme_fixed or _scheme_is_allowed(url) else None


def sample_call() -> dict[str, str]:
    """A realistic call, keyed by canonical property name, for previewing a script in the editor."""
    return {
        "Caller name": "Anna de Vries",
        "Caller number": "0201234567",
        "Device name": "Sales desk",
        "Device number": "201",
        "Ddi name": "Sales",
        "Ddi number": "0207654321",
        "Start time": "2024-05-14T09:30:00+02:00",
    }
