"""Each fault: the client retries, or fails cleanly with a message in admin terms that holds no secret."""

from __future__ import annotations

import base64
import email.utils
import logging
import ssl

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.connector import ApiConnector, RetryPolicy, Timeouts, get_preset
from core.errors import ConnectorError
from tests.connector.conftest import FakeSleep, api_preset, connect, fetch_all
from tests.connector.test_vendors import (
    HUBSPOT_TOKEN,
    INSIGHTLY_KEY,
    PIPEDRIVE_TOKEN,
    hubspot_contacts,
    insightly_contacts,
    pipedrive_persons,
)
from tests.crm import (
    CloseCrm,
    EmulatedCrm,
    Fault,
    HubSpotEmulator,
    InsightlyEmulator,
    PipedriveEmulator,
    make_tls_files,
    query_is,
    serve,
)

NOW = 1_700_000_000.0


def hubspot(url: str) -> dict[str, str]:
    return {"access_token": HUBSPOT_TOKEN, "portal_id": "1", "api_base_url": url}


def insightly(url: str) -> dict[str, str]:
    return {"api_key": INSIGHTLY_KEY, "pod": "na1", "api_base_url": f"{url}/v3.1"}


def pipedrive(url: str) -> dict[str, str]:
    return {"api_token": PIPEDRIVE_TOKEN, "company_domain": "acme", "api_base_url": url}


# ------------------------------------------------------------------------------------------- rate limits


async def test_429_retry_after_seconds_is_honoured(sleep: FakeSleep) -> None:
    crm = InsightlyEmulator(api_key=INSIGHTLY_KEY, contacts=insightly_contacts(600))
    crm.faults.on(2, fault=Fault.rate_limit(retry_after="3"))
    with serve(crm.app) as url:
        records = await fetch_all(connect(get_preset("insightly"), insightly(url), sleep))
    assert len(records) == 600
    assert sleep.calls == [3.0]
    assert [r.query["skip"] for r in crm.requests[:3]] == ["0", "500", "500"]


async def test_429_retry_after_http_date_is_honoured(sleep: FakeSleep) -> None:
    crm = InsightlyEmulator(api_key=INSIGHTLY_KEY, contacts=insightly_contacts(3))
    crm.faults.on(1, fault=Fault.rate_limit(retry_after=email.utils.formatdate(NOW + 7, usegmt=True)))
    with serve(crm.app) as url:
        records = await fetch_all(connect(get_preset("insightly"), insightly(url), sleep, clock=lambda: NOW))
    assert len(records) == 3 and sleep.calls == [7.0]


async def test_429_with_pipedrive_reset_header(sleep: FakeSleep) -> None:
    crm = PipedriveEmulator(api_token=PIPEDRIVE_TOKEN, persons=pipedrive_persons(3))
    crm.faults.on(1, fault=Fault.rate_limit(retry_after=None))  # x-ratelimit-reset: 2 (seconds left)
    with serve(crm.app) as url:
        assert len(await fetch_all(connect(get_preset("pipedrive"), pipedrive(url), sleep))) == 3
    assert sleep.calls == [2.0]


async def test_429_with_epoch_reset_header(sleep: FakeSleep) -> None:
    crm = CloseCrm([{"id": "a", "name": "A"}])
    crm.faults.on(1, fault=Fault.rate_limit(retry_after=None, headers={"X-RateLimit-Reset": str(int(NOW) + 12)}))
    with serve(crm.app) as url:
        await fetch_all(connect(api_preset(CLOSE), {"api_base_url": url}, sleep, clock=lambda: NOW))
    assert sleep.calls == [12.0]


async def test_429_from_hubspot_waits_its_interval(sleep: FakeSleep) -> None:
    crm = HubSpotEmulator(token=HUBSPOT_TOKEN, contacts=hubspot_contacts(3))
    crm.faults.on(1, fault=Fault.rate_limit(retry_after=None))
    with serve(crm.app) as url:
        assert len(await fetch_all(connect(get_preset("hubspot"), hubspot(url), sleep))) == 3
    assert sleep.calls == [10.0]  # X-HubSpot-RateLimit-Interval-Milliseconds: 10000


async def test_rate_limit_gives_up_after_the_total_retry_time(sleep: FakeSleep) -> None:
    crm = HubSpotEmulator(token=HUBSPOT_TOKEN, contacts=hubspot_contacts(3))
    crm.faults.always(Fault.rate_limit(retry_after="60"))
    policy = RetryPolicy(max_attempts=20, base_delay=1, max_delay=60, max_total=300)
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(connect(get_preset("hubspot"), hubspot(url), sleep, retry=policy))
    assert caught.value.message == "HubSpot rate limit: gave up after 5 minutes of retries (6 attempts)"
    assert (caught.value.status, caught.value.retryable) == (429, True)
    assert sum(sleep.calls) == 300


async def test_a_wait_longer_than_the_budget_is_not_attempted(sleep: FakeSleep) -> None:
    crm = HubSpotEmulator(token=HUBSPOT_TOKEN, contacts=hubspot_contacts(3))
    crm.faults.always(Fault.rate_limit(retry_after="7200"))
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(connect(get_preset("hubspot"), hubspot(url), sleep))
    assert caught.value.message == (
        "HubSpot rate limit: asked to wait 2 hours, longer than the 60 seconds allowed for retries; "
        "the next sync will try again"
    )
    assert sleep.calls == []


# ------------------------------------------------------------------------------------- server failures


async def test_5xx_is_retried_with_exponential_backoff(sleep: FakeSleep) -> None:
    crm = PipedriveEmulator(api_token=PIPEDRIVE_TOKEN, persons=pipedrive_persons(3))
    crm.faults.on(1, 2, fault=Fault.server_error(502))
    with serve(crm.app) as url:
        assert len(await fetch_all(connect(get_preset("pipedrive"), pipedrive(url), sleep))) == 3
    first, second = sleep.calls
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0  # base 0.5 s, doubled, with jitter


async def test_5xx_that_persists(sleep: FakeSleep) -> None:
    crm = PipedriveEmulator(api_token=PIPEDRIVE_TOKEN, persons=pipedrive_persons(3))
    crm.faults.always(Fault.server_error(503))
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(connect(get_preset("pipedrive"), pipedrive(url), sleep))
    assert caught.value.message == (
        "Pipedrive had a server error (503) on page 1 of persons: Internal server error; gave up after 4 attempts"
    )
    assert len(crm.requests) == 4 and len(sleep.calls) == 3


async def test_hang_past_the_read_timeout_is_retried(sleep: FakeSleep) -> None:
    crm = InsightlyEmulator(api_key=INSIGHTLY_KEY, contacts=insightly_contacts(2))
    crm.faults.on(1, fault=Fault.hang(1.0))
    with serve(crm.app) as url:
        records = await fetch_all(connect(get_preset("insightly"), insightly(url), sleep,
                                          timeouts=Timeouts(connect=2, read=0.4)))  # fmt: skip
    assert len(records) == 2 and len(sleep.calls) == 1


async def test_hang_every_time_fails_with_the_timeout(sleep: FakeSleep) -> None:
    crm = InsightlyEmulator(api_key=INSIGHTLY_KEY, contacts=insightly_contacts(2))
    crm.faults.always(Fault.hang(1.0))
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(
            connect(
                get_preset("insightly"),
                insightly(url),
                sleep,
                timeouts=Timeouts(connect=2, read=0.4),
                retry=RetryPolicy(max_attempts=2),
            )
        )
    assert caught.value.message == (
        "Insightly did not answer within 0.4 s (timeout) on page 1 of contacts; gave up after 2 attempts"
    )
    assert caught.value.retryable


async def test_connection_cut_mid_body_is_retried(sleep: FakeSleep) -> None:
    crm = PipedriveEmulator(api_token=PIPEDRIVE_TOKEN, persons=pipedrive_persons(3))
    crm.faults.on(1, fault=Fault.disconnect())
    with serve(crm.app) as url:
        assert len(await fetch_all(connect(get_preset("pipedrive"), pipedrive(url), sleep))) == 3
    assert len(crm.requests) == 2


async def test_nobody_listening(sleep: FakeSleep) -> None:
    with serve(CloseCrm([]).app) as url:
        pass  # the port is free again
    with pytest.raises(ConnectorError) as caught:
        await fetch_all(connect(api_preset(CLOSE), {"api_base_url": url}, sleep))
    assert caught.value.message.startswith("Could not connect to TestCRM at 127.0.0.1 (")
    assert caught.value.message.endswith("on page 1 of contacts; gave up after 4 attempts")


# ----------------------------------------------------------------------------------------- bad answers


async def test_truncated_json_names_the_page_and_object(sleep: FakeSleep) -> None:
    crm = PipedriveEmulator(api_token=PIPEDRIVE_TOKEN, persons=pipedrive_persons(1200))
    crm.faults.on(3, fault=Fault.truncated_json())
    fetched: list[int] = []
    with serve(crm.app) as url:
        connector = connect(get_preset("pipedrive"), pipedrive(url), sleep)
        with pytest.raises(ConnectorError) as caught:
            async for page in connector.fetch():
                fetched.append(len(page))
        await connector.aclose()
    assert caught.value.message == "Pipedrive returned data that is not valid JSON on page 3 of persons"
    assert fetched == [500, 500]  # the pages before arrived


async def test_a_web_page_instead_of_json(sleep: FakeSleep) -> None:
    crm = CloseCrm([{"id": "a", "name": "A"}])
    crm.faults.on(1, fault=Fault.html())
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(connect(api_preset(CLOSE), {"api_base_url": url}, sleep))
    assert caught.value.message == (
        "TestCRM returned data that is not valid JSON on page 1 of contacts "
        "(it looks like a web page: check the API address setting)"
    )


async def test_401_half_way_with_a_static_key(sleep: FakeSleep) -> None:
    crm = InsightlyEmulator(api_key=INSIGHTLY_KEY, contacts=insightly_contacts(1200))
    crm.faults.on(2, fault=Fault.unauthorized())
    pages: list[int] = []
    with serve(crm.app) as url:
        connector = connect(get_preset("insightly"), insightly(url), sleep)
        with pytest.raises(ConnectorError) as caught:
            async for page in connector.fetch():
                pages.append(len(page))
        await connector.aclose()
    assert caught.value.message == "Insightly refused the API key (401): check the API key (User Settings → API)"
    assert (caught.value.status, caught.value.retryable) == (401, False)
    assert pages == [500] and len(crm.requests) == 2


async def test_empty_result(sleep: FakeSleep) -> None:
    crm = HubSpotEmulator(token=HUBSPOT_TOKEN)
    with serve(crm.app) as url:
        connector = connect(get_preset("hubspot"), hubspot(url), sleep)
        assert await fetch_all(connector) == []
        test = connect(get_preset("hubspot"), hubspot(url), sleep)
        result = await test.test_connection()
        await test.aclose()
    assert (result.count, result.sample) == (None, None)
    assert [r.path for r in crm.requests[:2]] == ["/crm/v3/objects/contacts", "/crm/v3/objects/companies"]


async def test_wrong_address_is_a_404_in_admin_terms(sleep: FakeSleep) -> None:
    crm = InsightlyEmulator(api_key=INSIGHTLY_KEY)
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(connect(get_preset("insightly"), {**insightly(url), "api_base_url": f"{url}/v2.3"}, sleep))
    assert caught.value.message == "Insightly has nothing at /v2.3/Contacts (404): check the API address setting"


# --------------------------------------------------------------------------------------------- secrets

CLOSE = """
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
default_size = 100
max_size = 100
"""
SECRET = "sk_live_0123456789abcdef"


class EchoingCrm(EmulatedCrm):
    """A server whose error messages repeat the credentials it received, as some do."""

    def routes(self) -> list[Route]:
        return [Route("/api/v1/contact/", self.contacts)]

    async def contacts(self, request: Request) -> Response:
        recorded = await self.record(request)
        return JSONResponse({"message": f"Key {recorded.query.get('api_key')} is not allowed for {request.url}"},
                            status_code=403)  # fmt: skip


@pytest.mark.parametrize("fault", ["echo", "rate_limit", "server_error", "timeout"])
async def test_no_secret_in_messages_or_logs(sleep: FakeSleep, caplog: pytest.LogCaptureFixture, fault: str) -> None:
    caplog.set_level(logging.DEBUG)
    preset = api_preset(CLOSE, settings='[[settings]]\nname = "key"\nlabel = "API key"\nkind = "secret"\n',
                        auth='type = "api_key"\nin = "query"\nname = "api_key"\nvalue = "{key}"')  # fmt: skip
    crm: EmulatedCrm = (
        EchoingCrm() if fault == "echo" else CloseCrm([{"id": "a"}], authorized=query_is("api_key", SECRET))
    )
    if fault == "rate_limit":
        crm.faults.always(Fault.rate_limit(retry_after="1"))
    elif fault == "server_error":
        crm.faults.always(Fault.server_error(500))
    elif fault == "timeout":
        crm.faults.always(Fault.hang(1.0))
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(
            connect(
                preset,
                {"api_base_url": url, "key": SECRET},
                sleep,
                timeouts=Timeouts(connect=2, read=0.4),
                retry=RetryPolicy(max_attempts=2),
            )
        )
    assert crm.requests and crm.requests[0].query["api_key"] == SECRET  # it was really sent
    assert SECRET not in str(caught.value) and SECRET not in caught.value.message
    assert SECRET not in caplog.text
    if fault != "timeout":  # httpx logs each answered request (the URL without its query string)
        assert "HTTP Request: GET" in caplog.text
    if fault == "echo":
        assert caught.value.message.startswith("TestCRM refused access to page 1 of contacts (403): ")
        assert "Key *** is not allowed" in caught.value.message


async def test_basic_credentials_never_appear_in_logs(sleep: FakeSleep, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    crm = InsightlyEmulator(api_key=INSIGHTLY_KEY, contacts=insightly_contacts(2))
    crm.faults.always(Fault.server_error(500))
    with serve(crm.app) as url, pytest.raises(ConnectorError):
        await fetch_all(connect(get_preset("insightly"), insightly(url), sleep))
    encoded = base64.b64encode(f"{INSIGHTLY_KEY}:".encode()).decode()
    assert INSIGHTLY_KEY not in caplog.text and encoded not in caplog.text


ACCENTED_SECRET = "sk_live_clé_0123456789"


@pytest.mark.parametrize(
    "auth",
    ['type = "bearer"\ntoken = "{key}"', 'type = "api_key"\nin = "header"\nname = "X-Api-Key"\nvalue = "{key}"'],
)
async def test_a_secret_no_header_can_carry_names_its_setting(sleep: FakeSleep, auth: str) -> None:
    preset = api_preset(CLOSE, settings='[[settings]]\nname = "key"\nlabel = "API key"\nkind = "secret"\n', auth=auth)
    crm = CloseCrm([{"id": "a"}])
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(connect(preset, {"api_base_url": url, "key": ACCENTED_SECRET}, sleep))
    assert caught.value.field == "key"
    assert caught.value.message.startswith(
        "API key: holds a character that cannot be sent to TestCRM in an HTTP header"
    )
    assert "clé" not in str(caught.value) and "é" not in caught.value.message
    assert crm.requests == []


def test_a_setting_in_a_preset_header_with_an_accent_names_its_setting(sleep: FakeSleep) -> None:
    preset = api_preset(CLOSE, settings='[[settings]]\nname = "agent"\nlabel = "Agent name"\n',
                        top='headers = { "X-Agent" = "{agent}" }')  # fmt: skip
    with pytest.raises(ConnectorError) as caught:
        connect(preset, {"api_base_url": "https://crm.example.com", "agent": "René"}, sleep)
    assert (caught.value.field, caught.value.message[:12]) == ("agent", "Agent name: ")


async def test_a_header_from_elsewhere_names_the_header(sleep: FakeSleep) -> None:
    connector = connect(api_preset(CLOSE), {"api_base_url": "https://crm.example.com"}, sleep)
    assert isinstance(connector, ApiConnector)
    with pytest.raises(ConnectorError) as caught:
        await connector.http.request("GET", "/api/v1/contact/", what="a test", headers={"X-Database": "société"})
    await connector.aclose()
    assert caught.value.message.startswith("The X-Database header for TestCRM would hold a character that cannot be")


# -------------------------------------------------------------------------------------------------- TLS


async def test_tls_needs_the_ca_bundle_of_a_self_hosted_crm(sleep: FakeSleep, tmp_path: pytest.TempPathFactory) -> None:
    files = make_tls_files(tmp_path)  # type: ignore[arg-type]
    crm = CloseCrm([{"id": "a", "name": "Ünal"}])
    with serve(crm.app, certfile=files.cert, keyfile=files.key) as url:
        assert url.startswith("https://")
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(connect(api_preset(CLOSE), {"api_base_url": url}, sleep))
        records = await fetch_all(connect(api_preset(CLOSE), {"api_base_url": url}, sleep, ca_bundle=str(files.ca)))
    assert caught.value.message == (
        "TestCRM at 127.0.0.1: the TLS certificate could not be verified; for a self-hosted CRM, add its CA bundle"
    )
    assert not caught.value.retryable and sleep.calls == []
    assert [r.fields["DisplayName"] for r in records] == ["Ünal"]


def test_an_unreadable_ca_bundle(tmp_path: pytest.TempPathFactory) -> None:
    with pytest.raises(ConnectorError, match="cannot be used"):
        connect(
            api_preset(CLOSE),
            {"api_base_url": "https://crm.example.com"},
            FakeSleep(),
            ca_bundle=str(tmp_path / "missing.pem"),
        )  # type: ignore[operator]


async def test_connectors_share_one_verifying_tls_context(sleep: FakeSleep, tmp_path: pytest.TempPathFactory) -> None:
    files = make_tls_files(tmp_path)  # type: ignore[arg-type]
    settings = {"api_base_url": "https://crm.example.com"}
    connectors = [connect(api_preset(CLOSE), settings, sleep), connect(api_preset(CLOSE), settings, sleep),
                  connect(api_preset(CLOSE), settings, sleep, ca_bundle=str(files.ca))]  # fmt: skip
    clients = [c.http for c in connectors if isinstance(c, ApiConnector)]
    first, second, custom = (client.tls_context for client in clients)
    in_use = clients[0]._client._transport._pool._ssl_context  # type: ignore[attr-defined]  # what httpx connects with
    for connector in connectors:
        await connector.aclose()
    assert first is second and in_use is first
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    assert custom is not first and custom.verify_mode == ssl.CERT_REQUIRED  # a CA bundle gets a context of its own
