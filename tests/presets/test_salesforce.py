"""The Salesforce preset against an emulated org: SOQL paging, both ways to authenticate, the API allowance."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlmodel import Session

from core.connector import build_connector, get_preset
from core.errors import ConnectorError, InvalidInput
from core.runtime import Runtime
from tests.crm import serve
from tests.crm.salesforce import SalesforceEmulator
from tests.presets.messy_numbers import Person, catalogue, check_lookups, fetch_all, make_people, sync_and_look_up

KEY, SECRET = "3MVG9fTLmJ60pJ5Kq.consumer-key", "C0nsumer-S3cret-98765"
LEAD_KINDS = ("work", "mobile", "fax")
ACCOUNT_KINDS = ("work", "fax")
ALL_KINDS = ("work", "mobile", "home", "other", "fax")
OWNER = {"Name": "Renée Dubois"}


def contact(person: Person) -> dict[str, Any]:
    """A Contact as stored in the org."""
    return {
        "FirstName": person.first, "LastName": person.last, "Name": person.name, "Title": person.title,
        "Email": person.email, "Phone": person.phone("work"), "MobilePhone": person.phone("mobile"),
        "HomePhone": person.phone("home"), "OtherPhone": person.phone("other"), "Fax": person.phone("fax"),
        "AssistantPhone": None, "Account": {"Name": person.company, "AccountNumber": f"K-{person.index:05d}"},
        "Owner": OWNER,
    }  # fmt: skip


def account(company: Person) -> dict[str, Any]:
    """An Account (its work number is the main phone)."""
    return {
        "Name": company.name, "AccountNumber": f"A-{company.index:05d}", "Phone": company.phone("work"),
        "Fax": company.phone("fax"), "Website": "https://www.bäckerei-groß.de", "Owner": OWNER,
    }  # fmt: skip


def lead(person: Person, *, converted: bool = False) -> dict[str, Any]:
    """A Lead; a converted one must not be fetched (it lives on as a contact)."""
    return {
        "FirstName": person.first, "LastName": person.last, "Name": person.name, "Company": person.company,
        "Title": person.title, "Email": person.email, "Phone": person.phone("work"),
        "MobilePhone": person.phone("mobile"), "Fax": person.phone("fax"), "IsConverted": converted, "Owner": OWNER,
    }  # fmt: skip


def restrict(person: Person, kinds: tuple[str, ...]) -> Person:
    """The person with only the phone fields the object has (leads: no home or other; accounts: phone, fax)."""
    return dataclasses.replace(person, phones=tuple(p for p in person.phones if p.kind in kinds))


@pytest.fixture
def data() -> dict[str, list[Person]]:
    return {
        "contacts": make_people(260, seed=11),
        "accounts": [restrict(c, ACCOUNT_KINDS) for c in make_people(40, seed=12, companies=True)],
        "leads": [restrict(p, LEAD_KINDS) for p in make_people(30, seed=13)],
        "converted": make_people(5, seed=14),
    }


def org(data: dict[str, list[Person]], **kwargs: Any) -> SalesforceEmulator:
    return SalesforceEmulator(
        contacts=[contact(p) for p in data["contacts"]],
        accounts=[account(c) for c in data["accounts"]],
        leads=[lead(p) for p in data["leads"]] + [lead(p, converted=True) for p in data["converted"]],
        **kwargs,
    )


def expected(crm: SalesforceEmulator, data: dict[str, list[Person]]) -> dict[str, Person]:
    """Record id → person, in the order the org holds them."""
    pairs = {
        "contacts": zip(crm.objects["Contact"], data["contacts"], strict=True),
        "accounts": zip(crm.objects["Account"], data["accounts"], strict=True),
        "leads": zip(crm.objects["Lead"], data["leads"], strict=False),
    }
    return {f"{kind}:{row['Id']}": person for kind, rows in pairs.items() for row, person in rows}


async def test_syncs_contacts_accounts_and_open_leads_through_a_connected_app(
    data: dict[str, list[Person]],
) -> None:
    crm = org(data, client_id=KEY, client_secret=SECRET)
    tokens: list[dict[str, str]] = []
    with serve(crm.app) as url:
        settings = {"instance_url": url, "client_id": KEY, "client_secret": SECRET}
        connector = build_connector(get_preset("salesforce"), settings, page_size=200, on_tokens=tokens.append)
        records, progress = await fetch_all(connector)

    found = catalogue(records)
    checked = check_lookups(found, expected(crm, data), ALL_KINDS)
    assert checked > 500
    assert len(records) == 260 + 40 + 30  # the converted leads stay out
    assert crm.token_requests == 1 and tokens[0]["instance_url"] == url
    assert crm.batch_sizes == [200, 200, 200]
    assert [(p.object_type, p.pages) for p in progress] == [("contacts", 1), ("contacts", 2), ("accounts", 1),
                                                            ("leads", 1)]  # fmt: skip
    first = found.records[f"contacts:{crm.objects['Contact'][0]['Id']}"]
    assert first.fields["DisplayName"] == "Jörg Müller"
    assert first.fields["company"] == "Bäckerei Groß GmbH"
    assert first.fields["owner"] == "Renée Dubois"
    assert first.fields["account_number"] == "K-00000"
    assert first.fields["PopUpUri"] == f"{url}/lightning/r/Contact/{crm.objects['Contact'][0]['Id']}/view"
    company = found.records[f"accounts:{crm.objects['Account'][0]['Id']}"]
    assert company.fields["DisplayName"] == "Bäckerei Groß GmbH 0"
    assert company.fields["PopUpUri"].endswith("/lightning/r/Account/" + crm.objects["Account"][0]["Id"] + "/view")
    assert {label for r in records if r.object_type == "contacts" for label, _ in r.phones} >= {"Business", "Mobile"}


async def test_a_pasted_access_token_replaces_the_connected_app(data: dict[str, list[Person]]) -> None:
    crm = org(data, static_tokens={"00D5g000000abcd!ARstatic-token-value"})
    with serve(crm.app) as url:
        settings = {"instance_url": url, "access_token": "00D5g000000abcd!ARstatic-token-value"}
        records, _ = await fetch_all(build_connector(get_preset("salesforce"), settings))
        assert crm.token_requests == 0
        assert len(records) == 330
        assert crm.requests[0].headers["authorization"] == "Bearer 00D5g000000abcd!ARstatic-token-value"

        crm.revoke_tokens()
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(build_connector(get_preset("salesforce"), settings))
    assert caught.value.status == 401
    assert "paste a new one" in caught.value.message
    assert "ARstatic" not in caught.value.message


async def test_a_session_that_ends_mid_sync_is_renewed(data: dict[str, list[Person]]) -> None:
    crm = org(data, client_id=KEY, client_secret=SECRET)
    with serve(crm.app) as url:
        connector = build_connector(
            get_preset("salesforce"), {"instance_url": url, "client_id": KEY, "client_secret": SECRET}, page_size=200
        )
        records = []
        async for page in connector.fetch(progress=lambda p: crm.revoke_tokens() if p.pages == 1 else None):
            records.extend(page)
        await connector.aclose()
    assert len(records) == 330
    assert crm.token_requests == 3  # the first token, then one after each first page that more pages followed


def test_needs_a_connected_app_or_an_access_token() -> None:
    preset = get_preset("salesforce")
    with pytest.raises(InvalidInput) as caught:
        build_connector(preset, {"instance_url": "https://acme.my.salesforce.com", "client_id": KEY})
    assert caught.value.field == "client_secret"
    with pytest.raises(InvalidInput) as caught:
        build_connector(preset, {"instance_url": "https://acme.my.salesforce.com"})
    assert caught.value.field == "client_id"
    assert "access token" in caught.value.message


async def test_wrong_consumer_secret_is_reported_without_the_secret(data: dict[str, list[Person]]) -> None:
    crm = org(data, client_id=KEY, client_secret=SECRET)
    with serve(crm.app) as url:
        settings = {"instance_url": url, "client_id": KEY, "client_secret": "wrong-secret-123"}
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(build_connector(get_preset("salesforce"), settings))
    assert "invalid_client" in caught.value.message
    assert "wrong-secret-123" not in caught.value.message


async def test_an_exhausted_api_allowance_is_a_retryable_rate_limit(data: dict[str, list[Person]]) -> None:
    crm = org(data, client_id=KEY, client_secret=SECRET, api_allowance=2)
    with serve(crm.app) as url:
        settings = {"instance_url": url, "client_id": KEY, "client_secret": SECRET}
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(build_connector(get_preset("salesforce"), settings, page_size=200))
    error = caught.value
    assert error.retryable and error.status == 403
    assert "API request limit reached on page 1 of accounts" in error.message
    assert "TotalRequests Limit exceeded." in error.message


def test_settings_are_the_ones_automation_expects() -> None:
    preset = get_preset("salesforce")
    names = [s.name for s in preset.settings]
    assert names == ["instance_url", "client_id", "client_secret", "access_token", "api_version", "api_base_url"]
    assert preset.setting("api_base_url").default == "{instance_url}"
    assert preset.secret_settings == {"client_secret", "access_token"}
    assert all(s.help for s in preset.settings)
    assert preset.object_types == ["contacts", "accounts", "leads"]
    assert preset.default_scripts[0].url == "$(PopUpUri)"


async def test_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    data = {
        "contacts": make_people(90, seed=15),
        "accounts": [restrict(c, ACCOUNT_KINDS) for c in make_people(15, seed=16, companies=True)],
        "leads": [restrict(p, LEAD_KINDS) for p in make_people(15, seed=17)],
        "converted": make_people(3, seed=18),
    }
    crm = org(data, client_id=KEY, client_secret=SECRET)
    kinds = {"contacts": ALL_KINDS, "accounts": ACCOUNT_KINDS, "leads": LEAD_KINDS}
    with serve(crm.app) as url:
        values = {"instance_url": url, "client_id": KEY, "client_secret": SECRET}
        synced = await sync_and_look_up(runtime, session, preset="salesforce", values=values,
                                        expected=expected(crm, data), kinds=kinds)  # fmt: skip
    first_id = crm.objects["Contact"][0]["Id"]
    answer = synced.answers[f"contacts:{first_id}"]
    assert answer["notification"][:3] == [
        {"label": "Name", "value": "Jörg Müller"},
        {"label": "Company", "value": "Bäckerei Groß GmbH"},
        {"label": "Owner", "value": "Renée Dubois"},
    ]
    assert answer["scripts"][0]["url"] == f"{url}/lightning/r/Contact/{first_id}/view"
