"""Test call: the notification and the links for a caller, exactly as the HTTP shim returns them."""

from __future__ import annotations

import json

import httpx
from textual.widgets import Input

from core.db import session_scope
from core.models import Tenant
from core.services import scripts, tokens
from core.services.audit import Actor
from core.services.scripts import ScriptDraft
from core.shim.app import create_app
from tests.crm import serve
from tests.tui.conftest import World, sqlite_only, text_of
from tests.tui.demo import settle
from tui.screens.test_call import TestCallPane as CallPane

pytestmark = sqlite_only


def _prepare(world: World) -> str:
    """Two scripts (the screen pop and a search for callers nobody knows) and a token for the shim."""
    with session_scope(world.runtime.engine) as session:
        tenant = session.get(Tenant, world.tenant_id)
        assert tenant is not None
        actor = Actor("carol")
        pop = ScriptDraft(
            name="Open in HubSpot", url_template="$(PopUpUri)", auto_open=True, integration_id=world.hubspot_id
        )
        scripts.create_script(session=session, actor=actor, tenant=tenant, draft=pop)
        search = ScriptDraft(name="Search", url_template="https://example.com/?q=#(Caller number)", when="nomatch")
        scripts.create_script(session=session, actor=actor, tenant=tenant, draft=search)
        _, token = tokens.create_token(session=session, actor=actor, tenant=tenant, name="PBX")
    return token


async def _look_up(pilot, caller: str, ddi: str = "") -> CallPane:  # type: ignore[no-untyped-def]
    await settle(pilot)
    await pilot.press("t")
    await settle(pilot)
    pane = pilot.app.screen.query_one(CallPane)
    pane.query_one("#caller", Input).value = caller
    pane.query_one("#ddi-number", Input).value = ddi
    await pilot.click("#look-up")
    await settle(pilot)
    return pane


async def test_a_known_caller_shows_the_notification_and_links_the_shim_returns(world: World) -> None:
    token = _prepare(world)
    app = world.app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await _look_up(pilot, "020 123 4567")
        shown = text_of(pane.query_one("#test-call-result"))
        assert "+31201234567" in shown
        assert "HubSpot" in shown and "exact match" in shown
        assert "Name  Anna de Vries" in shown
        assert "Open in HubSpot (opens automatically) https://crm.example/0" in shown
        body = json.loads(text_of(pane.query_one("#test-call-json-text")))
    shim = create_app(world.runtime)
    try:
        with serve(shim) as url:
            answer = httpx.get(
                f"{url}/v1/lookup", params={"number": "020 123 4567"}, headers={"Authorization": f"Bearer {token}"}
            )
    finally:
        shim.state.shim.close()
    assert answer.status_code == 200
    assert body == answer.json()


async def test_an_unknown_caller_gets_the_no_match_links(world: World) -> None:
    _prepare(world)
    app = world.app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await _look_up(pilot, "+44 20 7946 0958")
        shown = text_of(pane.query_one("#test-call-result"))
        assert "Nobody matched this number" in shown
        assert "Search https://example.com/?q=00442079460958" in shown  # from NL, a UK number is dialled 0044...


async def test_a_number_that_is_no_number_is_said_at_its_field(world: World) -> None:
    app = world.app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await _look_up(pilot, "hello")
        assert "not a valid phone number" in pane.query_one("#field-caller").error  # type: ignore[attr-defined]
        pane = await _look_up(pilot, "020 123 4567", ddi="nope")
        assert "not a valid phone number" in pane.query_one("#field-ddi-number").error  # type: ignore[attr-defined]
