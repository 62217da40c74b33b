"""Caller matching: exact and partial matches, ordering, suppression, scripts, notification (both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

import core.lookup_queries
import core.matching
from core.db import make_engine
from core.errors import InvalidInput, NotFound, PhoneNumberError
from core.lookup import MAX_MATCHES, Lookups, LookupUnavailable
from core.lookup_queries import WARM_UP_SQL
from core.matching import (
    CallInput,
    Candidate,
    ScriptRule,
    choose_partial,
    partial_prefix,
    same_national_number,
    split_e164,
)
from core.models import ApiToken, CachedNumber, Integration, Script, ScriptWhen, Tenant
from core.numbers import normalize
from core.runtime import Runtime
from core.services import integrations, tokens
from core.services.audit import OPERATOR
from core.services.scripts import ScriptDraft, create_script, delete_script, update_script
from tests.factories import make_cached_records, make_integration, make_tenant

MANUAL_MAILTO = (
    "mailto://?Subject=Callback%20request&Body=Dear%20colleague%2C%0A%0APlease%20call%20to%3A%0A%0A"
    "Name%3A%20%24%28DisplayName%29%0AAccount%20number%3A%20%24%28Identifier%29%0A"
    "Phone%3A%20%23%28Callernumber%29%0ADirect%20CRM%20link%20%24%28PopUpUri%29%0A%0A"
    "Kind%20regards%2C%0A%0AName%20of%20sender%0A%0A"
)
JANSEN = {"DisplayName": "Jan Jansen", "Identifier": "4711", "PopUpUri": "https://crm.example.com/c/4711"}


@pytest.fixture
def lookups(engine: Engine) -> Iterator[Lookups]:
    """The lookup service over the test database."""
    service = Lookups(engine)
    try:
        yield service
    finally:
        service.close()


def look(lookups: Lookups, tenant: Tenant, number: str, **call: Any) -> dict[str, Any]:
    """The lookup's answer for ``number`` in ``tenant``."""
    return lookups.by_tenant(tenant.slug, CallInput(caller_number=number, **call)).body


def record_ids(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(record id, exact/partial) of each match, in order."""
    return [(m["record_id"], m["match"]) for m in body["matches"]]


def crm(session: Session, runtime: Runtime, tenant: Tenant, name: str = "CRM", **kwargs: Any) -> Integration:
    """An integration, committed."""
    integration = make_integration(session, tenant, runtime.box, name=name, **kwargs)
    session.commit()
    return integration


def script(session: Session, tenant: Tenant, name: str, template: str, **kwargs: Any) -> None:
    """A script, committed."""
    create_script(session=session, actor=OPERATOR, tenant=tenant, draft=ScriptDraft(name, template, **kwargs))
    session.commit()


@pytest.fixture
def acme(session: Session) -> Tenant:
    """A Dutch tenant."""
    tenant = make_tenant(session, "acme")
    session.commit()
    return tenant


# --- exact matches ------------------------------------------------------------------------------------------


def test_exact_match_on_main_and_secondary_numbers(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    hubspot = crm(session, runtime, acme, "HubSpot")
    make_cached_records(
        session, hubspot, [("c1", JANSEN, ["020 123 4567", ("06 12345678", "Mobile"), ("+32 2 555 12 12", "Home")])]
    )
    for number in ("+31201234567", "0201234567", "0031 20 123 4567", "06-12345678", "+3225551212"):
        body = look(lookups, acme, number)
        assert record_ids(body) == [("c1", "exact")], number
        assert body["matches"][0]["integration"] == {"id": hubspot.id, "name": "HubSpot", "preset": "hubspot"}
        assert body["matches"][0]["fields"] == JANSEN
    body = look(lookups, acme, "06 12345678")
    assert body["number"] == {
        "input": "06 12345678",
        "e164": "+31612345678",
        "national": "0612345678",
        "internal": False,
    }


def test_an_e164_caller_the_cache_holds_is_answered_without_parsing_and_the_same(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_cached_records(session, crm(session, runtime, acme), [("c1", JANSEN, ["020 123 4567", "+32 2 555 12 12"])])
    script(session, acme, "Call back", "tel:#(Caller number)", integration_id=None, when="match")
    parsed: list[str] = []
    real_normalize = core.matching.normalize
    monkeypatch.setattr(core.matching, "normalize", lambda raw, **kw: parsed.append(raw) or real_normalize(raw, **kw))
    shortcut = {number: look(lookups, acme, number) for number in ("+31201234567", " +3225551212 ")}
    assert parsed == []  # both were found in the cache as written
    assert shortcut[" +3225551212 "]["number"] == {
        "input": " +3225551212 ",
        "e164": "+3225551212",
        "national": "003225551212",  # a Belgian number as dialled from the Netherlands
        "internal": False,
    }
    assert shortcut[" +3225551212 "]["scripts"][0]["url"] == "tel:003225551212"
    # Rows cached before national forms were stored: the lookup parses, and answers exactly the same.
    session.execute(sa.update(CachedNumber).values(national=""))
    session.commit()
    for number, body in shortcut.items():
        assert look(lookups, acme, number) == body
    assert parsed == ["+31201234567", " +3225551212 "]


def test_an_e164_caller_the_cache_lacks_is_parsed_and_refused_if_invalid(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    make_cached_records(session, crm(session, runtime, acme), [("c1", JANSEN, ["020 123 4567"])])
    assert look(lookups, acme, "+31207654321")["matches"] == []
    with pytest.raises(PhoneNumberError) as info:
        look(lookups, acme, "+3120123456789")  # E.164-shaped, but no such number
    assert info.value.field == "caller_number"


def test_no_match_is_an_answer_not_an_error(session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups) -> None:
    make_cached_records(session, crm(session, runtime, acme), [("c1", JANSEN, ["020 123 4567"])])
    body = look(lookups, acme, "+31 20 765 4321")
    assert body["matches"] == [] and body["truncated"] is False
    assert body["number"]["e164"] == "+31207654321"


def test_unparseable_number_is_refused_with_the_field(acme: Tenant, lookups: Lookups) -> None:
    with pytest.raises(PhoneNumberError) as info:
        look(lookups, acme, "call me maybe")
    assert info.value.field == "caller_number"


def test_unknown_tenant(lookups: Lookups) -> None:
    with pytest.raises(NotFound):
        lookups.by_tenant("nosuch", CallInput(caller_number="+31201234567"))


def test_contacts_sharing_a_number_all_match_in_integration_then_record_order(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    first = crm(session, runtime, acme, "First")
    second = crm(session, runtime, acme, "Second")
    make_cached_records(session, second, [("s1", {"DisplayName": "Reception"}, ["020 555 0000"])])
    make_cached_records(
        session,
        first,
        [
            ("f1", {"DisplayName": "Anna"}, ["020 555 0000"]),
            ("f2", {"DisplayName": "Bram"}, ["06 11111111"]),
            ("f3", {"DisplayName": "Cees"}, ["+31 20 555 0000", "0205550000"]),
        ],
    )
    body = look(lookups, acme, "0205550000")
    assert record_ids(body) == [("f1", "exact"), ("f3", "exact"), ("s1", "exact")]
    assert [m["integration"]["name"] for m in body["matches"]] == ["First", "First", "Second"]


def test_a_number_shared_by_very_many_records_is_truncated(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    records = [(f"r{i}", {"DisplayName": f"Person {i}"}, ["020 555 0000"]) for i in range(MAX_MATCHES + 5)]
    make_cached_records(session, crm(session, runtime, acme), records)
    body = look(lookups, acme, "0205550000")
    assert len(body["matches"]) == MAX_MATCHES and body["truncated"] is True


def test_internal_numbers_are_never_matched(session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups) -> None:
    make_cached_records(session, crm(session, runtime, acme), [("c1", JANSEN, ["+31 20 000 0201"])])
    body = look(lookups, acme, "201")
    assert body["matches"] == []
    assert body["number"] == {"input": "201", "e164": None, "national": "201", "internal": True}


def test_disabled_integrations_are_suppressed_and_restored(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    hubspot = crm(session, runtime, acme, "HubSpot")
    other = crm(session, runtime, acme, "Other")
    make_cached_records(session, hubspot, [("h1", JANSEN, ["020 123 4567"])])
    make_cached_records(session, other, [("o1", JANSEN, ["020 123 4567"])])
    assert record_ids(look(lookups, acme, "0201234567")) == [("h1", "exact"), ("o1", "exact")]
    integrations.set_enabled(session=session, actor=OPERATOR, integration=hubspot, enabled=False)
    session.commit()
    assert record_ids(look(lookups, acme, "0201234567")) == [("o1", "exact")]
    integrations.set_enabled(session=session, actor=OPERATOR, integration=hubspot, enabled=True)
    session.commit()
    assert record_ids(look(lookups, acme, "0201234567")) == [("h1", "exact"), ("o1", "exact")]


def test_a_new_cache_generation_is_used_as_soon_as_it_is_committed(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    hubspot = crm(session, runtime, acme)
    make_cached_records(session, hubspot, [("old", JANSEN, ["020 123 4567"])])
    assert record_ids(look(lookups, acme, "0201234567")) == [("old", "exact")]
    make_cached_records(session, hubspot, [("new", JANSEN, ["06 12345678"])])
    assert look(lookups, acme, "0201234567")["matches"] == []
    assert record_ids(look(lookups, acme, "0612345678")) == [("new", "exact")]


def test_an_integration_never_synced_has_no_matches(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    crm(session, runtime, acme)
    assert look(lookups, acme, "0201234567")["matches"] == []


def test_tenants_never_see_each_others_records(session: Session, runtime: Runtime, lookups: Lookups) -> None:
    acme, globex = make_tenant(session, "acme"), make_tenant(session, "globex")
    session.commit()
    make_cached_records(session, crm(session, runtime, acme), [("acme-1", JANSEN, ["020 123 4567"])])
    make_cached_records(session, crm(session, runtime, globex), [("globex-1", JANSEN, ["020 123 4567"])])
    assert record_ids(look(lookups, acme, "0201234567")) == [("acme-1", "exact")]
    assert record_ids(look(lookups, globex, "0201234567")) == [("globex-1", "exact")]


# --- partial matches ----------------------------------------------------------------------------------------


def test_partial_match_finds_a_foreign_number_stored_without_its_country_code(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    # A Berlin contact typed as "030 1234567" in a Dutch CRM is cached as Utrecht, +31 30 123 4567.
    make_cached_records(session, crm(session, runtime, acme), [("berlin", JANSEN, ["030 1234567"])])
    body = look(lookups, acme, "+49 30 1234567")
    assert record_ids(body) == [("berlin", "partial")]
    assert body["number"]["e164"] == "+49301234567"


def test_partial_match_is_refused_when_two_records_end_with_the_digits(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    make_cached_records(
        session,
        crm(session, runtime, acme),
        [("utrecht", JANSEN, ["030 1234567"]), ("rotterdam", JANSEN, ["010 1234567"])],
    )
    assert look(lookups, acme, "+49 30 1234567")["matches"] == []


def test_partial_match_counts_records_across_integrations_even_disabled_ones(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    first, second = crm(session, runtime, acme, "First"), crm(session, runtime, acme, "Second")
    make_cached_records(session, first, [("a", JANSEN, ["030 1234567"])])
    make_cached_records(session, second, [("b", JANSEN, ["010 1234567"])])
    assert look(lookups, acme, "+49 30 1234567")["matches"] == []
    integrations.set_enabled(session=session, actor=OPERATOR, integration=second, enabled=False)
    session.commit()
    assert look(lookups, acme, "+49 30 1234567")["matches"] == []  # still two records end with the digits
    integrations.set_enabled(session=session, actor=OPERATOR, integration=first, enabled=False)
    integrations.set_enabled(session=session, actor=OPERATOR, integration=second, enabled=True)
    session.commit()
    assert look(lookups, acme, "+49 30 1234567")["matches"] == []


def test_partial_match_never_links_two_numbers_of_one_country(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    # 010 1234567 (Rotterdam) and 020 1234567 (Amsterdam) share their last 8 digits: different lines.
    make_cached_records(session, crm(session, runtime, acme), [("rotterdam", JANSEN, ["010 1234567"])])
    assert look(lookups, acme, "020 1234567")["matches"] == []


def test_partial_match_never_links_digits_that_agree_only_in_part(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    # A Dutch mobile 06 12345678 and a Berlin 030 12345678 share 8 digits, but not a whole national number.
    make_cached_records(session, crm(session, runtime, acme), [("mobile", JANSEN, ["06 12345678"])])
    assert look(lookups, acme, "+49 30 12345678")["matches"] == []


def test_partial_match_is_suppressed_for_a_disabled_integration(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    hubspot = crm(session, runtime, acme)
    make_cached_records(session, hubspot, [("berlin", JANSEN, ["030 1234567"])])
    integrations.set_enabled(session=session, actor=OPERATOR, integration=hubspot, enabled=False)
    session.commit()
    assert look(lookups, acme, "+49 30 1234567")["matches"] == []


def test_partial_match_needs_as_many_digits_as_the_tenant_asks(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    make_cached_records(session, crm(session, runtime, acme), [("berlin", JANSEN, ["030 1234567"])])
    acme.partial_match_digits = 10  # longer than the 9-digit national number
    session.add(acme)
    session.commit()
    assert look(lookups, acme, "+49 30 1234567")["matches"] == []
    acme.partial_match_digits = 4  # below the floor of 8: 8 it is, so it matches again
    session.add(acme)
    session.commit()
    assert record_ids(look(lookups, acme, "+49 30 1234567")) == [("berlin", "partial")]


def test_exact_matches_win_over_partial_ones(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    hubspot = crm(session, runtime, acme)
    make_cached_records(
        session, hubspot, [("utrecht", JANSEN, ["030 1234567"]), ("berlin", JANSEN, ["+49 30 1234567"])]
    )
    assert record_ids(look(lookups, acme, "+49 30 1234567")) == [("berlin", "exact")]


@pytest.mark.parametrize(
    ("caller", "cached", "same"),
    [
        ("+49301234567", "+31301234567", True),  # same national number, other country code
        ("+31301234567", "+49301234567", True),
        ("+31201234567", "+31101234567", False),  # one country: two lines
        ("+493012345678", "+31612345678", False),  # 8 digits agree, national numbers differ
        ("+4930123456789", "+31301234567", False),
        ("+390612345678", "+31612345678", True),  # Rome 06 1234 5678 typed without +39: Italy keeps the 0
        ("+49301234567", "+49301234567", False),  # identical: that is an exact match, not a partial one
    ],
)
def test_same_national_number(caller: str, cached: str, same: bool) -> None:
    assert same_national_number(caller, cached) is same


def test_split_e164_uses_the_calling_code() -> None:
    assert split_e164("+390612345678") == ("39", "0612345678")
    assert split_e164("+12025550123") == ("1", "2025550123")
    assert split_e164("+80012345678") == ("800", "12345678")
    assert split_e164("0201234567") is None


def test_partial_prefix_is_the_reversed_tail_and_needs_enough_digits() -> None:
    assert partial_prefix(normalize("+31201234567", country="NL"), digits=8) == "76543210"
    assert partial_prefix(normalize("+31201234567", country="NL"), digits=9) == "765432102"
    assert partial_prefix(normalize("+31201234567", country="NL"), digits=10) is None
    assert partial_prefix(normalize("+31201234567", country="NL"), digits=3) == "76543210"
    assert partial_prefix(normalize("201", country="NL"), digits=8) is None


def test_choose_partial_refuses_too_many_candidates() -> None:
    caller = normalize("+49301234567", country="NL")
    one = Candidate(1, 10, "r", {}, "+31301234567")
    assert choose_partial(caller, [one], enabled=[1]) == one
    assert choose_partial(caller, [one] * 3, enabled=[1], limit=3) is None
    assert choose_partial(caller, [one], enabled=[2]) is None
    assert choose_partial(caller, [one, Candidate(1, 11, "s", {}, "+44301234567")], enabled=[1]) is None


# --- scripts and notification -------------------------------------------------------------------------------


def test_notification_fields_in_order_with_labels(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    notification = [
        {"field": "Company", "label": "Company"},
        {"field": "DisplayName", "label": "Name"},
        {"field": "Missing", "label": "Account manager"},
    ]
    hubspot = crm(session, runtime, acme, notification=notification)
    make_cached_records(session, hubspot, [("c1", {**JANSEN, "Company": "Jansen BV"}, ["020 123 4567"])])
    body = look(lookups, acme, "0201234567")
    assert body["matches"][0]["notification"] == [
        {"label": "Company", "value": "Jansen BV"},
        {"label": "Name", "value": "Jan Jansen"},
        {"label": "Account manager", "value": ""},
    ]
    integrations.update_integration(
        session=session,
        actor=OPERATOR,
        integration=hubspot,
        box=runtime.box,
        expected_version=hubspot.version,
        notification=[{"field": "DisplayName", "label": "Caller"}],
    )
    session.commit()
    assert look(lookups, acme, "0201234567")["matches"][0]["notification"] == [
        {"label": "Caller", "value": "Jan Jansen"}
    ]


def scripts_of(body: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """Script names per match, and the top-level script names."""
    return [[s["name"] for s in m["scripts"]] for m in body["matches"]], [s["name"] for s in body["scripts"]]


def test_when_decides_which_scripts_go_with_a_call(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    hubspot = crm(session, runtime, acme, "HubSpot")
    other = crm(session, runtime, acme, "Other")
    make_cached_records(session, hubspot, [("c1", JANSEN, ["020 123 4567"]), ("c2", JANSEN, ["06 12345678"])])
    make_cached_records(session, other, [("o1", JANSEN, ["06 12345678"])])
    script(session, acme, "Pop", "$(PopUpUri)", integration_id=hubspot.id)
    script(
        session,
        acme,
        "Add contact",
        "https://crm.example.com/new?phone=#(Caller number)",
        when="nomatch",
        integration_id=hubspot.id,
    )
    script(
        session,
        acme,
        "Log call",
        "https://crm.example.com/log?phone=#(Caller number)",
        when="always",
        integration_id=hubspot.id,
    )
    script(session, acme, "Other pop", "$(PopUpUri)", integration_id=other.id)
    script(session, acme, "Search", "https://www.google.nl/search?q=#(Caller number)", when="always")
    script(session, acme, "Unknown caller", "https://intranet.example.com/?n=#(Caller number)", when="nomatch")
    script(session, acme, "Known caller", "https://intranet.example.com/?k=$(DisplayName)", when="match")

    both = look(lookups, acme, "0612345678")
    assert scripts_of(both) == ([["Pop", "Log call"], ["Other pop"]], ["Search", "Known caller"])
    only_hubspot = look(lookups, acme, "0201234567")
    assert scripts_of(only_hubspot) == ([["Pop", "Log call"]], ["Search", "Known caller"])
    assert only_hubspot["scripts"][1]["url"] == "https://intranet.example.com/?k=Jan%20Jansen"  # the one match's record
    assert both["scripts"][1]["url"] == "https://intranet.example.com/?k="  # two matches: no record to pick
    nobody = look(lookups, acme, "0207654321")
    assert scripts_of(nobody) == ([], ["Search", "Unknown caller", "Add contact", "Log call"])
    assert nobody["scripts"][2]["url"] == "https://crm.example.com/new?phone=0207654321"


def test_ddi_filter_limits_a_script_to_calls_on_that_number(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    script(
        session,
        acme,
        "Sales",
        "https://sales.example.com/?n=#(Caller number)",
        when="always",
        ddi_filter="020 765 4321",
    )
    script(session, acme, "Reception", "https://desk.example.com/?n=#(Caller number)", when="always", ddi_filter="200")
    script(session, acme, "Everyone", "https://all.example.com/?d=#(Ddi number)", when="always")
    names = lambda body: scripts_of(body)[1]  # noqa: E731
    assert names(look(lookups, acme, "0201234567")) == ["Everyone"]
    assert names(look(lookups, acme, "0201234567", ddi_number="+31207654321")) == ["Sales", "Everyone"]
    assert names(look(lookups, acme, "0201234567", ddi_number="0031 20 7654321")) == ["Sales", "Everyone"]
    assert names(look(lookups, acme, "0201234567", ddi_number="0207654322")) == ["Everyone"]
    assert names(look(lookups, acme, "0201234567", ddi_number="200")) == ["Reception", "Everyone"]
    body = look(lookups, acme, "0201234567", ddi_number="+31 20 765 4321")
    assert body["scripts"][1]["url"] == "https://all.example.com/?d=0207654321"  # national form


def test_a_ddi_that_is_no_number_is_refused(acme: Tenant, lookups: Lookups) -> None:
    with pytest.raises(PhoneNumberError) as info:
        look(lookups, acme, "0201234567", ddi_number="sales line")
    assert info.value.field == "ddi_number"


def test_call_properties_render_in_national_form_and_tenant_time(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    template = (
        "https://x.example.com/?caller=#(Caller number)&name=#(Caller name)&device=#(Device number)"
        "&dname=#(Device name)&ddi=#(Ddi number)&dd=#(Ddi name)&at=#(Start time)"
    )
    script(session, acme, "All", template, when="always")
    call = {
        "caller_name": "Anna de Vries",
        "device_number": "201",
        "device_name": "Sales desk",
        "ddi_number": "+31207654321",
        "ddi_name": "Sales",
        "start_time": datetime(2024, 5, 14, 7, 30, tzinfo=UTC),
    }
    url = look(lookups, acme, "+31 6 12345678", **call)["scripts"][0]["url"]
    query = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
    assert query == {
        "caller": "0612345678",
        "name": "Anna de Vries",
        "device": "201",
        "dname": "Sales desk",
        "ddi": "0207654321",
        "dd": "Sales",
        "at": "2024-05-14T09:30:00+02:00",  # Europe/Amsterdam in summer
    }
    naive = look(lookups, acme, "0612345678", start_time=datetime(2024, 1, 2, 3, 4, 5))
    assert parse_qs(urlsplit(naive["scripts"][0]["url"]).query)["at"] == ["2024-01-02T03:04:05+01:00"]
    now = look(lookups, acme, "0612345678")
    assert parse_qs(urlsplit(now["scripts"][0]["url"]).query)["at"][0].endswith(("+01:00", "+02:00"))


def test_a_start_time_out_of_range_is_refused(acme: Tenant, lookups: Lookups) -> None:
    with pytest.raises(InvalidInput) as info:
        look(lookups, acme, "0612345678", start_time=datetime(9999, 12, 31, 23, 59, tzinfo=UTC))
    assert info.value.field == "start_time"


def test_the_manuals_mailto_example_end_to_end(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    hubspot = crm(session, runtime, acme)
    record = {
        "DisplayName": "Jansen & Zn, B.V.",
        "Identifier": "A-4711",
        "PopUpUri": "https://crm.example.com/c?id=4711&x=1",
    }
    make_cached_records(session, hubspot, [("c1", record, ["020 123 4567"])])
    script(session, acme, "Mail callback", MANUAL_MAILTO, integration_id=hubspot.id)
    (rendered,) = look(lookups, acme, "+31201234567")["matches"][0]["scripts"]
    parts = urlsplit(rendered["url"])
    assert parts.scheme == "mailto"
    query = parse_qs(parts.query)
    assert list(query) == ["Subject", "Body"]  # the record's "&" did not add a parameter
    assert query["Subject"] == ["Callback request"]
    body = query["Body"][0]
    assert "Name: Jansen & Zn, B.V.\n" in body
    assert "Account number: A-4711\n" in body
    assert "Phone: 0201234567\n" in body
    assert "Direct CRM link https://crm.example.com/c?id=4711&x=1\n" in body
    assert unquote(rendered["url"]).count("Kind regards") == 1


def test_unsafe_links_are_left_out(session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups) -> None:
    hubspot = crm(session, runtime, acme)
    make_cached_records(session, hubspot, [("c1", {**JANSEN, "PopUpUri": "javascript:alert(1)"}, ["020 123 4567"])])
    script(session, acme, "Pop", "$(PopUpUri)", integration_id=hubspot.id)
    script(session, acme, "Mail", "mailto:?body=$(DisplayName)", integration_id=hubspot.id)
    assert [s["name"] for s in look(lookups, acme, "0201234567")["matches"][0]["scripts"]] == ["Mail"]


def test_script_changes_show_on_the_next_lookup(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    hubspot = crm(session, runtime, acme)
    make_cached_records(session, hubspot, [("c1", JANSEN, ["020 123 4567"])])
    assert look(lookups, acme, "0201234567")["matches"][0]["scripts"] == []
    script(session, acme, "Pop", "$(PopUpUri)", integration_id=hubspot.id)
    assert [s["url"] for s in look(lookups, acme, "0201234567")["matches"][0]["scripts"]] == [JANSEN["PopUpUri"]]
    (saved,) = session.exec(select(Script)).all()
    update_script(
        session=session,
        actor=OPERATOR,
        tenant=acme,
        script_id=saved.id or 0,
        draft=ScriptDraft("Pop", "https://crm.example.com/id/$(Identifier)", integration_id=hubspot.id),
    )
    session.commit()
    assert [s["url"] for s in look(lookups, acme, "0201234567")["matches"][0]["scripts"]] == [
        "https://crm.example.com/id/4711"
    ]
    delete_script(session=session, actor=OPERATOR, tenant=acme, script_id=saved.id or 0)
    session.commit()
    assert look(lookups, acme, "0201234567")["matches"][0]["scripts"] == []


@pytest.mark.parametrize(
    ("when", "matched", "offered"),
    [
        (ScriptWhen.MATCH, True, True),
        (ScriptWhen.MATCH, False, False),
        (ScriptWhen.NOMATCH, True, False),
        (ScriptWhen.NOMATCH, False, True),
        (ScriptWhen.ALWAYS, True, True),
        (ScriptWhen.ALWAYS, False, True),
    ],
)
def test_script_rule_offered(when: ScriptWhen, matched: bool, offered: bool) -> None:
    rule = ScriptRule(1, "s", "https://x/", when, False)
    assert rule.offered(matched=matched, call_ddi=None) is offered
    filtered = ScriptRule(1, "s", "https://x/", when, False, "+31207654321")
    assert filtered.offered(matched=matched, call_ddi="+31207654321") is offered
    assert filtered.offered(matched=matched, call_ddi=None) is False


# --- tokens -------------------------------------------------------------------------------------------------


def test_by_token_finds_the_tenant_and_records_last_use(
    session: Session, runtime: Runtime, acme: Tenant, engine: Engine
) -> None:
    make_cached_records(session, crm(session, runtime, acme), [("c1", JANSEN, ["020 123 4567"])])
    _, value = tokens.create_token(session=session, actor=OPERATOR, tenant=acme)
    session.commit()
    service = Lookups(engine)
    try:
        result = service.by_token(value, CallInput(caller_number="0201234567"))
        assert result is not None and result.tenant_slug == "acme" and result.outcome == "exact"
        assert service.by_token(value + "x", CallInput(caller_number="0201234567")) is None
        assert service.by_token("", CallInput(caller_number="0201234567")) is None
    finally:
        service.close()  # waits for the background write of last_used_at
    session.expire_all()
    token = session.exec(select(ApiToken)).one()
    assert token.last_used_at is not None


def test_a_revoked_token_finds_nothing(session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups) -> None:
    public, value = tokens.create_token(session=session, actor=OPERATOR, tenant=acme)
    session.commit()
    assert lookups.by_token(value, CallInput(caller_number="0201234567")) is not None
    tokens.revoke_token(session=session, actor=OPERATOR, tenant=acme, token_ref=str(public.id))
    session.commit()
    assert lookups.by_token(value, CallInput(caller_number="0201234567")) is None


def test_a_token_and_its_tenant_are_read_again_after_any_commit_elsewhere(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    make_cached_records(session, crm(session, runtime, acme), [("c1", JANSEN, ["020 123 4567"])])
    _, value = tokens.create_token(session=session, actor=OPERATOR, tenant=acme)
    session.commit()
    call = CallInput(caller_number="0201234567")
    first = lookups.by_token(value, call)
    assert first is not None and first.body["matches"][0]["notification"] == [{"label": "Name", "value": "Jan Jansen"}]
    integration = session.exec(select(Integration)).one()
    integration.notification = [{"field": "DisplayName", "label": "Who"}]
    integration.version += 1
    session.add(integration)
    session.commit()
    again = lookups.by_token(value, call)
    assert again is not None and again.body["matches"][0]["notification"] == [{"label": "Who", "value": "Jan Jansen"}]


def test_a_held_snapshot_is_shared_by_lookups_until_released(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups, engine: Engine
) -> None:
    integration = crm(session, runtime, acme)
    make_cached_records(session, integration, [("c1", JANSEN, ["020 123 4567"])])
    lookups.hold_snapshot()
    assert record_ids(look(lookups, acme, "0201234567")) == [("c1", "exact")]
    make_cached_records(session, integration, [("c2", JANSEN, ["020 123 4567"])])  # a sync's new generation
    held = record_ids(look(lookups, acme, "0201234567"))
    lookups.release_snapshot()
    if engine.dialect.name == "sqlite":
        assert held == [("c1", "exact")]  # the snapshot the first lookup took
    else:
        assert held == [("c2", "exact")]  # lookups on PostgreSQL run in a thread pool and hold nothing
    assert record_ids(look(lookups, acme, "0201234567")) == [("c2", "exact")]


# --- the database going away --------------------------------------------------------------------------------


def test_a_dropped_connection_is_replaced_without_failing_the_lookup(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups
) -> None:
    make_cached_records(session, crm(session, runtime, acme), [("c1", JANSEN, ["020 123 4567"])])
    assert record_ids(look(lookups, acme, "0201234567")) == [("c1", "exact")]
    lookups._local.connection.close()  # as if the server had closed it
    assert record_ids(look(lookups, acme, "0201234567")) == [("c1", "exact")]


def test_an_unreachable_database_makes_lookups_unavailable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}")  # a directory: SQLite cannot open it
    service = Lookups(engine)
    try:
        with pytest.raises(LookupUnavailable):
            service.by_token("sb_some_token", CallInput(caller_number="0201234567"))
    finally:
        service.close()
        engine.dispose()


# --- reading the cache ahead --------------------------------------------------------------------------------


def test_warming_up_steps_through_each_b_tree_a_lookup_reads_then_answers_as_before(
    session: Session, runtime: Runtime, acme: Tenant, lookups: Lookups, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration = crm(session, runtime, acme)
    make_cached_records(session, integration, [(f"c{i}", JANSEN, [f"020 123 45{i:02d}"]) for i in range(7)])
    assert record_ids(look(lookups, acme, "0201234503")) == [("c3", "exact")]
    monkeypatch.setattr(core.lookup_queries, "WARM_UP_ROWS", 2)
    if engine.dialect.name != "sqlite":
        assert list(lookups.warm_up()) == []  # PostgreSQL keeps its own cache: nothing to read ahead
        return
    executed: list[str] = []
    connection = lookups._local.connection
    connection.set_trace_callback(executed.append)
    steps = len(list(lookups.warm_up()))
    connection.set_trace_callback(None)
    reads = [sql for sql in executed if "OFFSET" in sql]
    assert steps == len(reads)
    for statement, _ in WARM_UP_SQL:  # each b-tree, in slices of 2 + 1 entries, until nothing is left
        table = statement.split(" FROM ")[1].split(" WHERE ")[0]
        assert sum(f"FROM {table} WHERE" in sql for sql in reads) == 7 // 3 + 1, table
    assert not connection.in_transaction  # every step ended its read transaction
    assert record_ids(look(lookups, acme, "0201234503")) == [("c3", "exact")]
