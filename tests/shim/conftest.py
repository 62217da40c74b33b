"""The shim served for real: ``HttpService`` on 127.0.0.1, port 0, in a thread with its own event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlmodel import Session

from core.runtime import Runtime
from core.serve import ServeOptions
from core.services import tokens
from core.services.audit import OPERATOR
from core.services.scripts import ScriptDraft, create_script
from core.shim.service import HttpService
from tests.factories import make_cached_records, make_integration, make_tenant


class ServerThread:
    """Runs ``HttpService`` in a thread, so tests (and schemathesis) can call it with blocking clients."""

    def __init__(self, runtime: Runtime) -> None:
        self.service = HttpService(runtime, ServeOptions(http_port=0))
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="shim-server")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.service.start()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.service.stop()

    @property
    def url(self) -> str:
        """The shim's base URL."""
        return self.service.url

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the service and wait for its thread (again: nothing happens)."""
        if self._thread.is_alive() and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the shim did not stop"


@pytest.fixture
def shim(runtime: Runtime) -> Iterator[ServerThread]:
    """The shim listening on 127.0.0.1 (on SQLite and on PostgreSQL)."""
    with ServerThread(runtime) as server:
        yield server


@dataclass
class World:
    """Two tenants that both have a contact on +31 20 123 4567, with a token each."""

    acme_token: str
    globex_token: str
    acme_integration: int


@pytest.fixture
def world(session: Session, runtime: Runtime) -> World:
    """Tenants acme and globex, each with an integration, a cached contact, scripts and an API token."""
    acme, globex = make_tenant(session, "acme"), make_tenant(session, "globex")
    hubspot = make_integration(
        session,
        acme,
        runtime.box,
        name="HubSpot",
        notification=[{"field": "DisplayName", "label": "Name"}, {"field": "Company", "label": "Company"}],
    )
    other = make_integration(session, globex, runtime.box, name="Pipedrive", preset="pipedrive")
    session.commit()
    make_cached_records(
        session,
        hubspot,
        [("acme-1", {"DisplayName": "Jan Jansen", "Company": "Jansen BV", "PopUpUri": "https://acme.example.com/1"},
          ["020 123 4567", ("06 12345678", "Mobile")])],
    )  # fmt: skip
    make_cached_records(session, other, [("globex-1", {"DisplayName": "Globex Person"}, ["+31201234567"])])
    create_script(
        session=session,
        actor=OPERATOR,
        tenant=acme,
        draft=ScriptDraft("Open in CRM", "$(PopUpUri)", integration_id=hubspot.id, auto_open=True),
    )
    create_script(
        session=session,
        actor=OPERATOR,
        tenant=acme,
        draft=ScriptDraft("Search", "https://www.google.nl/search?q=#(Caller number)", when="nomatch"),
    )
    _, acme_token = tokens.create_token(session=session, actor=OPERATOR, tenant=acme)
    _, globex_token = tokens.create_token(session=session, actor=OPERATOR, tenant=globex)
    session.commit()
    return World(acme_token=acme_token, globex_token=globex_token, acme_integration=hubspot.id or 0)
