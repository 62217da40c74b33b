"""Caller matching: which cached CRM records a call belongs to, and what the phone shows for it.

This module is pure: it knows the rules, not the database (``core.lookup`` runs the queries and feeds it).

Matching, in this order:

* The caller's number is normalised with the tenant's country (:func:`core.numbers.normalize`). A number that
  does not parse is refused (``PhoneNumberError``); an *internal* number (a device or extension, up to six
  bare digits) is never matched against CRM numbers.
* **Exact**: every record of the tenant's *enabled* integrations that has the caller's E.164 among its numbers
  (main or secondary: mobile, home, other...) matches. Several records sharing one number all match. Matches
  are ordered by integration order, then by record order in the cache.
* **Partial**, only when nothing matched exactly. Partial matching exists for numbers stored in the CRM with
  the wrong country: a German contact typed as ``030 1234567`` in a Dutch CRM is cached as ``+31301234567``,
  while the caller is ``+49301234567``. Because a wrong match is worse than none, a partial match is made only
  when it is unambiguous in every sense below:

  1. The caller's national significant number has at least ``N`` digits, where ``N`` is the tenant's
     ``partial_match_digits`` but never less than :data:`MIN_PARTIAL_DIGITS` (8). Shorter numbers never match
     partially.
  2. Exactly one record, across *all* the tenant's integrations (disabled ones too: their data still shows the
     digits are not unique), has a number ending with the caller's last ``N`` digits. If two records do, or if
     too many numbers end with them to look at (:data:`PARTIAL_CANDIDATE_LIMIT`), nothing matches.
  3. That number is the same national number under another country code: its country code differs from the
     caller's, and the shorter of the two national significant numbers is the whole tail of the longer.
     Two different numbers of one country (``020 1234567`` and ``010 1234567`` share their last 8 digits)
     are different lines, never the same caller; and digits that agree only in part of the national number
     (a German ``030 12345678`` and a Dutch mobile ``06 12345678``) are a coincidence, not a match.
  4. The record belongs to an enabled integration (a disabled one is suppressed).

  Such a match is marked ``"partial"``.

Scripts (the links offered with a call; ``when`` decides):

* An integration's ``match`` and ``always`` scripts are rendered for each of its matches, with the record.
* An enabled integration without a match for the call offers its ``nomatch`` and ``always`` scripts at the top
  level, rendered without a record.
* Tenant-level scripts (no integration) are offered at the top level on every call their ``when`` allows
  (``match``: the call matched something; ``nomatch``: it matched nothing). Their standard fields come from
  the record when exactly one record matched, else they are empty.
* A script with a DDI filter is offered only for calls that came in on that DDI (compared normalised).
* Numbers are rendered in national form; ``#(Start time)`` is ISO 8601 in the tenant's time zone.
* A link that :func:`core.templates.render` refuses (e.g. a CRM value that would make it unsafe) is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import InvalidInput, PhoneNumberError
from core.models import ScriptWhen
from core.numbers import PhoneNumber, normalize, split_calling_code
from core.templates import render

MIN_PARTIAL_DIGITS = 8
"""A partial match never compares fewer trailing digits than this, whatever the tenant's setting."""

PARTIAL_CANDIDATE_LIMIT = 20
"""Numbers ending with the caller's digits looked at for a partial match; reaching it means "ambiguous"."""

MAX_MATCHES = 50
"""Records returned for one call at most; a number shared by more sets ``truncated`` in the result."""

MAX_TEXT = 200
"""Longest name (caller, device, DDI) passed on to scripts; longer text is cut."""


class MatchKind(StrEnum):
    """How a record matched: on the whole number, or on its last digits."""

    EXACT = "exact"
    PARTIAL = "partial"


@dataclass(slots=True)  # not frozen: made per lookup, and a frozen __init__ costs four times as much
class CallInput:
    """A call as the phone system describes it; only ``caller_number`` is required."""

    caller_number: str
    caller_name: str | None = None
    device_number: str | None = None
    device_name: str | None = None
    ddi_number: str | None = None
    ddi_name: str | None = None
    start_time: datetime | None = None


@dataclass(slots=True)  # not frozen: made per lookup, and a frozen __init__ costs four times as much
class Call:
    """A call made ready for matching: the caller's number, the DDI's key and the call properties."""

    caller: PhoneNumber
    ddi_key: str | None
    properties: dict[str, str]


@dataclass(frozen=True, slots=True)
class ScriptRule:
    """A saved script as the matcher needs it; ``ddi_key`` is its DDI filter normalised (see :func:`ddi_key`)."""

    id: int
    name: str
    template: str
    when: ScriptWhen
    auto_open: bool
    ddi_key: str | None = None

    def offered(self, *, matched: bool, call_ddi: str | None) -> bool:
        """Whether this script goes with a call that did (or did not) match, on this DDI."""
        if self.ddi_key is not None and self.ddi_key != call_ddi:
            return False
        if self.when is ScriptWhen.ALWAYS:
            return True
        return matched == (self.when is ScriptWhen.MATCH)


@dataclass(frozen=True, slots=True)
class IntegrationRule:
    """What a lookup needs of one integration: who it is, its notification fields and its scripts."""

    id: int
    name: str
    preset: str
    enabled: bool
    notification: tuple[tuple[str, str], ...] = ()
    scripts: tuple[ScriptRule, ...] = ()


@dataclass(frozen=True, slots=True)
class TenantRules:
    """A tenant's lookup configuration, cached in memory and replaced when ``fingerprint`` changes.

    ``integrations`` holds every integration of the tenant by id, in their configured order; ``rank`` gives
    each id's place in that order.
    """

    tenant_id: int
    slug: str
    country: str
    timezone: str
    partial_digits: int
    integrations: Mapping[int, IntegrationRule]
    scripts: tuple[ScriptRule, ...] = ()
    fingerprint: tuple[Any, ...] = ()
    zone: tzinfo = field(init=False, compare=False)
    rank: Mapping[int, int] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", tenant_zone(self.timezone))
        object.__setattr__(self, "rank", {integration_id: i for i, integration_id in enumerate(self.integrations)})

    @property
    def min_digits(self) -> int:
        """Trailing digits a partial match compares: the tenant's setting, never below the minimum."""
        return max(MIN_PARTIAL_DIGITS, self.partial_digits)


@dataclass(slots=True)  # not frozen: made per lookup, and a frozen __init__ costs four times as much
class Candidate:
    """A cached number that may belong to the caller, with its record."""

    integration_id: int
    record_pk: int
    record_id: str
    fields: Mapping[str, Any]
    e164: str


@dataclass(slots=True)  # not frozen: made per lookup, and a frozen __init__ costs four times as much
class Match:
    """A record that matched, and how."""

    candidate: Candidate
    kind: MatchKind


@lru_cache(maxsize=512)
def tenant_zone(name: str) -> tzinfo:
    """The tenant's time zone; UTC if the stored name is unknown (it is checked when saved)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def ddi_key(raw: str, *, country: str) -> str:
    """The key two DDI numbers are compared by: the E.164, or ``#`` and the digits of a short number.

    Raises :class:`PhoneNumberError` for text that is not a phone number.
    """
    number = normalize(raw, country=country)
    return number.e164 if number.e164 is not None else "#" + number.national


def _text(value: str | None) -> str:
    return (value or "").strip()[:MAX_TEXT]


def _device_number(raw: str | None, *, country: str) -> str:
    """A device number in national form when it is a phone number; else as given (``SIP/201``...)."""
    text = _text(raw)
    if not text:
        return ""
    try:
        return normalize(text, country=country).national
    except PhoneNumberError:
        return text


_last_now: tuple[tuple[object, ...], tzinfo, str] | None = None


def _start_time(value: datetime | None, *, zone: tzinfo, now: datetime) -> str:
    """ISO 8601 in the tenant's zone; a time without offset is taken to be the tenant's local time."""
    global _last_now
    if value is None:
        # Calls arrive many a second: the clock's second, once formatted for a zone, is reused until it ticks.
        # The second is told by its fields: now.replace(microsecond=0) costs five times as much.
        last = _last_now
        second = (now.toordinal(), now.hour, now.minute, now.second, now.tzinfo, now.fold)
        if last is not None and last[0] == second and last[1] is zone:
            return last[2]
        text = _start_time(now.replace(microsecond=0), zone=zone, now=now)
        _last_now = (second, zone, text)
        return text
    moment = value
    try:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return moment.astimezone(zone).isoformat(timespec="seconds")
    except (OverflowError, ValueError):
        raise InvalidInput(
            "the start time is out of range; send it as ISO 8601, e.g. 2024-05-14T09:30:00+02:00",
            field="start_time",
        ) from None


def prepare_call(call: CallInput, *, rules: TenantRules, now: datetime, caller: PhoneNumber | None = None) -> Call:
    """Normalise a call's numbers with the tenant's country and build the call properties for scripts.

    ``caller``, when given, is the caller's number already normalised (``core.lookup`` knows it when the
    number came as an E.164 the cache holds); otherwise ``call.caller_number`` is normalised here.
    Raises :class:`PhoneNumberError` (``field="caller_number"`` or ``"ddi_number"``) for a number that does
    not parse, and :class:`InvalidInput` for an impossible start time.
    """
    if caller is None:
        try:
            caller = normalize(call.caller_number, country=rules.country)
        except PhoneNumberError as exc:
            raise PhoneNumberError(exc.message, field="caller_number") from None
    ddi_text = _text(call.ddi_number)
    ddi: PhoneNumber | None = None
    if ddi_text:
        try:
            ddi = normalize(ddi_text, country=rules.country)
        except PhoneNumberError as exc:
            raise PhoneNumberError(exc.message, field="ddi_number") from None
    properties = {
        "Caller name": _text(call.caller_name),
        "Caller number": caller.national,
        "Device name": _text(call.device_name),
        "Device number": _device_number(call.device_number, country=rules.country),
        "Ddi name": _text(call.ddi_name),
        "Ddi number": ddi.national if ddi else "",
        "Start time": _start_time(call.start_time, zone=rules.zone, now=now),
    }
    key = None if ddi is None else (ddi.e164 if ddi.e164 is not None else "#" + ddi.national)
    return Call(caller=caller, ddi_key=key, properties=properties)


# --- partial matching ----------------------------------------------------------------------------------------


def split_e164(e164: str) -> tuple[str, str] | None:
    """(country calling code, national significant number) of an E.164 string; None if it is not one.

    Calling codes are prefix-free, so the first 1-3 digits that are a known code are it; the rest is the
    national significant number (what ``phonenumbers`` would give, Italian leading zero included).
    """
    digits = e164[1:]
    if not e164.startswith("+") or not digits.isascii() or not digits.isdigit():
        return None
    return split_calling_code(digits)


def partial_prefix(caller: PhoneNumber, *, digits: int) -> str | None:
    """The suffix-index prefix (the caller's last ``digits`` digits, reversed), or None if not eligible.

    Internal numbers and numbers whose national significant number is shorter than ``digits`` (never taken
    below :data:`MIN_PARTIAL_DIGITS`) never match partially.
    """
    wanted = max(digits, MIN_PARTIAL_DIGITS)
    parts = None if caller.e164 is None else split_e164(caller.e164)
    if parts is None or len(parts[1]) < wanted:
        return None
    return parts[1][: -wanted - 1 : -1]


def same_national_number(caller_e164: str, cached_e164: str) -> bool:
    """Whether two E.164 numbers are one national number under two country codes (rule 3 of the docstring)."""
    caller, cached = split_e164(caller_e164), split_e164(cached_e164)
    if caller is None or cached is None or caller[0] == cached[0]:
        return False
    shorter, longer = sorted((caller[1], cached[1]), key=len)
    return longer.endswith(shorter)


def choose_partial(
    caller: PhoneNumber,
    candidates: Sequence[Candidate],
    *,
    enabled: Iterable[int],
    limit: int = PARTIAL_CANDIDATE_LIMIT,
) -> Candidate | None:
    """The one record a partial match may name, or None (see the module docstring for the rules).

    ``candidates`` are the cached numbers, of all the tenant's integrations, that end with the caller's last
    digits; ``enabled`` the ids of the enabled integrations. ``limit`` rows or more means too many to judge.
    """
    if caller.e164 is None or not candidates or len(candidates) >= limit:
        return None
    records = {(c.integration_id, c.record_pk) for c in candidates}
    if len(records) != 1:
        return None
    if candidates[0].integration_id not in set(enabled):
        return None
    fitting = [c for c in candidates if same_national_number(caller.e164, c.e164)]
    return fitting[0] if fitting else None


# --- the result ----------------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _text_fields(fields: Mapping[str, Any]) -> Mapping[str, str]:
    """A record's fields with text values (``None`` empty, numbers and the like as text)."""
    for key, value in fields.items():
        if key.__class__ is not str or value.__class__ is not str:
            return {str(key): _value(value) for key, value in fields.items()}
    return fields  # all text already (the usual record): no copy


def notification(rule: IntegrationRule, fields: Mapping[str, Any]) -> list[dict[str, str]]:
    """The integration's chosen fields, in order, with their labels and the record's values."""
    folded: dict[str, Any] | None = None
    lines = []
    for name, label in rule.notification:
        if name in fields:
            value = fields[name]
        else:
            if folded is None:
                folded = {str(key).casefold(): item for key, item in fields.items()}
            value = folded.get(name.casefold())
        lines.append({"label": label, "value": _value(value)})
    return lines


def _render(
    scripts: Iterable[ScriptRule], call: Call, record: Mapping[str, Any] | None, *, matched: bool
) -> list[dict[str, Any]]:
    rendered = []
    for script in scripts:
        if script.offered(matched=matched, call_ddi=call.ddi_key):
            url = render(script.template, call=call.properties, record=record)
            if url is not None:
                rendered.append({"name": script.name, "url": url, "auto_open": script.auto_open})
    return rendered


def _match_body(rules: TenantRules, match: Match, call: Call) -> dict[str, Any]:
    rule = rules.integrations[match.candidate.integration_id]
    fields = match.candidate.fields
    return {
        "integration": {"id": rule.id, "name": rule.name, "preset": rule.preset},
        "record_id": match.candidate.record_id,
        "match": match.kind.value,
        "fields": _text_fields(fields),
        "notification": notification(rule, fields),
        "scripts": _render(rule.scripts, call, fields, matched=True),
    }


def number_body(number: PhoneNumber) -> dict[str, Any]:
    """The ``number`` part of a result: what came in and how it was understood."""
    return {"input": number.raw, "e164": number.e164, "national": number.national, "internal": number.internal}


def build_result(rules: TenantRules, call: Call, matches: Sequence[Match], *, truncated: bool) -> dict[str, Any]:
    """The answer to "who is calling?" as plain JSON-ready data (the shape the HTTP shim documents)."""
    matched_integrations = {m.candidate.integration_id for m in matches}
    single = matches[0].candidate.fields if len(matches) == 1 else None
    top = _render(rules.scripts, call, single, matched=bool(matches))
    for rule in rules.integrations.values():
        if rule.enabled and rule.id not in matched_integrations:
            top.extend(_render(rule.scripts, call, None, matched=False))
    return {
        "number": number_body(call.caller),
        "matches": [_match_body(rules, match, call) for match in matches],
        "scripts": top,
        "truncated": truncated,
    }
