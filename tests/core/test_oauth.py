"""OAuth sign-in use-cases and token keeping, against an emulated SuperOffice tenant, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.connector import build_connector, get_preset
from core.errors import ConfigurationError, ConnectorError, InvalidInput, NotFound, PresetError
from core.models import AuditEvent, Integration, OAuthAuthorization, OAuthStatus, Tenant
from core.runtime import Runtime
from core.security import SecretBox
from core.services import integrations
from core.services.audit import Actor
from core.services.integration_tokens import read_tokens, store_tokens, token_saver
from core.services.oauth import (
    CALLBACK_PATH,
    begin_authorization,
    callback_problem,
    complete_authorization,
    keep_renewed_tokens,
    purge_authorizations,
    redirect_uri_for,
    take_tokens,
)
from core.services.oauth import authorization_status as status_of
from core.settings import load_settings
from tests.crm.base import Fault
from tests.crm.server import serve
from tests.crm.superoffice import SuperOfficeEmulator
from tests.factories import make_tenant
from tests.presets.messy_numbers import NoSleep, fetch_all, make_people

TENANT = "Cust4711"
CLIENT_ID = "a1b2c3d4e5f6"
CLIENT_SECRET = "app-secret-do-not-show-9f8e7d"
BASE = "https://switchboard.example.com"
ADMIN = Actor(name="admin@acme.example")


def so_settings(url: str, **changes: str) -> dict[str, str]:
    """The SuperOffice preset's settings for a tenant served by the emulator at ``url``."""
    values = {"tenant": TENANT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
              "login_url": f"{url}/login/common/oauth", "api_base_url": f"{url}/{TENANT}/api/v1"}  # fmt: skip
    return {**values, **changes}


@pytest.fixture
def crm() -> Iterator[tuple[SuperOfficeEmulator, str]]:
    """An emulated SuperOffice Online tenant (sign-in and API) with a few persons, and its address."""
    emulator = SuperOfficeEmulator(
        tenant=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        persons=[{"personId": 500 + p.index, "contactId": 1, "fullName": p.name, "retired": False,
                  "personDirectPhone/formattedNumber": p.phone("work") or ""} for p in make_people(6, seed=21)],
    )  # fmt: skip
    with serve(emulator.app) as url:
        yield emulator, url


async def sign_in(url: str) -> dict[str, str]:
    """Play the admin's browser at the CRM's sign-in page: the redirect's ``code`` and ``state``."""
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(BASE + CALLBACK_PATH + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def begin(session: Session, runtime: Runtime, tenant: Tenant, url: str, **kwargs: object) -> tuple[str, str]:
    pending = begin_authorization(session=session, actor=ADMIN, tenant=tenant, box=runtime.box,
                                  preset_key="superoffice", settings=so_settings(url), redirect_base=BASE + "/",
                                  **kwargs)  # type: ignore[arg-type]  # fmt: skip
    session.commit()
    return pending.state, pending.url


def raw_rows(engine: Engine, table: str) -> str:
    """Every stored value of ``table``, as text: what someone reading the database would see."""
    with engine.connect() as connection:
        return repr(connection.execute(sa.text(f"SELECT * FROM {table}")).all())


def new_integration(session: Session, box: SecretBox, tenant: Tenant, url: str, tokens: dict[str, str]) -> Integration:
    """The integration the wizard saves after the sign-in, with the tokens stored."""
    values = so_settings(url)
    integration = integrations.create_integration(
        session=session, actor=ADMIN, tenant=tenant, box=box, preset="superoffice", name="SuperOffice",
        settings={k: v for k, v in values.items() if k != "client_secret"}, secrets={"client_secret": CLIENT_SECRET},
    )  # fmt: skip
    store_tokens(session=session, box=box, integration=integration, tokens=tokens)
    session.commit()
    return integration


def connector_for(integration: Integration, runtime: Runtime, **kwargs: object) -> object:
    """A connector built as the sync builds it: stored tokens in, renewed tokens kept."""
    values = {**integration.settings, **integrations.read_secrets(integration=integration, box=runtime.box)}
    return build_connector(
        get_preset(integration.preset), values, tokens=read_tokens(integration=integration, box=runtime.box),
        on_tokens=token_saver(engine=runtime.engine, box=runtime.box, integration=integration), sleep=NoSleep(),
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def reload(engine: Engine, integration_id: int | None) -> Integration:
    with Session(engine) as session:
        found = session.get(Integration, integration_id)
        assert found is not None
        return found


# ------------------------------------------------------------------------------------------- the flow


async def test_sign_in_completes_once_and_the_tokens_drive_a_sync(
    runtime: Runtime, session: Session, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, url = crm
    tenant = make_tenant(session)
    state, address = begin(session, runtime, tenant, url)
    query = parse_qs(urlsplit(address).query)
    assert query["redirect_uri"] == [BASE + CALLBACK_PATH] and query["state"] == [state]
    assert status_of(session=session, tenant=tenant, state=state).status is OAuthStatus.PENDING

    answer = await sign_in(address)
    done = await complete_authorization(session=session, box=runtime.box, state=answer["state"], code=answer["code"])
    assert (done.crm, done.preset, done.tenant_id) == ("SuperOffice", "superoffice", tenant.id)
    status = status_of(session=session, tenant=tenant, state=state)
    assert (status.status, status.error, status.finished) == (OAuthStatus.COMPLETED, None, True)

    stored = raw_rows(runtime.engine, "oauthauthorization")
    assert emulator.access_token and emulator.access_token not in stored
    assert all(token not in stored for token in emulator.refresh_tokens)
    assert CLIENT_SECRET not in stored and state not in stored  # sealed, and only the state's digest

    tokens = take_tokens(session=session, box=runtime.box, tenant=tenant, state=state)
    assert tokens["access_token"] == emulator.access_token and tokens["refresh_token"] in emulator.refresh_tokens
    integration = new_integration(session, runtime.box, tenant, url, tokens)
    assert tokens["access_token"] not in raw_rows(runtime.engine, "integration")
    assert tokens["refresh_token"] not in raw_rows(runtime.engine, "oauthauthorization")  # handed over, not kept
    assert status_of(session=session, tenant=tenant, state=state).status is OAuthStatus.USED
    with pytest.raises(InvalidInput, match="already stored in an integration"):
        take_tokens(session=session, box=runtime.box, tenant=tenant, state=state)

    records, _ = await fetch_all(connector_for(integration, runtime))  # type: ignore[arg-type]
    assert len(records) == 6
    assert emulator.grants == ["authorization_code"]  # the fresh access token was used as it was
    actions = [e.action for e in session.exec(select(AuditEvent).where(AuditEvent.tenant_id == tenant.id))]
    assert actions.count("oauth.begin") == 1 and actions.count("oauth.complete") == 1
    assert all(CLIENT_SECRET not in str(e.details) for e in session.exec(select(AuditEvent)))


async def test_an_answer_is_used_once_even_when_it_arrives_twice_at_the_same_time(
    runtime: Runtime, session: Session, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, url = crm
    tenant = make_tenant(session)
    state, address = begin(session, runtime, tenant, url)
    answer = await sign_in(address)

    async def deliver() -> object:
        with Session(runtime.engine, expire_on_commit=False) as own:
            return await complete_authorization(session=own, box=runtime.box, state=state, code=answer["code"])

    results = await asyncio.gather(deliver(), deliver(), return_exceptions=True)
    refused = [r for r in results if isinstance(r, InvalidInput)]
    assert len(refused) == 1 and refused[0].field == "state"
    assert "being completed right now" in refused[0].message or "already completed" in refused[0].message
    assert emulator.grants == ["authorization_code"]
    assert status_of(session=session, tenant=tenant, state=state).status is OAuthStatus.COMPLETED


async def test_a_replayed_answer_changes_nothing(
    runtime: Runtime, session: Session, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, url = crm
    tenant = make_tenant(session)
    state, address = begin(session, runtime, tenant, url)
    answer = await sign_in(address)
    await complete_authorization(session=session, box=runtime.box, state=state, code=answer["code"])
    with pytest.raises(InvalidInput, match="already completed; an answer can be used only once"):
        await complete_authorization(session=session, box=runtime.box, state=state, code=answer["code"])
    assert emulator.grants == ["authorization_code"]
    assert take_tokens(session=session, box=runtime.box, tenant=tenant, state=state)["access_token"]


# ------------------------------------------------------------------------------------------- failures


async def test_unknown_and_tampered_states_are_refused_and_the_real_sign_in_still_completes(
    runtime: Runtime, session: Session, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, url = crm
    tenant = make_tenant(session)
    state, address = begin(session, runtime, tenant, url)
    answer = await sign_in(address)
    tampered = state[:-1] + ("A" if state[-1] != "A" else "B")
    for wrong in (tampered, "forged", ""):
        with pytest.raises((NotFound, InvalidInput)) as caught:
            await complete_authorization(session=session, box=runtime.box, state=wrong, code=answer["code"])
        assert caught.value.field == "state" and "Connect again" in caught.value.message
    with pytest.raises(InvalidInput, match="missing or malformed"):
        await complete_authorization(session=session, box=runtime.box, state="x" * 500, code=answer["code"])
    assert emulator.grants == []  # nothing was sent to the CRM
    assert status_of(session=session, tenant=tenant, state=state).status is OAuthStatus.PENDING
    await complete_authorization(session=session, box=runtime.box, state=state, code=answer["code"])
    assert status_of(session=session, tenant=tenant, state=state).status is OAuthStatus.COMPLETED


async def test_an_expired_sign_in_is_refused_and_reported_as_expired(
    runtime: Runtime, session: Session, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, url = crm
    tenant = make_tenant(session)
    state, address = begin(session, runtime, tenant, url, lifetime=timedelta(0))
    answer = await sign_in(address)
    with pytest.raises(InvalidInput, match="not finished within 15 minutes, so it has expired"):
        await complete_authorization(session=session, box=runtime.box, state=state, code=answer["code"])
    status = status_of(session=session, tenant=tenant, state=state)
    assert status.status is OAuthStatus.EXPIRED and status.error and "Connect again" in status.error
    assert emulator.grants == []
    with pytest.raises(InvalidInput, match="expired"):
        take_tokens(session=session, box=runtime.box, tenant=tenant, state=state)


async def test_the_crm_declining_is_recorded_in_the_admins_terms(runtime: Runtime, session: Session) -> None:
    tenant = make_tenant(session)
    state, _ = begin(session, runtime, tenant, "https://online.superoffice.com")
    with pytest.raises(ConnectorError) as caught:
        await complete_authorization(session=session, box=runtime.box, state=state, code=None, error="access_denied",
                                     error_description="The user denied\x1b[31m access.")  # fmt: skip
    message = caught.value.message
    assert message.startswith("SuperOffice did not give switchboard access (access_denied: The user denied")
    assert "\x1b" not in message and "choose Allow" in message
    status = status_of(session=session, tenant=tenant, state=state)
    assert (status.status, status.error) == (OAuthStatus.FAILED, message)
    with pytest.raises(InvalidInput, match="already failed"):
        await complete_authorization(session=session, box=runtime.box, state=state, code="late-code")
    with pytest.raises(InvalidInput, match="did not give switchboard access"):
        take_tokens(session=session, box=runtime.box, tenant=tenant, state=state)
    row = session.exec(select(OAuthAuthorization)).one()
    assert row.tokens == ""


async def test_a_refused_code_exchange_fails_the_sign_in_without_storing_anything(
    runtime: Runtime, session: Session, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, url = crm
    emulator.client_secret = "rotated-at-superoffice"  # the admin typed an old client secret
    tenant = make_tenant(session)
    state, address = begin(session, runtime, tenant, url)
    answer = await sign_in(address)
    with pytest.raises(ConnectorError) as caught:
        await complete_authorization(session=session, box=runtime.box, state=state, code=answer["code"])
    assert "SuperOffice refused the sign-in code (invalid_client): check the client ID and client secret" in str(
        caught.value
    )
    assert answer["code"] not in caught.value.message and CLIENT_SECRET not in caught.value.message
    status = status_of(session=session, tenant=tenant, state=state)
    assert status.status is OAuthStatus.FAILED and status.error == caught.value.message
    assert session.exec(select(OAuthAuthorization)).one().tokens == ""


async def test_an_answer_without_a_code_fails_the_sign_in(runtime: Runtime, session: Session) -> None:
    tenant = make_tenant(session)
    state, _ = begin(session, runtime, tenant, "https://online.superoffice.com")
    with pytest.raises(ConnectorError, match="without a usable sign-in code"):
        await complete_authorization(session=session, box=runtime.box, state=state, code="")
    assert status_of(session=session, tenant=tenant, state=state).status is OAuthStatus.FAILED


def test_begin_checks_the_preset_and_the_settings(runtime: Runtime, session: Session) -> None:
    tenant = make_tenant(session)

    def start(preset_key: str, settings: dict[str, str], redirect_base: str = BASE) -> None:
        begin_authorization(session=session, actor=ADMIN, tenant=tenant, box=runtime.box, preset_key=preset_key,
                            settings=settings, redirect_base=redirect_base)  # fmt: skip

    with pytest.raises(InvalidInput) as caught:
        start("superoffice", so_settings(BASE, tenant="12345"))
    assert caught.value.field == "tenant" and "Cust followed by digits" in caught.value.message
    with pytest.raises(PresetError, match="does not sign in through OAuth"):
        start("hubspot", {"access_token": "pat-na1-0000"})
    with pytest.raises(NotFound):
        start("no-such-crm", {})
    with pytest.raises(ConfigurationError, match="SWITCHBOARD_PUBLIC_URL"):
        start("superoffice", so_settings(BASE), redirect_base="switchboard.example.com")
    assert session.exec(select(OAuthAuthorization)).all() == []


def test_status_and_tokens_are_visible_to_their_own_tenant_only(runtime: Runtime, session: Session) -> None:
    acme, other = make_tenant(session), make_tenant(session)
    state, _ = begin(session, runtime, acme, "https://online.superoffice.com")
    for call in (
        lambda: status_of(session=session, tenant=other, state=state),
        lambda: take_tokens(session=session, box=runtime.box, tenant=other, state=state),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.field == "state" and "SuperOffice" not in caught.value.message
    assert status_of(session=session, tenant=acme, state=state).status is OAuthStatus.PENDING
    with pytest.raises(InvalidInput, match="not finished yet"):
        take_tokens(session=session, box=runtime.box, tenant=acme, state=state)


def test_old_sign_ins_are_purged(runtime: Runtime, session: Session) -> None:
    tenant = make_tenant(session)
    state, _ = begin(session, runtime, tenant, "https://online.superoffice.com")
    row = session.exec(select(OAuthAuthorization)).one()
    assert purge_authorizations(session=session, now=row.expires_at + timedelta(hours=23)) == 0
    assert purge_authorizations(session=session, now=row.expires_at + timedelta(days=1, seconds=1)) == 1
    session.commit()
    with pytest.raises(NotFound):
        status_of(session=session, tenant=tenant, state=state)


# ------------------------------------------------------------------------------------------- renewal


async def _signed_in_integration(
    runtime: Runtime, session: Session, emulator: SuperOfficeEmulator, url: str
) -> Integration:
    tenant = make_tenant(session)
    state, address = begin(session, runtime, tenant, url)
    answer = await sign_in(address)
    await complete_authorization(session=session, box=runtime.box, state=state, code=answer["code"])
    return new_integration(session, runtime.box, tenant, url, take_tokens(session=session, box=runtime.box,
                                                                          tenant=tenant, state=state))  # fmt: skip


async def test_a_token_renewed_before_expiry_is_kept_without_touching_the_version(
    runtime: Runtime, session: Session, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, url = crm
    integration = await _signed_in_integration(runtime, session, emulator, url)
    first = read_tokens(integration=integration, box=runtime.box)
    version, updated = integration.version, integration.updated_at
    an_hour_later = lambda: time.time() + 3600  # noqa: E731 (the access token has expired by then)
    records, _ = await fetch_all(connector_for(integration, runtime, clock=an_hour_later))  # type: ignore[arg-type]
    assert len(records) == 6 and emulator.grants == ["authorization_code", "refresh_token"]
    kept = reload(runtime.engine, integration.id)
    renewed = read_tokens(integration=kept, box=runtime.box)
    assert renewed["access_token"] == emulator.access_token != first["access_token"]
    assert renewed["refresh_token"] == first["refresh_token"]  # SuperOffice's refresh tokens last
    assert int(renewed["expires_at"]) > int(first["expires_at"])
    assert (kept.version, kept.updated_at) == (version, updated)
    assert emulator.access_token not in raw_rows(runtime.engine, "integration")


async def test_a_token_refused_with_401_is_renewed_once_and_kept(
    runtime: Runtime, session: Session, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, url = crm
    integration = await _signed_in_integration(runtime, session, emulator, url)
    emulator.faults.on(1, fault=Fault.unauthorized())
    records, _ = await fetch_all(connector_for(integration, runtime))  # type: ignore[arg-type]
    assert len(records) == 6 and emulator.grants == ["authorization_code", "refresh_token"]
    renewed = read_tokens(integration=reload(runtime.engine, integration.id), box=runtime.box)
    assert renewed["access_token"] == emulator.access_token


async def test_a_renewal_and_an_admins_edit_do_not_overwrite_each_other(
    runtime: Runtime, session: Session, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, url = crm
    integration = await _signed_in_integration(runtime, session, emulator, url)
    with Session(runtime.engine, expire_on_commit=False) as admin:  # the admin opens the edit form ...
        opened = admin.get(Integration, integration.id)
        assert opened is not None
        emulator.revoke_access_token()  # ... while a sync renews the token
        await fetch_all(connector_for(integration, runtime))  # type: ignore[arg-type]
        renewed = read_tokens(integration=reload(runtime.engine, integration.id), box=runtime.box)
        integrations.update_integration(  # ... and saves the form, secrets included, from what was opened
            session=admin, actor=ADMIN, integration=opened, box=runtime.box, expected_version=opened.version,
            name="SuperOffice (sales)", secrets={"client_secret": CLIENT_SECRET},
        )  # fmt: skip
        admin.commit()
    kept = reload(runtime.engine, integration.id)
    assert kept.name == "SuperOffice (sales)" and kept.version == integration.version + 1
    assert read_tokens(integration=kept, box=runtime.box) == renewed


async def test_tokens_of_changed_credentials_are_no_longer_used(
    runtime: Runtime, session: Session, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, url = crm
    integration = await _signed_in_integration(runtime, session, emulator, url)
    assert read_tokens(integration=integration, box=runtime.box)
    integrations.update_integration(
        session=session, actor=ADMIN, integration=integration, box=runtime.box, expected_version=integration.version,
        secrets={"client_secret": "a-new-secret"},
    )  # fmt: skip
    session.commit()
    assert read_tokens(integration=integration, box=runtime.box) == {}
    with pytest.raises(ConnectorError, match="SuperOffice is not connected yet: sign in to SuperOffice"):
        await fetch_all(connector_for(integration, runtime))  # type: ignore[arg-type]


async def test_tokens_borrowed_for_a_connection_test_keep_what_the_test_renewed(
    runtime: Runtime, session: Session, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, url = crm
    tenant = make_tenant(session)
    state, address = begin(session, runtime, tenant, url)
    with pytest.raises(InvalidInput, match="not finished yet"):
        keep_renewed_tokens(session=session, box=runtime.box, tenant=tenant, state=state, tokens={"access_token": "x"})
    answer = await sign_in(address)
    await complete_authorization(session=session, box=runtime.box, state=state, code=answer["code"])
    borrowed = take_tokens(session=session, box=runtime.box, tenant=tenant, state=state)
    session.rollback()  # the wizard's connection test only borrows them
    renewed: dict[str, str] = {}
    connector = build_connector(get_preset("superoffice"), so_settings(url), tokens=borrowed, on_tokens=renewed.update,
                                sleep=NoSleep(), clock=lambda: time.time() + 3600)  # fmt: skip
    await fetch_all(connector)
    assert renewed["access_token"] == emulator.access_token != borrowed["access_token"]
    keep_renewed_tokens(session=session, box=runtime.box, tenant=tenant, state=state, tokens=renewed)
    session.commit()
    kept = take_tokens(session=session, box=runtime.box, tenant=tenant, state=state)
    assert kept["access_token"] == emulator.access_token and kept["refresh_token"] == borrowed["refresh_token"]
    with pytest.raises(InvalidInput, match="already stored"):
        keep_renewed_tokens(session=session, box=runtime.box, tenant=tenant, state=state, tokens=renewed)


def test_storing_nothing_is_refused(runtime: Runtime, session: Session) -> None:
    tenant = make_tenant(session)
    integration = new_integration(session, runtime.box, tenant, BASE, {"access_token": "at-1"})
    with pytest.raises(InvalidInput, match="no OAuth tokens"):
        store_tokens(session=session, box=runtime.box, integration=integration, tokens={"token_type": "Bearer"})
    assert read_tokens(integration=reload(runtime.engine, integration.id), box=runtime.box) == {"access_token": "at-1"}


# ------------------------------------------------------------------------------------------- settings


def test_the_public_address_defaults_to_the_local_shim_and_refuses_plain_http_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SWITCHBOARD_PUBLIC_URL", raising=False)
    assert load_settings().public_base_url() == "http://127.0.0.1:8080"
    assert load_settings().public_base_url(http_port=9000) == "http://127.0.0.1:9000"
    assert load_settings(public_url="https://sb.example.com/switchboard/").public_base_url() == (
        "https://sb.example.com/switchboard"
    )
    for bad, words in [("http://sb.example.com", "use https://"), ("ftp://sb", "as seen from a browser"),
                       ("https://sb/?x=1", "without '?'"), ("https://sb:99999", "port")]:  # fmt: skip
        with pytest.raises(ConfigurationError) as caught:
            load_settings(public_url=bad)
        assert caught.value.field == "public_url" and words in caught.value.message
        assert "SWITCHBOARD_PUBLIC_URL" in caught.value.message


# --- is the shim where the CRM will send the browser? ------------------------------------------------------


def test_callback_problem_tells_a_missing_or_foreign_server_from_the_shim(
    runtime: Runtime, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    from tests.shim.conftest import ServerThread

    with ServerThread(runtime) as shim:
        assert callback_problem(redirect_uri_for(shim.url)) is None
    with socket.socket() as probe:  # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert callback_problem(redirect_uri_for(closed)) == f"nothing answered at {closed} from here (ConnectError)"
    _, url = crm  # something else answers there
    problem = callback_problem(redirect_uri_for(url))
    assert problem is not None and problem.startswith(f"{url} answered, but not as switchboard's HTTP shim (HTTP ")
