"""The SugarCRM preset (declarative listing plus ``presets/sugarcrm.py`` sign-in) against an emulated Sugar."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlmodel import Session

from core.connector import build_connector, get_preset
from core.errors import ConnectorError
from core.runtime import Runtime
from tests.crm.base import Fault
from tests.crm.server import serve
from tests.crm.sugarcrm import SugarEmulator
from tests.presets.messy_numbers import (
    NoSleep,
    Person,
    catalogue,
    check_lookups,
    fetch_all,
    make_people,
    sync_and_look_up,
)

USER, PASSWORD = "api.switchboard", "Pässwörd-2024!"
PERSON_FIELDS = {"work": "phone_work", "mobile": "phone_mobile", "home": "phone_home", "other": "phone_other",
                 "fax": "phone_fax"}  # fmt: skip
KINDS = {"contacts": tuple(PERSON_FIELDS), "leads": tuple(PERSON_FIELDS), "accounts": ("work", "other", "home", "fax")}


def guid(prefix: int, index: int) -> str:
    return f"{prefix:08x}-3a52-f77d-1522-{index:012d}"


def contact_row(person: Person) -> dict[str, Any]:
    """A Sugar contact; ``assistant_phone`` is someone else's number and must never find the contact."""
    row: dict[str, Any] = {
        "id": guid(1, person.index), "date_modified": "2016-04-05T10:23:28-04:00", "name": f"Frau {person.name}",
        "first_name": person.first, "last_name": person.last, "account_name": person.company, "title": person.title,
        "email1": person.email, "assigned_user_name": "Søren Kierkegaard", "assistant": "Ida",
        "assistant_phone": f"+49 40 {30_000_000 + person.index}", "deleted": False,
    }  # fmt: skip
    row.update({field: person.phone(kind) or "" for kind, field in PERSON_FIELDS.items()})
    return row


def account_row(org: Person) -> dict[str, Any]:
    """A Sugar account: its main, alternate and fax numbers."""
    office = ", ".join(raw for raw in (org.phone("work"), org.phone("other")) if raw)
    return {
        "id": guid(2, org.index), "date_modified": "2016-04-05T10:23:28-04:00", "name": org.last,
        "account_type": "Customer", "email1": org.email, "assigned_user_name": "Søren Kierkegaard",
        "phone_office": office, "phone_alternate": org.phone("home") or "", "phone_fax": org.phone("fax") or "",
    }  # fmt: skip


def lead_row(person: Person) -> dict[str, Any]:
    """A Sugar lead; every 8th one was converted (its person is a contact now)."""
    row = {**contact_row(person), "id": guid(3, person.index), "status": "New", "converted": person.index % 8 == 2}
    row.pop("assistant_phone")
    return row


def settings(url: str, **changes: str) -> dict[str, str]:
    return {"site_url": "https://baeckerei.sugarondemand.com", "username": USER,
            "password": PASSWORD, "api_base_url": f"{url}/rest/v11_20", **changes}  # fmt: skip


def emulator(
    contacts: int = 0, accounts: int = 0, leads: int = 0, **kwargs: Any
) -> tuple[SugarEmulator, dict[str, Person]]:
    people = {"contacts": make_people(contacts, seed=5), "accounts": make_people(accounts, seed=6, companies=True),
              "leads": make_people(leads, seed=7)}  # fmt: skip
    records = {"Contacts": [contact_row(p) for p in people["contacts"]],
               "Accounts": [account_row(o) for o in people["accounts"]],
               "Leads": [lead_row(p) for p in people["leads"]]}  # fmt: skip
    expected = (
        {f"contacts:{guid(1, p.index)}": p for p in people["contacts"]}
        | {f"accounts:{guid(2, o.index)}": o for o in people["accounts"]}
        | {f"leads:{guid(3, p.index)}": p for p in people["leads"] if p.index % 8 != 2}
    )
    return SugarEmulator(username=USER, password=PASSWORD, records=records, **kwargs), expected


async def test_sugarcrm_syncs_contacts_accounts_and_open_leads() -> None:
    crm, expected = emulator(260, 50, 120)
    with serve(crm.app) as url:
        connector = build_connector(get_preset("sugarcrm"), settings(url), sleep=NoSleep(), page_size=70)
        records, progress = await fetch_all(connector)

    found = catalogue(records)
    assert len(records) == len(expected) == 260 + 50 + 105
    assert check_lookups(found, expected, KINDS) > 650  # assistants' numbers and converted leads find nothing
    jorg = found.records[f"contacts:{guid(1, 0)}"]
    assert (jorg.fields["DisplayName"], jorg.fields["company"]) == ("Jörg Müller", "Bäckerei Groß GmbH")
    assert jorg.fields["PopUpUri"] == f"https://baeckerei.sugarondemand.com/#Contacts/{guid(1, 0)}"
    assert jorg.fields["owner"] == "Søren Kierkegaard"
    account = found.records[f"accounts:{guid(2, 3)}"]
    assert (account.fields["DisplayName"], account.fields["status"]) == ("Société Générale 3", "Customer")
    assert account.fields["PopUpUri"].endswith(f"/#Accounts/{guid(2, 3)}")
    lead = found.records[f"leads:{guid(3, 1)}"]
    assert (lead.fields["DisplayName"], lead.fields["status"]) == ("Zoë Groß, Crème & Brûlée SARL", "New")
    # one sign-in (JSON password grant on the switchboard platform), OAuth-Token on every call, a sign-out
    assert crm.sign_ins == [{"grant_type": "password", "client_id": "sugar", "client_secret": "", "username": USER,
                             "platform": "switchboard"}]  # fmt: skip
    data = [r for r in crm.requests if "oauth2" not in r.path]
    assert {r.headers["oauth-token"] for r in data} == set(crm.issued) and len(crm.issued) == 1
    assert crm.logouts == 1 and crm.requests[-1].path == "/rest/v11_20/oauth2/logout"
    contact_offsets = [r.query["offset"] for r in data if r.path.endswith("/Contacts")]
    assert contact_offsets == ["0", "70", "140", "210"]
    leads_query = next(r.query for r in data if r.path.endswith("/Leads"))
    assert leads_query["filter[0][converted][$equals]"] == "0" and leads_query["order_by"] == "id:asc"
    assert "assistant_phone" not in leads_query["fields"] and "phone_other" in leads_query["fields"]
    assert [p.pages for p in progress if p.object_type == "accounts"] == [1]


async def test_sugarcrm_signs_in_again_when_the_session_ends() -> None:
    crm, _ = emulator(contacts=50)
    crm.faults.on(2, fault=Fault.unauthorized())
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("sugarcrm"), settings(url), page_size=20))
    assert len(records) == 50
    assert len(crm.sign_ins) == 2


async def test_sugarcrm_signs_in_again_before_the_token_expires() -> None:
    crm, _ = emulator(contacts=60, expires_in=3600)
    ticks = itertools.count(start=1_700_000_000, step=1_500)
    with serve(crm.app) as url:
        connector = build_connector(get_preset("sugarcrm"), settings(url), page_size=20, clock=lambda: next(ticks))
        records, _ = await fetch_all(connector)
    assert len(records) == 60
    assert len(crm.sign_ins) >= 2  # every 3,000 s or so of the fake clock a fresh token


async def test_sugarcrm_wrong_password_says_what_to_check() -> None:
    crm, _ = emulator(contacts=1)
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("sugarcrm"), settings(url, password="Falsch-123")))
    message = str(caught.value)
    assert message.startswith("SugarCRM refused the sign-in (need_login: You must specify a valid username")
    assert "check the user name and password" in message and "Falsch-123" not in message
    assert caught.value.status == 401


async def test_sugarcrm_unknown_platform_points_to_the_admin_page() -> None:
    crm, _ = emulator(contacts=1, platforms=("base", "mobile"))
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("sugarcrm"), settings(url)))
    assert "Admin → Configure API Platforms" in str(caught.value)


async def test_sugarcrm_never_asks_for_more_than_1000_records() -> None:
    crm, _ = emulator(contacts=3)
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("sugarcrm"), settings(url), page_size=50_000))
    assert len(records) == 3
    assert {r.query["max_num"] for r in crm.requests if r.method == "GET"} == {"1000"}


async def test_sugarcrm_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    crm, expected = emulator(40, 8, 24)
    with serve(crm.app) as url:
        synced = await sync_and_look_up(runtime, session, preset="sugarcrm", values=settings(url), expected=expected,
                                        kinds=KINDS)  # fmt: skip
    jorg = synced.answers[f"contacts:{guid(1, 0)}"]
    assert jorg["notification"] == [{"label": "Name", "value": "Jörg Müller"},
                                    {"label": "Account", "value": "Bäckerei Groß GmbH"},
                                    {"label": "Assigned to", "value": "Søren Kierkegaard"}]  # fmt: skip
    assert jorg["scripts"][0]["url"] == f"https://baeckerei.sugarondemand.com/#Contacts/{guid(1, 0)}"
    assert crm.logouts == 2  # the wizard's connection test and the first sync each signed out
