"""The integration overview: settings (secrets masked), notification fields, scripts, status and actions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, ProgressBar, Sparkline, Static

from core.models import SyncOutcome, SyncRunPublic
from core.sync import SyncProgress
from tui.formatting import ago, count, local_time
from tui.messages import ConfigurationChanged, ReportsFailures, WorkFailed
from tui.screens.dialogs import ConfirmDialog
from tui.views import Overview, Status
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


OUTCOME_WORDS = {
    SyncOutcome.RUNNING: ("running", "cyan"),
    SyncOutcome.SUCCESS: ("success", "green"),
    SyncOutcome.FAILED: ("failed", "red"),
    SyncOutcome.SUSPICIOUS: ("held back: the previous cache is kept", "yellow"),
}


def _when(moment: datetime | None, overview: Overview, now: datetime, *, empty: str) -> str:
    """A moment in the tenant's time; a past one also as how long ago."""
    if moment is None:
        return empty
    text = local_time(moment, overview.timezone)
    return f"{text} ({ago(moment, now)})" if moment <= now else text


def status_table(overview: Overview, now: datetime) -> Table:
    """The sync status: state, numbers cached, last refresh, next sync, last outcome and error, unparsed."""
    public = overview.integration
    rows: list[tuple[str, str | Text]] = [
        ("State", status_text(overview.status, words=True)),
        ("Numbers cached", f"{public.numbers_cached:,}"),
    ]
    state = overview.sync
    if state is None:
        rows.append(("Sync", Text("none: this preset has no API; its scripts do the work", style="dim")))
        return _pairs(rows)
    success = state.last_success
    rows.append(("Last refresh", _when(success.finished_at if success else None, overview, now, empty="never")))
    if state.running_on:
        rows.append(("Next sync", Text(f"running now on {state.running_on}", style="cyan")))
    elif not public.enabled:
        rows.append(("Next sync", Text("none while disabled", style="dim")))
    else:
        rows.append(("Next sync", _when(state.next_run_at, overview, now, empty="not scheduled")))
    last = state.last_run
    if last is not None:
        words, style = OUTCOME_WORDS[last.outcome]
        rows.append(("Last outcome", Text(words, style=style)))
        if last.error:
            rows.append(("Error", Text(last.error, style="red")))
        if last.unparsed:
            examples = ", ".join(last.unparsed_examples[:3])
            rows.append(("Not understood", Text(f"{last.unparsed:,} numbers, e.g. {examples}", style="yellow")))
    rows.append(("Schedule", public.schedule))
    return _pairs(rows)


def history_values(overview: Overview) -> list[float]:
    """Numbers found by each finished run, oldest first (for the sparkline)."""
    runs = [run for run in reversed(overview.history) if run.outcome is not SyncOutcome.RUNNING]
    return [float(run.numbers) for run in runs]


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
    class SyncProgressed(Message):
        """How far the running sync has come."""

        records: int
        pages: int
        object_type: str

    @dataclass
    class SyncFinished(Message):
        """The sync ended (successfully or not: see ``run.outcome``)."""

        run: SyncRunPublic

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
        self.syncing: int | None = None
        """The integration this pane is syncing, if any."""

    def compose(self) -> ComposeResult:
        """Title, the sections in a scroll, the action bar at the bottom right."""
        yield Static("", id="overview-title")
        with VerticalScroll(id="overview-body"):
            status = Static("", id="overview-status", classes="overview-section")
            status.border_title = "Status"
            yield status
            with Horizontal(id="overview-progress"):
                yield ProgressBar(total=None, show_eta=False, id="sync-progress")
                yield Static("", id="sync-progress-text", markup=False)
            with Vertical(id="overview-history", classes="overview-section") as history:
                history.border_title = "Numbers per sync (oldest to newest)"
                yield Sparkline([], id="history-sparkline")
                yield Static("", id="history-caption", markup=False)
            for key, title in (("settings", "Settings"), ("notification", "Call notification")):
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

    def on_mount(self) -> None:
        """No sync running yet."""
        self.query_one("#overview-progress").display = False

    def show_integration(self, integration_id: int) -> None:
        """Start showing this integration (its data arrives from a worker)."""
        if integration_id != self.integration_id:
            self.overview = None
            self.query_one("#overview-title", Static).update("Loading…")
        self.integration_id = integration_id
        self._show_progress()
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
        title = Text.assemble(status_text(overview.status), " ", (public.name, "bold"))
        if overview.preset_name != public.name:
            title.append(f"  ({overview.preset_name})", style="dim")
        self.query_one("#overview-title", Static).update(title)
        self.query_one("#overview-status", Static).update(status_table(overview, self.switchboard.clock()))
        values = history_values(overview)
        history = self.query_one("#overview-history")
        history.display = bool(values)
        self.query_one(Sparkline).data = values
        if values:
            self.query_one("#history-caption", Static).update(
                f"{len(values)} sync{'s' if len(values) != 1 else ''}; last {int(values[-1]):,}, "
                f"lowest {int(min(values)):,}, highest {int(max(values)):,}"
            )
        self.query_one("#sync-now", Button).display = overview.sync is not None
        self.query_one("#overview-settings", Static).update(settings_table(overview))
        self.query_one("#overview-notification", Static).update(notification_table(overview))
        self.query_one(ScriptList).show(overview.scripts, integration_id=public.id)
        toggle = self.query_one("#toggle-enabled", Button)
        toggle.label = "Enable" if overview.status is Status.DISABLED else "Disable"
        self.screen.refresh_bindings()

    # --- actions -------------------------------------------------------------------------------------------

    def start_sync(self, *, first: bool = False) -> None:
        """Sync now, here, with a progress bar (the first sync right after the wizard)."""
        if self.integration_id is None or self.syncing is not None:
            if self.syncing is not None:
                self.notify("One sync at a time from here: wait for the running one.", severity="warning")
            return
        if self.overview is not None and self.overview.sync is None:
            return
        self.syncing = self.integration_id
        self._show_progress()
        self.query_one(ProgressBar).update(total=None, progress=0)
        what = "First sync" if first else "Syncing"
        self.query_one("#sync-progress-text", Static).update(f"{what}: connecting…")
        self.run_sync(self.integration_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sync")
    def run_sync(self, integration_id: int) -> None:
        """Run the sync (under the integration's lease); progress and the outcome come back as messages."""
        app = self.switchboard

        def progress(update: SyncProgress) -> None:
            self.post_message(self.SyncProgressed(update.records, update.pages, update.object_type))

        run = app.backend.sync_now(app.require_identity(), integration_id, progress)
        self.post_message(self.SyncFinished(run))

    def on_overview_pane_sync_progressed(self, message: SyncProgressed) -> None:
        """Records fetched so far."""
        self.query_one("#sync-progress-text", Static).update(
            f"{message.records:,} records fetched ({message.object_type}, page {message.pages})"
        )

    def on_overview_pane_sync_finished(self, message: SyncFinished) -> None:
        """Say how it went; the status shows it too."""
        self._sync_done()
        run = message.run
        if run.outcome is SyncOutcome.SUCCESS:
            self.notify(f"{run.numbers:,} numbers from {run.records:,} records are cached now.", title="Sync done")
        else:
            words, _ = OUTCOME_WORDS[run.outcome]
            self.notify(f"{run.error or words}. The previous cache keeps answering.", title="Sync failed",
                        severity="error", timeout=10)  # fmt: skip
        self.post_message(ConfigurationChanged())

    def _sync_done(self) -> None:
        self.syncing = None
        self._show_progress()

    def _show_progress(self) -> None:
        """The progress bar shows while the integration on show is the one syncing."""
        here = self.syncing is not None and self.syncing == self.integration_id
        self.query_one("#sync-now", Button).disabled = self.syncing is not None
        self.query_one("#overview-progress").display = here

    def on_work_failed(self, message: WorkFailed) -> None:
        """A sync that could not start (busy elsewhere): the bar goes, the app says why."""
        if message.group == "sync":
            self._sync_done()

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
