"""Fixtures for the admin app: an organisation with an admin, integrations, a cache, and a pilot that settles."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from rich.console import Console
from textual.widget import Widget
from textual.widgets import Static

from core.db import session_scope
from core.models import CachedNumber, CachedRecord, Integration
from core.runtime import Runtime
from core.services import users
from core.services.users import Identity
from tests import factories
from tui.app import SwitchboardApp, make_app


@dataclass
class World:
    """The test organisation: Acme B.V. with admin Alice, non-admin Bob, and two integrations."""

    runtime: Runtime
    tenant_id: int
    admin: Identity
    member: Identity
    hubspot_id: int
    pipedrive_id: int

    def app(self, *, identity: Identity | None = None, signed_in: bool = True, **kwargs: object) -> SwitchboardApp:
        """The app as the SSH server would start it (signed in as ``identity``, the admin by default)."""
        kwargs.setdefault("poll_interval", 3600.0)
        if not signed_in:
            return make_app(runtime=self.runtime, **kwargs)  # type: ignore[arg-type]
        return make_app(runtime=self.runtime, identity=identity or self.admin, **kwargs)  # type: ignore[arg-type]


def add_cache(runtime: Runtime, integration_id: int, numbers: list[tuple[str, str]]) -> None:
    """Give an integration an active cache generation holding ``(name, E.164)`` records, as a sync leaves it."""
    with session_scope(runtime.engine) as session:
        integration = session.get(Integration, integration_id)
        assert integration is not None
        generation = (integration.active_generation or 0) + 1
        for index, (name, e164) in enumerate(numbers):
            record = CachedRecord(
                integration_id=integration_id,
                generation=generation,
                record_id=f"contacts:{index}",
                fields={"DisplayName": name, "Identifier": str(index), "PopUpUri": f"https://crm.example/{index}"},
            )
            session.add(record)
            session.flush()
            session.add(
                CachedNumber(
                    integration_id=integration_id,
                    generation=generation,
                    record_pk=record.id or 0,
                    e164=e164,
                    suffix=e164[::-1],
                    raw=e164,
                )
            )
        integration.active_generation = generation
        session.add(integration)


@pytest.fixture
def world(runtime: Runtime) -> World:
    """Acme B.V. (NL) with an admin, a member and two integrations, the first with three cached numbers."""
    with session_scope(runtime.engine) as session:
        tenant = factories.make_tenant(session, "acme", name="Acme B.V.")
        alice = factories.make_user(session, tenant, "alice@acme.example")
        bob = factories.make_user(session, tenant, "bob@acme.example", admin=False)
        hubspot = factories.make_integration(session, tenant, runtime.box, name="HubSpot")
        pipedrive = factories.make_integration(
            session, tenant, runtime.box, name="Pipedrive", preset="pipedrive", settings={"company_domain": "acme"}
        )
        ids = (tenant.id or 0, alice.id or 0, bob.id or 0, hubspot.id or 0, pipedrive.id or 0)
    with session_scope(runtime.engine) as session:
        admin = users.identity_for(session=session, user_id=ids[1])
        member = users.identity_for(session=session, user_id=ids[2])
    add_cache(
        runtime,
        ids[3],
        [("Anna de Vries", "+31201234567"), ("Bram Jansen", "+31207654321"), ("Cor Bakker", "+31612345678")],
    )
    return World(runtime, ids[0], admin, member, ids[3], ids[4])


def text_of(widget: Widget) -> str:
    """What a ``Static`` shows, as plain text (strings, rich Text and tables alike)."""
    assert isinstance(widget, Static)
    console = Console(width=200, file=io.StringIO(), color_system=None, record=True)
    console.print(widget.content)
    return console.export_text()


sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
"""For tests of the app's behaviour: one backend is enough (storage tests run on both)."""
