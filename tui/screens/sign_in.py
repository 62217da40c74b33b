"""Sign-in (local mode only): user name and password, one neutral message for every refusal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Static

from core.errors import AuthenticationFailed
from core.services.users import Identity
from tui.messages import ReportsFailures, WorkFailed
from tui.widgets.fields import FormField

if TYPE_CHECKING:
    from tui.app import SwitchboardApp

NEUTRAL_REFUSAL = "The user name or password is not right."


class SignInScreen(ReportsFailures, Screen[None]):
    """Asks who you are; an admin goes on to the home screen, anyone else only sees why they cannot."""

    @dataclass
    class SignedIn(Message):
        """The credentials were right; ``identity`` may or may not be an admin's."""

        identity: Identity

    CSS_PATH = "sign_in.tcss"
    AUTO_FOCUS = "#username"
    BINDINGS = [Binding("ctrl+q", "app.quit", "Quit", priority=True)]

    def compose(self) -> ComposeResult:
        """A centred box: what this is, the two fields, the button and the message line."""
        with Center(), Vertical(id="sign-in-box") as box:
            box.border_title = "Sign in to switchboard"
            yield Static(
                "Integrations are configured for your whole organisation. Sign in with an account that has "
                "the administrative privilege.",
                id="sign-in-intro",
            )
            yield FormField(
                "User name",
                Input(placeholder="you@example.com", id="username"),
                id="field-username",
            )
            yield FormField("Password", Input(password=True, id="password"), id="field-password")
            yield Static("", id="sign-in-error", markup=False)
            yield Button("Sign in", variant="primary", id="sign-in")
        yield Footer()

    @property
    def switchboard(self) -> SwitchboardApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    @on(Input.Submitted, "#username")
    def _next_field(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    @on(Button.Pressed, "#sign-in")
    def submit(self) -> None:
        """Check the form, then the credentials in a worker (hashing takes a moment)."""
        username = self.query_one("#username", Input).value.strip()
        if not username:
            self.query_one("#field-username", FormField).show_error("Enter your user name.")
            self.query_one("#username", Input).focus()
            return
        self.query_one("#field-username", FormField).show_error(None)
        self.query_one("#sign-in", Button).disabled = True
        self.query_one("#sign-in-error", Static).update("Signing in…")
        self.authenticate(username, self.query_one("#password", Input).value)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sign-in")
    def authenticate(self, username: str, password: str) -> None:
        """Ask core; the answer comes back as ``SignedIn`` (or, through the worker's error, ``WorkFailed``)."""
        self.post_message(self.SignedIn(self.switchboard.backend.sign_in(username, password)))

    def on_sign_in_screen_signed_in(self, message: SignedIn) -> None:
        """Go on as this person (the app decides where a non-admin ends up)."""
        self.switchboard.enter(message.identity)

    def on_work_failed(self, message: WorkFailed) -> None:
        """Wrong password or unknown user: the neutral sentence, under the form; the password is cleared."""
        self.query_one("#sign-in", Button).disabled = False
        password = self.query_one("#password", Input)
        password.value = ""
        if isinstance(message.error, AuthenticationFailed):
            message.stop()
            self.query_one("#sign-in-error", Static).update(NEUTRAL_REFUSAL)
            password.focus()
        else:
            self.query_one("#sign-in-error", Static).update("")
