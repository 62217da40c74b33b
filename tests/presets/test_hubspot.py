"""The HubSpot preset against the emulated HubSpot CRM v3 objects API, with a data set of messy numbers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from core.connector import PageProgress, build_connector, get_preset
from core.runtime import Runtime
from tests.crm import HubSpotEmulator, serve
from tests.presets.end_to_end import check_callers, connect, who_calls
from tests.presets.messy_numbers import (
    GARBAGE,
    NoSleep,
    Person,
    catalogue,
    check_lookups,
    fetch_all,
    make_people,
)

TOKEN = "pat-eu1-7c1e5b2d-4f6a-48c0-9e3a-1b2c3d4e5f60"
PORTAL = "26401234"
KINDS = ("work", "mobile")  # HubSpot's ``phone`` and ``mobilephone``, the two the preset asks for
CONTACT_ID = 65_059_681_000
COMPANY_ID = 18_230_450_000


def as_held(person: Person, *, company: bool = False) -> Person:
    """``person`` as HubSpot can hold it: ``phone`` (work) and ``mobilephone``, where people also type a home
    number or "n/a" when they have no mobile; a fax stays in ``fax``, which the preset does not ask for."""
    phones = {p.kind: p for p in person.phones}
    second = phones.get("mobile") or phones.get("other") or phones.get("home")
    kept = [phones["work"]]
    if second is not None and not company:
        kept.append(replace(second, kind="mobile"))
    if "fax" in phones:
        kept.append(phones["fax"])
    return replace(person, phones=tuple(kept))


def contact_properties(person: Person) -> dict[str, Any]:
    """A HubSpot contact's properties, named as the API names them (the emulator adds the time stamps)."""
    return {
        "hs_object_id": str(CONTACT_ID + person.index), "firstname": person.first, "lastname": person.last,
        "email": person.email, "company": None if person.index % 6 == 0 else person.company,
        "jobtitle": person.title, "phone": person.phone("work"), "mobilephone": person.phone("mobile"),
        "fax": person.phone("fax"),
    }  # fmt: skip


def company_properties(org: Person) -> dict[str, Any]:
    """A HubSpot company's properties."""
    return {"hs_object_id": str(COMPANY_ID + org.index), "name": org.last, "domain": f"firma-{org.index}.de",
            "phone": org.phone("work"), "fax": org.phone("fax")}  # fmt: skip


def dataset(people: int, companies: int, seed: int) -> tuple[list[Person], list[Person]]:
    return ([as_held(p) for p in make_people(people, seed=seed)],
            [as_held(o, company=True) for o in make_people(companies, seed=seed + 1, companies=True)])  # fmt: skip


def expected_records(contacts: list[Person], companies: list[Person]) -> dict[str, Person]:
    return {f"contacts:{CONTACT_ID + p.index}": p for p in contacts} | {
        f"companies:{COMPANY_ID + o.index}": o for o in companies
    }


def settings(url: str) -> dict[str, str]:
    return {"access_token": TOKEN, "portal_id": PORTAL, "api_base_url": url}


async def test_hubspot_syncs_contacts_and_companies_with_messy_numbers() -> None:
    contacts, companies = dataset(300, 40, seed=21)
    crm = HubSpotEmulator(token=TOKEN, contacts=[contact_properties(p) for p in contacts],
                          companies=[company_properties(o) for o in companies])  # fmt: skip
    with serve(crm.app) as url:
        connector = build_connector(get_preset("hubspot"), settings(url), sleep=NoSleep(), page_size=50)
        records, progress = await fetch_all(connector)

    found = catalogue(records)
    assert len(records) == 340
    assert check_lookups(found, expected_records(contacts, companies), KINDS) > 550
    jorg = found.records[f"contacts:{CONTACT_ID}"]
    assert jorg.fields["DisplayName"] == "Jörg Müller"
    assert jorg.fields["company"] == ""  # a contact without a company
    assert jorg.fields["PopUpUri"] == f"https://app.hubspot.com/contacts/{PORTAL}/record/0-1/{CONTACT_ID}"
    zoe = found.records[f"contacts:{CONTACT_ID + 1}"]
    assert (zoe.fields["DisplayName"], zoe.fields["company"]) == ("Zoë Groß", "Crème & Brûlée SARL")
    assert zoe.fields["email"] == "zoë.1@example.de" and zoe.fields["job_title"] == "Geschäftsführerin"
    assert [label for label, _ in zoe.phones] == ["Phone", "Mobile"]
    company = found.records[f"companies:{COMPANY_ID + 1}"]
    assert company.fields["DisplayName"] == company.fields["company"] == "Crème & Brûlée SARL 1"
    assert company.fields["domain"] == "firma-1.de"
    assert company.fields["PopUpUri"] == f"https://app.hubspot.com/contacts/{PORTAL}/record/0-2/{COMPANY_ID + 1}"
    assert found.unparsed and set(found.unparsed) <= set(GARBAGE)
    assert found.lookup(min(contacts[5].numbers(["fax"]))) == set()  # fax is not asked for
    # HubSpot's documented paging: limit (<= 100), then paging.next.after until there is no paging
    assert [(r.path, r.query.get("after")) for r in crm.requests] == [
        *[("/crm/v3/objects/contacts", after) for after in (None, "50", "100", "150", "200", "250")],
        ("/crm/v3/objects/companies", None),
    ]
    assert {r.query["limit"] for r in crm.requests} == {"50"}
    assert {r.query["archived"].lower() for r in crm.requests} == {"false"}
    wanted = crm.requests[0].query["properties"].split(",")
    assert {"firstname", "lastname", "company", "phone", "mobilephone"} <= set(wanted) and "fax" not in wanted
    assert set(crm.requests[-1].query["properties"].split(",")) == {"name", "domain", "phone"}
    assert {r.headers["authorization"] for r in crm.requests} == {f"Bearer {TOKEN}"}
    assert progress[5] == PageProgress("contacts", 6, 300) and progress[-1] == PageProgress("companies", 1, 40)


async def test_hubspot_connected_synced_and_callers_recognised(runtime: Runtime) -> None:
    contacts, companies = dataset(60, 12, seed=23)
    crm = HubSpotEmulator(token=TOKEN, contacts=[contact_properties(p) for p in contacts],
                          companies=[company_properties(o) for o in companies])  # fmt: skip
    expected = expected_records(contacts, companies)
    with serve(crm.app) as url:
        slug, connected = await connect(runtime, "hubspot", settings(url))

    run = connected.run
    assert run is not None and run.records == 72
    assert run.unparsed == sum(len(p.garbage(KINDS)) for p in expected.values()) > 0
    assert {example.rpartition(": ")[2] for example in run.unparsed_examples} <= set(GARBAGE)
    assert check_callers(runtime, slug, expected, KINDS) > 100
    zoe = who_calls(runtime, slug, min(contacts[1].numbers(KINDS)))
    assert [m["record_id"] for m in zoe] == [f"contacts:{CONTACT_ID + 1}"]
    assert zoe[0]["notification"][:2] == [{"label": "Name", "value": "Zoë Groß"},
                                          {"label": "Company", "value": "Crème & Brûlée SARL"}]  # fmt: skip
    assert zoe[0]["scripts"][0]["url"] == f"https://app.hubspot.com/contacts/{PORTAL}/record/0-1/{CONTACT_ID + 1}"
