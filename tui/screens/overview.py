"""The integration overview: settings (secrets masked), notification fields, scripts, status and actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Static

from tui.backend import Overview, Status
from tui.formatting import count
from tui.messages import ConfigurationChanged, ReportsFailures
from tui.screens.dialogs import ConfirmDialog
from tui.widgets.scripts import ScriptList
from tui.widgets.sidebar import status_text

if TYPE_CHECKING:
    from tui.app import SwitchboardApp


def _pairs(rows: list[tuple[str, str | Text]]) -> Table:
    """A two-column grid of labels and values."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, value)
    return table


def status_table(overview: Overview) -> Table:
    """The sync status: state, numbers cached."""
    public = overview.integration
    return _pairs(
        [
            ("State", status_text(overview.status, words=True)),
            ("Numbers cached", f"{public.numbers_cached:,}"),
            ("Schedule", public.schedule),
        ]
    )


def settings_table(overview: Overview) -> Table | Text:
    """The settings, secrets masked."""
    if not overview.settings:
        return Text("This preset has no settings.", style="dim")
    return _pairs([(row.label, Text(row.value, style="dim" if row.secret else "")) for row in overview.settings])


def notification_table(overview: Overview) -> Table | Text:
    """The call notification's lines: label and CRM field."""
    fields = overview.integration.notification
    if not fields:
        return Text("No notification fields.", style="dim")
    return _pairs([(item.label, Text(f"$({item.field})", style="dim")) for item in fields])


class OverviewPane(ReportsFailures, Vertical):
    """One integration: what it is set to and how it is doing, with Sync now, Edit, Disable/Enable, Delete."""

    @dataclass
    class Loaded(Message):
        """The overview's data arrived."""

        overview: Overview

    @dataclass
    class EnabledChanged(Message):
        """The integration was disabled or enabled."""

        enabled: bool

    @dataclass
    class Deleted(Message):
        """The integration is gone; ``name`` is what it was called."""

        name: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.overview: Overview | None = None
        self.integration_id: int | None = None

    def compose(self) -> ComposeResult:
        """Title, the sections in a scroll, the action bar at the bottom right."""
        yield Static("", id="overview-title")
        with VerticalScroll(id="overview-body"):
            for key, title in (
                ("status", "Status"),
                ("settings", "Settings"),
                ("notification", "Call notification"),
            ):
                section = Static("", id=f"overview-{key}", classes="overview-section")
                section.border_title = title
                yield section
            scripts = ScriptList(id="overview-scripts")
            scripts.border_title = "Scripts (n new · Enter edit · x remove)"
            yield scripts
        with Horizontal(id="overview-actions"):
            yield Button("Sync now", id="sync-now", compact=True)
            yield Button("Edit", id="edit", compact=True)
            yield Button("Disable", id="toggle-enabled", compact=True)
            yield Button("Delete", id="delete", variant="error", compact=True)

    @property
    def switchboard(self) -> SwitchboardApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    def show_integration(self, integration_id: int) -> None:
        """Start showing this integration (its data arrives from a worker)."""
        if integration_id != self.integration_id:
            self.overview = None
            self.query_one("#overview-title", Static).update("Loading…")
        self.integration_id = integration_id
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="overview")
    def load(self) -> None:
        """Read the overview from core."""
        if self.integration_id is None:
            return
        app = self.switchboard
        self.post_message(self.Loaded(app.backend.overview(app.require_identity(), self.integration_id)))

    def on_overview_pane_loaded(self, message: Loaded) -> None:
        """Fill in every section."""
        if message.overview.integration.id != self.integration_id:
            return
        self.overview = overview = message.overview
        public = overview.integration
        title = Text.assemble(status_text(overview.status), " ", (public.name, "bold"), f"  ({overview.preset_name})")
        self.query_one("#overview-title", Static).update(title)
        self.query_one("#overview-status", Static).update(status_table(overview))
        self.query_one("#overview-settings", Static).update(settings_table(overview))
        self.query_one("#overview-notification", Static).update(notification_table(overview))
        self.query_one(ScriptList).show(overview.scripts, integration_id=public.id)
        toggle = self.query_one("#toggle-enabled", Button)
        toggle.label = "Enable" if overview.status is Status.DISABLED else "Disable"
        self.screen.refresh_bindings()

    # --- actions -------------------------------------------------------------------------------------------

    def start_sync(self, *, first: bool = False) -> None:
        """Sync now (the first sync right after the wizard)."""
        self.notify("Syncing is not available yet.", severity="warning")

    @on(Button.Pressed, "#edit")
    def _edit(self) -> None:
        self.screen.action_edit()  # type: ignore[attr-defined]

    @on(Button.Pressed, "#sync-now")
    def _sync_now(self) -> None:
        self.start_sync()

    @on(Button.Pressed, "#toggle-enabled")
    def toggle_enabled(self) -> None:
        """Disable (matches suppressed, nothing removed) or enable again."""
        if self.overview is not None:
            self.set_enabled(not self.overview.integration.enabled, self.overview.integration.version)

    @work(thread=True, exclusive=True, exit_on_error=False, group="change")
    def set_enabled(self, enabled: bool, version: int) -> None:
        """Ask core to switch the integration on or off, refusing if someone saved a newer version."""
        app = self.switchboard
        if self.integration_id is None:
            return
        app.backend.set_enabled(app.require_identity(), self.integration_id, enabled=enabled, expected_version=version)
        self.post_message(self.EnabledChanged(enabled))

    def on_overview_pane_enabled_changed(self, message: EnabledChanged) -> None:
        """Say what changed (and what did not), and let every view reload."""
        what = "enabled: its matches are shown again" if message.enabled else "disabled: its matches are suppressed"
        self.notify(f"The integration is {what}. Nothing was removed.", title="Saved")
        self.post_message(ConfigurationChanged())

    @on(Button.Pressed, "#delete")
    def delete(self) -> None:
        """Ask first: deleting cannot be undone."""
        if self.overview is None:
            return
        public = self.overview.integration
        message = (
            f"This erases {public.name!r}: its settings, its scripts and its cached data "
            f"({count(public.numbers_cached, 'phone number')}). Callers it recognised will no longer be "
            "recognised. This cannot be undone."
        )
        dialog = ConfirmDialog(f"Delete {public.name}?", message, confirm="Delete for good", danger=True)
        self.app.push_screen(dialog, self._delete_confirmed)

    def _delete_confirmed(self, confirmed: bool | None) -> None:
        if confirmed and self.integration_id is not None:
            self.erase(self.integration_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="change")
    def erase(self, integration_id: int) -> None:
        """Ask core to delete the integration and everything cached for it."""
        app = self.switchboard
        name = app.backend.delete(app.require_identity(), integration_id)
        self.post_message(self.Deleted(name))
