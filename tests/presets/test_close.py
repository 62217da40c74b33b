"""The Close preset (declarative listing plus ``presets/close.py``) against the emulated Close API."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlmodel import Session

from core.connector import PageProgress, build_connector, get_preset
from core.errors import ConnectorError
from core.runtime import Runtime
from tests.crm.base import Fault
from tests.crm.close import CloseEmulator
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

API_KEY = "api_5OqWQfjcZT8Js2HBSD8G8G.6qamc1fRqQCuWV3QSwtObS"
TYPES = {"work": "office", "mobile": "mobile", "home": "home", "other": "other", "fax": "fax"}
STATUSES = ("Potential", "Bad Fit", "Qualified", "Customer")


def lead_record(company: Person) -> dict[str, Any]:
    """A Close lead, as the API sends it without ``_fields`` (its contacts embedded)."""
    lead_id = f"lead_{company.index:04d}Xy"
    return {
        "id": lead_id, "display_name": company.last, "name": company.last,
        "status_label": STATUSES[company.index % 4], "status_id": "stat_1", "description": "",
        "html_url": f"https://app.close.com/lead/{lead_id}/", "url": None, "addresses": [], "contacts": [],
        "custom": {}, "opportunities": [], "tasks": [], "date_created": "2024-01-02T03:04:05.678000+00:00",
    }  # fmt: skip


def contact_record(person: Person, lead: dict[str, Any]) -> dict[str, Any]:
    """A Close contact; every 25th has no name (a company's main line)."""
    nameless = person.index % 25 == 3
    return {
        "id": f"cont_{person.index:05d}aB", "lead_id": lead["id"], "organization_id": "orga_1",
        "name": "" if nameless else person.name, "display_name": "" if nameless else person.name,
        "title": person.title,
        "phones": [{"phone": p.raw, "phone_formatted": p.raw, "type": TYPES[p.kind], "country": "DE"}
                   for p in person.phones],
        "emails": [{"email": person.email, "type": "office", "is_unsubscribed": False}],
        "date_created": "2024-01-02T03:04:05.678000+00:00", "created_by": "user_1", "integration_links": [],
    }  # fmt: skip


def dataset(
    people: int, companies: int, seed: int = 5
) -> tuple[list[Person], list[dict[str, Any]], list[dict[str, Any]]]:
    persons = make_people(people, seed=seed)
    leads = [lead_record(c) for c in make_people(companies, seed=seed + 1, companies=True)]
    contacts = [contact_record(p, leads[p.index % companies]) for p in persons]
    for contact in contacts:  # Close embeds every lead's contacts
        next(lead for lead in leads if lead["id"] == contact["lead_id"])["contacts"].append(contact)
    return persons, contacts, leads


def settings(url: str, api_key: str = API_KEY) -> dict[str, str]:
    return {"api_key": api_key, "api_base_url": f"{url}/api/v1"}


async def test_close_syncs_contacts_with_their_leads() -> None:
    persons, contacts, leads = dataset(320, 70)
    crm = CloseEmulator(api_key=API_KEY, contacts=contacts, leads=leads)
    with serve(crm.app) as url:
        connector = build_connector(get_preset("close"), settings(url), sleep=NoSleep(), page_size=60)
        records, progress = await fetch_all(connector)

    found = catalogue(records)
    expected = {f"contacts:cont_{p.index:05d}aB": p for p in persons}
    assert len(records) == 320 and all(r.object_type == "contacts" for r in records)
    assert check_lookups(found, expected, tuple(TYPES)) > 650
    zoe = found.records["contacts:cont_00001aB"]
    assert (zoe.fields["DisplayName"], zoe.fields["company"]) == ("Zoë Groß", "Crème & Brûlée SARL 1")
    assert zoe.fields["lead_status"] == "Bad Fit"
    assert zoe.fields["PopUpUri"] == "https://app.close.com/lead/lead_0001Xy/"
    assert (zoe.fields["email"], zoe.fields["job_title"]) == ("zoë.1@example.de", "Geschäftsführerin")
    assert [label for label, _ in found.records["contacts:cont_00016aB"].phones] == ["Office", "Mobile", "Other", "Fax"]
    nameless = found.records["contacts:cont_00003aB"]  # a contact without a name is shown under its lead's
    assert nameless.fields["DisplayName"] == nameless.fields["company"] == "Société Générale 3"
    # leads first (names only, trimmed with _fields), then contacts; Basic auth with the key as user name
    basic = "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
    assert {r.headers["authorization"] for r in crm.requests} == {basic}
    lead_requests = [r for r in crm.requests if r.path == "/api/v1/lead/"]
    assert [r.query["_skip"] for r in lead_requests] == ["0", "60"]
    assert {r.query["_fields"] for r in lead_requests} == {"id,display_name,status_label"}
    contact_requests = crm.requests[len(lead_requests) :]
    assert [r.query["_skip"] for r in contact_requests] == ["0", "60", "120", "180", "240", "300"]
    assert [(p.object_type, p.pages, p.records) for p in progress][:2] == [("leads", 1, 60), ("leads", 2, 70)]
    assert progress[-1] == PageProgress("contacts", 6, 320)


async def test_close_limit_never_exceeds_100() -> None:
    _, contacts, leads = dataset(150, 10, seed=7)
    crm = CloseEmulator(api_key=API_KEY, contacts=contacts, leads=leads)
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("close"), settings(url), page_size=500))
    assert len(records) == 150
    assert {r.query["_limit"] for r in crm.requests} == {"100"}


async def test_close_rate_limit_waits_the_reset_time() -> None:
    _, contacts, leads = dataset(30, 5, seed=8)
    crm = CloseEmulator(api_key=API_KEY, contacts=contacts, leads=leads, rate_reset=2.5)
    crm.faults.on(2, fault=Fault.rate_limit(retry_after=None))
    sleep = NoSleep()
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("close"), settings(url), sleep=sleep))
    assert len(records) == 30
    assert sleep.calls == [2.5]


async def test_close_deep_paging_refusal_ends_the_sync_with_an_explanation() -> None:
    _, contacts, leads = dataset(250, 10, seed=9)
    crm = CloseEmulator(api_key=API_KEY, contacts=contacts, leads=leads, max_skip=100)
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("close"), settings(url), page_size=50))
    message = str(caught.value)
    assert message.startswith("Close lets an API key page through at most 100 contacts, and this account has more")
    assert "cached before stay in use" in message


async def test_close_wrong_key_is_reported_in_admin_terms() -> None:
    _, contacts, leads = dataset(2, 1, seed=10)
    crm = CloseEmulator(api_key=API_KEY, contacts=contacts, leads=leads)
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("close"), settings(url, api_key="api_wrong.key")))
    assert str(caught.value).startswith("Close refused the API key (401): check the API key")
    assert "api_wrong.key" not in str(caught.value)


async def test_close_connection_test_samples_a_contact() -> None:
    _, contacts, leads = dataset(20, 2, seed=11)
    crm = CloseEmulator(api_key=API_KEY, contacts=contacts, leads=leads)
    with serve(crm.app) as url:
        connector = build_connector(get_preset("close"), settings(url))
        result = await connector.test_connection()
        await connector.aclose()
    assert result.sample is not None and result.sample.fields["DisplayName"] == "Jörg Müller"
    assert [r.path for r in crm.requests] == ["/api/v1/contact/"]


async def test_close_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    persons, contacts, leads = dataset(70, 12, seed=11)
    crm = CloseEmulator(api_key=API_KEY, contacts=contacts, leads=leads)
    expected = {f"contacts:cont_{p.index:05d}aB": p for p in persons}
    with serve(crm.app) as url:
        synced = await sync_and_look_up(runtime, session, preset="close", values=settings(url), expected=expected,
                                        kinds=tuple(TYPES))  # fmt: skip
    zoe = synced.answers["contacts:cont_00001aB"]
    assert zoe["notification"][:2] == [{"label": "Name", "value": "Zoë Groß"},
                                       {"label": "Lead", "value": "Crème & Brûlée SARL 1"}]  # fmt: skip
    assert zoe["scripts"][0]["url"] == "https://app.close.com/lead/lead_0001Xy/"
