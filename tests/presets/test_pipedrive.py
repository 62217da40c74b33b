"""The Pipedrive preset against the emulated Pipedrive API v2, with a data set of messy numbers."""

from __future__ import annotations

from typing import Any

from core.connector import PageProgress, build_connector, get_preset
from core.runtime import Runtime
from tests.crm import PipedriveEmulator, serve
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

API_TOKEN = "659c9fddb16335e48cc67114694b52074e812e03"
DOMAIN = "baeckerei-gross"
LABELS = {"work": "work", "mobile": "mobile", "home": "home", "other": "other", "fax": "other"}  # no fax label
KINDS = tuple(LABELS)
FIRST_ID = 1001


def person_item(person: Person) -> dict[str, Any]:
    """A Pipedrive v2 person (PersonItem): ``phones``/``emails`` arrays of ``{value, primary, label}``."""
    return {
        "id": FIRST_ID + person.index, "name": person.name, "first_name": person.first, "last_name": person.last,
        "owner_id": 123, "org_id": None if person.index % 6 == 0 else 5000 + person.index % 7,
        "add_time": "2023-01-08T05:30:20Z", "update_time": "2023-02-08T05:30:20Z", "is_deleted": False,
        "visible_to": 3, "picture_id": None, "label_ids": [], "custom_fields": {},
        "phones": [{"value": p.raw, "primary": k == 0, "label": LABELS[p.kind]} for k, p in enumerate(person.phones)],
        "emails": [{"value": person.email, "primary": True, "label": "work"}],
    }  # fmt: skip


def organization_item(org: Person) -> dict[str, Any]:
    """A Pipedrive v2 organization: no phone field (so the preset does not fetch organizations)."""
    return {"id": 5000 + org.index, "name": org.last, "owner_id": 123, "address": None, "custom_fields": {},
            "add_time": "2023-01-08T05:30:20Z", "update_time": "2023-02-08T05:30:20Z", "is_deleted": False}  # fmt: skip


def settings(url: str) -> dict[str, str]:
    return {"api_token": API_TOKEN, "company_domain": DOMAIN, "api_base_url": url}


def emulator(people: list[Person]) -> PipedriveEmulator:
    organizations = [organization_item(o) for o in make_people(7, seed=99, companies=True)]
    return PipedriveEmulator(api_token=API_TOKEN, persons=[person_item(p) for p in people],
                             organizations=organizations)  # fmt: skip


async def test_pipedrive_syncs_persons_with_messy_numbers() -> None:
    people = make_people(300, seed=41)
    crm = emulator(people)
    with serve(crm.app) as url:
        connector = build_connector(get_preset("pipedrive"), settings(url), sleep=NoSleep(), page_size=50)
        records, progress = await fetch_all(connector)

    found = catalogue(records)
    assert len(records) == 300 and all(r.object_type == "persons" for r in records)
    assert check_lookups(found, {f"persons:{FIRST_ID + p.index}": p for p in people}, KINDS) > 600
    jorg = found.records[f"persons:{FIRST_ID}"]
    assert jorg.fields["DisplayName"] == "Jörg Müller"
    assert jorg.fields["PopUpUri"] == f"https://{DOMAIN}.pipedrive.com/person/{FIRST_ID}"
    zoe = found.records[f"persons:{FIRST_ID + 1}"]
    assert (zoe.fields["DisplayName"], zoe.fields["email"]) == ("Zoë Groß", "zoë.1@example.de")
    assert [label for label, _ in zoe.phones] == ["Work", "Mobile"]
    assert [label for label, _ in found.records[f"persons:{FIRST_ID + 16}"].phones] == [
        "Work", "Mobile", "Other", "Other"
    ]  # fmt: skip
    assert found.unparsed and set(found.unparsed) <= set(GARBAGE)
    # Pipedrive's documented paging: limit (<= 500), then additional_data.next_cursor until it is null;
    # the token in the x-api-token header, never in the URL; organizations (no phone field) are not asked for
    assert [r.path for r in crm.requests] == ["/api/v2/persons"] * 6
    assert {r.query["limit"] for r in crm.requests} == {"50"}
    assert "cursor" not in crm.requests[0].query and len({r.query["cursor"] for r in crm.requests[1:]}) == 5
    assert {r.headers["x-api-token"] for r in crm.requests} == {API_TOKEN}
    assert not any("api_token" in r.query for r in crm.requests)
    assert progress[-1] == PageProgress("persons", 6, 300)


async def test_pipedrive_connected_synced_and_callers_recognised(runtime: Runtime) -> None:
    people = make_people(80, seed=43)
    crm = emulator(people)
    expected = {f"persons:{FIRST_ID + p.index}": p for p in people}
    with serve(crm.app) as url:
        slug, connected = await connect(runtime, "pipedrive", settings(url))

    run = connected.run
    assert run is not None and run.records == 80
    assert run.unparsed == sum(len(p.garbage(KINDS)) for p in people) > 0
    assert {example.rpartition(": ")[2] for example in run.unparsed_examples} <= set(GARBAGE)
    assert check_callers(runtime, slug, expected, KINDS) > 150
    zoe = who_calls(runtime, slug, min(people[1].numbers(["mobile"])))
    assert [m["record_id"] for m in zoe] == [f"persons:{FIRST_ID + 1}"]
    assert zoe[0]["notification"] == [{"label": "Name", "value": "Zoë Groß"},
                                      {"label": "E-mail", "value": "zoë.1@example.de"}]  # fmt: skip
    assert zoe[0]["scripts"][0]["url"] == f"https://{DOMAIN}.pipedrive.com/person/{FIRST_ID + 1}"
