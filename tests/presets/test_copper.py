"""The Copper preset against the emulated Copper Developer API."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session

from core.connector import build_connector, get_preset
from core.errors import ConnectorError, InvalidInput
from core.runtime import Runtime
from tests.crm.base import Fault
from tests.crm.copper import CopperEmulator
from tests.crm.server import serve
from tests.presets.messy_numbers import (
    NoSleep,
    Person,
    catalogue,
    check_lookups,
    fetch_all,
    make_people,
    sync_and_look_up,
)

API_KEY = "6b1e0c9a4f2d8e7b3a5c1d0e9f8a7b6c"
EMAIL = "Joerg.Admin@baeckerei-gross.de"
CATEGORIES = {"work": "work", "mobile": "mobile", "home": "home", "other": "other", "fax": "other"}
KINDS = tuple(CATEGORIES)


def _numbers(person: Person) -> list[dict[str, str]]:
    return [{"number": p.raw, "category": CATEGORIES[p.kind]} for p in person.phones]


def person_record(person: Person) -> dict[str, Any]:
    """A Copper person, shaped like the documented search result."""
    return {
        "id": 7_000 + person.index, "name": person.name, "prefix": None, "first_name": person.first,
        "middle_name": None, "last_name": person.last, "suffix": None,
        "address": {"street": "Königsallee 1", "city": "Düsseldorf", "state": "", "postal_code": "40212",
                    "country": "DE"},
        "assignee_id": None, "company_id": 2, "company_name": person.company, "contact_type_id": 8, "details": None,
        "emails": [{"email": person.email, "category": "work"}], "phone_numbers": _numbers(person), "socials": [],
        "tags": [], "title": person.title, "websites": [], "custom_fields": [], "date_created": 1516262400,
        "date_modified": 1516312771, "date_last_contacted": None, "interaction_count": 0,
        "leads_converted_from": [], "date_lead_created": None,
    }  # fmt: skip


def company_record(org: Person) -> dict[str, Any]:
    """A Copper company."""
    return {
        "id": 3_000 + org.index, "name": org.last, "address": None, "assignee_id": None, "contact_type_id": 5,
        "details": None, "email_domain": "example.de", "phone_numbers": _numbers(org), "socials": [], "tags": [],
        "websites": [], "custom_fields": [], "interaction_count": 0, "date_created": 1515434863,
        "date_modified": 1516299085,
    }  # fmt: skip


def lead_record(person: Person) -> dict[str, Any]:
    """A Copper lead (its e-mail is a single object, not a list)."""
    return {
        "id": 9_150_000 + person.index, "name": person.name, "prefix": None, "first_name": person.first,
        "last_name": person.last, "middle_name": None, "suffix": None, "address": None, "assignee_id": None,
        "company_name": person.company, "customer_source_id": None, "details": None,
        "email": {"email": person.email, "category": "work"}, "interaction_count": 0, "monetary_value": None,
        "socials": [], "status": "Neu", "status_id": 208231, "tags": [], "title": person.title, "websites": [],
        "phone_numbers": _numbers(person), "custom_fields": [], "date_created": 1490045162,
        "date_modified": 1490045162,
    }  # fmt: skip


def settings(url: str, api_key: str = API_KEY) -> dict[str, str]:
    return {"api_key": api_key, "user_email": EMAIL, "account_id": "123456", "api_base_url": f"{url}/developer_api/v1"}


async def test_copper_syncs_people_companies_and_leads() -> None:
    people, companies, leads = make_people(260, seed=5), make_people(45, seed=6, companies=True), \
        make_people(90, seed=7)  # fmt: skip
    crm = CopperEmulator(
        api_key=API_KEY, email=EMAIL, people=[person_record(p) for p in people],
        companies=[company_record(c) for c in companies], leads=[lead_record(p) for p in leads],
    )  # fmt: skip
    with serve(crm.app) as url:
        connector = build_connector(get_preset("copper"), settings(url), sleep=NoSleep(), page_size=50)
        records, progress = await fetch_all(connector)

    expected = (
        {f"people:{7_000 + p.index}": p for p in people}
        | {f"companies:{3_000 + c.index}": c for c in companies}
        | {f"leads:{9_150_000 + p.index}": p for p in leads}
    )
    found = catalogue(records)
    assert len(records) == 260 + 45 + 90
    assert check_lookups(found, expected, KINDS) > 700
    zoe = found.records["people:7001"]
    assert (zoe.fields["DisplayName"], zoe.fields["company"]) == ("Zoë Groß", "Crème & Brûlée SARL")
    assert zoe.fields["PopUpUri"] == "https://app.copper.com/companies/123456/app#/contact/7001"
    assert zoe.fields["email"] == "zoë.1@example.de"
    assert [label for label, _ in zoe.phones] == ["Work", "Mobile"]
    company = found.records["companies:3002"]
    assert company.fields["DisplayName"] == "Ödeshög AB 2"
    assert company.fields["PopUpUri"] == "https://app.copper.com/companies/123456/app#/organization/3002"
    lead = found.records["leads:9150003"]
    assert (lead.fields["DisplayName"], lead.fields["email"], lead.fields["status"]) == (
        "Łukasz Øster",
        "łukasz.3@example.de",
        "Neu",
    )
    assert lead.fields["PopUpUri"].endswith("#/lead/9150003")
    # POST search: the three X-PW headers, page_number/page_size in the JSON body, sorted for stable pages
    assert all(r.method == "POST" for r in crm.requests)
    assert {r.headers["x-pw-useremail"] for r in crm.requests} == {EMAIL}
    assert {r.headers["x-pw-application"] for r in crm.requests} == {"developer_api"}
    people_bodies = [r.json() for r in crm.requests if r.path.endswith("/people/search")]
    assert [b["page_number"] for b in people_bodies] == [1, 2, 3, 4, 5, 6]
    assert people_bodies[0] == {"sort_by": "date_created", "sort_direction": "asc", "page_number": 1, "page_size": 50}
    assert [p.pages for p in progress if p.object_type == "companies"] == [1]


async def test_copper_connection_test_reports_the_total_header() -> None:
    crm = CopperEmulator(api_key=API_KEY, email=EMAIL, people=[person_record(p) for p in make_people(42, seed=8)],
                         total_padding=3)  # fmt: skip
    with serve(crm.app) as url:
        connector = build_connector(get_preset("copper"), settings(url))
        result = await connector.test_connection()
        await connector.aclose()
    assert result.count == 45  # X-PW-TOTAL, an upper bound
    assert result.sample is not None and result.sample.fields["DisplayName"] == "Jörg Müller"
    assert result.object_types == ["people", "companies", "leads"]


async def test_copper_page_size_is_capped_at_200() -> None:
    crm = CopperEmulator(api_key=API_KEY, email=EMAIL, people=[person_record(p) for p in make_people(201, seed=9)])
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("copper"), settings(url), page_size=1000))
    assert len(records) == 201
    assert {r.json()["page_size"] for r in crm.requests} == {200}


async def test_copper_rate_limit_and_server_error_are_retried() -> None:
    crm = CopperEmulator(api_key=API_KEY, email=EMAIL, people=[person_record(p) for p in make_people(30, seed=10)])
    crm.faults.on(1, fault=Fault.rate_limit(retry_after=None)).on(2, fault=Fault.server_error(502))
    sleep = NoSleep()
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("copper"), settings(url), sleep=sleep))
    assert len(records) == 30 and len(sleep.calls) == 2


async def test_copper_wrong_key_is_reported_in_admin_terms() -> None:
    crm = CopperEmulator(api_key=API_KEY, email=EMAIL, people=[person_record(p) for p in make_people(1, seed=11)])
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("copper"), settings(url, api_key="0000ffff0000ffff")))
    message = str(caught.value)
    assert message.startswith("Copper refused the API key and key owner's e-mail (401): check the API key")
    assert "0000ffff0000ffff" not in message


def test_copper_refuses_an_e_mail_that_cannot_travel_in_a_header() -> None:
    with pytest.raises(InvalidInput) as caught:
        build_connector(get_preset("copper"), settings("https://api.copper.com") | {"user_email": "jörg@bäckerei.de"})
    assert caught.value.field == "user_email"
    assert "xn--" in str(caught.value)


async def test_copper_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    people, companies, leads = make_people(40, seed=11), make_people(8, seed=12, companies=True), \
        make_people(20, seed=13)  # fmt: skip
    crm = CopperEmulator(
        api_key=API_KEY, email=EMAIL, people=[person_record(p) for p in people],
        companies=[company_record(c) for c in companies], leads=[lead_record(p) for p in leads],
    )  # fmt: skip
    expected = (
        {f"people:{7_000 + p.index}": p for p in people}
        | {f"companies:{3_000 + c.index}": c for c in companies}
        | {f"leads:{9_150_000 + p.index}": p for p in leads}
    )
    with serve(crm.app) as url:
        synced = await sync_and_look_up(runtime, session, preset="copper", values=settings(url), expected=expected,
                                        kinds=KINDS)  # fmt: skip
    zoe = synced.answers["people:7001"]
    assert zoe["notification"][:2] == [{"label": "Name", "value": "Zoë Groß"},
                                       {"label": "Company", "value": "Crème & Brûlée SARL"}]  # fmt: skip
    assert zoe["scripts"][0]["url"] == "https://app.copper.com/companies/123456/app#/contact/7001"
