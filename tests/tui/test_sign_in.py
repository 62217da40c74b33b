"""Local mode's sign-in: admins get in; wrong passwords, unknown users and non-admins get nothing more."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from core.services.users import NOT_ADMIN_MESSAGE
from tests.factories import PASSWORD
from tests.tui.conftest import World, sqlite_only, text_of
from tests.tui.demo import settle
from tui.screens.farewell import FarewellScreen
from tui.screens.main import MainScreen
from tui.screens.sign_in import NEUTRAL_REFUSAL, SignInScreen

pytestmark = sqlite_only


async def _sign_in(pilot: Pilot[int], username: str, password: str, *, typed: bool = False) -> None:
    """Fill in the form (typing it key by key when ``typed``) and press Enter."""
    if typed:
        await pilot.click("#username")
        await pilot.press(*username, "enter", *password)  # Enter in the user name moves on to the password
    else:
        pilot.app.screen.query_one("#username", Input).value = username
        pilot.app.screen.query_one("#password", Input).value = password
        pilot.app.screen.query_one("#password", Input).focus()
    await pilot.press("enter")
    await settle(pilot)


async def test_an_admin_signs_in_and_sees_the_home_screen(world: World) -> None:
    app = world.app(signed_in=False)
    async with app.run_test() as pilot:
        assert isinstance(app.screen, SignInScreen)
        await _sign_in(pilot, "alice@acme.example", PASSWORD, typed=True)
        assert isinstance(app.screen, MainScreen)
        assert app.identity is not None and app.identity.username == "alice@acme.example"
        assert "Welcome, Alice" in text_of(app.screen.query_one("#home-welcome"))
        assert "Acme B.V." in text_of(app.screen.query_one("#home-organisation"))


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice@acme.example", "not the password"), ("nobody@acme.example", PASSWORD)],
    ids=["wrong-password", "unknown-user"],
)
async def test_refusals_say_one_neutral_thing_and_keep_the_user_name(
    world: World, username: str, password: str
) -> None:
    app = world.app(signed_in=False)
    async with app.run_test() as pilot:
        await _sign_in(pilot, username, password)
        assert isinstance(app.screen, SignInScreen)
        assert text_of(app.screen.query_one("#sign-in-error")).strip() == NEUTRAL_REFUSAL
        assert app.screen.query_one("#username", Input).value == username
        assert app.screen.query_one("#password", Input).value == ""
        assert app.identity is None
        assert len(app.screen_stack) == 2  # no dialog either: the message sits under the form


async def test_an_empty_user_name_is_pointed_out_at_the_field(world: World) -> None:
    app = world.app(signed_in=False)
    async with app.run_test() as pilot:
        await pilot.click("#sign-in")
        await settle(pilot)
        assert "Enter your user name" in app.screen.query_one("#field-username").error  # type: ignore[attr-defined]


async def test_a_non_admin_sees_why_and_nothing_else(world: World) -> None:
    app = world.app(signed_in=False)
    async with app.run_test() as pilot:
        await _sign_in(pilot, "bob@acme.example", PASSWORD)
        assert isinstance(app.screen, FarewellScreen)
        assert NOT_ADMIN_MESSAGE in text_of(app.screen.query_one("#farewell-message"))
        assert not app.screen.query("Sidebar")
        await pilot.press("a")  # "Add integration" elsewhere: here any key leaves
        await settle(pilot)
    assert app.return_code == 0


async def test_a_non_admin_identity_from_the_ssh_server_gets_the_same_answer(world: World) -> None:
    app = world.app(identity=world.member)
    async with app.run_test() as pilot:
        await settle(pilot)
        assert isinstance(app.screen, FarewellScreen)
        assert NOT_ADMIN_MESSAGE in text_of(app.screen.query_one("#farewell-message"))
