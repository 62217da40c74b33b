"""The Zendesk Sell preset against the emulated Sell Core API v2."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session

from core.connector import build_connector, get_preset
from core.errors import ConnectorError
from core.runtime import Runtime
from tests.crm.base import Fault
from tests.crm.server import serve
from tests.crm.zendesk_sell import NextLinkStyle, ZendeskSellEmulator
from tests.presets.messy_numbers import (
    NoSleep,
    Person,
    catalogue,
    check_lookups,
    fetch_all,
    make_people,
    sync_and_look_up,
)

TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
KINDS = ("work", "other", "mobile", "fax")  # Sell has phone, mobile and fax; "other" shares the phone field


def _phone(person: Person) -> str:
    return ", ".join(raw for raw in (person.phone("work"), person.phone("other")) if raw)


def person_contact(person: Person) -> dict[str, Any]:
    """A Sell contact that is an individual."""
    return {
        "id": 1_000 + person.index, "creator_id": 7, "owner_id": 7, "is_organization": False,
        "contact_id": None if person.index % 4 else 90_001, "name": person.name,
        "first_name": person.first, "last_name": person.last, "customer_status": "current",
        "prospect_status": "none", "title": person.title, "description": None, "industry": None,
        "website": None, "email": person.email, "phone": _phone(person), "mobile": person.phone("mobile"),
        "fax": person.phone("fax"), "twitter": None, "facebook": None, "linkedin": None, "skype": None,
        "address": {"line1": "Hauptstraße 1", "city": "Köln", "postal_code": "50667", "state": None, "country": "DE"},
        "tags": ["vip"], "custom_fields": {}, "created_at": "2024-01-02T03:04:05Z",
        "updated_at": "2024-01-02T03:04:05Z",
    }  # fmt: skip


def organisation_contact(org: Person) -> dict[str, Any]:
    """A Sell contact that is an organisation."""
    return {
        "id": 90_000 + org.index, "creator_id": 7, "owner_id": 7, "is_organization": True, "contact_id": None,
        "name": org.last, "first_name": None, "last_name": None, "customer_status": "past",
        "prospect_status": "none", "email": org.email, "phone": _phone(org), "mobile": None,
        "fax": org.phone("fax"), "tags": [], "custom_fields": {},
    }  # fmt: skip


def lead(person: Person) -> dict[str, Any]:
    """A Sell lead: a person at an organisation, an organisation only (every 10th), or a person only."""
    org_only = person.index % 10 == 0
    return {
        "id": 50_000 + person.index, "creator_id": 7, "owner_id": 7, "source_id": None, "status": "New",
        "first_name": None if org_only else person.first, "last_name": None if org_only else person.last,
        "organization_name": None if person.index % 10 == 1 else person.company, "title": person.title,
        "email": person.email, "phone": _phone(person), "mobile": person.phone("mobile"),
        "fax": person.phone("fax"), "tags": [], "custom_fields": {},
    }  # fmt: skip


def settings(url: str, token: str = TOKEN) -> dict[str, str]:
    return {"access_token": token, "api_base_url": url}


async def test_zendesk_sell_syncs_people_organisations_and_leads() -> None:
    people, organisations, leads = make_people(250, seed=5), make_people(40, seed=6, companies=True)[1:], \
        make_people(120, seed=7)  # fmt: skip
    contacts = [person_contact(p) for p in people] + [organisation_contact(o) for o in organisations]
    crm = ZendeskSellEmulator(token=TOKEN, contacts=contacts, leads=[lead(p) for p in leads])
    with serve(crm.app) as url:
        connector = build_connector(get_preset("zendesk-sell"), settings(url), sleep=NoSleep(), page_size=40)
        records, progress = await fetch_all(connector)

    expected = (
        {f"people:{1_000 + p.index}": p for p in people}
        | {f"organisations:{90_000 + o.index}": o for o in organisations}
        | {f"leads:{50_000 + p.index}": p for p in leads}
    )
    found = catalogue(records)
    assert len(records) == 250 + 39 + 120
    assert check_lookups(found, expected, KINDS) > 700
    jorg = found.records["people:1000"]
    assert jorg.fields["DisplayName"] == "Jörg Müller"
    assert jorg.fields["PopUpUri"] == "https://app.futuresimple.com/crm/contacts/1000"
    assert (jorg.fields["email"], jorg.fields["status"]) == ("jörg.0@example.de", "current")
    assert [label for label, _ in found.records["people:1016"].phones] == ["Phone", "Mobile", "Fax"]
    org = found.records["organisations:90001"]
    assert org.fields["DisplayName"] == org.fields["company"] == "Crème & Brûlée SARL 1"
    assert org.fields["PopUpUri"] == "https://app.futuresimple.com/crm/contacts/90001"
    assert found.records["leads:50000"].fields["DisplayName"] == "Bäckerei Groß GmbH"  # an organisation only
    assert found.records["leads:50001"].fields["DisplayName"] == "Zoë Groß"  # a person only
    both = found.records["leads:50002"]
    assert both.fields["DisplayName"] == "François Lefèvre, Ödeshög AB"
    assert both.fields["PopUpUri"] == "https://app.futuresimple.com/crm/leads/50002"
    # page/per_page (<= 100), is_organization filters the two halves of /v2/contacts
    contact_requests = [r for r in crm.requests if r.path == "/v2/contacts"]
    assert {r.query["is_organization"] for r in contact_requests} == {"true", "false"}
    assert {r.query["per_page"] for r in crm.requests} == {"40"}
    pages = {
        obj: max(p.pages for p in progress if p.object_type == obj) for obj in ("people", "organisations", "leads")
    }
    # 120 leads fill 3 pages exactly: a missing next link is not trusted to mean "done", so a 4th (empty) page
    assert pages == {"people": 7, "organisations": 1, "leads": 4}
    assert all(r.headers["user-agent"].startswith("switchboard/") for r in crm.requests)


@pytest.mark.parametrize("next_link_style", ["omit", "null", "none"])
async def test_zendesk_sell_pages_whether_or_not_next_links_are_sent(next_link_style: NextLinkStyle) -> None:
    people, leads = make_people(50, seed=14), make_people(40, seed=15)
    crm = ZendeskSellEmulator(token=TOKEN, contacts=[person_contact(p) for p in people], leads=[lead(p) for p in leads],
                              next_link_style=next_link_style)  # fmt: skip
    with serve(crm.app) as url:
        records, progress = await fetch_all(build_connector(get_preset("zendesk-sell"), settings(url), page_size=20))
    assert len(records) == 90
    pages = {obj: max((p.pages for p in progress if p.object_type == obj), default=0) for obj in ("people", "leads")}
    assert pages == {"people": 3, "leads": 3}  # 40 leads fill two pages exactly: a third, empty one ends the list


async def test_zendesk_sell_never_asks_for_more_than_100_per_page() -> None:
    crm = ZendeskSellEmulator(token=TOKEN, contacts=[person_contact(p) for p in make_people(130, seed=8)])
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("zendesk-sell"), settings(url), page_size=5000))
    assert len(records) == 130
    assert crm.max_per_page_requested == 100


async def test_zendesk_sell_rate_limit_is_waited_out() -> None:
    crm = ZendeskSellEmulator(token=TOKEN, contacts=[person_contact(p) for p in make_people(30, seed=9)])
    crm.faults.on(1, 2, fault=Fault.rate_limit(retry_after=None))
    sleep = NoSleep()
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("zendesk-sell"), settings(url), sleep=sleep))
    assert len(records) == 30
    assert len(sleep.calls) == 2  # Sell sends no rate-limit headers: exponential backoff


async def test_zendesk_sell_wrong_token_is_reported_in_admin_terms() -> None:
    crm = ZendeskSellEmulator(token=TOKEN, contacts=[person_contact(p) for p in make_people(2, seed=10)])
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("zendesk-sell"), settings(url, token="deadbeef0000")))
    assert str(caught.value).startswith("Zendesk Sell refused the access token (401): check the access token")
    assert "deadbeef0000" not in str(caught.value)


async def test_zendesk_sell_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    people, leads = make_people(40, seed=11), make_people(20, seed=13)
    organisations = make_people(8, seed=12, companies=True)
    contacts = [person_contact(p) for p in people] + [organisation_contact(o) for o in organisations]
    crm = ZendeskSellEmulator(token=TOKEN, contacts=contacts, leads=[lead(p) for p in leads])
    expected = (
        {f"people:{1_000 + p.index}": p for p in people}
        | {f"organisations:{90_000 + o.index}": o for o in organisations}
        | {f"leads:{50_000 + p.index}": p for p in leads}
    )
    with serve(crm.app) as url:
        synced = await sync_and_look_up(runtime, session, preset="zendesk-sell", values=settings(url),
                                        expected=expected, kinds=KINDS)  # fmt: skip
    zoe = synced.answers["people:1001"]
    assert zoe["notification"][0] == {"label": "Name", "value": "Zoë Groß"}
    assert zoe["scripts"][0]["url"] == "https://app.futuresimple.com/crm/contacts/1001"
    assert synced.answers["leads:50002"]["fields"]["DisplayName"] == "François Lefèvre, Ödeshög AB"
