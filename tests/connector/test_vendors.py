"""The shipped presets against the emulated HubSpot, Insightly and Pipedrive servers."""

from __future__ import annotations

import base64

import httpx
import pytest

from core.connector import PageProgress, get_preset
from core.errors import ConnectorError
from tests.connector.conftest import FakeSleep, connect, fetch_all
from tests.crm import HubSpotEmulator, InsightlyEmulator, PipedriveEmulator, serve

HUBSPOT_TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
INSIGHTLY_KEY = "3f1b2c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"
PIPEDRIVE_TOKEN = "659c9fddb16335e48cc67114694b52074e812e03"


# ------------------------------------------------------------------------------------------------ HubSpot


def hubspot_contacts(count: int) -> list[dict[str, str | None]]:
    return [
        {"firstname": f"Jörg{i}", "lastname": "Müller-Lüdenscheidt", "email": f"j{i}@example.de",
         "company": "Bäckerei Groß", "phone": f"+49 30 {i:07d}", "mobilephone": None if i % 2 else f"0151 {i}"}
        for i in range(count)
    ]  # fmt: skip


async def test_hubspot_fetches_contacts_and_companies(sleep: FakeSleep) -> None:
    crm = HubSpotEmulator(
        token=HUBSPOT_TOKEN,
        contacts=hubspot_contacts(250),
        companies=[{"name": "Société Générale", "phone": "+33 1 42 14 20 00", "domain": "sg.fr"}],
    )
    progress: list[PageProgress] = []
    with serve(crm.app) as url:
        connector = connect(
            get_preset("hubspot"), {"access_token": HUBSPOT_TOKEN, "portal_id": "62515", "api_base_url": url}, sleep
        )
        records = []
        async for page in connector.fetch(progress=progress.append):
            records.extend(page)
        await connector.aclose()
    assert len(records) == 251
    first = records[0]
    assert first.record_id == "contacts:1000"
    assert first.fields["DisplayName"] == "Jörg0 Müller-Lüdenscheidt"
    assert first.fields["company"] == "Bäckerei Groß"
    assert first.fields["PopUpUri"] == "https://app.hubspot.com/contacts/62515/record/0-1/1000"
    assert first.phones == [("Phone", "+49 30 0000000"), ("Mobile", "0151 0")]
    assert records[1].phones == [("Phone", "+49 30 0000001")]
    company = records[-1]
    assert (company.record_id, company.fields["DisplayName"]) == ("companies:5000", "Société Générale")
    assert company.fields["PopUpUri"].endswith("/record/0-2/5000")
    assert [(p.object_type, p.pages, p.records) for p in progress] == [
        ("contacts", 1, 100),
        ("contacts", 2, 200),
        ("contacts", 3, 250),
        ("companies", 1, 1),
    ]
    # exactly what HubSpot documents: Bearer token, opt-in properties, limit <= 100, stop when paging is absent
    assert len(crm.requests) == 4
    assert all(r.headers["authorization"] == f"Bearer {HUBSPOT_TOKEN}" for r in crm.requests)
    assert [r.query.get("after") for r in crm.requests] == [None, "100", "200", None]
    assert "phone" in crm.requests[0].query["properties"].split(",")
    assert crm.max_limit_requested == 100


async def test_hubspot_page_size_never_exceeds_the_vendor_max(sleep: FakeSleep) -> None:
    crm = HubSpotEmulator(token=HUBSPOT_TOKEN, contacts=hubspot_contacts(5))
    with serve(crm.app) as url:
        connector = connect(
            get_preset("hubspot"),
            {"access_token": HUBSPOT_TOKEN, "portal_id": "1", "api_base_url": url},
            sleep,
            page_size=1000,
        )
        await fetch_all(connector)
    assert crm.max_limit_requested == 100


async def test_hubspot_connection_test_returns_a_sample(sleep: FakeSleep) -> None:
    crm = HubSpotEmulator(token=HUBSPOT_TOKEN, contacts=hubspot_contacts(30))
    with serve(crm.app) as url:
        connector = connect(
            get_preset("hubspot"), {"access_token": HUBSPOT_TOKEN, "portal_id": "1", "api_base_url": url}, sleep
        )
        result = await connector.test_connection()
        await connector.aclose()
    assert result.count is None  # the list endpoint reports no total
    assert result.sample is not None and result.sample.fields["DisplayName"].startswith("Jörg0")
    assert result.object_types == ["contacts", "companies"]
    assert len(crm.requests) == 1 and int(crm.requests[0].query["limit"]) <= 10


async def test_hubspot_wrong_token_in_admin_terms(sleep: FakeSleep) -> None:
    crm = HubSpotEmulator(token=HUBSPOT_TOKEN, contacts=hubspot_contacts(1))
    with serve(crm.app) as url:
        connector = connect(
            get_preset("hubspot"), {"access_token": "pat-na1-wrong-token", "portal_id": "1", "api_base_url": url}, sleep
        )
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(connector)
    assert str(caught.value) == "HubSpot refused the access token (401): check the token or its scopes"
    assert "pat-na1-wrong-token" not in str(caught.value)
    assert len(crm.requests) == 1  # a static token is not retried


# ---------------------------------------------------------------------------------------------- Insightly


def insightly_contacts(count: int) -> list[dict[str, object]]:
    return [
        {"CONTACT_ID": 9000 + i, "SALUTATION": None, "FIRST_NAME": "Anaïs", "LAST_NAME": f"Lefèvre {i}",
         "PHONE": "+33 1 23 45 67 89", "PHONE_MOBILE": "06 12 34 56 78" if i == 0 else None, "PHONE_HOME": None,
         "PHONE_OTHER": None, "PHONE_ASSISTANT": None, "PHONE_FAX": None, "EMAIL_ADDRESS": "anais@example.fr",
         "ORGANISATION_ID": 789, "TITLE": "Directrice"}
        for i in range(count)
    ]  # fmt: skip


@pytest.mark.parametrize(("count", "requests"), [(1000, 3), (1001, 3), (499, 1), (0, 1)])
async def test_insightly_pages_until_a_short_page(sleep: FakeSleep, count: int, requests: int) -> None:
    crm = InsightlyEmulator(api_key=INSIGHTLY_KEY, contacts=insightly_contacts(count))
    with serve(crm.app) as url:
        connector = connect(
            get_preset("insightly"), {"api_key": INSIGHTLY_KEY, "pod": "eu1", "api_base_url": f"{url}/v3.1"}, sleep
        )
        records = await fetch_all(connector)
    assert len(records) == count
    contact_requests = [r for r in crm.requests if r.path == "/v3.1/Contacts"]
    assert len(contact_requests) == requests
    assert [r.query["skip"] for r in contact_requests] == [str(500 * i) for i in range(requests)]
    assert crm.max_top_requested == 500
    assert [r.path for r in crm.requests[requests:]] == ["/v3.1/Organisations", "/v3.1/Leads"]


async def test_insightly_sends_the_key_as_basic_user_name(sleep: FakeSleep) -> None:
    crm = InsightlyEmulator(api_key=INSIGHTLY_KEY, contacts=insightly_contacts(1),
                            organisations=[{"ORGANISATION_ID": 5, "ORGANISATION_NAME": "Crème & Brûlée SARL",
                                            "PHONE": "+33 4 00 00 00 00", "PHONE_FAX": None}],
                            leads=[{"LEAD_ID": 3, "FIRST_NAME": "Åsa", "LAST_NAME": "Öberg", "MOBILE": "070-123 45 67",
                                    "ORGANISATION_NAME": "Ödeshög AB"}])  # fmt: skip
    with serve(crm.app) as url:
        connector = connect(
            get_preset("insightly"), {"api_key": INSIGHTLY_KEY, "pod": "eu1", "api_base_url": f"{url}/v3.1"}, sleep
        )
        records = await fetch_all(connector)
    expected = "Basic " + base64.b64encode(f"{INSIGHTLY_KEY}:".encode()).decode()
    assert {r.headers["authorization"] for r in crm.requests} == {expected}
    contact, organisation, lead = records
    assert contact.fields["DisplayName"] == "Anaïs Lefèvre 0"
    assert contact.fields["PopUpUri"] == "https://crm.eu1.insightly.com/details/contact/9000"
    assert contact.phones == [("Phone", "+33 1 23 45 67 89"), ("Mobile", "06 12 34 56 78")]
    assert organisation.record_id == "organisations:5"
    assert organisation.fields["DisplayName"] == organisation.fields["company"] == "Crème & Brûlée SARL"
    assert lead.record_id == "leads:3"
    assert (lead.fields["DisplayName"], lead.fields["company"]) == ("Åsa Öberg", "Ödeshög AB")
    assert lead.phones == [("Mobile", "070-123 45 67")]


async def test_insightly_emulator_accepts_both_basic_forms() -> None:
    crm = InsightlyEmulator(api_key=INSIGHTLY_KEY, contacts=insightly_contacts(1))
    with serve(crm.app) as url:
        async with httpx.AsyncClient() as client:
            for user in (f"{INSIGHTLY_KEY}:", INSIGHTLY_KEY, f"{INSIGHTLY_KEY}:ignored"):
                auth = "Basic " + base64.b64encode(user.encode()).decode()
                response = await client.get(f"{url}/v3.1/Contacts", headers={"Authorization": auth})
                assert response.status_code == 200, user
            response = await client.get(f"{url}/v3.1/Contacts", auth=("other-key", ""))
            assert response.status_code == 401


# ---------------------------------------------------------------------------------------------- Pipedrive


def pipedrive_persons(count: int) -> list[dict[str, object]]:
    return [
        {"id": i + 1, "name": f"Łukasz Żółć {i}", "first_name": "Łukasz", "last_name": f"Żółć {i}", "org_id": None,
         "phones": [{"value": "+48 22 123 45 67", "primary": True, "label": "work"},
                    {"value": "600 700 800", "primary": False, "label": "mobile"}],
         "emails": [{"value": "lukasz@example.pl", "primary": True, "label": "work"}]}
        for i in range(count)
    ]  # fmt: skip


async def test_pipedrive_follows_the_cursor_until_null(sleep: FakeSleep) -> None:
    crm = PipedriveEmulator(api_token=PIPEDRIVE_TOKEN, persons=pipedrive_persons(1200))
    with serve(crm.app) as url:
        connector = connect(
            get_preset("pipedrive"),
            {"api_token": PIPEDRIVE_TOKEN, "company_domain": "acme", "api_base_url": url},
            sleep,
        )
        records = await fetch_all(connector)
    assert len(records) == 1200
    assert len(crm.requests) == 3
    assert [r.query.get("limit") for r in crm.requests] == ["500"] * 3
    assert "cursor" not in crm.requests[0].query and all("cursor" in r.query for r in crm.requests[1:])
    # the token travels in the header the current docs name, never in the URL
    assert all(r.headers["x-api-token"] == PIPEDRIVE_TOKEN and "api_token" not in r.query for r in crm.requests)
    first = records[0]
    assert first.record_id == "persons:1"
    assert first.fields["DisplayName"] == "Łukasz Żółć 0"
    assert first.fields["email"] == "lukasz@example.pl"
    assert first.fields["PopUpUri"] == "https://acme.pipedrive.com/person/1"
    assert first.phones == [("Work", "+48 22 123 45 67"), ("Mobile", "600 700 800")]


async def test_pipedrive_refuses_more_than_500_and_so_we_never_ask(sleep: FakeSleep) -> None:
    crm = PipedriveEmulator(api_token=PIPEDRIVE_TOKEN, persons=pipedrive_persons(3))
    with serve(crm.app) as url:
        async with httpx.AsyncClient() as client:
            refused = await client.get(
                f"{url}/api/v2/persons", params={"limit": 501}, headers={"x-api-token": PIPEDRIVE_TOKEN}
            )
        connector = connect(
            get_preset("pipedrive"),
            {"api_token": PIPEDRIVE_TOKEN, "company_domain": "acme", "api_base_url": url},
            sleep,
            page_size=10_000,
        )
        assert len(await fetch_all(connector)) == 3
    assert refused.status_code == 400
    assert crm.requests[-1].query["limit"] == "500"


async def test_pipedrive_connection_test(sleep: FakeSleep) -> None:
    crm = PipedriveEmulator(api_token=PIPEDRIVE_TOKEN, persons=[])
    with serve(crm.app) as url:
        connector = connect(
            get_preset("pipedrive"),
            {"api_token": PIPEDRIVE_TOKEN, "company_domain": "acme", "api_base_url": url},
            sleep,
        )
        result = await connector.test_connection()
        await connector.aclose()
    assert (result.count, result.sample, result.object_types) == (None, None, ["persons"])


async def test_pipedrive_emulator_accepts_the_older_query_token() -> None:
    crm = PipedriveEmulator(api_token=PIPEDRIVE_TOKEN, persons=pipedrive_persons(1))
    with serve(crm.app) as url:
        async with httpx.AsyncClient() as client:
            by_query = await client.get(f"{url}/api/v2/persons", params={"api_token": PIPEDRIVE_TOKEN})
            refused = await client.get(f"{url}/api/v2/persons", params={"api_token": "nope"})
    assert by_query.status_code == 200 and by_query.json()["data"][0]["id"] == 1
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized access"
