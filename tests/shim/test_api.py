"""The HTTP shim over a real socket: answers, tenant isolation, authentication, malformed input, operations."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlmodel import Session, select

from core.models import ApiToken
from core.services import tokens
from core.services.audit import OPERATOR
from core.services.tenants import get_tenant
from core.shim.app import MAX_BODY, _query
from tests.shim.conftest import ServerThread, World


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(shim: ServerThread) -> httpx.Client:
    """A blocking client for the shim."""
    with httpx.Client(base_url=shim.url, timeout=10) as client:
        yield client


def lookup(client: httpx.Client, token: str, number: str, **params: str) -> httpx.Response:
    """``GET /v1/lookup``."""
    return client.get("/v1/lookup", params={"number": number, **params}, headers=bearer(token))


def test_lookup_answers_with_records_notification_and_scripts(client: httpx.Client, world: World) -> None:
    response = lookup(client, world.acme_token, "+31 20 123 4567")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "number": {"input": "+31 20 123 4567", "e164": "+31201234567", "national": "0201234567", "internal": False},
        "matches": [
            {
                "integration": {"id": world.acme_integration, "name": "HubSpot", "preset": "hubspot"},
                "record_id": "acme-1",
                "match": "exact",
                "fields": {
                    "DisplayName": "Jan Jansen",
                    "Company": "Jansen BV",
                    "PopUpUri": "https://acme.example.com/1",
                },
                "notification": [{"label": "Name", "value": "Jan Jansen"}, {"label": "Company", "value": "Jansen BV"}],
                "scripts": [{"name": "Open in CRM", "url": "https://acme.example.com/1", "auto_open": True}],
            }
        ],
        "scripts": [],
        "truncated": False,
    }


def test_a_number_without_a_match_is_a_200_with_no_matches(client: httpx.Client, world: World) -> None:
    response = lookup(client, world.acme_token, "020 765 4321")
    assert response.status_code == 200
    body = response.json()
    assert body["matches"] == []
    assert body["scripts"] == [
        {"name": "Search", "url": "https://www.google.nl/search?q=0207654321", "auto_open": False}
    ]


def test_post_calls_gives_the_same_answer_with_every_call_property(client: httpx.Client, world: World) -> None:
    call = {
        "caller_number": "0612345678",
        "caller_name": "Jan",
        "device_number": "201",
        "device_name": "Desk",
        "ddi_number": "020 765 4321",
        "ddi_name": "Sales",
        "start_time": "2024-05-14T07:30:00Z",
        "something_new": "ignored",
    }
    response = client.post("/v1/calls", json=call, headers=bearer(world.acme_token))
    assert response.status_code == 200
    body = response.json()
    assert [m["record_id"] for m in body["matches"]] == ["acme-1"]
    same = lookup(client, world.acme_token, "0612345678").json()
    assert body["matches"] == same["matches"]


def test_each_token_sees_only_its_own_tenant(client: httpx.Client, world: World) -> None:
    acme = lookup(client, world.acme_token, "+31201234567").json()
    globex = lookup(client, world.globex_token, "+31201234567").json()
    assert [m["record_id"] for m in acme["matches"]] == ["acme-1"]
    assert [m["record_id"] for m in globex["matches"]] == ["globex-1"]
    assert lookup(client, world.globex_token, "0612345678").json()["matches"] == []  # acme's mobile


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"},
        {"Authorization": "Bearer sb_not_a_real_token"},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
    ids=["none", "empty", "scheme-only", "basic", "unknown", "huge"],
)
def test_missing_or_unknown_tokens_get_401(client: httpx.Client, world: World, headers: dict[str, str]) -> None:
    for response in (
        client.get("/v1/lookup", params={"number": "0201234567"}, headers=headers),
        client.post("/v1/calls", json={"caller_number": "0201234567"}, headers=headers),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "detail" in response.json()


def test_a_revoked_token_gets_401_at_once(client: httpx.Client, world: World, session: Session) -> None:
    assert lookup(client, world.acme_token, "0201234567").status_code == 200
    acme = get_tenant(session=session, slug="acme")
    (token,) = tokens.list_tokens(session=session, tenant=acme)
    tokens.revoke_token(session=session, actor=OPERATOR, tenant=acme, token_ref=str(token.id))
    session.commit()
    response = lookup(client, world.acme_token, "0201234567")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_lookups_record_when_a_token_was_last_used(shim: ServerThread, world: World, session: Session) -> None:
    with httpx.Client(base_url=shim.url) as client:
        assert lookup(client, world.acme_token, "0201234567").status_code == 200
    shim.stop()  # stopping waits for the background write
    session.expire_all()
    used = {t.tenant_id: t.last_used_at for t in session.exec(select(ApiToken)).all()}
    assert len(used) == 2 and sum(value is not None for value in used.values()) == 1


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({}, ["query", "number"]),
        ({"number": ""}, ["query", "number"]),
        ({"number": "x" * 101}, ["query", "number"]),
        ({"number": "not a number"}, ["query", "number"]),
        ({"number": "+999 123"}, ["query", "number"]),
        ({"number": "0201234567", "ddi": "sales"}, ["query", "ddi"]),
        ({"number": "0201234567", "ddi": "1" * 101}, ["query", "ddi"]),
    ],
)
def test_malformed_lookups_get_422_naming_the_parameter(
    client: httpx.Client, world: World, params: dict[str, str], location: list[str]
) -> None:
    response = client.get("/v1/lookup", params=params, headers=bearer(world.acme_token))
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == location and problem["msg"]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (b"{", ["body"]),
        (b"[]", ["body"]),
        (b"{}", ["body", "caller_number"]),
        (b'{"caller_number": 31201234567}', ["body", "caller_number"]),
        (b'{"caller_number": "nope"}', ["body", "caller_number"]),
        (b'{"caller_number": "0201234567", "ddi_number": "sales"}', ["body", "ddi_number"]),
        (b'{"caller_number": "0201234567", "start_time": "yesterday"}', ["body", "start_time"]),
        (b'{"caller_number": "0201234567", "start_time": "9999-12-31T23:59:59-12:00"}', ["body", "start_time"]),
        ('{"caller_number": "\u0000\ud800"}'.encode("utf-8", "surrogatepass"), ["body"]),
    ],
)
def test_malformed_calls_get_422(client: httpx.Client, world: World, body: bytes, location: list[str]) -> None:
    response = client.post("/v1/calls", content=body, headers=bearer(world.acme_token))
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert problems and problems[0]["loc"][: len(location)] == location and problems[0]["msg"]


def test_an_oversized_body_gets_413(client: httpx.Client, world: World) -> None:
    body = b'{"caller_number": "0201234567", "caller_name": "' + b"x" * MAX_BODY + b'"}'
    response = client.post("/v1/calls", content=body, headers=bearer(world.acme_token))
    assert response.status_code == 413


def test_healthz(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_metrics_count_requests_and_lookups_per_tenant_without_numbers(client: httpx.Client, world: World) -> None:
    lookup(client, world.acme_token, "0201234567")
    lookup(client, world.acme_token, "0207654321")
    lookup(client, world.globex_token, "+49 30 1234567")
    client.get("/v1/lookup", params={"number": "0201234567"})
    client.get("/no/such/path")
    text = client.get("/metrics").text
    assert 'switchboard_lookups_total{result="exact",tenant="acme"} 1.0' in text
    assert 'switchboard_lookups_total{result="none",tenant="acme"} 1.0' in text
    assert 'switchboard_lookups_total{result="none",tenant="globex"} 1.0' in text
    assert 'switchboard_http_requests_total{method="GET",route="/v1/lookup",status="401"} 1.0' in text
    assert 'route="other",status="404"' in text
    assert "switchboard_http_request_duration_seconds_bucket" in text
    for secret in ("0201234567", "+31201234567", "Jansen", world.acme_token, "no/such"):
        assert secret not in text


def test_openapi_describes_the_routes_and_the_bearer_scheme(client: httpx.Client) -> None:
    schema: dict[str, Any] = client.get("/openapi.json").json()
    assert {"/v1/lookup", "/v1/calls", "/healthz", "/metrics"} <= set(schema["paths"])
    lookup_op = schema["paths"]["/v1/lookup"]["get"]
    assert lookup_op["security"] == [{"bearer": []}]
    assert [p["name"] for p in lookup_op["parameters"]] == ["number", "ddi"]
    assert {"200", "401", "422"} <= set(lookup_op["responses"])
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert (
        "caller_number"
        in schema["paths"]["/v1/calls"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    )
    assert client.get("/docs").status_code == 200


def test_nothing_the_client_sends_is_logged_with_tenant_data(
    client: httpx.Client, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    lookup(client, world.acme_token, "0201234567")
    lookup(client, world.acme_token, "garbage")
    text = caplog.text
    assert world.acme_token not in text and "0201234567" not in text and "garbage" not in text


def test_many_concurrent_lookups_all_get_their_own_answer(shim: ServerThread, world: World) -> None:
    async def load() -> list[tuple[str, int, list[str]]]:
        async with httpx.AsyncClient(base_url=shim.url, timeout=30) as client:

            async def one(token: str, number: str) -> tuple[str, int, list[str]]:
                response = await client.get("/v1/lookup", params={"number": number}, headers=bearer(token))
                return token, response.status_code, [m["record_id"] for m in response.json()["matches"]]

            calls = [
                one(token, number)
                for _ in range(25)
                for token in (world.acme_token, world.globex_token)
                for number in ("+31201234567", "0612345678", "0207654321")
            ]
            return await asyncio.gather(*calls)

    expected = {
        (world.acme_token, "+31201234567"): ["acme-1"],
        (world.acme_token, "0612345678"): ["acme-1"],
        (world.globex_token, "+31201234567"): ["globex-1"],
    }
    results = asyncio.run(load())
    assert len(results) == 150 and all(status == 200 for _, status, _ in results)
    seen = {(token, ids[0] if ids else None) for token, _, ids in results}
    assert seen == {(world.acme_token, "acme-1"), (world.acme_token, None), (world.globex_token, "globex-1"),
                    (world.globex_token, None)}  # fmt: skip
    assert all(ids in ([], *expected.values()) for _, _, ids in results)


@given(st.text(alphabet="nbd=&+%2B0x;é ", max_size=40))
@example("number=%2B31201234567&ddi=%2b3120%2B1")  # the E.164 shortcut, and where it must not apply
def test_the_query_is_read_as_parse_qsl_reads_it(text: str) -> None:
    raw = text.encode()  # raw UTF-8 as well as %-escapes, "+" and stray "%"
    assert _query(raw) == dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
