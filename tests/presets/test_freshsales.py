"""The Freshsales preset against an emulated account: views looked up, page numbers to total_pages."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlmodel import Session

from core.connector import build_connector, get_preset
from core.errors import ConnectorError
from core.runtime import Runtime
from tests.crm import serve
from tests.crm.freshsales import FreshsalesEmulator
from tests.presets.messy_numbers import Person, catalogue, check_lookups, fetch_all, make_people, sync_and_look_up

API_KEY = "sfg999666t673t7t82"
ALL_KINDS = ("work", "mobile", "home", "other", "fax")
LABELS = {"home": "Home", "other": "Other", "fax": "Fax"}


def contact(person: Person, account_id: int) -> dict[str, Any]:
    """A contact: work and mobile in their own fields, the rest in the multi-value phone_numbers array."""
    extra = [{"id": 9000 + i, "value": p.raw, "label": LABELS[p.kind], "is_primary": False}
             for i, p in enumerate(person.phones) if p.kind in LABELS]  # fmt: skip
    return {
        "first_name": person.first, "last_name": person.last, "display_name": person.name, "email": person.email,
        "job_title": person.title, "work_number": person.phone("work"), "mobile_number": person.phone("mobile"),
        "phone_numbers": extra, "sales_account_id": account_id, "owner_id": 402_000_000_001,
    }  # fmt: skip


def account(company: Person) -> dict[str, Any]:
    return {"name": company.name, "phone": company.phone("work"), "website": "https://crème-brûlée.fr"}


@pytest.fixture
def account_data() -> tuple[FreshsalesEmulator, dict[str, Person]]:
    people = make_people(280, seed=41)
    companies = [dataclasses.replace(c, phones=tuple(p for p in c.phones if p.kind == "work"))
                 for c in make_people(30, seed=42, companies=True)]  # fmt: skip
    crm = FreshsalesEmulator(
        api_key=API_KEY,
        accounts=[account(c) for c in companies],
        contacts=[contact(p, 17_000_000_000 + p.index % 30) for p in people],
    )
    expected = {f"contacts:{row['id']}": p for row, p in zip(crm.resources["contacts"], people, strict=True)}
    expected |= {f"accounts:{row['id']}": c for row, c in zip(crm.resources["sales_accounts"], companies, strict=True)}
    return crm, expected


def settings(url: str, **extra: str) -> dict[str, str]:
    return {"domain": "acme", "api_key": API_KEY, "api_base_url": f"{url}/crm/sales", **extra}


async def test_syncs_the_all_views_with_account_names(account_data: tuple[FreshsalesEmulator, Any]) -> None:
    crm, expected = account_data
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("freshsales"), settings(url)))

    found = catalogue(records)
    assert check_lookups(found, expected, ALL_KINDS) > 500
    paths = [r.path for r in crm.requests]
    all_contacts = crm.view_id("contacts", "All Contacts")
    assert paths[0] == "/crm/sales/api/sales_accounts/filters"
    assert paths.count(f"/crm/sales/api/contacts/view/{all_contacts}") == 3  # 280 contacts, 100 a page
    assert "/crm/sales/api/contacts/filters" in paths
    assert set(crm.per_pages) == {100}
    assert all(r.headers["authorization"] == f"Token token={API_KEY}" for r in crm.requests)
    first_id = crm.resources["contacts"][0]["id"]
    first = found.records[f"contacts:{first_id}"]
    assert (first.fields["DisplayName"], first.fields["company"]) == ("Jörg Müller", "Bäckerei Groß GmbH 0")
    assert first.fields["PopUpUri"] == f"https://acme.myfreshworks.com/crm/sales/contacts/{first_id}"
    assert {label for r in records for label, _ in r.phones} >= {"Work", "Mobile", "Home", "Fax"}


async def test_a_view_named_in_the_settings_is_used_as_it_is(account_data: tuple[FreshsalesEmulator, Any]) -> None:
    crm, _ = account_data
    mine = str(crm.view_id("contacts", "My Contacts"))
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("freshsales"), settings(url, contacts_view_id=mine)))
    assert [r.object_type for r in records].count("contacts") == 3
    assert "/crm/sales/api/contacts/filters" not in [r.path for r in crm.requests]


async def test_no_all_contacts_view_asks_for_a_view_id() -> None:
    crm = FreshsalesEmulator(api_key=API_KEY, view_names={"contacts": ("Meine Kontakte", "Alle Kontakte")})
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("freshsales"), settings(url)))
    assert "Contacts view ID" in caught.value.message and "Alle Kontakte" in caught.value.message


async def test_a_wrong_api_key_is_reported_in_freshsales_terms() -> None:
    crm = FreshsalesEmulator(api_key=API_KEY)
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("freshsales"), settings(url, api_key="wrongkey123")))
    assert caught.value.status == 401
    assert "API Settings" in caught.value.message and "wrongkey123" not in caught.value.message


async def test_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    people = make_people(90, seed=43)
    companies = [dataclasses.replace(c, phones=tuple(p for p in c.phones if p.kind == "work"))
                 for c in make_people(12, seed=44, companies=True)]  # fmt: skip
    crm = FreshsalesEmulator(api_key=API_KEY, accounts=[account(c) for c in companies],
                             contacts=[contact(p, 17_000_000_000 + p.index % 12) for p in people])  # fmt: skip
    expected = {f"contacts:{row['id']}": p for row, p in zip(crm.resources["contacts"], people, strict=True)}
    expected |= {f"accounts:{row['id']}": c for row, c in zip(crm.resources["sales_accounts"], companies, strict=True)}
    with serve(crm.app) as url:
        synced = await sync_and_look_up(runtime, session, preset="freshsales", values=settings(url),
                                        expected=expected, kinds=ALL_KINDS)  # fmt: skip
    first_id = crm.resources["contacts"][0]["id"]
    answer = synced.answers[f"contacts:{first_id}"]
    assert answer["notification"][:2] == [
        {"label": "Name", "value": "Jörg Müller"},
        {"label": "Account", "value": "Bäckerei Groß GmbH 0"},
    ]
    assert answer["scripts"][0]["url"] == f"https://acme.myfreshworks.com/crm/sales/contacts/{first_id}"
