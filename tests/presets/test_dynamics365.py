"""The Dynamics 365 preset against an emulated Dataverse environment and Entra tenant."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlmodel import Session

from core.connector import RetryPolicy, build_connector, get_preset, validate_settings
from core.errors import ConnectorError
from core.runtime import Runtime
from tests.crm import Fault, serve
from tests.crm.dynamics365 import DynamicsEmulator
from tests.presets.messy_numbers import (
    NoSleep,
    Person,
    catalogue,
    check_lookups,
    fetch_all,
    make_people,
    sync_and_look_up,
)

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID, SECRET = "51f81489-12ee-4a9e-aaae-a2591f45987d", "Qx8Q~dynamics.client-secret"
ALL_KINDS = ("work", "mobile", "home", "other", "fax")
OWNER = "00000000-0000-0000-0000-0000000000aa"


def restrict(person: Person, kinds: tuple[str, ...]) -> Person:
    """The person with only the phone fields the table has."""
    return dataclasses.replace(person, phones=tuple(p for p in person.phones if p.kind in kinds))


def contact(person: Person, *, statecode: int = 0) -> dict[str, Any]:
    return {
        "fullname": person.name, "firstname": person.first, "lastname": person.last, "jobtitle": person.title,
        "emailaddress1": person.email, "telephone1": person.phone("work"), "mobilephone": person.phone("mobile"),
        "telephone2": person.phone("home"), "telephone3": None, "business2": person.phone("other"),
        "fax": person.phone("fax"), "statecode": statecode,
        "_parentcustomerid_value": "70bf4d48-34cb-ed11-b596-0022481d68cd",
        "_parentcustomerid_value_name": person.company,
        "_ownerid_value": OWNER, "_ownerid_value_name": "Ærøskøbing Admin", "_ownerid_value_entity": "systemuser",
    }  # fmt: skip


def account(company: Person) -> dict[str, Any]:
    return {
        "name": company.name, "accountnumber": f"D-{company.index}", "telephone1": company.phone("work"),
        "fax": company.phone("fax"), "statecode": 0, "websiteurl": "https://müller-söhne.de",
        "_ownerid_value": OWNER, "_ownerid_value_name": "Ærøskøbing Admin",
    }  # fmt: skip


def lead(person: Person) -> dict[str, Any]:
    return {
        "fullname": person.name, "companyname": person.company, "emailaddress1": person.email,
        "telephone1": person.phone("work"), "mobilephone": person.phone("mobile"), "fax": person.phone("fax"),
        "statecode": 0,
    }  # fmt: skip


def settings(url: str) -> dict[str, str]:
    return {"org_url": url, "tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret": SECRET,
            "token_url": f"{url}/{TENANT}/oauth2/v2.0/token"}  # fmt: skip


def environment() -> tuple[DynamicsEmulator, dict[str, Person]]:
    people = make_people(300, seed=31)
    inactive = make_people(6, seed=32)  # merged duplicates: deactivated, still holding numbers
    companies = [restrict(c, ("work", "fax")) for c in make_people(40, seed=33, companies=True)]
    leads = [restrict(p, ("work", "mobile", "fax")) for p in make_people(25, seed=34)]
    crm = DynamicsEmulator(
        tenant=TENANT, client_id=CLIENT_ID, client_secret=SECRET,
        contacts=[contact(p) for p in people] + [contact(p, statecode=1) for p in inactive],
        accounts=[account(c) for c in companies], leads=[lead(p) for p in leads],
    )  # fmt: skip
    expected = {}
    for kind, key, group in (("contacts", "contactid", people), ("accounts", "accountid", companies),
                             ("leads", "leadid", leads)):  # fmt: skip
        for row, person in zip(crm.tables[kind], group, strict=False):
            expected[f"{kind}:{row[key]}"] = person
    return crm, expected


async def test_syncs_active_contacts_accounts_and_open_leads() -> None:
    crm, expected = environment()
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("dynamics365"), settings(url), page_size=120))

    found = catalogue(records)
    assert check_lookups(found, expected, ALL_KINDS) > 500
    assert len(records) == 300 + 40 + 25  # the deactivated duplicates stay out
    assert crm.scopes == [f"{url}/.default"]
    data = [r for r in crm.requests if r.path.startswith("/api/data/")]
    assert len(data) == 3 + 1 + 1 and set(crm.page_sizes) == {120}
    assert all(r.headers["odata-maxversion"] == "4.0" and r.headers["odata-version"] == "4.0" for r in data)
    assert all(r.headers["accept"] == "application/json" for r in data)
    assert "$skiptoken" in data[1].query and data[1].query["$select"].startswith("contactid,")
    first_id = crm.tables["contacts"][0]["contactid"]
    first = found.records[f"contacts:{first_id}"]
    assert first.fields["DisplayName"] == "Jörg Müller"
    assert (first.fields["company"], first.fields["owner"]) == ("Bäckerei Groß GmbH", "Ærøskøbing Admin")
    assert first.fields["PopUpUri"] == f"{url}/main.aspx?pagetype=entityrecord&etn=contact&id={first_id}"
    company = found.records[f"accounts:{crm.tables['accounts'][0]['accountid']}"]
    assert company.fields["website"] == "https://müller-söhne.de"
    assert "etn=account&id=" in company.fields["PopUpUri"]


async def test_waits_out_the_service_protection_limit() -> None:
    crm, _ = environment()
    crm.faults.on(2, fault=Fault.rate_limit(retry_after="17"))
    sleep = NoSleep()
    with serve(crm.app) as url:
        connector = build_connector(get_preset("dynamics365"), settings(url), page_size=150, sleep=sleep)
        records, _ = await fetch_all(connector)
    assert len(records) == 365
    assert sleep.calls == [17.0]


async def test_a_wrong_secret_is_reported_in_entra_terms() -> None:
    crm, _ = environment()
    with serve(crm.app) as url:
        values = {**settings(url), "client_secret": "not-the-secret"}
        connector = build_connector(get_preset("dynamics365"), values, retry=RetryPolicy(max_attempts=1))
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(connector)
    assert "invalid_client" in caught.value.message and "not-the-secret" not in caught.value.message


def test_defaults_follow_the_tenant_and_the_environment() -> None:
    preset = get_preset("dynamics365")
    assert [s.name for s in preset.settings] == [
        "org_url", "tenant_id", "client_id", "client_secret", "token_url", "api_base_url",
    ]  # fmt: skip
    values = validate_settings(preset, {"org_url": "https://contoso.crm4.dynamics.com/", "tenant_id": TENANT,
                                        "client_id": CLIENT_ID, "client_secret": SECRET})  # fmt: skip
    assert values["token_url"] == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    assert values["api_base_url"] == "https://contoso.crm4.dynamics.com/api/data/v9.2"
    assert preset.secret_settings == {"client_secret"}
    assert all(s.help for s in preset.settings)


async def test_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    people = make_people(90, seed=35)
    companies = [restrict(c, ("work", "fax")) for c in make_people(15, seed=36, companies=True)]
    crm = DynamicsEmulator(tenant=TENANT, client_id=CLIENT_ID, client_secret=SECRET,
                           contacts=[contact(p) for p in people] + [contact(p, statecode=1) for p in people[:3]],
                           accounts=[account(c) for c in companies])  # fmt: skip
    expected = {f"contacts:{row['contactid']}": p for row, p in zip(crm.tables["contacts"], people, strict=False)}
    expected |= {f"accounts:{row['accountid']}": c for row, c in zip(crm.tables["accounts"], companies, strict=True)}
    with serve(crm.app) as url:
        synced = await sync_and_look_up(runtime, session, preset="dynamics365", values=settings(url),
                                        expected=expected, kinds=ALL_KINDS)  # fmt: skip
    first_id = crm.tables["contacts"][0]["contactid"]
    answer = synced.answers[f"contacts:{first_id}"]
    assert answer["notification"][:3] == [
        {"label": "Name", "value": "Jörg Müller"},
        {"label": "Company", "value": "Bäckerei Groß GmbH"},
        {"label": "Owner", "value": "Ærøskøbing Admin"},
    ]
    assert answer["scripts"][0]["url"] == f"{url}/main.aspx?pagetype=entityrecord&etn=contact&id={first_id}"
