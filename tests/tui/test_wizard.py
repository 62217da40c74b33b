"""The wizard end to end against an emulated CRM, a script-only preset, Back/Next/Cancel, and Edit."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from sqlmodel import Session, select
from textual.pilot import Pilot
from textual.widgets import Input, SelectionList

from core.models import Integration, Script, Tenant
from core.services import integration_tokens, integrations, scripts
from tests.crm import HubSpotEmulator, serve
from tests.tui.conftest import World, sqlite_only, text_of
from tests.tui.demo import settle
from tui.screens.main import MainScreen
from tui.screens.overview import OverviewPane
from tui.screens.wizard import WizardScreen
from tui.screens.wizard.config_step import ConfigStep

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
CONTACTS = [
    {"firstname": "Jörg", "lastname": "Schmidt", "company": "Schmidt GmbH", "email": "js@example.de",
     "phone": "+49 30 1234567"},
    {"firstname": "Anouk", "lastname": "Visser", "company": "Visser BV", "email": "anouk@example.nl",
     "phone": "020 555 0101", "mobilephone": "06 12345678"},
]  # fmt: skip


@pytest.fixture
def hubspot() -> Iterator[str]:
    """An emulated HubSpot with two contacts; yields its base URL."""
    crm = HubSpotEmulator(token=TOKEN, contacts=CONTACTS)
    with serve(crm.app) as url:
        yield url


def _integrations(world: World) -> list[Integration]:
    with Session(world.runtime.engine) as session:
        tenant = session.get(Tenant, world.tenant_id)
        assert tenant is not None
        return integrations.list_integrations(session=session, tenant=tenant)


def _scripts_of(world: World, integration_id: int) -> list[Script]:
    with Session(world.runtime.engine) as session:
        return list(session.exec(select(Script).where(Script.integration_id == integration_id)).all())


def _wizard(pilot: Pilot[int]) -> WizardScreen:
    assert isinstance(pilot.app.screen, WizardScreen)
    return pilot.app.screen


async def _type(pilot: Pilot[int], selector: str, value: str) -> None:
    """Set a field the way typing would, then leave it (validation runs on blur)."""
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    await pilot.pause()
    field.value = value
    pilot.app.screen.focus_next()
    await settle(pilot)


async def _choose(pilot: Pilot[int], search: str) -> None:
    await pilot.press("a")
    await settle(pilot)
    await pilot.press(*search, "enter")
    await settle(pilot)


async def test_the_whole_wizard_against_an_emulated_crm(world: World, hubspot: str) -> None:
    app = world.app()
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await _choose(pilot, "hubspot")
        wizard = _wizard(pilot)
        assert wizard.step == "config" and wizard.state.preset is not None and wizard.state.preset.key == "hubspot"
        config = wizard.query_one(ConfigStep)
        assert wizard.query_one("#setting-access_token", Input).password  # the secret is masked

        await _type(pilot, "#setting-portal_id", "12ab")  # checked as the admin leaves the field
        assert "digits only" in wizard.query_one("#field-setting-portal_id").error  # type: ignore[attr-defined]
        await _type(pilot, "#setting-portal_id", "4242")
        assert wizard.query_one("#field-setting-portal_id").error == ""  # type: ignore[attr-defined]
        await _type(pilot, "#setting-api_base_url", hubspot)

        await pilot.press("ctrl+n")  # the token is required: Next refuses and says so at the field
        await settle(pilot)
        assert wizard.step == "config"
        assert "required" in wizard.query_one("#field-setting-access_token").error  # type: ignore[attr-defined]

        await _type(pilot, "#setting-access_token", "pat-wrong")
        await pilot.click("#test-connection")
        await settle(pilot)
        status = text_of(config.query_one("#test-status"))
        assert "HubSpot" in status and "token" in status  # the CRM's refusal, in plain words
        assert "pat-wrong" not in status

        await _type(pilot, "#setting-access_token", TOKEN)
        await pilot.click("#test-connection")
        await settle(pilot)
        assert text_of(config.query_one("#test-status")).startswith("Connected")
        sample = text_of(config.query_one("#test-sample"))
        assert "Jörg Schmidt" in sample and "Schmidt GmbH" in sample

        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wizard.step == "notification"
        assert [(line.field, line.label) for line in wizard.state.notification] == [
            ("DisplayName", "Name"),
            ("company", "Company"),
            ("email", "E-mail"),
        ]
        preview = text_of(wizard.query_one("#notification-preview"))
        assert "Name     Jörg Schmidt" in preview and "Company  Schmidt GmbH" in preview
        wizard.query_one("#notification-fields", SelectionList).deselect("email")
        wizard.query_one("#notification-fields", SelectionList).select("job_title")
        await settle(pilot)
        assert [line.field for line in wizard.state.notification] == ["DisplayName", "company", "job_title"]
        lines = wizard.query_one("#notification-lines")
        lines.focus()
        lines.highlighted = 2  # type: ignore[attr-defined]
        await pilot.press("ctrl+up")  # order is editable...
        await settle(pilot)
        wizard.query_one("#notification-label", Input).value = "Role"  # ...and so are the labels
        await settle(pilot)
        assert [(line.field, line.label) for line in wizard.state.notification] == [
            ("DisplayName", "Name"),
            ("job_title", "Role"),
            ("company", "Company"),
        ]
        assert "Role" in text_of(wizard.query_one("#notification-preview"))

        await pilot.press("ctrl+b")  # Back keeps what was typed
        await settle(pilot)
        assert wizard.step == "config"
        assert wizard.query_one("#setting-portal_id", Input).value == "4242"
        assert wizard.query_one("#setting-access_token", Input).value == TOKEN
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert [line.field for line in wizard.state.notification] == ["DisplayName", "job_title", "company"]

        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wizard.step == "scripts"
        assert [s.draft.name for s in wizard.state.scripts] == ["Open in HubSpot"]

        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wizard.step == "review"
        review = text_of(wizard.query_one("#review-config .review-body"))
        assert "4242" in review and TOKEN not in review and TOKEN[-4:] in review
        await pilot.press("ctrl+n")  # Finish
        await settle(pilot)

        assert isinstance(app.screen, MainScreen)  # the overview of the new integration, after its first sync
        pane = app.screen.query_one(OverviewPane)
        assert pane.overview is not None and pane.overview.integration.name == "HubSpot"
        assert pane.overview.integration.numbers_cached == 3
        status = text_of(pane.query_one("#overview-status"))
        assert "Last outcome    success" in status and "Numbers cached  3" in status

        await pilot.press("t")  # a lookup now finds a synced number
        await settle(pilot)
        app.screen.query_one("#caller", Input).value = "020 555 0101"
        await pilot.click("#look-up")
        await settle(pilot)
        answer = text_of(app.screen.query_one("#test-call-result"))
        assert "Name     Anouk Visser" in answer and "Company  Visser BV" in answer and "Role" in answer
        assert "Open in HubSpot (opens automatically) https://app.hubspot.com/contacts/4242/record/0-1/" in answer

    created = [i for i in _integrations(world) if i.name == "HubSpot" and i.id not in (world.hubspot_id,)]
    assert len(created) == 1
    item = created[0]
    assert item.preset == "hubspot"
    assert item.settings == {"portal_id": "4242", "api_base_url": hubspot}
    assert integrations.read_secrets(integration=item, box=world.runtime.box) == {"access_token": TOKEN}
    assert TOKEN not in item.secrets
    assert [(n["field"], n["label"]) for n in item.notification] == [
        ("DisplayName", "Name"),
        ("job_title", "Role"),
        ("company", "Company"),
    ]
    assert [(s.name, s.url_template, s.auto_open) for s in _scripts_of(world, item.id or 0)] == [
        ("Open in HubSpot", "$(PopUpUri)", True)
    ]


@sqlite_only
async def test_a_script_only_preset_skips_configuration_and_notification(world: World) -> None:
    app = world.app()
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        await _choose(pilot, "web search")
        wizard = _wizard(pilot)
        assert wizard.step == "scripts"
        assert wizard.state.steps() == ["preset", "scripts", "review"]
        assert "-skipped" in wizard.query_one("#ribbon-config").classes
        assert "has no API" in text_of(wizard.query_one("#wizard-hint"))
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert "Steps 2 and 3 are skipped" in text_of(wizard.query_one("#review-skipped"))
        await pilot.press("ctrl+b", "ctrl+b")  # back to the presets, past the skipped steps
        await settle(pilot)
        assert wizard.step == "preset"
        await pilot.press("ctrl+n", "ctrl+n")
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
    item = next(i for i in _integrations(world) if i.preset == "web-search")
    assert item.settings == {} and item.notification == []
    assert [s.url_template for s in _scripts_of(world, item.id or 0)] == [
        "https://www.google.com/search?q=#(Caller number)"
    ]


@sqlite_only
async def test_cancel_leaves_nothing_behind(world: World) -> None:
    app = world.app()
    before = [(i.id, i.version) for i in _integrations(world)]
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        await _choose(pilot, "hubspot")
        await _type(pilot, "#setting-portal_id", "4242")
        await pilot.press("escape")
        await settle(pilot)
        await pilot.click("#confirm")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
    assert [(i.id, i.version) for i in _integrations(world)] == before


@sqlite_only
async def test_edit_fills_steps_two_to_four_and_keeps_the_stored_secret(world: World) -> None:
    app = world.app()
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # HubSpot's overview
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        wizard = _wizard(pilot)
        assert wizard.step == "config" and wizard.state.steps()[0] == "config"
        assert wizard.query_one("#setting-portal_id", Input).value == "123"
        assert wizard.query_one("#setting-access_token", Input).value == ""  # the secret is never shown
        await _type(pilot, "#setting-portal_id", "777")
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        await settle(pilot)
        assert wizard.step == "review"
        await pilot.press("ctrl+n")  # Save
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
    item = next(i for i in _integrations(world) if i.id == world.hubspot_id)
    assert item.settings["portal_id"] == "777"
    assert integrations.read_secrets(integration=item, box=world.runtime.box) == {
        "access_token": "pat-na1-secret-value-0001"
    }
    assert item.version == 2
    assert scripts  # the scripts service is what saved them (nothing else writes)


@sqlite_only
async def test_an_oauth_preset_waits_for_the_sign_in_then_tests_and_keeps_the_tokens(world: World) -> None:
    from urllib.parse import parse_qs, urlsplit

    import httpx
    from sqlmodel import Session as DbSession

    from core.db import session_scope
    from core.services import oauth
    from tests.crm.superoffice import SuperOfficeEmulator

    so_tenant, client_id, client_secret = "Cust4711", "a1b2c3d4e5f6", "app-secret-do-not-show-9f8e7d"

    emulator = SuperOfficeEmulator(
        tenant=so_tenant, client_id=client_id, client_secret=client_secret,
        persons=[{"personId": 501, "contactId": 1, "fullName": "Pieter Post", "retired": False,
                  "personDirectPhone/formattedNumber": "+31 20 555 0199"}],
    )  # fmt: skip
    with socket.socket() as probe:  # where the shim is said to be, though nothing listens there
        probe.bind(("127.0.0.1", 0))
        world.runtime.settings.public_url = closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with serve(emulator.app) as url:
        app = world.app()
        async with app.run_test(size=(100, 40)) as pilot:
            await settle(pilot)
            await _choose(pilot, "superoffice")
            wizard = _wizard(pilot)
            for name, value in {
                "tenant": so_tenant,
                "client_id": client_id,
                "client_secret": client_secret,
                "login_url": f"{url}/login/common/oauth",
                "api_base_url": f"{url}/{so_tenant}/api/v1",
            }.items():
                await _type(pilot, f"#setting-{name}", value)
            await pilot.click("#oauth-start")
            await settle(pilot)
            shown = text_of(wizard.query_one("#oauth-url"))
            assert "Open this address in your browser" in shown
            assert f"Warning: nothing answered at {closed} from here" in " ".join(shown.split())
            assert "Waiting for you to sign in" in text_of(wizard.query_one("#oauth-status"))
            address = wizard.query_one(ConfigStep).sign_in_url
            assert address is not None and address.startswith(url)

            async with httpx.AsyncClient() as browser:  # the admin signs in; the CRM redirects to the shim
                redirect = (await browser.get(address)).headers["location"]
            answer = {k: v[0] for k, v in parse_qs(urlsplit(redirect).query).items()}
            with session_scope(world.runtime.engine) as session:  # what the shim's /oauth/callback does
                await oauth.complete_authorization(
                    session=session, box=world.runtime.box, state=answer["state"], code=answer["code"]
                )
            for _ in range(60):  # the wizard looks every two seconds
                await pilot.pause(0.1)
                if "Signed in" in text_of(wizard.query_one("#oauth-status")):
                    break
            assert "Signed in to SuperOffice" in text_of(wizard.query_one("#oauth-status"))

            # The sign-in panel grows when it reports success and may push the button below the fold: scroll to
            # it as an admin would before clicking.
            wizard.query_one("#test-connection").scroll_visible(animate=False)
            await settle(pilot)
            await pilot.click("#test-connection")
            await settle(pilot)
            assert "Pieter Post" in text_of(wizard.query_one("#test-sample"))
            await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
            await settle(pilot)
            assert wizard.step == "review"
            await pilot.press("ctrl+n")
            await settle(pilot)
            assert isinstance(app.screen, MainScreen)
    item = next(i for i in _integrations(world) if i.preset == "superoffice")
    assert (
        integration_tokens.read_tokens(integration=item, box=world.runtime.box).get("access_token")
        == emulator.access_token
    )
    with DbSession(world.runtime.engine) as session:
        assert client_secret not in repr(session.get(Integration, item.id))


@sqlite_only
async def test_the_wizard_follows_the_terminal_size(world: World) -> None:
    app = world.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        ribbon = app.screen.query_one("#ribbon-config")
        assert text_of(ribbon).strip() == "2 Configuration"
        await pilot.resize_terminal(120, 40)
        await settle(pilot)
        assert text_of(ribbon).strip() == "2 CRM configuration"
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert text_of(ribbon).strip() == "2 Configuration"
