"""The Exact Online preset against an emulated division: sign-in, division lookup, bulk paging, rotation."""

from __future__ import annotations

import dataclasses
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import Session

from core.connector import authorization_url, build_connector, exchange_code, get_preset
from core.errors import ConnectorError
from core.runtime import Runtime
from tests.crm import Fault, serve
from tests.crm.exact_online import ExactOnlineEmulator
from tests.presets.messy_numbers import (
    NoSleep,
    Person,
    catalogue,
    check_lookups,
    fetch_all,
    make_people,
    sync_and_look_up,
)

CLIENT_ID, SECRET = "6c1a4a8e-0b7a-4f3b-9a61-2f5e0c0d8a11", "Xq9!exact-secret"
DIVISION = 115673
REDIRECT = "https://switchboard.example/oauth/callback"
ALL_KINDS = ("work", "mobile", "home", "other", "fax")


def account(company: Person) -> dict[str, Any]:
    return {
        "Name": company.name, "Code": f"{' ' * 14}{1000 + company.index}", "Phone": company.phone("work"),
        "Fax": company.phone("fax"), "Email": company.email, "Website": "www.ödeshög.se",
        "AccountManagerFullName": "Štěpán Dvořák",
    }  # fmt: skip


def contact(person: Person, account_row: dict[str, Any]) -> dict[str, Any]:
    return {
        "FullName": person.name, "FirstName": person.first, "LastName": person.last, "Email": person.email,
        "BusinessPhone": person.phone("work"), "Mobile": person.phone("mobile"), "Phone": person.phone("home"),
        "BusinessMobile": person.phone("other"), "BusinessFax": person.phone("fax"), "Account": account_row["ID"],
        "AccountName": account_row["Name"], "Code": account_row["Code"],
    }  # fmt: skip


def division_data(
    page_size: int = 100, *, contacts: int = 250, accounts: int = 60
) -> tuple[ExactOnlineEmulator, dict[str, Person]]:
    firms = [dataclasses.replace(c, phones=tuple(p for p in c.phones if p.kind in ("work", "fax")))
             for c in make_people(accounts, seed=61, companies=True)]  # fmt: skip
    people = make_people(contacts, seed=62)
    crm = ExactOnlineEmulator(client_id=CLIENT_ID, client_secret=SECRET, division=DIVISION, page_size=page_size,
                              accounts=[account(c) for c in firms])  # fmt: skip
    accounts = crm.entities["Accounts"]
    crm.entities["Contacts"] = [
        {"ID": f"5e7b1c2d-0000-4000-8000-{i:012d}", **contact(p, accounts[i % len(accounts)])}
        for i, p in enumerate(people)
    ]
    expected = {f"accounts:{row['ID']}": c for row, c in zip(accounts, firms, strict=True)}
    expected |= {f"contacts:{row['ID']}": p for row, p in zip(crm.entities["Contacts"], people, strict=True)}
    return crm, expected


def settings(url: str, **extra: str) -> dict[str, str]:
    return {"site": "be", "client_id": CLIENT_ID, "client_secret": SECRET, "api_base_url": url, **extra}


async def sign_in(url: str) -> dict[str, str]:
    preset = get_preset("exact-online")
    request = authorization_url(preset, settings(url), redirect_uri=REDIRECT)
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(request.url)
    callback = parse_qs(urlsplit(answer.headers["location"]).query)
    return await exchange_code(preset, settings(url), code=callback["code"][0], state=callback["state"][0],
                               expected_state=request.state, redirect_uri=REDIRECT)  # fmt: skip


async def test_signs_in_finds_the_division_and_syncs_in_bulk() -> None:
    crm, expected = division_data()
    with serve(crm.app) as url:
        tokens = await sign_in(url)
        records, _ = await fetch_all(build_connector(get_preset("exact-online"), settings(url), tokens=tokens))

    found = catalogue(records)
    assert check_lookups(found, expected, ALL_KINDS) > 400
    paths = [r.path for r in crm.requests if r.path.startswith("/api/v1/")]
    assert paths[0] == "/api/v1/current/Me" and paths.count("/api/v1/current/Me") == 1
    assert paths.count(f"/api/v1/{DIVISION}/bulk/CRM/Contacts") == 3  # 250 contacts, 100 a page here
    assert all(r.query["$select"] for r in crm.requests if "/bulk/" in r.path)
    assert "$skiptoken" in [r for r in crm.requests if "/bulk/" in r.path][2].query  # contacts, page 2
    account_id = crm.entities["Accounts"][0]["ID"]
    firm = found.records[f"accounts:{account_id}"]
    assert (firm.fields["account_number"], firm.fields["owner"]) == ("1000", "Štěpán Dvořák")
    assert firm.fields["PopUpUri"] == (
        f"https://start.exactonline.be/docs/CRMAccountCard.aspx?_Division_={DIVISION}&AccountID=%7b{account_id}%7d"
    )
    person = found.records[f"contacts:{crm.entities['Contacts'][0]['ID']}"]
    assert (person.fields["DisplayName"], person.fields["company"]) == ("Jörg Müller", "Bäckerei Groß GmbH 0")
    assert person.fields["PopUpUri"] == firm.fields["PopUpUri"]  # a contact opens its account's card


async def test_ten_minute_tokens_are_refreshed_and_the_rotated_refresh_token_kept() -> None:
    crm, _ = division_data()
    stored: list[dict[str, str]] = []
    with serve(crm.app) as url:
        tokens = await sign_in(url)
        connector = build_connector(get_preset("exact-online"), settings(url, division=str(DIVISION)),
                                    tokens=tokens, on_tokens=stored.append)  # fmt: skip
        records = []
        async for page in connector.fetch(progress=lambda p: crm.expire_access_tokens()):
            records.extend(page)
        await connector.aclose()
    assert len(records) == 310
    assert crm.grants.count("refresh_token") == 3  # before each of the four pages but the first
    assert len({t["refresh_token"] for t in stored}) == 3 and tokens["refresh_token"] not in crm.refresh_tokens
    assert all(float(t["expires_at"]) > 0 for t in stored)


async def test_waits_out_a_rate_limit() -> None:
    crm, _ = division_data(page_size=1000)
    crm.faults.on(1, fault=Fault.rate_limit(retry_after="31"))
    sleep = NoSleep()
    with serve(crm.app) as url:
        tokens = await sign_in(url)
        connector = build_connector(get_preset("exact-online"), settings(url, division=str(DIVISION)),
                                    tokens=tokens, sleep=sleep)  # fmt: skip
        records, _ = await fetch_all(connector)
    assert len(records) == 310 and sleep.calls == [31.0]


async def rate_limited_sync(fault: Fault) -> tuple[list[float], ConnectorError | None]:
    """The waits of a sync whose first bulk page is answered with ``fault``, and the error it ended with."""
    crm, _ = division_data(page_size=1000)
    crm.faults.on(1, fault=fault)
    sleep = NoSleep()
    with serve(crm.app) as url:
        tokens = await sign_in(url)
        connector = build_connector(get_preset("exact-online"), settings(url, division=str(DIVISION)),
                                    tokens=tokens, sleep=sleep)  # fmt: skip
        try:
            await fetch_all(connector)
        except ConnectorError as exc:
            return sleep.calls, exc
    return sleep.calls, None


async def test_a_spent_minutely_limit_waits_for_the_minute_to_end_not_the_day() -> None:
    waits, error = await rate_limited_sync(Fault.rate_limit(retry_after=None))  # X-RateLimit-Minutely-Remaining: 0
    assert error is None and len(waits) == 1 and 0 <= waits[0] <= 60


async def test_a_spent_daily_limit_is_left_to_the_next_sync() -> None:
    reset = str(int((time.time() + 6 * 3600) * 1000))  # epoch milliseconds
    spent = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset, "X-RateLimit-Minutely-Remaining": "59"}
    waits, error = await rate_limited_sync(Fault.rate_limit(retry_after=None, headers=spent))
    assert error is not None and error.retryable and waits == []
    assert error.message == (
        "Exact Online rate limit: asked to wait 6 hours, longer than the 5 minutes allowed for retries; "
        "the next sync will try again"
    )


async def test_a_429_with_calls_left_in_both_windows_backs_off_briefly() -> None:
    left = {"X-RateLimit-Minutely-Remaining": "12"}  # daily: 4900 left
    waits, error = await rate_limited_sync(Fault.rate_limit(retry_after=None, headers=left))
    assert error is None and len(waits) == 1 and 0.5 <= waits[0] <= 1.0  # the first backoff step, with jitter


async def test_a_division_the_user_cannot_open_is_explained() -> None:
    crm, _ = division_data()
    with serve(crm.app) as url:
        tokens = await sign_in(url)
        connector = build_connector(get_preset("exact-online"), settings(url, division="999"), tokens=tokens)
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(connector)
    assert caught.value.status == 403 and "division 999" in caught.value.message


def test_country_fills_in_the_address() -> None:
    preset = get_preset("exact-online")
    assert [s.name for s in preset.settings] == ["site", "client_id", "client_secret", "division", "api_base_url"]
    request = authorization_url(preset, {"site": "de", "client_id": CLIENT_ID, "client_secret": SECRET},
                                redirect_uri=REDIRECT)  # fmt: skip
    assert request.url.startswith("https://start.exactonline.de/api/oauth2/auth?")
    assert all(s.help for s in preset.settings)


async def test_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    crm, expected = division_data(page_size=60, contacts=90, accounts=15)
    with serve(crm.app) as url:
        tokens = await sign_in(url)
        synced = await sync_and_look_up(runtime, session, preset="exact-online", values=settings(url),
                                        expected=expected, kinds=ALL_KINDS, tokens=tokens)  # fmt: skip
    account_id = crm.entities["Accounts"][0]["ID"]
    answer = synced.answers[f"contacts:{crm.entities['Contacts'][0]['ID']}"]
    assert answer["notification"][:3] == [
        {"label": "Name", "value": "Jörg Müller"},
        {"label": "Account", "value": "Bäckerei Groß GmbH 0"},
        {"label": "Account code", "value": "1000"},
    ]
    assert answer["scripts"][0]["url"] == (
        f"https://start.exactonline.be/docs/CRMAccountCard.aspx?_Division_={DIVISION}&AccountID=%7b{account_id}%7d"
    )
