"""The SuperOffice preset against an emulated SuperOffice Online tenant (OAuth sign-in and WebAPI archives)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import Session

from core.connector import authorization_url, build_connector, exchange_code, get_preset
from core.errors import ConnectorError
from core.runtime import Runtime
from tests.crm.base import Fault
from tests.crm.server import serve
from tests.crm.superoffice import SuperOfficeEmulator
from tests.presets.messy_numbers import (
    NoSleep,
    Person,
    catalogue,
    check_lookups,
    fetch_all,
    make_people,
    sync_and_look_up,
)

TENANT = "Cust26759"
CLIENT_ID = "857fd8fa9c83db5fa030b94d1bcc7b60"
CLIENT_SECRET = "s3cr3t-ca452f9c29870bc278017796cd16bd11"
PERSON_COLUMNS = {"work": "personDirectPhone", "mobile": "personMobilePhone", "home": "personPrivate",
                  "other": "personPager", "fax": "personDirectFax"}  # fmt: skip
KINDS = {"persons": tuple(PERSON_COLUMNS), "companies": ("work", "other", "fax")}


def person_row(person: Person) -> dict[str, Any]:
    """A row of the Person archive; every 9th person has left the company (retired)."""
    row: dict[str, Any] = {
        "personId": 500 + person.index, "contactId": 40 + person.index % 7, "firstName": person.first,
        "lastName": person.last, "middleName": "", "fullName": person.name, "title": person.title, "mrMrs": "",
        "retired": person.index % 9 == 4, "personNumber": "", "email/emailAddress": person.email,
        "personContact/name": person.company, "personContact/number": f"K-{person.index % 7}",
        "phone/formattedNumber": person.phone("work") or "",
    }  # fmt: skip
    for kind, column in PERSON_COLUMNS.items():
        row[f"{column}/formattedNumber"] = person.phone(kind) or ""
    return row


def company_row(org: Person) -> dict[str, Any]:
    """A row of the SimpleContact archive (a company)."""
    phone = ", ".join(raw for raw in (org.phone("work"), org.phone("other")) if raw)
    return {
        "contactId": 3_000 + org.index, "name": org.last, "department": "Vertrieb" if org.index % 2 else "",
        "nameDepartment": org.last, "number": f"10{org.index:04d}", "orgnr": f"DE{123456789 + org.index}",
        "code": "", "category": "Kunde", "business": "Handel", "email/emailAddress": org.email,
        "contactAssociate/fullName": "Åse Ødegård", "contactPhone/formattedNumber": phone,
        "contactFax/formattedNumber": org.phone("fax") or "", "searchPhone/formattedNumber": "", "url/URLAddress": "",
    }  # fmt: skip


def settings(url: str) -> dict[str, str]:
    return {"tenant": TENANT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "login_url": f"{url}/login/common/oauth", "api_base_url": f"{url}/{TENANT}/api/v1"}  # fmt: skip


def emulator(persons: list[Person], companies: list[Person], **kwargs: Any) -> SuperOfficeEmulator:
    return SuperOfficeEmulator(tenant=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                               persons=[person_row(p) for p in persons], companies=[company_row(c) for c in companies],
                               **kwargs)  # fmt: skip


@pytest.mark.parametrize("json_safe", [True, False], ids=["jsonSafe-keys", "slash-keys"])
async def test_superoffice_syncs_persons_and_companies(json_safe: bool) -> None:
    persons, companies = make_people(280, seed=5), make_people(60, seed=6, companies=True)
    crm = emulator(persons, companies, json_safe=json_safe)
    stored: list[dict[str, str]] = []
    with serve(crm.app) as url:
        tokens = {"refresh_token": crm.issue_refresh_token()}
        connector = build_connector(get_preset("superoffice"), settings(url), sleep=NoSleep(), page_size=50,
                                    tokens=tokens, on_tokens=stored.append)  # fmt: skip
        records, progress = await fetch_all(connector)

    current = [p for p in persons if p.index % 9 != 4]  # former employees are left out
    expected = {f"persons:{500 + p.index}": p for p in current} | {f"companies:{3_000 + c.index}": c for c in companies}
    found = catalogue(records)
    assert len(records) == len(current) + 60
    assert check_lookups(found, expected, KINDS) > 550
    jorg = found.records["persons:500"]
    assert (jorg.fields["DisplayName"], jorg.fields["company"]) == ("Jörg Müller", "Bäckerei Groß GmbH")
    assert jorg.fields["email"] == "jörg.0@example.de" and jorg.fields["job_title"] == "Geschäftsführerin"
    assert jorg.fields["PopUpUri"] == f"https://online.superoffice.com/{TENANT}/default.aspx?person.main?person_id=500"
    assert [label for label, _ in found.records["persons:516"].phones] == ["Direct", "Mobile", "Other", "Fax"]
    company = found.records["companies:3001"]
    assert company.fields["DisplayName"] == "Crème & Brûlée SARL 1 Vertrieb"
    assert (company.fields["customer_number"], company.fields["vat_number"]) == ("100001", "DE123456790")
    assert company.fields["owner"] == "Åse Ødegård"
    assert company.fields["PopUpUri"].endswith("/default.aspx?contact.main?contact_id=3001")
    # one sign-in renewal, then Bearer requests with the documented OData options
    assert crm.grants == ["refresh_token"]
    assert stored and stored[0]["access_token"].startswith("8A:")
    data = [r for r in crm.requests if "/api/v1/" in r.path]
    assert {r.headers["authorization"] for r in data} == {f"Bearer {stored[0]['access_token']}"}
    first = data[0]
    assert first.path == f"/{TENANT}/api/v1/Person"
    assert (first.query["$filter"], first.query["$orderBy"], first.query["$top"]) == (
        "retired set false",
        "personId",
        "50",
    )
    assert [r.query["$skip"] for r in data if r.path.endswith("/Person")] == ["0", "50", "100", "150", "200"]
    assert [p.pages for p in progress if p.object_type == "companies"] == [1, 2]


async def test_superoffice_follows_the_next_link_when_the_server_sends_fewer_rows_than_asked() -> None:
    crm = emulator(make_people(130, seed=7), [], max_top=40)
    with serve(crm.app) as url:
        connector = build_connector(get_preset("superoffice"), settings(url), page_size=100,
                                    tokens={"refresh_token": crm.issue_refresh_token()})  # fmt: skip
        records, _ = await fetch_all(connector)
    assert len(records) == len([i for i in range(130) if i % 9 != 4])
    assert [r.query["$skip"] for r in crm.requests if r.path.endswith("/Person")] == ["0", "40", "80"]


async def test_superoffice_without_next_links_ends_on_a_short_page() -> None:
    crm = emulator(make_people(120, seed=8), make_people(3, seed=9, companies=True), next_link=False)
    with serve(crm.app) as url:
        connector = build_connector(get_preset("superoffice"), settings(url), page_size=45,
                                    tokens={"refresh_token": crm.issue_refresh_token()})  # fmt: skip
        records, _ = await fetch_all(connector)
    assert len(records) == len([i for i in range(120) if i % 9 != 4]) + 3


async def test_superoffice_sign_in_then_sync() -> None:
    crm = emulator(make_people(5, seed=10), make_people(2, seed=11, companies=True))
    preset = get_preset("superoffice")
    callback = "https://switchboard.example.com/oauth/callback"
    with serve(crm.app) as url:
        request = authorization_url(preset, settings(url), redirect_uri=callback)
        assert request.url.startswith(f"{url}/login/common/oauth/authorize?")
        async with httpx.AsyncClient() as browser:
            answer = await browser.get(request.url)
        assert answer.status_code == 302
        returned = parse_qs(urlsplit(answer.headers["location"]).query)
        tokens = await exchange_code(preset, settings(url), code=returned["code"][0], state=returned["state"][0],
                                     expected_state=request.state, redirect_uri=callback)  # fmt: skip
        records, _ = await fetch_all(build_connector(preset, settings(url), tokens=tokens))
    assert tokens["refresh_token"] in crm.refresh_tokens
    assert len(records) == 4 + 2  # one of the five persons has left the company
    assert parse_qs(urlsplit(request.url).query)["scope"] == ["openid"]
    assert crm.grants == ["authorization_code"]


async def test_superoffice_renews_an_access_token_that_stops_working() -> None:
    crm = emulator(make_people(90, seed=12), [])
    crm.faults.on(2, fault=Fault.unauthorized())
    with serve(crm.app) as url:
        connector = build_connector(get_preset("superoffice"), settings(url), page_size=40,
                                    tokens={"refresh_token": crm.issue_refresh_token()})  # fmt: skip
        records, _ = await fetch_all(connector)
    assert len(records) == 80
    assert crm.grants == ["refresh_token", "refresh_token"]


async def test_superoffice_revoked_sign_in_asks_to_sign_in_again() -> None:
    crm = emulator(make_people(2, seed=13), [])
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        connector = build_connector(get_preset("superoffice"), settings(url), tokens={"refresh_token": "rt-gone"})
        await fetch_all(connector)
    message = str(caught.value)
    assert "SuperOffice refused the refresh token (invalid_grant)" in message
    assert "sign in to SuperOffice again" in message and "rt-gone" not in message


async def test_superoffice_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    persons, companies = make_people(60, seed=11), make_people(10, seed=12, companies=True)
    crm = emulator(persons, companies)
    expected = {f"persons:{500 + p.index}": p for p in persons if p.index % 9 != 4} | {
        f"companies:{3_000 + c.index}": c for c in companies
    }
    with serve(crm.app) as url:
        synced = await sync_and_look_up(runtime, session, preset="superoffice", values=settings(url),
                                        expected=expected, kinds=KINDS,
                                        tokens={"refresh_token": crm.issue_refresh_token()})  # fmt: skip
    jorg = synced.answers["persons:500"]
    assert jorg["notification"][:2] == [{"label": "Name", "value": "Jörg Müller"},
                                        {"label": "Company", "value": "Bäckerei Groß GmbH"}]  # fmt: skip
    assert jorg["scripts"][0]["url"].endswith("/default.aspx?person.main?person_id=500")
    company = synced.answers["companies:3001"]
    assert {"label": "Customer number", "value": "100001"} in company["notification"]
