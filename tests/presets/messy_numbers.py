"""A data set of people with messy phone numbers, and the checks every preset test makes with it.

The people have names with umlauts and accents, several numbers per field in many formats (national,
international with ``+`` or ``00``, ``(0)``, dots, slashes, an extension), foreign numbers, and garbage
("n/a", "-", "keine"). Every number is unique in the set, so each one must find exactly one record.
A preset test turns each :class:`Person` into the vendor's raw record shape and serves the records from its
emulated CRM. Then either it fetches them through the preset and hands the result to :func:`check_lookups`
(the connector alone: fast, exhaustive, no database), or :func:`sync_and_look_up` connects the preset as the
wizard does, runs the real sync into the cache of a German tenant and asks the real lookup for every number.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from core.connector import Connector, FetchedRecord, PageProgress
from core.lookup import Lookups
from core.matching import CallInput
from core.models import SyncOutcome, SyncRunPublic
from core.numbers import national_form, normalize, split_numbers
from core.presets import get_preset
from core.runtime import Runtime
from core.services.audit import Actor
from core.services.setup import add_integration, connect_integration
from core.services.sync import sync_now
from tests.factories import make_tenant

COUNTRY = "DE"
ADMIN = Actor(name="preset-test")
FIRST_NAMES = ("Jörg", "Zoë", "François", "Łukasz", "Søren", "José", "Ümit", "Renée", "Björn", "Chloé", "Dörte",
               "Štěpán", "Íñigo", "Ærøskøbing", "Małgorzata", "Gül")  # fmt: skip
LAST_NAMES = ("Müller", "Groß", "Lefèvre", "Øster", "Nuñez", "Šimek", "Köhler", "Dvořák", "Łęcki", "Åberg",
              "Öztürk", "Straße", "Ferreira-Gonçalves")  # fmt: skip
COMPANIES = ("Bäckerei Groß GmbH", "Crème & Brûlée SARL", "Ödeshög AB", "Société Générale", "Müller & Söhne KG",
             "Zürcher Käserei AG", "Łódź Handel Sp. z o.o.")  # fmt: skip
GARBAGE = ("n/a", "-", "keine", "tbd", "unknown", "???")


@dataclass(frozen=True)
class Phone:
    """One phone field as the CRM holds it: its kind (work, mobile, home, other, fax), raw text, numbers in it."""

    kind: str
    raw: str
    numbers: tuple[str, ...]  # E.164 numbers the raw text holds
    garbage: tuple[str, ...] = ()


@dataclass(frozen=True)
class Person:
    """A person (or company) of the data set."""

    index: int
    first: str
    last: str
    company: str
    email: str
    title: str
    phones: tuple[Phone, ...]

    @property
    def name(self) -> str:
        """First and last name."""
        return f"{self.first} {self.last}"

    def phone(self, kind: str) -> str | None:
        """The raw text of the phone field of ``kind``, if the person has one."""
        return next((p.raw for p in self.phones if p.kind == kind), None)

    def numbers(self, kinds: Iterable[str]) -> set[str]:
        """E.164 numbers held in the fields of these kinds."""
        wanted = set(kinds)
        return {n for p in self.phones if p.kind in wanted for n in p.numbers}

    def garbage(self, kinds: Iterable[str]) -> set[str]:
        """Garbage pieces held in the fields of these kinds."""
        wanted = set(kinds)
        return {g for p in self.phones if p.kind in wanted for g in p.garbage}


def _formats(national: str, rng: random.Random) -> str:
    """``national`` (German, e.g. ``030 20000123``) written one of the many ways people write numbers."""
    area, _, rest = national.partition(" ")
    digits = area[1:] + rest
    styles = [
        f"{area} {rest}",
        f"+49 {area[1:]} {rest}",
        f"+49 (0){area[1:]} {rest}",
        f"0049-{area[1:]}-{rest}",
        f"({area}) {rest[:3]} {rest[3:]}",
        f"{area}/{rest}",
        f"+49{area[1:]}.{rest[:4]}.{rest[4:]}",
        f"+49{digits}",
        f"{area}-{rest} x {rng.randint(10, 99)}",
        f"tel:+49-{area[1:]}-{rest}",
    ]
    return rng.choice(styles)


def _e164(text: str) -> str:
    number = normalize(text, country=COUNTRY)
    if number.e164 is None:
        raise AssertionError(f"the data set holds an internal number: {text!r}")
    return number.e164


def make_people(count: int, *, seed: int = 5, companies: bool = False) -> list[Person]:
    """``count`` people (or companies) with unique, valid, messily written numbers; deterministic per seed."""
    rng = random.Random(seed)
    people: list[Person] = []
    for i in range(count):
        serial = 20_000_000 + seed * 100_000 + i * 7
        work_national = f"030 {serial}"
        mobile_national = f"0151 {serial}"
        phones: list[Phone] = []
        work_raw = _formats(work_national, rng)
        work = [_e164(work_national)]
        if i % 5 == 1:  # a second number in the same field
            extra = f"089 {serial // 10}"
            work_raw = f"{work_raw}{rng.choice([', ', ' / ', '; ', chr(10)])}{_formats(extra, rng)}"
            work.append(_e164(extra))
        phones.append(Phone("work", work_raw, tuple(work)))
        if not companies and i % 3 != 2:
            phones.append(Phone("mobile", _formats(mobile_national, rng), (_e164(mobile_national),)))
        if i % 7 == 3:
            unique = seed * 1000 + i
            foreign = rng.choice(
                [f"+43 1 {5_000_000 + unique}", f"+41 44 {6_000_000 + unique:07d}", f"+33 1 42 {100_000 + unique}"]
            )
            phones.append(Phone("home", foreign, (_e164(foreign),)))
        if i % 4 == 0:
            junk = rng.choice(GARBAGE)
            phones.append(Phone("other", junk, (), (junk,)))
        if i % 11 == 5:
            fax_national = f"040 {serial}"
            phones.append(Phone("fax", _formats(fax_national, rng), (_e164(fax_national),)))
        company = COMPANIES[i % len(COMPANIES)]
        first = FIRST_NAMES[i % len(FIRST_NAMES)]
        last = f"{LAST_NAMES[i % len(LAST_NAMES)]}{'' if i < len(LAST_NAMES) else f' {i}'}"
        if companies:
            first, last = "", f"{company} {i}"
        people.append(
            Person(i, first, last, company, f"{first or 'info'}.{i}@example.de".lower(), "Geschäftsführerin",
                   tuple(phones))
        )  # fmt: skip
    return people


@dataclass
class Catalogue:
    """What a fetch gave: the records by id and an index from E.164 to the records holding that number."""

    records: dict[str, FetchedRecord]
    index: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    unparsed: list[str] = field(default_factory=list)

    def lookup(self, number: str) -> set[str]:
        """The ids of the records a caller with ``number`` (as dialled, any format) matches."""
        e164 = normalize(number, country=COUNTRY).e164
        return set(self.index.get(e164 or "", set()))


def catalogue(records: Sequence[FetchedRecord]) -> Catalogue:
    """Index fetched records by every number in their phone fields, as the cache does."""
    ids = [r.record_id for r in records]
    if len(ids) != len(set(ids)):
        raise AssertionError("a record id was fetched twice")
    result = Catalogue({r.record_id: r for r in records})
    for record in records:
        for _label, raw in record.phones:
            numbers, unparsed = split_numbers(raw, country=COUNTRY)
            result.unparsed.extend(unparsed)
            for number in numbers:
                if number.e164:
                    result.index[number.e164].add(record.record_id)
    return result


def check_lookups(
    found: Catalogue, expected: dict[str, Person], kinds: Iterable[str] | Mapping[str, Iterable[str]]
) -> int:
    """Every number of every person finds exactly that person's record; garbage finds nothing.

    ``expected`` maps record ids to people; ``kinds`` are the phone kinds the preset fetches, for all records
    or per object type (``{"persons": ("work", ...), ...}``). Returns how many numbers were checked.
    """
    kinds_of = _kinds_for(kinds)
    checked = 0
    all_numbers: set[str] = set()
    for record_id, person in expected.items():
        assert record_id in found.records, f"{record_id} ({person.name}) was not fetched"
        numbers = person.numbers(kinds_of(record_id))
        all_numbers |= numbers
        for number in sorted(numbers):
            assert found.lookup(number) == {record_id}, f"{number} of {person.name} found {found.lookup(number)}"
            checked += 1
    assert set(found.index) == all_numbers, "the records hold numbers the data set does not"
    garbage = [g for record_id, person in expected.items() for g in person.garbage(kinds_of(record_id))]
    assert sorted(found.unparsed) == sorted(garbage), "only the data set's garbage is left unparsed"
    assert found.lookup("+49 30 99999999") == set()
    return checked


def _kinds_for(kinds: Iterable[str] | Mapping[str, Iterable[str]]) -> Callable[[str], tuple[str, ...]]:
    def kinds_of(record_id: str) -> tuple[str, ...]:
        chosen = kinds[record_id.partition(":")[0]] if isinstance(kinds, Mapping) else kinds
        return tuple(chosen)

    return kinds_of


@dataclass
class Synced:
    """What :func:`sync_and_look_up` saw: the first sync's run and one lookup answer per record."""

    run: SyncRunPublic
    answers: dict[str, dict[str, Any]]  # record id -> the match (fields, notification, scripts) found for it


async def sync_and_look_up(
    runtime: Runtime,
    session: Session,
    *,
    preset: str,
    values: Mapping[str, str],
    expected: dict[str, Person],
    kinds: Iterable[str] | Mapping[str, Iterable[str]],
    tokens: Mapping[str, str] | None = None,
) -> Synced:
    """Connect ``preset`` for a new German tenant, sync it for real, and look every expected number up.

    Without ``tokens`` it goes the wizard's way (:func:`connect_integration`: check, connection test, store,
    first sync); with OAuth tokens from an earlier sign-in it stores the integration with them and syncs.
    Each number is looked up as the phone system would send it, alternately in E.164 and in national form,
    and must find its own record and nothing else, as an exact match; a number not in the CRM finds nobody.
    """
    tenant = make_tenant(session, country=COUNTRY, timezone="Europe/Berlin")
    session.commit()
    if tokens is None:
        connected = await connect_integration(runtime=runtime, actor=ADMIN, tenant_slug=tenant.slug,
                                              preset_key=preset, values=values, node="preset-test")  # fmt: skip
        run = connected.run
    else:
        integration = add_integration(session=session, actor=ADMIN, tenant=tenant, box=runtime.box,
                                      preset=get_preset(preset), values=values, tokens=tokens)  # fmt: skip
        session.commit()
        run = await sync_now(runtime=runtime, integration_id=integration.id or 0, node="preset-test")
    assert run is not None and run.outcome == SyncOutcome.SUCCESS, run and run.error
    kinds_of = _kinds_for(kinds)
    assert run.records == len(expected), (run.records, len(expected))
    assert run.numbers == sum(len(p.numbers(kinds_of(r))) for r, p in expected.items()), run.numbers
    assert run.unparsed == sum(len(p.garbage(kinds_of(r))) for r, p in expected.items()), run.unparsed_examples
    answers: dict[str, dict[str, Any]] = {}
    lookups = Lookups(runtime.engine)
    try:
        for record_id, person in expected.items():
            for i, number in enumerate(sorted(person.numbers(kinds_of(record_id)))):
                dialled = number if i % 2 else national_form(number, country=COUNTRY)
                body = lookups.by_tenant(tenant.slug, CallInput(caller_number=dialled)).body
                matches = body["matches"]
                found = [(m["record_id"], m["match"]) for m in matches]
                assert found == [(record_id, "exact")], f"{dialled} of {person.name} found {found}"
                answers[record_id] = matches[0]
        nobody = lookups.by_tenant(tenant.slug, CallInput(caller_number="+49 30 99999999")).body
        assert nobody["matches"] == []
    finally:
        lookups.close()
    return Synced(run, answers)


async def fetch_all(connector: Connector) -> tuple[list[FetchedRecord], list[PageProgress]]:
    """Every record a connector fetches, with its progress reports; the connector is closed afterwards."""
    records: list[FetchedRecord] = []
    progress: list[PageProgress] = []
    try:
        async for page in connector.fetch(progress=progress.append):
            records.extend(page)
    finally:
        await connector.aclose()
    return records, progress


class NoSleep:
    """Stands in for ``asyncio.sleep``: remembers the delays asked for and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
