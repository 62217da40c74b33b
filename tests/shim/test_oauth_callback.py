"""``GET /oauth/callback`` served for real: a browser signs in at an emulated SuperOffice and lands on the shim."""

from __future__ import annotations

import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session, select

import core.shim.oauth
from core.connector import build_connector, get_preset
from core.models import OAuthAuthorization, OAuthStatus, Tenant
from core.runtime import Runtime
from core.services import integrations
from core.services.audit import Actor
from core.services.integration_tokens import read_tokens, store_tokens, token_saver
from core.services.oauth import (
    CALLBACK_PATH,
    CompletedAuthorization,
    authorization_status,
    begin_authorization,
    take_tokens,
)
from tests.crm.server import serve
from tests.crm.superoffice import SuperOfficeEmulator
from tests.factories import make_tenant
from tests.presets.messy_numbers import NoSleep, fetch_all, make_people
from tests.shim.conftest import ServerThread

TENANT = "Cust9001"
CLIENT_ID = "f00dfeed"
CLIENT_SECRET = "client-secret-never-shown-5150"
ADMIN = Actor(name="admin@acme.example")


@dataclass
class Page:
    """What the browser ended on."""

    status: int
    url: str
    headers: dict[str, str]
    text: str


def browse(url: str) -> Page:
    """A browser: GET ``url``, following redirects (urllib logs nothing, so the log checks see only ours)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return Page(answer.status, answer.url, {k.lower(): v for k, v in answer.headers.items()},
                        answer.read().decode())  # fmt: skip
    except urllib.error.HTTPError as refused:
        return Page(refused.code, refused.url, {k.lower(): v for k, v in refused.headers.items()},
                    refused.read().decode())  # fmt: skip


@pytest.fixture
def crm() -> Iterator[tuple[SuperOfficeEmulator, str]]:
    """An emulated SuperOffice Online tenant with four persons, and its address."""
    emulator = SuperOfficeEmulator(
        tenant=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        persons=[{"personId": 700 + p.index, "contactId": 1, "fullName": p.name, "retired": False,
                  "personMobilePhone/formattedNumber": p.phone("mobile") or ""} for p in make_people(4, seed=31)],
    )  # fmt: skip
    with serve(emulator.app) as url:
        yield emulator, url


def so_settings(url: str) -> dict[str, str]:
    return {"tenant": TENANT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "login_url": f"{url}/login/common/oauth", "api_base_url": f"{url}/{TENANT}/api/v1"}  # fmt: skip


def start(session: Session, runtime: Runtime, tenant: Tenant, crm_url: str, shim: ServerThread,
          lifetime: timedelta = timedelta(minutes=15)) -> tuple[str, str]:  # fmt: skip
    """The wizard's Connect: the sign-in address and the state, as the TUI gets them."""
    pending = begin_authorization(session=session, actor=ADMIN, tenant=tenant, box=runtime.box,
                                  preset_key="superoffice", settings=so_settings(crm_url), redirect_base=shim.url,
                                  lifetime=lifetime)  # fmt: skip
    session.commit()
    assert pending.redirect_uri == shim.url + CALLBACK_PATH
    return pending.url, pending.state


def status(session: Session, tenant: Tenant, state: str) -> OAuthStatus:
    return authorization_status(session=session, tenant=tenant, state=state).status


def stored(runtime: Runtime) -> str:
    """Everything stored about sign-ins and integrations, as text."""
    with runtime.engine.connect() as connection:
        rows = [connection.execute(sa.text(f"SELECT * FROM {t}")).all() for t in ("oauthauthorization", "integration")]
    return repr(rows)


def assert_private(page: Page) -> None:
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_signing_in_lands_on_the_shim_and_connects(
    runtime: Runtime, session: Session, shim: ServerThread, crm: tuple[SuperOfficeEmulator, str],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    emulator, crm_url = crm
    tenant = make_tenant(session)
    assert runtime.settings.public_base_url(http_port=shim.service.port) == shim.url  # the default public address
    address, state = start(session, runtime, tenant, crm_url, shim)
    assert status(session, tenant, state) is OAuthStatus.PENDING

    page = browse(address)  # sign in at SuperOffice, which sends the browser to the shim's callback
    assert page.url.startswith(shim.url + CALLBACK_PATH + "?code=")
    assert page.status == 200, page.text
    assert "Switchboard is connected to SuperOffice. You can close this tab and go back to the wizard." in page.text
    assert_private(page)
    assert status(session, tenant, state) is OAuthStatus.COMPLETED
    assert emulator.grants == ["authorization_code"]

    tokens = take_tokens(session=session, box=runtime.box, tenant=tenant, state=state)
    integration = integrations.create_integration(
        session=session, actor=ADMIN, tenant=tenant, box=runtime.box, preset="superoffice", name="SuperOffice",
        settings={k: v for k, v in so_settings(crm_url).items() if k != "client_secret"},
        secrets={"client_secret": CLIENT_SECRET},
    )  # fmt: skip
    store_tokens(session=session, box=runtime.box, integration=integration, tokens=tokens)
    session.commit()
    emulator.revoke_access_token()  # the next request is refused once: the token is renewed and kept
    connector = build_connector(
        get_preset("superoffice"), so_settings(crm_url), tokens=read_tokens(integration=integration, box=runtime.box),
        on_tokens=token_saver(engine=runtime.engine, box=runtime.box, integration=integration), sleep=NoSleep(),
    )  # fmt: skip
    records, _ = await fetch_all(connector)
    assert len(records) == 4 and emulator.grants == ["authorization_code", "refresh_token"]

    secrets = [
        CLIENT_SECRET, state, *emulator.refresh_tokens, tokens["access_token"], emulator.access_token or "-",
        page.url.partition("code=")[2].partition("&")[0],
    ]  # fmt: skip
    where = {"page": page.text, "headers": repr(page.headers), "database": stored(runtime),
             "log": "\n".join(r.getMessage() for r in caplog.records)}  # fmt: skip
    leaks = [(name, secret) for name, text in where.items() for secret in secrets if secret in text]
    assert leaks == []
    assert any("completed" in r.getMessage() for r in caplog.records if r.name == "core.services.oauth")


@dataclass
class Bad:
    """One wrong answer and what the admin is told."""

    name: str
    says: str


def test_an_unknown_or_tampered_state_is_refused_with_nothing_stored(
    runtime: Runtime, session: Session, shim: ServerThread, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, crm_url = crm
    tenant = make_tenant(session)
    _, state = start(session, runtime, tenant, crm_url, shim)
    tampered = state[:-2] + ("xy" if not state.endswith("xy") else "zz")
    for wrong in (tampered, "made-up"):
        page = browse(f"{shim.url}{CALLBACK_PATH}?{urlencode({'code': 'code-1', 'state': wrong})}")
        assert page.status == 400
        assert "This sign-in answer cannot be used" in page.text and "switchboard knows no sign-in" in page.text
        assert "Go back to the wizard and choose Connect again." in page.text
        assert_private(page)
    assert status(session, tenant, state) is OAuthStatus.PENDING
    assert emulator.grants == []


def test_a_reused_answer_is_refused_and_the_sign_in_stays_completed(
    runtime: Runtime, session: Session, shim: ServerThread, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, crm_url = crm
    tenant = make_tenant(session)
    address, state = start(session, runtime, tenant, crm_url, shim)
    first = browse(address)
    assert first.status == 200
    again = browse(first.url)  # the browser's back button, or a replay
    assert again.status == 400 and "was already completed; an answer can be used only once" in again.text
    assert status(session, tenant, state) is OAuthStatus.COMPLETED
    assert emulator.grants == ["authorization_code"]


def test_an_expired_sign_in_is_refused(
    runtime: Runtime, session: Session, shim: ServerThread, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, crm_url = crm
    tenant = make_tenant(session)
    address, state = start(session, runtime, tenant, crm_url, shim, lifetime=timedelta(0))
    page = browse(address)
    assert page.status == 400 and "was not finished within 15 minutes, so it has expired" in page.text
    assert status(session, tenant, state) is OAuthStatus.EXPIRED
    assert emulator.grants == [] and session.exec(select(OAuthAuthorization)).one().tokens == ""


def test_the_crm_declining_is_shown_escaped_and_recorded(
    runtime: Runtime, session: Session, shim: ServerThread, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    _, crm_url = crm
    tenant = make_tenant(session)
    _, state = start(session, runtime, tenant, crm_url, shim)
    query = urlencode({"error": "access_denied", "error_description": "<script>alert(1)</script> said no",
                       "state": state})  # fmt: skip
    page = browse(f"{shim.url}{CALLBACK_PATH}?{query}")
    assert page.status == 400 and "Switchboard is not connected" in page.text
    assert "SuperOffice did not give switchboard access (access_denied: &lt;script&gt;" in page.text
    assert "<script>" not in page.text and "choose Allow" in page.text
    result = authorization_status(session=session, tenant=tenant, state=state)
    assert result.status is OAuthStatus.FAILED and result.error and "access_denied" in result.error


def test_a_refused_code_exchange_is_explained(
    runtime: Runtime, session: Session, shim: ServerThread, crm: tuple[SuperOfficeEmulator, str]
) -> None:
    emulator, crm_url = crm
    emulator.client_secret = "changed-at-superoffice"
    tenant = make_tenant(session)
    address, state = start(session, runtime, tenant, crm_url, shim)
    page = browse(address)
    assert page.status == 400
    assert "SuperOffice refused the sign-in code (invalid_client): check the client ID and client secret" in page.text
    assert status(session, tenant, state) is OAuthStatus.FAILED
    assert session.exec(select(OAuthAuthorization)).one().tokens == ""


@pytest.mark.parametrize(
    "query",
    [
        "",
        "code=abc",
        "state=",
        "state=" + "s" * 5000,
        "state=%00%ff%fe&code=%ZZ",
        "state=a&state=b&code=1&code=2",
        "error=&state=x",
        "code=" + quote("ä" * 3000) + "&state=y",
        "state=" + quote("'; DROP TABLE oauthauthorization; --"),
    ],
)
def test_no_input_gets_a_server_error(shim: ServerThread, runtime: Runtime, query: str) -> None:
    page = browse(f"{shim.url}{CALLBACK_PATH}?{query}")
    assert page.status == 400 and "Connect again" in page.text
    assert_private(page)
    with runtime.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM oauthauthorization")).scalar() == 0


IN_CALLBACK: ContextVar[bool] = ContextVar("IN_CALLBACK", default=False)
"""Set for the callback's request, and so for the threads it starts (``asyncio.to_thread`` copies the context)."""

DATABASE_EVENTS = ("before_cursor_execute", "commit", "rollback", "checkin")
"""A statement, the end of a transaction, a connection handed back to the pool: each may wait on the database."""


class HeldDatabase:
    """A slow database for the callback alone: each piece of its database work waits until the test lets it go."""

    def __init__(self) -> None:
        self.waiting: queue.Queue[threading.Event | None] = queue.Queue()
        self.threads: list[str] = []
        self._held: list[threading.Event] = []
        self._open = False

    def hold(self, *_: Any) -> None:
        """The engine's listener: note the thread, then wait to be let go (only inside the callback)."""
        if not IN_CALLBACK.get() or self._open:
            return
        go = threading.Event()
        self.threads.append(threading.current_thread().name)
        self._held.append(go)
        self.waiting.put(go)
        go.wait(60)

    def open(self) -> None:
        """Let everything go, now and from now on."""
        self._open = True
        for go in self._held:
            go.set()


def health_status(shim: ServerThread) -> int:
    """``GET /healthz``, which the shim answers on its event loop."""
    try:
        with urllib.request.urlopen(f"{shim.url}/healthz", timeout=10) as answer:
            return int(answer.status)
    except TimeoutError:
        pytest.fail("/healthz did not answer while the callback waited on the database: the event loop is blocked")


@pytest.mark.parametrize("outcome", ["connected", "unknown state", "declined"])
def test_the_callback_never_waits_on_the_database_on_the_event_loop(
    runtime: Runtime, session: Session, shim: ServerThread, crm: tuple[SuperOfficeEmulator, str],
    monkeypatch: pytest.MonkeyPatch, outcome: str,
) -> None:  # fmt: skip
    _, crm_url = crm
    address, state = start(session, runtime, make_tenant(session), crm_url, shim)
    url = {
        "connected": address,
        "unknown state": f"{shim.url}{CALLBACK_PATH}?{urlencode({'code': 'code-1', 'state': 'made-up'})}",
        "declined": f"{shim.url}{CALLBACK_PATH}?{urlencode({'error': 'access_denied', 'state': state})}",
    }[outcome]
    complete = core.shim.oauth.complete_authorization

    async def marked(**kwargs: Any) -> CompletedAuthorization:
        IN_CALLBACK.set(True)  # in the request's own context: the rest of the route sees it too
        return await complete(**kwargs)

    monkeypatch.setattr(core.shim.oauth, "complete_authorization", marked)
    held = HeldDatabase()
    for name in DATABASE_EVENTS:
        event.listen(runtime.engine, name, held.hold)
    try:
        with ThreadPoolExecutor(1) as browser:
            answer = browser.submit(browse, url)
            answer.add_done_callback(lambda _: held.waiting.put(None))
            try:
                while (go := held.waiting.get(timeout=60)) is not None:
                    assert health_status(shim) == 200  # while the callback waits on its database
                    go.set()
            finally:
                held.open()
            page = answer.result()
    finally:
        for name in DATABASE_EVENTS:
            event.remove(runtime.engine, name, held.hold)
    assert page.status == (200 if outcome == "connected" else 400), page.text
    assert held.threads and "shim-server" not in held.threads  # it did wait, and never on the loop's thread
