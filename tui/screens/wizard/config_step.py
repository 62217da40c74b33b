"""Step 2: the preset's settings with their help, secrets masked, checked as you leave each field.

**Test connection** runs in a worker and shows the record count and a sample record, or the CRM's error in
plain words. The whole form is checked by core (``validate_settings``) before Next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Button, Input, Select, Static

from core.connector import ConnectionTest
from core.errors import SwitchboardError
from core.models import OAuthStatus
from core.presets import OAuth2AuthorizationCode, Preset, Setting, validate_settings
from core.services.oauth import AuthorizationStatus, PendingAuthorization
from tui.formatting import local_time
from tui.messages import ReportsFailures, WorkFailed
from tui.widgets.fields import FormField

if TYPE_CHECKING:
    from tui.app import SwitchboardApp
    from tui.wizard_state import WizardState

KEEP_SECRET = "stored: leave empty to keep it"  # noqa: S105 (a placeholder text, not a password)


class SettingValidator(Validator):
    """Checks one setting with core's own rules and words, as if it were the preset's only setting."""

    def __init__(self, preset: Preset, setting: Setting, *, kept: bool) -> None:
        super().__init__()
        self.alone = preset.model_copy(update={"settings": (setting,)})
        self.setting = setting
        self.kept = kept

    def validate(self, value: str) -> ValidationResult:
        """Core's verdict on this one value."""
        if self.kept and not value:
            return self.success()
        try:
            validate_settings(self.alone, {self.setting.name: value})
        except SwitchboardError as exc:
            return self.failure(exc.message)
        return self.success()


def sample_table(test: ConnectionTest, preset: Preset) -> Table:
    """The sample record's fields, labelled as the preset labels them."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    sample = test.sample
    if sample is None:
        return table
    labels = preset.fields
    for name, value in sample.fields.items():
        table.add_row(labels.get(name, name), value or Text("(empty)", style="dim"))
    for label, number in sample.phones:
        table.add_row(label, number)
    return table


def test_summary(test: ConnectionTest) -> Text:
    """``Connected: 1,234 records (contacts, companies).``"""
    kinds = f" ({', '.join(test.object_types)})" if test.object_types else ""
    if test.count is None:
        text = f"Connected. The CRM does not say how many records it holds{kinds}."
    else:
        text = f"Connected: {test.count:,} record{'s' if test.count != 1 else ''}{kinds}."
    if test.sample is None:
        text += " It has no records yet, so there is no sample to show."
    else:
        text += " A sample record:"
    return Text(text, style="green")


class ConfigStep(ReportsFailures, VerticalScroll):
    """One field per setting, the connection test below them."""

    @dataclass
    class Tested(Message):
        """The connection test succeeded."""

        test: ConnectionTest

    @dataclass
    class SignInStarted(Message):
        """The CRM's sign-in address is ready."""

        pending: PendingAuthorization
        problem: str | None = None  # why the CRM's redirect may find no shim (see oauth.callback_problem)

    @dataclass
    class SignInStatus(Message):
        """How the sign-in ``state`` stands."""

        state: str
        status: AuthorizationStatus

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.preset: Preset | None = None
        self.kept: frozenset[str] = frozenset()
        self._waiting_for: str | None = None
        self._poll: Timer | None = None
        self.sign_in_url: str | None = None
        """The CRM's sign-in address while the wizard waits for the sign-in."""

    @property
    def switchboard(self) -> SwitchboardApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    async def build(self, state: WizardState) -> None:
        """Lay the form out for the state's preset, filled with what was typed before."""
        preset = state.preset
        assert preset is not None
        self.preset = preset
        self.kept = state.kept_secrets
        await self.remove_children()
        widgets: list[Widget] = [
            Static(f"Connect {preset.name}: {preset.description}", id="config-intro", markup=False)
        ]
        widgets += [self._field(setting, state.settings.get(setting.name, "")) for setting in preset.settings]
        if isinstance(preset.auth, OAuth2AuthorizationCode):
            widgets += [
                Horizontal(
                    Button(f"Sign in to {preset.name}", id="oauth-start"),
                    Button("Copy address", id="oauth-copy", disabled=True),
                    Static(self._sign_in_hint(state), id="oauth-status", markup=False),
                    id="oauth-row",
                ),
                Static("", id="oauth-url", markup=False),
            ]
        widgets.append(
            Horizontal(
                Button("Test connection", id="test-connection", variant="primary"),
                Static("", id="test-status", markup=False),
                id="test-row",
            )
        )
        widgets.append(Static("", id="test-sample"))
        await self.mount_all(widgets)
        if state.test is not None:
            self.show_test(state.test)

    def _field(self, setting: Setting, value: str) -> FormField:
        kept = setting.secret and setting.name in self.kept
        label = setting.label + ("" if setting.required or kept else " (optional)")
        control: Widget
        if setting.kind == "choice":
            options = [(choice, choice) for choice in setting.choices]
            initial = value or setting.default or Select.BLANK
            control = Select(options, value=initial, allow_blank=not setting.required, id=f"setting-{setting.name}")
        else:
            assert self.preset is not None
            placeholder = KEEP_SECRET if kept else (setting.placeholder or setting.default or "")
            control = Input(
                value,
                placeholder=placeholder,
                password=setting.secret,
                validators=[SettingValidator(self.preset, setting, kept=kept)],
                validate_on=["blur", "submitted"],
                id=f"setting-{setting.name}",
            )
        return FormField(label, control, help=setting.help, id=f"field-setting-{setting.name}")

    def values(self) -> dict[str, str]:
        """What is typed, by setting name (empty choices and fields left out)."""
        result: dict[str, str] = {}
        for setting in self.preset.settings if self.preset else ():
            control = self.query_one(f"#setting-{setting.name}")
            if isinstance(control, Select):
                value = "" if control.value is Select.BLANK else str(control.value)
            else:
                assert isinstance(control, Input)
                value = control.value.strip()
            if value:
                result[setting.name] = value
        return result

    def check(self) -> bool:
        """Check every field with core; show the first problem at its field."""
        if self.preset is None:
            return False
        fields_ok = all(field.check() for field in self.query(FormField))
        if not fields_ok:
            return False
        values = self.values()
        try:
            validate_settings(self._without_kept(values), values)
        except SwitchboardError as exc:
            self.show_field_error(exc)
            return False
        return True

    def _without_kept(self, values: dict[str, str]) -> Preset:
        """The preset without the stored secrets left empty (they keep their value in the database)."""
        assert self.preset is not None
        keep = [s for s in self.preset.settings if not (s.name in self.kept and not values.get(s.name))]
        return self.preset.model_copy(update={"settings": tuple(keep)})

    def show_field_error(self, error: SwitchboardError) -> bool:
        """Put an error at its setting's field; False when it names no setting here."""
        fields = self.query(f"#field-setting-{error.field}")
        if not error.field or not fields:
            return False
        field = fields.first(FormField)
        field.show_error(error.message)
        field.control.focus()
        return True

    # --- OAuth sign-in ---------------------------------------------------------------------------------------

    def _sign_in_hint(self, state: WizardState) -> str:
        if state.oauth_state is not None:
            return "Signed in."
        if state.editing is not None:
            return "Signed in earlier; sign in again only if you changed the credentials."
        assert state.preset is not None
        return f"{state.preset.name} asks you to sign in and allow switchboard to read your data."

    @on(Button.Pressed, "#oauth-start")
    def start_sign_in(self) -> None:
        """Check the form, then start the sign-in at the CRM."""
        if not self.check() or self.preset is None:
            return
        self.query_one("#oauth-start", Button).disabled = True
        self.begin_sign_in(self.preset.key, self.values())

    @work(thread=True, exclusive=True, exit_on_error=False, group="oauth")
    def begin_sign_in(self, preset_key: str, values: dict[str, str]) -> None:
        """Ask core for the CRM's sign-in address and a state to wait on."""
        app = self.switchboard
        pending = app.backend.begin_sign_in(app.require_identity(), preset_key, values)
        self.post_message(self.SignInStarted(pending, app.backend.callback_problem(pending)))

    def on_config_step_sign_in_started(self, message: SignInStarted) -> None:
        """Show the address and wait, looking every two seconds."""
        pending = message.pending
        self.screen.state.oauth_state = None  # type: ignore[attr-defined]
        self._waiting_for = pending.state
        self.sign_in_url = pending.url
        self.query_one("#oauth-copy", Button).disabled = False
        shown = Text(
            f"Open this address in your browser and sign in:\n{pending.url}\n\nThe CRM then sends your browser "
            f"back to {pending.redirect_uri} (switchboard serve must be running there)."
        )
        if message.problem is not None:
            shown.append(
                f"\n\nWarning: {message.problem}: start switchboard serve there, or set SWITCHBOARD_PUBLIC_URL to "
                "the address where it runs.",
                style="yellow",
            )
        self.query_one("#oauth-url", Static).update(shown)
        until = local_time(pending.expires_at, "UTC").split(" ")[1]
        self.query_one("#oauth-status", Static).update(Text(f"Waiting for you to sign in (until {until} UTC)…"))
        if self._poll is not None:
            self._poll.stop()
        self._poll = self.set_interval(2.0, self._look)

    @on(Button.Pressed, "#oauth-copy")
    def copy_address(self) -> None:
        """Put the sign-in address on the clipboard (terminals pass it on, over SSH too)."""
        if self.sign_in_url:
            self.app.copy_to_clipboard(self.sign_in_url)
            self.notify("The sign-in address is on your clipboard: paste it into your browser.", title="Copied")

    def _look(self) -> None:
        if self._waiting_for is not None:
            self.sign_in_status(self._waiting_for)

    @work(thread=True, exclusive=True, exit_on_error=False, group="oauth-status")
    def sign_in_status(self, state: str) -> None:
        """How the sign-in stands."""
        app = self.switchboard
        self.post_message(self.SignInStatus(state, app.backend.sign_in_status(app.require_identity(), state)))

    def on_config_step_sign_in_status(self, message: SignInStatus) -> None:
        """Done, failed or still waiting: say which."""
        status = message.status
        if message.state != self._waiting_for or not status.finished:
            return
        if self._poll is not None:
            self._poll.stop()
        self._waiting_for = None
        self.query_one("#oauth-start", Button).disabled = False
        if status.status is OAuthStatus.COMPLETED:
            self.screen.state.oauth_state = message.state  # type: ignore[attr-defined]
            self.query_one("#oauth-url", Static).update("")
            self.query_one("#oauth-copy", Button).disabled = True
            self.query_one("#oauth-status", Static).update(
                Text(f"Signed in to {status.crm}. Test the connection next.", style="green")
            )
        else:
            self.query_one("#oauth-status", Static).update(Text(status.error or "The sign-in failed.", style="red"))

    # --- connection test -------------------------------------------------------------------------------------

    @on(Button.Pressed, "#test-connection")
    def start_test(self) -> None:
        """Check the form, then ask the CRM for its first page."""
        if not self.check():
            return
        self.query_one("#test-connection", Button).disabled = True
        self.query_one("#test-status", Static).update(Text("Asking the CRM…", style="italic"))
        self.query_one("#test-sample", Static).update("")
        state = self.screen.state  # type: ignore[attr-defined]
        self.run_test(self.values(), state.editing, state.oauth_state)

    @work(thread=True, exclusive=True, exit_on_error=False, group="test-connection")
    def run_test(self, values: dict[str, str], integration_id: int | None, oauth_state: str | None) -> None:
        """The connection test, in a thread (it talks to the CRM)."""
        assert self.preset is not None
        app = self.switchboard
        test = app.backend.test_connection(
            app.require_identity(), self.preset.key, values, integration_id=integration_id, oauth_state=oauth_state
        )
        self.post_message(self.Tested(test))

    def on_config_step_tested(self, message: Tested) -> None:
        """Show the count and the sample (the wizard keeps the sample for the next steps)."""
        self.query_one("#test-connection", Button).disabled = False
        self.show_test(message.test)

    def show_test(self, test: ConnectionTest) -> None:
        """The test's outcome: count and sample record."""
        assert self.preset is not None
        self.query_one("#test-status", Static).update(test_summary(test))
        self.query_one("#test-sample", Static).update(sample_table(test, self.preset))

    def on_work_failed(self, message: WorkFailed) -> None:
        """The CRM's refusal in plain words, next to the button (and at the field it concerns)."""
        if message.group == "oauth":
            message.stop()
            self.query_one("#oauth-start", Button).disabled = False
            if isinstance(message.error, SwitchboardError):
                self.show_field_error(message.error)
            self.query_one("#oauth-status", Static).update(Text(f"{message.title}: {message.text}", style="red"))
            return
        if message.group != "test-connection":
            return
        message.stop()
        self.query_one("#test-connection", Button).disabled = False
        if isinstance(message.error, SwitchboardError):
            self.show_field_error(message.error)
        self.query_one("#test-status", Static).update(Text(f"{message.title}: {message.text}", style="red"))
        self.query_one("#test-sample", Static).update("")
