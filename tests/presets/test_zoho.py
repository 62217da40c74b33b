"""The Zoho CRM preset against an emulated org: refresh-token auth, page numbers then page tokens, 204."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlmodel import Session

from core.connector import build_connector, get_preset, validate_settings
from core.errors import ConnectorError
from core.runtime import Runtime
from tests.crm import serve
from tests.crm.zoho import ZohoEmulator
from tests.presets.messy_numbers import Person, catalogue, check_lookups, fetch_all, make_people, sync_and_look_up

CLIENT_ID, SECRET, REFRESH = "1000.R2Z0WWOLFVMB34GZ3PZB", "7c2f0c5d1e9a4b8f", "1000.8cb99dxxx.refreshsecret"
ALL_KINDS = ("work", "mobile", "home", "other", "fax")
OWNER = {"name": "Zoë Kraus", "id": "2931549000000186001", "email": "zoe.kraus@example.de"}


def restrict(person: Person, kinds: tuple[str, ...]) -> Person:
    """The person with only the phone fields the module has."""
    return dataclasses.replace(person, phones=tuple(p for p in person.phones if p.kind in kinds))


def contact(person: Person) -> dict[str, Any]:
    return {
        "First_Name": person.first, "Last_Name": person.last, "Full_Name": person.name, "Email": person.email,
        "Title": person.title, "Phone": person.phone("work"), "Mobile": person.phone("mobile"),
        "Home_Phone": person.phone("home"), "Other_Phone": person.phone("other"), "Asst_Phone": None,
        "Fax": person.phone("fax"), "Account_Name": {"name": person.company, "id": "2931549000000139001"},
        "Owner": OWNER,
    }  # fmt: skip


def account(company: Person) -> dict[str, Any]:
    return {
        "Account_Name": company.name, "Account_Number": f"{40000 + company.index}", "Phone": company.phone("work"),
        "Fax": company.phone("fax"), "Website": "https://www.zürcher-käserei.ch", "Owner": OWNER,
    }  # fmt: skip


def lead(person: Person) -> dict[str, Any]:
    return {
        "First_Name": person.first, "Last_Name": person.last, "Full_Name": person.name, "Company": person.company,
        "Email": person.email, "Designation": person.title, "Phone": person.phone("work"),
        "Mobile": person.phone("mobile"), "Fax": person.phone("fax"), "Owner": OWNER,
    }  # fmt: skip


def settings(url: str, **extra: str) -> dict[str, str]:
    return {"data_center": "eu", "client_id": CLIENT_ID, "client_secret": SECRET, "refresh_token": REFRESH,
            "accounts_url": url, "api_base_url": url, **extra}  # fmt: skip


async def test_syncs_contacts_accounts_and_leads_past_two_thousand_records() -> None:
    people = make_people(240, seed=21)
    companies = [restrict(c, ("work", "fax")) for c in make_people(2100, seed=22, companies=True)]
    leads = [restrict(p, ("work", "mobile", "fax")) for p in make_people(30, seed=23)]
    crm = ZohoEmulator(
        client_id=CLIENT_ID, client_secret=SECRET, refresh_token=REFRESH,
        contacts=[contact(p) for p in people], accounts=[account(c) for c in companies], leads=[lead(p) for p in leads],
    )  # fmt: skip
    with serve(crm.app) as url:
        records, progress = await fetch_all(build_connector(get_preset("zoho"), settings(url), page_size=500))

    groups = (("contacts", "Contacts", people), ("accounts", "Accounts", companies), ("leads", "Leads", leads))
    expected = {
        f"{kind}:{row['id']}": person
        for kind, module, group in groups
        for row, person in zip(crm.modules[module], group, strict=True)
    }
    found = catalogue(records)
    assert check_lookups(found, expected, ALL_KINDS) > 2500
    data_requests = [r for r in crm.requests if r.path.startswith("/crm/v8/")]
    assert all(r.headers["authorization"].startswith("Zoho-oauthtoken 1000.") for r in data_requests)
    accounts = [r.query for r in data_requests if r.path == "/crm/v8/Accounts"]
    assert [q.get("page") for q in accounts[:10]] == [str(n) for n in range(1, 11)]
    assert "page" not in accounts[10] and accounts[10]["page_token"]  # record 2,001 on: page tokens
    assert len(accounts) == 11 and set(crm.page_sizes) == {200}  # 500 asked for, Zoho's maximum sent
    assert all(q["fields"] for q in accounts)
    assert crm.token_requests == 1
    first = found.records[f"contacts:{crm.modules['Contacts'][0]['id']}"]
    assert first.fields["DisplayName"] == "Jörg Müller"
    assert (first.fields["company"], first.fields["owner"]) == ("Bäckerei Groß GmbH", "Zoë Kraus")
    assert first.fields["PopUpUri"] == f"https://crm.zoho.eu/crm/tab/Contacts/{crm.modules['Contacts'][0]['id']}"
    assert progress[-1].object_type == "leads"


async def test_an_empty_module_answers_204_and_ends_quietly() -> None:
    people = make_people(5, seed=24)
    crm = ZohoEmulator(client_id=CLIENT_ID, client_secret=SECRET, refresh_token=REFRESH,
                       contacts=[contact(p) for p in people])  # fmt: skip
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("zoho"), settings(url)))
    assert [r.object_type for r in records] == ["contacts"] * 5
    assert len([r for r in crm.requests if r.path in ("/crm/v8/Accounts", "/crm/v8/Leads")]) == 2


async def test_an_expired_access_token_is_renewed_with_the_refresh_token() -> None:
    crm = ZohoEmulator(client_id=CLIENT_ID, client_secret=SECRET, refresh_token=REFRESH,
                       contacts=[contact(p) for p in make_people(450, seed=25)])  # fmt: skip
    with serve(crm.app) as url:
        connector = build_connector(get_preset("zoho"), settings(url), page_size=200)
        records = []
        async for page in connector.fetch(progress=lambda p: crm.revoke_tokens() if p.records == 200 else None):
            records.extend(page)
        await connector.aclose()
    assert len(records) == 450
    assert crm.token_requests == 2


async def test_a_refused_refresh_token_stops_the_sync_without_showing_secrets() -> None:
    crm = ZohoEmulator(client_id=CLIENT_ID, client_secret=SECRET, refresh_token="1000.other.token")
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("zoho"), settings(url)))
    assert "Zoho CRM" in caught.value.message and "token" in caught.value.message
    assert REFRESH not in caught.value.message and SECRET not in caught.value.message


async def test_a_refresh_token_revoked_mid_sync_is_refused_like_an_invalid_grant() -> None:
    crm = ZohoEmulator(client_id=CLIENT_ID, client_secret=SECRET, refresh_token=REFRESH,
                       contacts=[contact(p) for p in make_people(450, seed=28)])  # fmt: skip
    pages = 0
    with serve(crm.app) as url:
        connector = build_connector(get_preset("zoho"), settings(url), page_size=200)
        with pytest.raises(ConnectorError) as caught:
            async for _page in connector.fetch(progress=lambda p: crm.revoke_refresh_token()):
                pages += 1
        await connector.aclose()
    assert caught.value.message == (
        "Zoho CRM refused the refresh token (invalid_code): "
        "make a new refresh token in Zoho CRM and paste it into the integration's settings"
    )
    assert not caught.value.retryable and pages == 1 and crm.token_requests == 2


def test_data_centre_fills_in_the_addresses() -> None:
    preset = get_preset("zoho")
    names = [s.name for s in preset.settings]
    assert names[:6] == ["data_center", "client_id", "client_secret", "refresh_token", "accounts_url", "api_base_url"]
    values = validate_settings(preset, {"data_center": "com.au", "client_id": CLIENT_ID, "client_secret": SECRET,
                                        "refresh_token": REFRESH})  # fmt: skip
    assert values["accounts_url"] == "https://accounts.zoho.com.au"
    assert values["api_base_url"] == "https://www.zohoapis.com.au"
    assert values["web_url"] == "https://crm.zoho.com.au"
    assert preset.secret_settings == {"client_secret", "refresh_token"}
    assert all(s.help for s in preset.settings)


async def test_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    people = make_people(90, seed=26)
    companies = [restrict(c, ("work", "fax")) for c in make_people(15, seed=27, companies=True)]
    crm = ZohoEmulator(client_id=CLIENT_ID, client_secret=SECRET, refresh_token=REFRESH,
                       contacts=[contact(p) for p in people], accounts=[account(c) for c in companies])  # fmt: skip
    expected = {f"contacts:{row['id']}": p for row, p in zip(crm.modules["Contacts"], people, strict=True)}
    expected |= {f"accounts:{row['id']}": c for row, c in zip(crm.modules["Accounts"], companies, strict=True)}
    with serve(crm.app) as url:
        synced = await sync_and_look_up(runtime, session, preset="zoho", values=settings(url), expected=expected,
                                        kinds=ALL_KINDS)  # fmt: skip
    first_id = crm.modules["Contacts"][0]["id"]
    answer = synced.answers[f"contacts:{first_id}"]
    assert answer["notification"][:2] == [
        {"label": "Name", "value": "Jörg Müller"},
        {"label": "Account", "value": "Bäckerei Groß GmbH"},
    ]
    assert answer["scripts"][0]["url"] == f"https://crm.zoho.eu/crm/tab/Contacts/{first_id}"
