"""The Insightly preset against the emulated Insightly API v3.1, with a data set of messy numbers."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from core.connector import PageProgress, build_connector, get_preset
from core.runtime import Runtime
from tests.crm import InsightlyEmulator, serve
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

API_KEY = "3f1b2c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"
POD = "eu1"
CONTACT_ID, ORGANISATION_ID, LEAD_ID = 310_000_000, 120_000_000, 55_000_000
CONTACT_PHONES = {"work": "PHONE", "mobile": "PHONE_MOBILE", "home": "PHONE_HOME", "other": "PHONE_OTHER",
                  "fax": "PHONE_FAX"}  # fmt: skip
ORGANISATION_PHONES = {"work": "PHONE", "fax": "PHONE_FAX"}
LEAD_PHONES = {"work": "PHONE", "mobile": "MOBILE", "fax": "FAX"}
KINDS = {"contacts": tuple(CONTACT_PHONES), "organisations": tuple(ORGANISATION_PHONES), "leads": tuple(LEAD_PHONES)}


def contact_record(person: Person, organisations: int) -> dict[str, Any]:
    """An Insightly contact, UPPER_SNAKE as the API sends it; every phone field present, empty ones null."""
    return {
        "CONTACT_ID": CONTACT_ID + person.index, "SALUTATION": None, "FIRST_NAME": person.first,
        "LAST_NAME": person.last, "EMAIL_ADDRESS": person.email, "TITLE": person.title,
        "ORGANISATION_ID": ORGANISATION_ID + person.index % organisations, "PHONE_ASSISTANT": None,
        **{field: person.phone(kind) for kind, field in CONTACT_PHONES.items()},
        "DATE_UPDATED_UTC": "2024-01-02 03:04:05", "CUSTOMFIELDS": [], "TAGS": [],
    }  # fmt: skip


def organisation_record(org: Person) -> dict[str, Any]:
    """An Insightly organisation (only ``PHONE`` and ``PHONE_FAX``)."""
    return {"ORGANISATION_ID": ORGANISATION_ID + org.index, "ORGANISATION_NAME": org.last,
            "WEBSITE": f"https://firma-{org.index}.de", "PHONE": org.phone("work"), "PHONE_FAX": org.phone("fax"),
            "DATE_UPDATED_UTC": "2024-01-02 03:04:05", "CUSTOMFIELDS": [], "TAGS": []}  # fmt: skip


def lead_record(person: Person) -> dict[str, Any]:
    """An Insightly lead (``PHONE``, ``MOBILE``, ``FAX``)."""
    return {"LEAD_ID": LEAD_ID + person.index, "FIRST_NAME": person.first, "LAST_NAME": person.last,
            "ORGANISATION_NAME": person.company, "EMAIL": person.email,
            **{field: person.phone(kind) for kind, field in LEAD_PHONES.items()}}  # fmt: skip


def only(person: Person, kinds: dict[str, str]) -> Person:
    """``person`` with only the phone fields the record type has (what Insightly can hold)."""
    return replace(person, phones=tuple(p for p in person.phones if p.kind in kinds))


def dataset(contacts: int, organisations: int, leads: int, seed: int) -> tuple[InsightlyEmulator, dict[str, Person]]:
    people = make_people(contacts, seed=seed)
    orgs = [only(o, ORGANISATION_PHONES) for o in make_people(organisations, seed=seed + 1, companies=True)]
    prospects = [only(p, LEAD_PHONES) for p in make_people(leads, seed=seed + 2)]
    crm = InsightlyEmulator(
        api_key=API_KEY,
        contacts=[contact_record(p, organisations) for p in people],
        organisations=[organisation_record(o) for o in orgs],
        leads=[lead_record(p) for p in prospects],
    )
    expected = (
        {f"contacts:{CONTACT_ID + p.index}": p for p in people}
        | {f"organisations:{ORGANISATION_ID + o.index}": o for o in orgs}
        | {f"leads:{LEAD_ID + p.index}": p for p in prospects}
    )
    return crm, expected


def settings(url: str) -> dict[str, str]:
    return {"api_key": API_KEY, "pod": POD, "api_base_url": f"{url}/v3.1"}


async def test_insightly_syncs_contacts_organisations_and_leads_with_messy_numbers() -> None:
    crm, expected = dataset(310, 40, 30, seed=31)
    with serve(crm.app) as url:
        connector = build_connector(get_preset("insightly"), settings(url), sleep=NoSleep(), page_size=50)
        records, progress = await fetch_all(connector)

    found = catalogue(records)
    assert len(records) == 380
    assert check_lookups(found, expected, KINDS) > 650
    jorg = found.records[f"contacts:{CONTACT_ID}"]
    assert jorg.fields["DisplayName"] == "Jörg Müller"
    assert jorg.fields["PopUpUri"] == f"https://crm.{POD}.insightly.com/details/contact/{CONTACT_ID}"
    zoe = found.records[f"contacts:{CONTACT_ID + 1}"]
    assert zoe.fields["DisplayName"] == "Zoë Groß"
    assert zoe.fields["email"] == "zoë.1@example.de" and zoe.fields["job_title"] == "Geschäftsführerin"
    assert [label for label, _ in zoe.phones] == ["Phone", "Mobile"]
    assert [label for label, _ in found.records[f"contacts:{CONTACT_ID + 16}"].phones] == [
        "Phone", "Mobile", "Other", "Fax"
    ]  # fmt: skip
    org = found.records[f"organisations:{ORGANISATION_ID + 1}"]
    assert org.fields["DisplayName"] == org.fields["company"] == "Crème & Brûlée SARL 1"
    assert org.fields["PopUpUri"] == f"https://crm.{POD}.insightly.com/details/organisation/{ORGANISATION_ID + 1}"
    lead = found.records[f"leads:{LEAD_ID + 3}"]
    assert (lead.fields["DisplayName"], lead.fields["company"]) == ("Łukasz Øster", "Société Générale")
    assert lead.fields["PopUpUri"] == f"https://crm.{POD}.insightly.com/details/lead/{LEAD_ID + 3}"
    assert found.unparsed and set(found.unparsed) <= set(GARBAGE)
    # Insightly's documented paging: skip/top (<= 500), a bare array, the short page is the last one
    assert [(r.path, r.query["skip"]) for r in crm.requests] == [
        *[("/v3.1/Contacts", str(skip)) for skip in range(0, 301, 50)],
        ("/v3.1/Organisations", "0"),
        ("/v3.1/Leads", "0"),
    ]
    assert {r.query["top"] for r in crm.requests} == {"50"}
    basic = "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
    assert {r.headers["authorization"] for r in crm.requests} == {basic}
    assert progress[6] == PageProgress("contacts", 7, 310)
    assert progress[-2:] == [PageProgress("organisations", 1, 40), PageProgress("leads", 1, 30)]


async def test_insightly_connected_synced_and_callers_recognised(runtime: Runtime) -> None:
    crm, expected = dataset(60, 10, 15, seed=34)
    with serve(crm.app) as url:
        slug, connected = await connect(runtime, "insightly", settings(url))

    run = connected.run
    assert run is not None and run.records == 85
    assert run.unparsed == sum(len(p.garbage(KINDS["contacts"])) for p in expected.values()) > 0
    assert {example.rpartition(": ")[2] for example in run.unparsed_examples} <= set(GARBAGE)
    checked = sum(
        check_callers(runtime, slug, {r: p for r, p in expected.items() if r.startswith(f"{kind}:")}, kinds)
        for kind, kinds in KINDS.items()
    )
    assert checked > 150
    zoe = who_calls(runtime, slug, min(expected[f"contacts:{CONTACT_ID + 1}"].numbers(["work"])))
    assert [m["record_id"] for m in zoe] == [f"contacts:{CONTACT_ID + 1}"]
    assert zoe[0]["fields"]["DisplayName"] == "Zoë Groß"
    assert zoe[0]["notification"][0] == {"label": "Name", "value": "Zoë Groß"}
    assert zoe[0]["scripts"][0]["url"] == f"https://crm.{POD}.insightly.com/details/contact/{CONTACT_ID + 1}"
