"""The Zendesk Support preset against an emulated account: cursor paging, sideloaded identities, organizations."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlmodel import Session

from core.connector import build_connector, get_preset, validate_settings
from core.errors import ConnectorError
from core.runtime import Runtime
from tests.crm import Fault, serve
from tests.crm.zendesk import ZendeskEmulator
from tests.presets.messy_numbers import (
    NoSleep,
    Person,
    catalogue,
    check_lookups,
    fetch_all,
    make_people,
    sync_and_look_up,
)

EMAIL, TOKEN = "jörg.admin@example.de", "6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv"
USER_KINDS = ("work", "mobile", "home", "fax")  # a phone identity holds a number, never "n/a"


def restrict(person: Person, kinds: tuple[str, ...]) -> Person:
    return dataclasses.replace(person, phones=tuple(p for p in person.phones if p.kind in kinds))


def user(person: Person, organization_id: int) -> dict[str, Any]:
    """A user: the work number is the primary phone; every number is also a phone identity."""
    return {
        "name": person.name, "email": person.email, "phone": person.phone("work"), "role": "end-user",
        "organization_id": organization_id, "external_id": f"crm-{person.index}", "active": True,
        "phones": [p.raw for p in person.phones],
    }  # fmt: skip


def organization(firm: Person, key: str = "phone") -> dict[str, Any]:
    return {"name": firm.name, "external_id": None, "domain_names": ["example.de"],
            "organization_fields": {key: firm.phone("work"), "branche": "Käserei"}}  # fmt: skip


def account(key: str = "phone") -> tuple[ZendeskEmulator, dict[str, Person]]:
    people = [restrict(p, USER_KINDS) for p in make_people(320, seed=71)]
    firms = [restrict(c, ("work",)) for c in make_people(30, seed=72, companies=True)]
    crm = ZendeskEmulator(email=EMAIL, api_token=TOKEN, organizations=[organization(f, key) for f in firms])
    org_ids = [o["id"] for o in crm.resources["organizations"]]
    crm.resources["users"] = [{"id": 35_436_000 + i, **user(p, org_ids[i % len(org_ids)])}
                              for i, p in enumerate(people)]  # fmt: skip
    expected = {f"users:{row['id']}": p for row, p in zip(crm.resources["users"], people, strict=True)}
    expected |= {f"organizations:{row['id']}": f for row, f in zip(crm.resources["organizations"], firms, strict=True)}
    return crm, expected


def settings(url: str, **extra: str) -> dict[str, str]:
    return {"subdomain": "acme", "email": EMAIL, "api_token": TOKEN, "api_base_url": url, **extra}


async def test_syncs_users_with_every_number_and_their_organizations() -> None:
    crm, expected = account()
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("zendesk"), settings(url)))

    found = catalogue(records)
    assert check_lookups(found, expected, USER_KINDS) > 500
    users = [r for r in crm.requests if r.path == "/api/v2/users.json"]
    assert len(users) == 4 and all(r.query["include"] == "identities,organizations" for r in users)
    assert "page[after]" not in users[0].query and all(r.query["page[after]"] for r in users[1:])
    assert set(crm.page_sizes) == {100}
    first_id = crm.resources["users"][0]["id"]
    first = found.records[f"users:{first_id}"]
    assert (first.fields["DisplayName"], first.fields["company"]) == ("Jörg Müller", "Bäckerei Groß GmbH 0")
    assert first.fields["PopUpUri"] == f"https://acme.zendesk.com/agent/users/{first_id}"
    raw = [number for _, number in first.phones]
    assert len(raw) == len(set(raw)), "the primary number is not repeated from its identity"
    firm_id = crm.resources["organizations"][0]["id"]
    assert found.records[f"organizations:{firm_id}"].fields["PopUpUri"].endswith(f"/agent/organizations/{firm_id}")


async def test_an_organization_phone_field_with_another_key() -> None:
    crm, expected = account(key="telefonnummer")
    with serve(crm.app) as url:
        connector = build_connector(get_preset("zendesk"), settings(url, organization_phone_field="telefonnummer"))
        records, _ = await fetch_all(connector)
    check_lookups(catalogue(records), expected, USER_KINDS)


async def test_waits_out_the_rate_limit() -> None:
    crm, _ = account()
    crm.faults.on(3, fault=Fault.rate_limit(retry_after="42"))
    sleep = NoSleep()
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("zendesk"), settings(url), sleep=sleep))
    assert len(records) == 350 and sleep.calls == [42.0]


async def test_a_wrong_token_is_reported_without_it() -> None:
    crm, _ = account()
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("zendesk"), settings(url, api_token="WrongToken123")))
    assert caught.value.status == 401 and "token access is enabled" in caught.value.message
    assert "WrongToken123" not in caught.value.message


def test_the_subdomain_fills_in_the_address() -> None:
    preset = get_preset("zendesk")
    values = validate_settings(preset, {"subdomain": "acme", "email": EMAIL, "api_token": TOKEN})
    assert values["api_base_url"] == "https://acme.zendesk.com"
    assert values["organization_phone_field"] == "phone"
    assert preset.secret_settings == {"api_token"}
    assert all(s.help for s in preset.settings)


async def test_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    people = [restrict(p, USER_KINDS) for p in make_people(90, seed=73)]
    firms = [restrict(c, ("work",)) for c in make_people(12, seed=74, companies=True)]
    crm = ZendeskEmulator(email=EMAIL, api_token=TOKEN, organizations=[organization(f) for f in firms])
    org_ids = [o["id"] for o in crm.resources["organizations"]]
    crm.resources["users"] = [{"id": 35_436_000 + i, **user(p, org_ids[i % len(org_ids)])}
                              for i, p in enumerate(people)]  # fmt: skip
    expected = {f"users:{row['id']}": p for row, p in zip(crm.resources["users"], people, strict=True)}
    expected |= {f"organizations:{row['id']}": f for row, f in zip(crm.resources["organizations"], firms, strict=True)}
    with serve(crm.app) as url:
        synced = await sync_and_look_up(runtime, session, preset="zendesk", values=settings(url), expected=expected,
                                        kinds=USER_KINDS)  # fmt: skip
    first_id = crm.resources["users"][0]["id"]
    answer = synced.answers[f"users:{first_id}"]
    assert answer["notification"][:2] == [
        {"label": "Name", "value": "Jörg Müller"},
        {"label": "Organization", "value": "Bäckerei Groß GmbH 0"},
    ]
    assert answer["scripts"][0]["url"] == f"https://acme.zendesk.com/agent/users/{first_id}"
