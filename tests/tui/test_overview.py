"""The integration overview: disable/enable/delete against the real database, stale saves, others' changes."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, select

from core.db import session_scope
from core.models import CachedNumber, CachedRecord, Integration, Tenant
from core.services import integrations
from core.services.audit import Actor
from tests import factories
from tests.tui.conftest import World, sqlite_only, text_of
from tests.tui.demo import settle
from tui.screens.dialogs import ConfirmDialog, ErrorDialog
from tui.screens.main import MainScreen
from tui.screens.overview import OverviewPane


def _cached(world: World, integration_id: int) -> int:
    """Numbers in the integration's active cache generation, read straight from the database."""
    with Session(world.runtime.engine) as session:
        integration = session.get(Integration, integration_id)
        return 0 if integration is None else integrations.numbers_cached(session=session, integration=integration)


def _rows_left(world: World, integration_id: int) -> tuple[int, int]:
    """Cached records and numbers of any generation still stored for the integration."""
    with Session(world.runtime.engine) as session:
        records = session.exec(
            select(sa.func.count()).select_from(CachedRecord).where(CachedRecord.integration_id == integration_id)
        ).one()
        numbers = session.exec(
            select(sa.func.count()).select_from(CachedNumber).where(CachedNumber.integration_id == integration_id)
        ).one()
        return records, numbers


def _enabled(world: World, integration_id: int) -> bool | None:
    with Session(world.runtime.engine) as session:
        integration = session.get(Integration, integration_id)
        return None if integration is None else integration.enabled


async def _open_hubspot(pilot) -> OverviewPane:  # type: ignore[no-untyped-def]
    await settle(pilot)
    await pilot.press("enter")  # the first integration in the sidebar is highlighted and focused
    await settle(pilot)
    pane = pilot.app.screen.query_one(OverviewPane)
    assert pane.overview is not None and pane.overview.integration.name == "HubSpot"
    return pane


async def test_disable_keeps_the_cache_and_enable_restores_the_state(world: World) -> None:
    app = world.app()
    async with app.run_test() as pilot:
        pane = await _open_hubspot(pilot)
        assert "Numbers cached  3" in text_of(pane.query_one("#overview-status"))
        await pilot.press("d")
        await settle(pilot)
        assert _enabled(world, world.hubspot_id) is False
        assert _cached(world, world.hubspot_id) == 3
        assert "disabled" in text_of(pane.query_one("#overview-status"))
        assert str(pane.query_one("#toggle-enabled").label) == "Enable"  # type: ignore[attr-defined]
        await pilot.click("#toggle-enabled")
        await settle(pilot)
        assert _enabled(world, world.hubspot_id) is True
        assert _cached(world, world.hubspot_id) == 3
        assert "enabled" in text_of(pane.query_one("#overview-status"))


async def test_delete_asks_first_and_then_erases_settings_and_cache(world: World) -> None:
    app = world.app()
    async with app.run_test() as pilot:
        await _open_hubspot(pilot)
        await pilot.press("delete")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        assert "cannot be undone" in text_of(app.screen.query_one(".dialog-message"))
        await pilot.press("enter")  # Cancel has the focus: a stray Enter never deletes
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert _rows_left(world, world.hubspot_id) == (3, 3)

        await pilot.press("delete")
        await settle(pilot)
        await pilot.click("#confirm")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert app.screen.view == "home"
        assert _enabled(world, world.hubspot_id) is None
        assert _rows_left(world, world.hubspot_id) == (0, 0)
        assert _cached(world, world.pipedrive_id) == 0 and _enabled(world, world.pipedrive_id) is True
        assert [row.name for row in app.screen.rows] == ["Pipedrive"]


@sqlite_only
async def test_saving_over_a_newer_change_is_refused_and_the_newer_state_shown(world: World) -> None:
    app = world.app()
    async with app.run_test() as pilot:
        pane = await _open_hubspot(pilot)
        with session_scope(world.runtime.engine) as session:  # another admin renames it meanwhile
            item = integrations.get_integration(session=session, tenant=None, integration_id=world.hubspot_id)
            integrations.update_integration(
                session=session,
                actor=Actor("carol@acme.example", world.tenant_id),
                integration=item,
                box=world.runtime.box,
                expected_version=item.version,
                name="HubSpot (sales)",
            )
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert app.screen.title_text == "Changed by someone else"
        assert "reload it" in app.screen.message_text
        assert _enabled(world, world.hubspot_id) is True
        await pilot.press("enter")
        await settle(pilot)
        assert pane.overview is not None and pane.overview.integration.name == "HubSpot (sales)"


@sqlite_only
async def test_another_admins_change_shows_up_without_a_restart(world: World) -> None:
    app = world.app(poll_interval=0.05)
    async with app.run_test() as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        assert [row.name for row in screen.rows] == ["HubSpot", "Pipedrive"]
        with session_scope(world.runtime.engine) as session:
            tenant = session.get(Tenant, world.tenant_id)
            factories.make_integration(session, tenant, world.runtime.box, name="Insightly", preset="insightly")
        for _ in range(100):
            await pilot.pause(0.05)
            if len(screen.rows) == 3:
                break
        assert [row.name for row in screen.rows] == ["HubSpot", "Pipedrive", "Insightly"]


@sqlite_only
async def test_activity_lists_the_changes_newest_first(world: World) -> None:
    app = world.app()
    async with app.run_test() as pilot:
        await _open_hubspot(pilot)
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        table = app.screen.query_one("#activity-table")
        first = table.get_row_at(0)  # type: ignore[attr-defined]
        assert first[1] == "alice@acme.example"
        assert first[2] == "disabled integration HubSpot"
        assert table.row_count >= 3  # type: ignore[attr-defined]


@sqlite_only
async def test_the_command_palette_opens_an_integration(world: World) -> None:
    app = world.app()
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"open pipe")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        pane = app.screen.query_one(OverviewPane)
        assert pane.overview is not None and pane.overview.integration.name == "Pipedrive"
