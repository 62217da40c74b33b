"""The Teamleader Focus preset against an emulated account: sign-in, rotating refresh tokens, POST paging."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import Session

from core.connector import authorization_url, build_connector, exchange_code, get_preset
from core.errors import ConnectorError
from core.runtime import Runtime
from tests.crm import serve
from tests.crm.teamleader import TeamleaderEmulator
from tests.presets.messy_numbers import Person, catalogue, check_lookups, fetch_all, make_people, sync_and_look_up

CLIENT_ID, SECRET = "d4edfc96ff1d0814c57f3ed0a72cebc8", "a1b2c3d4e5f60718293a4b5c6d7e8f90"
REDIRECT = "https://switchboard.example/oauth/callback"
ALL_KINDS = ("work", "mobile", "home", "other", "fax")
TYPES = {"work": "phone", "mobile": "mobile", "home": "phone", "other": "phone", "fax": "fax"}


def contact(person: Person) -> dict[str, Any]:
    """A contact: every phone field becomes a telephones entry (home and other are extra 'phone' entries)."""
    return {
        "first_name": person.first, "last_name": person.last, "status": "active", "salutation": "",
        "emails": [{"type": "primary", "email": person.email}],
        "telephones": [{"type": TYPES[p.kind], "number": p.raw} for p in person.phones],
        "website": None, "added_at": "2016-02-04T16:44:33+00:00",
    }  # fmt: skip


def company(firm: Person) -> dict[str, Any]:
    return {
        "name": firm.name, "status": "active", "vat_number": f"BE0899.{firm.index:03d}.035",
        "emails": [{"type": "primary", "email": firm.email}], "website": "https://dok-noord.be",
        "telephones": [{"type": "fax" if p.kind == "fax" else "phone", "number": p.raw} for p in firm.phones],
    }  # fmt: skip


def settings(url: str) -> dict[str, str]:
    return {"client_id": CLIENT_ID, "client_secret": SECRET, "oauth_url": url, "api_base_url": url}


async def sign_in(crm: TeamleaderEmulator, url: str) -> dict[str, str]:
    """The admin's sign-in: the browser follows the authorize URL, switchboard trades the code for tokens."""
    preset = get_preset("teamleader")
    request = authorization_url(preset, settings(url), redirect_uri=REDIRECT)
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(request.url)
    callback = parse_qs(urlsplit(answer.headers["location"]).query)
    return await exchange_code(
        preset, settings(url), code=callback["code"][0], state=callback["state"][0], expected_state=request.state,
        redirect_uri=REDIRECT,
    )  # fmt: skip


async def test_signs_in_and_syncs_contacts_and_companies() -> None:
    people, firms = make_people(230, seed=51), make_people(35, seed=52, companies=True)
    crm = TeamleaderEmulator(client_id=CLIENT_ID, client_secret=SECRET,
                             contacts=[contact(p) for p in people], companies=[company(c) for c in firms])  # fmt: skip
    stored: list[dict[str, str]] = []
    with serve(crm.app) as url:
        tokens = await sign_in(crm, url)
        assert tokens["refresh_token"] and tokens["access_token"]
        connector = build_connector(get_preset("teamleader"), settings(url), tokens=tokens, on_tokens=stored.append,
                                    page_size=500)  # fmt: skip
        records, _ = await fetch_all(connector)

    expected = {f"contacts:{row['id']}": p for row, p in zip(crm.resources["contacts"], people, strict=True)}
    expected |= {f"companies:{row['id']}": c for row, c in zip(crm.resources["companies"], firms, strict=True)}
    found = catalogue(records)
    assert check_lookups(found, expected, ALL_KINDS) > 400
    lists = [r for r in crm.requests if r.path.endswith(".list")]
    assert [r.json()["page"] for r in lists] == [
        {"number": 1, "size": 100}, {"number": 2, "size": 100}, {"number": 3, "size": 100},
        {"number": 1, "size": 100},
    ]  # fmt: skip
    assert all(r.method == "POST" and r.json()["sort"] == [{"field": "added_at", "order": "asc"}] for r in lists)
    assert crm.grants == ["authorization_code"] and stored == []  # the signed-in token was still valid
    first_id = crm.resources["contacts"][0]["id"]
    first = found.records[f"contacts:{first_id}"]
    assert first.fields["DisplayName"] == "Jörg Müller" and first.fields["email"] == "jörg.0@example.de"
    assert first.fields["PopUpUri"] == f"https://focus.teamleader.eu/contact_detail.php?id={first_id}"
    assert {label for r in records for label, _ in r.phones} >= {"Phone", "Mobile", "Fax"}


async def test_an_expired_access_token_is_refreshed_and_the_new_refresh_token_kept() -> None:
    crm = TeamleaderEmulator(client_id=CLIENT_ID, client_secret=SECRET,
                             contacts=[contact(p) for p in make_people(150, seed=53)])  # fmt: skip
    stored: list[dict[str, str]] = []
    with serve(crm.app) as url:
        tokens = await sign_in(crm, url)
        connector = build_connector(get_preset("teamleader"), settings(url), tokens=tokens, on_tokens=stored.append)
        records = []
        async for page in connector.fetch(progress=lambda p: crm.expire_access_tokens() if p.pages == 1 else None):
            records.extend(page)
        await connector.aclose()
        assert len(records) == 150
        assert crm.grants == ["authorization_code", "refresh_token"]
        assert stored[-1]["refresh_token"] != tokens["refresh_token"]

        # the old refresh token was retired: a connector still holding it must send the admin to sign in again
        crm.expire_access_tokens()
        stale = build_connector(get_preset("teamleader"), settings(url), tokens=tokens)
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(stale)
    assert "sign in to Teamleader Focus again" in caught.value.message
    assert tokens["refresh_token"] not in caught.value.message


async def test_without_a_sign_in_there_is_nothing_to_sync() -> None:
    crm = TeamleaderEmulator(client_id=CLIENT_ID, client_secret=SECRET)
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("teamleader"), settings(url)))
    assert "not connected yet" in caught.value.message


def test_sign_in_address_and_api_address_default_to_teamleader() -> None:
    preset = get_preset("teamleader")
    request = authorization_url(preset, {"client_id": CLIENT_ID, "client_secret": SECRET}, redirect_uri=REDIRECT)
    parts = urlsplit(request.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "focus.teamleader.eu", "/oauth2/authorize")
    assert parse_qs(parts.query)["client_id"] == [CLIENT_ID]
    assert preset.setting("api_base_url").default == "https://api.focus.teamleader.eu"
    assert all(s.help for s in preset.settings)


async def test_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    people, firms = make_people(90, seed=54), make_people(12, seed=55, companies=True)
    crm = TeamleaderEmulator(client_id=CLIENT_ID, client_secret=SECRET,
                             contacts=[contact(p) for p in people], companies=[company(c) for c in firms])  # fmt: skip
    expected = {f"contacts:{row['id']}": p for row, p in zip(crm.resources["contacts"], people, strict=True)}
    expected |= {f"companies:{row['id']}": c for row, c in zip(crm.resources["companies"], firms, strict=True)}
    with serve(crm.app) as url:
        tokens = await sign_in(crm, url)
        synced = await sync_and_look_up(runtime, session, preset="teamleader", values=settings(url),
                                        expected=expected, kinds=ALL_KINDS, tokens=tokens)  # fmt: skip
    first_id = crm.resources["contacts"][0]["id"]
    answer = synced.answers[f"contacts:{first_id}"]
    assert answer["notification"][0] == {"label": "Name", "value": "Jörg Müller"}
    assert answer["scripts"][0]["url"] == f"https://focus.teamleader.eu/contact_detail.php?id={first_id}"
    firm_id = crm.resources["companies"][0]["id"]
    assert synced.answers[f"companies:{firm_id}"]["notification"][1] == {"label": "Company",
                                                                          "value": "Bäckerei Groß GmbH 0"}  # fmt: skip
