"""The Capsule preset against the emulated Capsule API v2."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session

from core.connector import build_connector, get_preset
from core.errors import ConnectorError, InvalidInput
from core.runtime import Runtime
from tests.crm.base import Fault
from tests.crm.capsule import CapsuleEmulator
from tests.crm.server import serve
from tests.presets.messy_numbers import (
    GARBAGE,
    NoSleep,
    Person,
    catalogue,
    check_lookups,
    fetch_all,
    make_people,
    sync_and_look_up,
)

TOKEN = "cap-7f3a9c1e5b2d4f6a8c0e"
NOW = 1_900_000_000.0
TYPES = {"work": "Work", "mobile": "Mobile", "home": "Home", "other": None, "fax": "Fax"}
KINDS = tuple(TYPES)


def person_party(person: Person) -> dict[str, Any]:
    """A Capsule person, shaped like the documented example."""
    return {
        "id": 11_000 + person.index, "type": "person", "about": None, "title": None,
        "firstName": person.first, "lastName": person.last, "jobTitle": person.title,
        "createdAt": "2015-09-15T10:43:23Z", "updatedAt": "2015-09-15T10:43:23Z", "lastContactedAt": None,
        "organisation": None if person.index % 6 == 0 else {"id": 7, "name": person.company, "pictureURL": ""},
        "phoneNumbers": [{"id": 50_000 + 10 * person.index + k, "type": TYPES[p.kind], "number": p.raw}
                         for k, p in enumerate(person.phones)],
        "websites": [], "emailAddresses": [{"id": 1, "type": "Work", "address": person.email}],
        "pictureURL": "https://capsulecrm.com/theme/default/images/person_avatar_70.png",
    }  # fmt: skip


def organisation_party(org: Person) -> dict[str, Any]:
    """A Capsule organisation."""
    return {
        "id": 90_000 + org.index, "type": "organisation", "about": None, "name": org.last,
        "createdAt": "2015-09-15T10:43:23Z", "updatedAt": "2015-09-15T10:43:23Z", "lastContactedAt": None,
        "phoneNumbers": [{"id": 1, "type": TYPES[p.kind], "number": p.raw} for p in org.phones],
        "websites": [], "emailAddresses": [], "pictureURL": "",
    }  # fmt: skip


def settings(url: str, token: str = TOKEN) -> dict[str, str]:
    return {"access_token": token, "account": "baeckerei-test", "api_base_url": f"{url}/api/v2"}


async def test_capsule_syncs_people_and_organisations_with_messy_numbers() -> None:
    people = make_people(300, seed=5)
    organisations = make_people(40, seed=6, companies=True)
    parties = [person_party(p) for p in people] + [organisation_party(o) for o in organisations]
    crm = CapsuleEmulator(token=TOKEN, parties=parties, clock=lambda: NOW)
    with serve(crm.app) as url:
        connector = build_connector(get_preset("capsule"), settings(url), sleep=NoSleep(), page_size=50)
        records, progress = await fetch_all(connector)

    found = catalogue(records)
    expected = {f"parties:{11_000 + p.index}": p for p in people} | {f"parties:{90_000 + o.index}": o
                                                                     for o in organisations}  # fmt: skip
    assert len(records) == 340
    assert check_lookups(found, expected, KINDS) > 600
    jorg = found.records["parties:11000"]
    assert jorg.fields["DisplayName"] == "Jörg Müller"
    assert jorg.fields["company"] == ""  # a person without an organisation
    assert jorg.fields["PopUpUri"] == "https://baeckerei-test.capsulecrm.com/party/11000"
    assert jorg.fields["party_type"] == "person"
    zoe = found.records["parties:11001"]
    assert (zoe.fields["DisplayName"], zoe.fields["company"]) == ("Zoë Groß", "Crème & Brûlée SARL")
    assert zoe.fields["email"] == "zoë.1@example.de" and zoe.fields["job_title"] == "Geschäftsführerin"
    assert [label for label, _ in zoe.phones] == ["Work", "Mobile"]
    org = found.records["parties:90001"]
    assert org.fields["DisplayName"] == org.fields["company"] == "Crème & Brûlée SARL 1"
    assert org.fields["party_type"] == "organisation"
    untyped = [raw for r in records for label, raw in r.phones if label == "Phone"]  # numbers without a type
    assert untyped and set(untyped) <= set(GARBAGE)
    # Capsule's documented paging: perPage (<= 100), then the Link header until there is no rel="next"
    assert len(crm.requests) == 7 and progress[-1].pages == 7
    assert crm.requests[0].query == {"perPage": "50"}
    assert [r.query.get("page") for r in crm.requests[1:3]] == ["2", "3"]
    assert {r.headers["authorization"] for r in crm.requests} == {f"Bearer {TOKEN}"}


async def test_capsule_never_asks_for_more_than_100_per_page() -> None:
    crm = CapsuleEmulator(token=TOKEN, parties=[person_party(p) for p in make_people(150, seed=7)])
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("capsule"), settings(url), page_size=500))
    assert len(records) == 150
    assert crm.max_per_page_requested == 100
    assert len(crm.requests) == 2


async def test_capsule_rate_limit_waits_until_the_reset_time() -> None:
    crm = CapsuleEmulator(token=TOKEN, parties=[person_party(p) for p in make_people(60, seed=8)], clock=lambda: NOW)
    crm.faults.on(2, fault=Fault.rate_limit(retry_after=None))
    sleep = NoSleep()
    with serve(crm.app) as url:
        connector = build_connector(get_preset("capsule"), settings(url), sleep=sleep, clock=lambda: NOW,
                                    page_size=50)  # fmt: skip
        records, _ = await fetch_all(connector)
    assert len(records) == 60
    assert sleep.calls == [60.0]  # X-RateLimit-Reset is epoch seconds, a minute ahead
    assert [r.query.get("page") for r in crm.requests] == [None, "2", "2"]


async def test_capsule_wrong_token_is_reported_without_the_token() -> None:
    crm = CapsuleEmulator(token=TOKEN, parties=[person_party(p) for p in make_people(3, seed=9)])
    with serve(crm.app) as url:
        connector = build_connector(get_preset("capsule"), settings(url, token="cap-wrong-token-123"))
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(connector)
    assert caught.value.status == 401
    assert str(caught.value).startswith("Capsule refused the API token (401): check the API token")
    assert "cap-wrong-token-123" not in str(caught.value)


async def test_capsule_connection_test_shows_a_sample() -> None:
    crm = CapsuleEmulator(token=TOKEN, parties=[person_party(p) for p in make_people(25, seed=10)])
    with serve(crm.app) as url:
        connector = build_connector(get_preset("capsule"), settings(url))
        result = await connector.test_connection()
        await connector.aclose()
    assert result.sample is not None and result.sample.fields["DisplayName"] == "Jörg Müller"
    assert result.object_types == ["parties"]
    assert crm.requests[0].query == {"perPage": "10"}


def test_capsule_settings_say_what_is_missing() -> None:
    preset = get_preset("capsule")
    with pytest.raises(InvalidInput) as caught:
        build_connector(preset, {"access_token": TOKEN})
    assert caught.value.field == "account"
    assert "My Preferences" in preset.setting("access_token").help
    assert preset.setting("api_base_url").default == "https://api.capsulecrm.com/api/v2"


async def test_capsule_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    people, organisations = make_people(50, seed=11), make_people(10, seed=12, companies=True)
    parties = [person_party(p) for p in people] + [organisation_party(o) for o in organisations]
    crm = CapsuleEmulator(token=TOKEN, parties=parties)
    expected = {f"parties:{11_000 + p.index}": p for p in people} | {f"parties:{90_000 + o.index}": o
                                                                     for o in organisations}  # fmt: skip
    with serve(crm.app) as url:
        synced = await sync_and_look_up(runtime, session, preset="capsule", values=settings(url), expected=expected,
                                        kinds=KINDS)  # fmt: skip
    assert {example.rpartition(": ")[2] for example in synced.run.unparsed_examples} <= set(GARBAGE)
    zoe = synced.answers["parties:11001"]
    assert zoe["fields"]["DisplayName"] == "Zoë Groß"  # type: ignore[index]
    assert zoe["notification"][:2] == [  # type: ignore[index]
        {"label": "Name", "value": "Zoë Groß"},
        {"label": "Organisation", "value": "Crème & Brûlée SARL"},
    ]
    assert zoe["scripts"][0]["url"] == "https://baeckerei-test.capsulecrm.com/party/11001"  # type: ignore[index]
