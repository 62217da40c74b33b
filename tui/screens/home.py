"""Home: who is signed in, for which organisation, and how its integrations are doing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from tui.formatting import count
from tui.messages import ReportsFailures
from tui.views import HomeSummary, Status
from tui.widgets.scripts import ScriptList
from tui.widgets.sidebar import status_text

if TYPE_CHECKING:
    from tui.app import SwitchboardApp


def summary_text(summary: HomeSummary) -> Text:
    """The summary block: integrations by state, numbers cached, anything failing."""
    rows = summary.integrations
    if not rows:
        return Text("No integrations yet.", style="italic")
    enabled = sum(1 for row in rows if row.status is not Status.DISABLED)
    text = Text()
    text.append(count(len(rows), "integration"), style="bold")
    text.append(f" ({enabled} enabled, {len(rows) - enabled} disabled)\n")
    text.append(count(summary.numbers_cached, "phone number"), style="bold")
    text.append(" cached for caller recognition\n")
    if summary.failing:
        text.append(f"{len(summary.failing)} failing:\n", style="bold red")
        for row in summary.failing:
            text.append_text(status_text(row.status))
            text.append(f" {row.name}: {row.last_error or 'the last sync failed'}\n")
    else:
        text.append("Nothing is failing.", style="green")
    text.rstrip()
    return text


def integrations_text(summary: HomeSummary) -> Text:
    """One line per integration: mark, name, cached numbers."""
    text = Text()
    for row in summary.integrations:
        text.append_text(status_text(row.status))
        text.append(f" {row.name}", style="bold")
        cached = "scripts only" if row.script_only else count(row.numbers_cached, "number")
        text.append(f"  {cached}  ({row.status.value})\n", style="dim")
    text.rstrip()
    return text


GETTING_STARTED = (
    "To get started, choose Add New Integration (a) or Add New Script (s) on the left. "
    "Ctrl+P opens the command palette."
)


class HomePane(ReportsFailures, VerticalScroll):
    """The home screen's content."""

    @dataclass
    class Loaded(Message):
        """The summary arrived."""

        summary: HomeSummary

    def compose(self) -> ComposeResult:
        """Headline, organisation, summary, integrations, hint."""
        yield Static("", id="home-welcome", markup=False)
        yield Static("", id="home-organisation", markup=False)
        summary = Static("Loading…", id="home-summary")
        summary.border_title = "Summary"
        yield summary
        listing = Static("", id="home-integrations")
        listing.border_title = "Integrations"
        yield listing
        scripts = ScriptList(id="home-scripts")
        scripts.border_title = "Scripts offered with every call"
        yield scripts
        yield Static(GETTING_STARTED, id="home-hint", markup=False)

    @property
    def switchboard(self) -> SwitchboardApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    @work(thread=True, exclusive=True, exit_on_error=False, group="home")
    def load(self) -> None:
        """Read the summary from core."""
        app = self.switchboard
        self.post_message(self.Loaded(app.backend.home(app.require_identity())))

    def on_home_pane_loaded(self, message: Loaded) -> None:
        """Show what was read."""
        summary = message.summary
        self.query_one("#home-welcome", Static).update(f"Welcome, {summary.identity.display_name}")
        self.query_one("#home-organisation", Static).update(
            f"{summary.identity.tenant_name}  ·  signed in as {summary.identity.username}"
        )
        self.query_one("#home-summary", Static).update(summary_text(summary))
        listing = self.query_one("#home-integrations", Static)
        listing.update(integrations_text(summary))
        listing.display = bool(summary.integrations)
        self.query_one(ScriptList).show(summary.scripts, integration_id=None)
