"""The script editor: live check with positions, preview, picker, saving through core, stale edits, removal."""

from __future__ import annotations

from sqlmodel import Session
from textual.pilot import Pilot
from textual.widgets import Input, Select, TextArea

from core.db import session_scope
from core.models import Script, Tenant
from core.services import scripts
from core.services.audit import Actor
from core.services.scripts import ScriptDraft
from tests.tui.conftest import World, sqlite_only, text_of
from tests.tui.demo import settle
from tui.screens.dialogs import ConfirmDialog, ErrorDialog
from tui.screens.main import MainScreen
from tui.screens.script_editor import ScriptEditor

pytestmark = sqlite_only


def _scripts(world: World) -> list[Script]:
    with Session(world.runtime.engine) as session:
        tenant = session.get(Tenant, world.tenant_id)
        assert tenant is not None
        return scripts.list_scripts(session=session, tenant=tenant)


def _add_script(world: World, draft: ScriptDraft) -> int:
    with session_scope(world.runtime.engine) as session:
        tenant = session.get(Tenant, world.tenant_id)
        assert tenant is not None
        return scripts.create_script(session=session, actor=Actor("carol"), tenant=tenant, draft=draft).id or 0


async def _type_template(pilot: Pilot[int], text: str) -> None:
    area = pilot.app.screen.query_one("#template", TextArea)
    area.focus()
    area.clear()
    area.insert(text)
    await settle(pilot)
    await pilot.pause(0.3)  # a saved integration's preview comes from core after a pause in typing
    await settle(pilot)


def _editor(pilot: Pilot[int]) -> ScriptEditor:
    screen = pilot.app.screen
    assert isinstance(screen, ScriptEditor)
    return screen


async def test_add_new_script_checks_as_you_type_and_saves_through_core(world: World) -> None:
    app = world.app()
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        editor = _editor(pilot)
        assert editor.context.integration_id is None and editor.context.scope == "every call"

        await _type_template(pilot, "https://crm.example.com/c/$(Nope)")
        error = editor.field("template").error
        assert "Unknown field $(Nope) at position 26" in error
        assert "Available: DisplayName, Identifier, PopUpUri." in error
        assert "No preview" in text_of(editor.query_one("#preview"))

        await _type_template(pilot, "ftp://files.example.com/#(Caller number)")
        assert "Scheme ftp: at position 0 is not allowed" in editor.field("template").error

        await _type_template(pilot, "https://www.google.nl/search?q=")
        editor.query_one("#picker", Select).value = "#(Caller number)"  # the picker inserts at the cursor
        await settle(pilot)
        assert editor.template == "https://www.google.nl/search?q=#(Caller number)"
        assert editor.field("template").error == ""
        assert text_of(editor.query_one("#preview")).strip() == "https://www.google.nl/search?q=0201234567"

        await pilot.click("#save")  # no name yet: said at the name field, nothing saved
        await settle(pilot)
        assert "Give the script a name" in editor.field("name").error
        editor.query_one("#name", Input).value = "Search the caller"
        editor.query_one("#ddi", Input).value = "not a number"
        await pilot.press("ctrl+s")  # a second click this soon would hit the button's press animation
        await settle(pilot)
        assert isinstance(app.screen, ScriptEditor)
        assert "not a valid phone number" in editor.field("ddi").error  # core's words, at the field
        assert _scripts(world) == []

        editor.query_one("#ddi", Input).value = ""
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        saved = _scripts(world)
        assert [(s.name, s.url_template, s.integration_id) for s in saved] == [
            ("Search the caller", "https://www.google.nl/search?q=#(Caller number)", None)
        ]
        assert "Search the caller" in str(app.screen.query_one("#home-scripts").get_option_at_index(0).prompt)  # type: ignore[attr-defined]


async def test_an_integrations_script_previews_with_a_cached_record_and_uses_its_fields(world: World) -> None:
    _add_script(
        world,
        ScriptDraft(name="Open", url_template="$(PopUpUri)", integration_id=world.hubspot_id),
    )
    app = world.app()
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # HubSpot's overview
        await settle(pilot)
        scripts_list = app.screen.query_one("#overview-scripts")
        scripts_list.focus()
        await pilot.press("enter")  # edit the highlighted script
        await settle(pilot)
        editor = _editor(pilot)
        assert editor.context.integration_id == world.hubspot_id
        await _type_template(pilot, "https://crm.example.com/c/$(Identifier)?name=$(DisplayName)")
        assert editor.field("template").error == ""
        assert text_of(editor.query_one("#preview")).strip() == "https://crm.example.com/c/0?name=Anna%20de%20Vries"
        await pilot.click("#save")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert [s.url_template for s in _scripts(world)] == [
            "https://crm.example.com/c/$(Identifier)?name=$(DisplayName)"
        ]


async def test_saving_over_someone_elses_newer_script_is_refused(world: World) -> None:
    script_id = _add_script(world, ScriptDraft(name="Search", url_template="https://example.com/?q=#(Caller number)"))
    app = world.app()
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        app.screen.query_one("#home-scripts").focus()
        await pilot.press("enter")
        await settle(pilot)
        editor = _editor(pilot)
        with session_scope(world.runtime.engine) as session:  # Carol saves the script meanwhile
            tenant = session.get(Tenant, world.tenant_id)
            assert tenant is not None
            scripts.update_script(
                session=session,
                actor=Actor("carol"),
                tenant=tenant,
                script_id=script_id,
                draft=ScriptDraft(name="Search (Carol)", url_template="https://example.com/?q=#(Caller number)"),
            )
        editor.query_one("#name", Input).value = "Search (Alice)"
        await pilot.click("#save")
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert app.screen.title_text == "Changed by someone else"
        assert [s.name for s in _scripts(world)] == ["Search (Carol)"]


async def test_cancel_keeps_nothing_and_remove_asks_first(world: World) -> None:
    _add_script(world, ScriptDraft(name="Search", url_template="https://example.com/?q=#(Caller number)"))
    app = world.app()
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        await _type_template(pilot, "https://example.com/")
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert [s.name for s in _scripts(world)] == ["Search"]

        app.screen.query_one("#home-scripts").focus()
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.click("#confirm")
        await settle(pilot)
        assert _scripts(world) == []
