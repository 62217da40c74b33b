"""Each auth style sends exactly what the vendor expects, asserted on the emulated server's side."""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.connector import authorization_url, exchange_code
from core.errors import ConnectorError, InvalidInput, PresetError
from core.presets import Preset
from tests.connector.conftest import FakeSleep, api_preset, connect, fetch_all
from tests.crm import CloseCrm, CopperCrm, OAuthProvider, ZohoCrm, header_is, query_is, serve

CONTACTS = """
[[objects]]
type = "contacts"
label = "Contacts"
path = "/api/v1/contact/"
records = "data"
[objects.fields]
DisplayName = "{name}"
[objects.pagination]
style = "offset"
offset_param = "_skip"
size_param = "_limit"
more_path = "has_more"
default_size = 2
max_size = 100
"""
KEY_SETTING = '[[settings]]\nname = "api_key"\nlabel = "API key"\nkind = "secret"\nrequired = true\n'
RECORDS = [{"id": f"c{i}", "name": f"Name {i}"} for i in range(5)]


async def _fetch_from(crm: CloseCrm | CopperCrm, preset: Preset, settings: dict[str, str], sleep: FakeSleep) -> int:
    with serve(crm.app) as url:
        return len(await fetch_all(connect(preset, {"api_base_url": url, **settings}, sleep)))


async def test_api_key_in_the_query(sleep: FakeSleep) -> None:
    crm = CloseCrm(RECORDS, authorized=query_is("api_token", "k-123456"))
    preset = api_preset(
        CONTACTS, settings=KEY_SETTING, auth='type = "api_key"\nin = "query"\nname = "api_token"\nvalue = "{api_key}"'
    )
    assert await _fetch_from(crm, preset, {"api_key": "k-123456"}, sleep) == 5
    assert all(r.query["api_token"] == "k-123456" for r in crm.requests)
    assert "authorization" not in crm.requests[0].headers


async def test_basic_with_user_and_password(sleep: FakeSleep) -> None:
    settings = (
        '[[settings]]\nname = "email"\nlabel = "E-mail address"\nrequired = true\n'
        '[[settings]]\nname = "api_token"\nlabel = "API token"\nkind = "secret"\nrequired = true\n'
    )
    preset = api_preset(
        CONTACTS, settings=settings, auth='type = "basic"\nusername = "{email}/token"\npassword = "{api_token}"'
    )
    crm = CloseCrm(RECORDS)
    assert await _fetch_from(crm, preset, {"email": "agent@example.com", "api_token": "tok-987"}, sleep) == 5
    assert {r.basic_credentials() for r in crm.requests} == {"agent@example.com/token:tok-987"}


async def test_basic_with_the_key_as_user_name_and_empty_password(sleep: FakeSleep) -> None:
    preset = api_preset(CONTACTS, settings=KEY_SETTING, auth='type = "basic"\nusername = "{api_key}"')
    crm = CloseCrm(RECORDS)
    await _fetch_from(crm, preset, {"api_key": "api_6Xz"}, sleep)
    expected = "Basic " + base64.b64encode(b"api_6Xz:").decode()
    assert {r.headers["authorization"] for r in crm.requests} == {expected}


@pytest.mark.parametrize(
    ("template", "sent"),
    [("Zoho-oauthtoken {api_key}", "Zoho-oauthtoken 1000.abcd"), ("Token token={api_key}", "Token token=1000.abcd")],
)
async def test_vendor_header_templates(sleep: FakeSleep, template: str, sent: str) -> None:
    preset = api_preset(
        CONTACTS, settings=KEY_SETTING, auth=f'type = "headers"\nheaders = {{ Authorization = "{template}" }}'
    )
    crm = CloseCrm(RECORDS, authorized=header_is("Authorization", sent))
    assert await _fetch_from(crm, preset, {"api_key": "1000.abcd"}, sleep) == 5


async def test_several_vendor_headers(sleep: FakeSleep) -> None:
    copper = """
[[objects]]
type = "people"
label = "People"
method = "POST"
path = "/developer_api/v1/people/search"
[objects.fields]
DisplayName = "{name}"
[objects.pagination]
style = "page"
params_in = "body"
page_param = "page_number"
size_param = "page_size"
default_size = 200
max_size = 200
"""
    settings = KEY_SETTING + '[[settings]]\nname = "email"\nlabel = "User e-mail"\nrequired = true\n'
    auth = (
        'type = "headers"\n[auth.headers]\n"X-PW-AccessToken" = "{api_key}"\n"X-PW-Application" = "developer_api"\n'
        '"X-PW-UserEmail" = "{email}"\n'
    )
    crm = CopperCrm([{"id": 1, "name": "Jane"}])
    await _fetch_from(crm, api_preset(copper, settings=settings, auth=auth), {"api_key": "cp-key", "email": "me@x.io"},
                      sleep)  # fmt: skip
    sent = crm.requests[0].headers
    assert (sent["x-pw-accesstoken"], sent["x-pw-application"], sent["x-pw-useremail"]) == (
        "cp-key", "developer_api", "me@x.io",
    )  # fmt: skip
    assert sent["content-type"] == "application/json"


# -------------------------------------------------------------------------------------------------- OAuth2

OAUTH_SETTINGS = """
[[settings]]
name = "oauth_url"
label = "Sign-in server"
kind = "url"
required = true
[[settings]]
name = "client_id"
label = "Client ID"
required = true
[[settings]]
name = "client_secret"
label = "Client secret"
kind = "secret"
required = true
[[settings]]
name = "refresh_token"
label = "Refresh token"
kind = "secret"
"""


def oauth_auth(kind: str, extra: str = "") -> str:
    return f"""
type = "{kind}"
token_url = "{{oauth_url}}/oauth/token"
client_id = "{{client_id}}"
client_secret = "{{client_secret}}"
scope = "contacts.read"
{extra}
"""


def oauth_preset(kind: str, extra: str = "") -> Preset:
    return api_preset(CONTACTS, settings=OAUTH_SETTINGS, auth=oauth_auth(kind, extra))


def oauth_settings(crm_url: str, oauth_url: str, **more: str) -> dict[str, str]:
    return {"api_base_url": crm_url, "oauth_url": oauth_url, "client_id": "cid", "client_secret": "csecret-42", **more}


@pytest.mark.parametrize("client_auth", ["body", "basic"])
async def test_client_credentials(sleep: FakeSleep, client_auth: str) -> None:
    provider = OAuthProvider(client_id="cid", client_secret="csecret-42", client_auth=client_auth)  # type: ignore[arg-type]
    crm = CloseCrm(RECORDS, authorized=provider.bearer_check)
    stored: list[dict[str, str]] = []
    preset = oauth_preset("oauth2_client_credentials", f'client_auth = "{client_auth}"')
    with serve(provider.app) as oauth_url, serve(crm.app) as url:
        connector = connect(preset, oauth_settings(url, oauth_url), sleep, on_tokens=stored.append)
        assert len(await fetch_all(connector)) == 5
    token_request = provider.requests[0]
    form = token_request.form()
    assert (form["grant_type"], form["scope"]) == ("client_credentials", "contacts.read")
    if client_auth == "basic":
        assert token_request.basic_credentials() == "cid:csecret-42" and "client_secret" not in form
    else:
        assert (form["client_id"], form["client_secret"]) == ("cid", "csecret-42")
    assert provider.grants == ["client_credentials"]  # one token for all three pages
    assert len(crm.requests) == 3
    assert stored[0]["access_token"] == provider.access_token
    assert int(stored[0]["expires_at"]) >= time.time() + 3000


async def test_refresh_token_is_used_before_the_access_token_expires(sleep: FakeSleep) -> None:
    provider = OAuthProvider(client_id="cid", client_secret="csecret-42", refresh_token="rt-0-secret")
    crm = CloseCrm(RECORDS, authorized=provider.bearer_check)
    now = [1_000_000.0]
    stored: list[dict[str, str]] = []
    tokens = {"access_token": "at-old", "refresh_token": "rt-0-secret", "expires_at": str(int(now[0]) + 30)}
    with serve(provider.app) as oauth_url, serve(crm.app) as url:
        connector = connect(
            oauth_preset("oauth2_refresh_token"),
            oauth_settings(url, oauth_url),
            sleep,
            tokens=tokens,
            on_tokens=stored.append,
            clock=lambda: now[0],
        )
        records = []
        async for page in connector.fetch():
            records.extend(page)
            now[0] += 3600  # the next page comes after the new token has expired too
        await connector.aclose()
    assert len(records) == 5
    assert provider.grants == ["refresh_token"] * 3  # renewed ahead of time for each page, never a 401
    assert all(r.headers["authorization"] != "Bearer at-old" for r in crm.requests)
    assert stored[-1]["refresh_token"] == provider.refresh_token  # the rotated refresh token is handed over
    assert stored[-1]["access_token"] == provider.access_token


async def test_refresh_once_on_401(sleep: FakeSleep) -> None:
    provider = OAuthProvider(client_id="cid", client_secret="csecret-42", refresh_token="rt-0-secret")
    crm = CloseCrm(RECORDS, authorized=provider.bearer_check)
    tokens = {"access_token": "at-revoked", "refresh_token": "rt-0-secret", "expires_at": str(int(time.time()) + 3600)}
    stored: list[dict[str, str]] = []
    with serve(provider.app) as oauth_url, serve(crm.app) as url:
        connector = connect(
            oauth_preset("oauth2_refresh_token"),
            oauth_settings(url, oauth_url),
            sleep,
            tokens=tokens,
            on_tokens=stored.append,
        )
        assert len(await fetch_all(connector)) == 5
    assert provider.grants == ["refresh_token"]
    assert crm.requests[0].headers["authorization"] == "Bearer at-revoked"
    assert crm.requests[1].headers["authorization"] == f"Bearer {provider.access_token}"
    assert len(stored) == 1 and sleep.calls == []


async def test_a_401_after_renewal_is_final(sleep: FakeSleep) -> None:
    provider = OAuthProvider(client_id="cid", client_secret="csecret-42", refresh_token="rt-0-secret")
    crm = CloseCrm(RECORDS, authorized=lambda _request: False)
    with serve(provider.app) as oauth_url, serve(crm.app) as url:
        connector = connect(
            oauth_preset("oauth2_refresh_token"),
            oauth_settings(url, oauth_url),
            sleep,
            tokens={"access_token": "at-x", "refresh_token": "rt-0-secret"},
        )
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(connector)
    assert (
        caught.value.message == "TestCRM refused the access token even after renewing it (401): check the access token"
    )
    assert provider.grants == ["refresh_token"] and len(crm.requests) == 2


async def test_refused_refresh_token_in_admin_terms(sleep: FakeSleep) -> None:
    provider = OAuthProvider(client_id="cid", client_secret="csecret-42", refresh_token="rt-current")
    crm = CloseCrm(RECORDS, authorized=provider.bearer_check)
    with serve(provider.app) as oauth_url, serve(crm.app) as url:
        settings = oauth_settings(url, oauth_url, refresh_token="rt-stale-1")
        connector = connect(oauth_preset("oauth2_refresh_token"), settings, sleep)
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(connector)
    assert caught.value.message == (
        "TestCRM refused the refresh token (invalid_grant): "
        "make a new refresh token in TestCRM and paste it into the integration's settings"
    )
    assert crm.requests == []


@pytest.mark.parametrize(
    ("answer", "code"),
    [({"error": "invalid_code"}, "invalid_code"), ({"token_type": "Bearer", "expires_in": 3600}, "no access token")],
)
async def test_a_token_answer_of_200_without_a_token_is_a_refusal(
    sleep: FakeSleep, answer: dict[str, Any], code: str
) -> None:
    async def token(_request: Request) -> JSONResponse:
        return JSONResponse(answer)  # Zoho's way: HTTP 200 and an error in the body

    provider = Starlette(routes=[Route("/oauth/token", token, methods=["POST"])])
    crm = CloseCrm(RECORDS)
    with serve(provider) as oauth_url, serve(crm.app) as url:
        settings = oauth_settings(url, oauth_url, refresh_token="rt-revoked-1")
        connector = connect(oauth_preset("oauth2_refresh_token"), settings, sleep)
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(connector)
    assert caught.value.message == (
        f"TestCRM refused the refresh token ({code}): "
        "make a new refresh token in TestCRM and paste it into the integration's settings"
    )
    assert crm.requests == []


async def test_not_connected_yet(sleep: FakeSleep) -> None:
    preset = oauth_preset("oauth2_refresh_token")
    connector = connect(preset, oauth_settings("https://crm.example.com", "https://login.example.com"), sleep)
    with pytest.raises(ConnectorError, match="TestCRM is not connected yet"):
        await fetch_all(connector)


# ------------------------------------------------------------------------------------ authorization code

AUTH_CODE = """
authorize_url = "{oauth_url}/oauth/authorize"
authorize_params = { access_type = "offline" }
pkce = true
keep = ["api_domain"]
base_url_field = "api_domain"
"""


async def test_authorization_code_flow(sleep: FakeSleep) -> None:
    preset = oauth_preset("oauth2_authorization_code", AUTH_CODE)
    crm = ZohoCrm([{"id": "1", "Full_Name": "Pat Boyle"}])
    with serve(crm.app) as crm_url:
        provider = OAuthProvider(client_id="cid", client_secret="csecret-42", extra={"api_domain": crm_url})
        crm.check = provider.bearer_check
        with serve(provider.app) as oauth_url:
            settings = oauth_settings("https://www.zohoapis.eu", oauth_url)
            request = authorization_url(preset, settings, redirect_uri="https://sb.example.com/oauth/callback")
            again = authorization_url(preset, settings, redirect_uri="https://sb.example.com/oauth/callback")
            query = parse_qs(urlsplit(request.url).query)
            assert {k: v[0] for k, v in query.items() if k not in ("state", "code_challenge")} == {
                "response_type": "code", "client_id": "cid", "redirect_uri": "https://sb.example.com/oauth/callback",
                "scope": "contacts.read", "access_type": "offline", "code_challenge_method": "S256",
            }  # fmt: skip
            assert query["state"] == [request.state] and request.state != again.state and len(request.state) >= 32
            assert request.code_verifier and "csecret" not in request.url

            async with httpx.AsyncClient() as browser:  # the admin signs in; the CRM redirects to our callback
                redirect = await browser.get(request.url)
            callback = parse_qs(urlsplit(redirect.headers["location"]).query)
            assert callback["state"] == [request.state]

            with pytest.raises(InvalidInput) as mismatch:
                await exchange_code(
                    preset,
                    settings,
                    code=callback["code"][0],
                    state="forged",
                    expected_state=request.state,
                    redirect_uri="https://sb.example.com/oauth/callback",
                )
            assert mismatch.value.field == "state"
            tokens = await exchange_code(
                preset, settings, code=callback["code"][0], state=callback["state"][0], expected_state=request.state,
                redirect_uri="https://sb.example.com/oauth/callback", code_verifier=request.code_verifier, sleep=sleep,
            )  # fmt: skip
            assert tokens["access_token"] == provider.access_token
            assert tokens["refresh_token"] == provider.refresh_token
            assert tokens["api_domain"] == crm_url and int(tokens["expires_at"]) > time.time()
            assert provider.requests[-1].form()["code_verifier"] == request.code_verifier

            # the stored tokens drive the connector; the token's api_domain replaces the default address
            zoho = """
[[objects]]
type = "contacts"
label = "Contacts"
path = "/crm/v8/Contacts"
params = { fields = "Full_Name" }
records = "data"
[objects.fields]
DisplayName = "{Full_Name}"
[objects.pagination]
style = "page_token"
size_param = "per_page"
more_path = "info.more_records"
token_path = "info.next_page_token"
default_size = 200
max_size = 200
"""
            zoho_preset = api_preset(
                zoho, settings=OAUTH_SETTINGS, auth=oauth_auth("oauth2_authorization_code", AUTH_CODE)
            )
            connector = connect(zoho_preset, settings, sleep, tokens=tokens)
            records = await fetch_all(connector)
    assert [r.fields["DisplayName"] for r in records] == ["Pat Boyle"]
    assert provider.grants == ["authorization_code"]


def test_authorization_url_needs_an_authorization_code_preset() -> None:
    with pytest.raises(PresetError):
        authorization_url(oauth_preset("oauth2_client_credentials"), {}, redirect_uri="https://x/cb")
