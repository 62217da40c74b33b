"""The sidebar: a column of panes (the add actions, the integrations, places to go) that post messages.

The screen that holds it decides what each message does, as frogmouth's navigation panes do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Button, OptionList
from textual.widgets.option_list import Option

from tui.views import STATUS_MARKS, IntegrationRow, Status

STATUS_STYLES: dict[Status, str] = {
    Status.ENABLED: "green",
    Status.DISABLED: "dim",
    Status.SYNCING: "cyan",
    Status.FAILED: "red",
}


def status_text(status: Status, *, words: bool = False) -> Text:
    """The status mark (and, with ``words``, its name) in its colour."""
    mark = STATUS_MARKS[status] + (f" {status.value}" if words else "")
    return Text(mark, style=STATUS_STYLES[status])


class ActionsPane(Vertical):
    """The two ways to add something: 'Add New Integration' and 'Add New Script'."""

    @dataclass
    class Chosen(Message):
        """An add action was chosen: ``add-integration`` or ``add-script``."""

        action: str

    def compose(self) -> ComposeResult:
        """Two compact buttons."""
        yield Button("+ Add New Integration", id="add-integration", compact=True)
        yield Button("+ Add New Script", id="add-script", compact=True)

    @on(Button.Pressed)
    def _chosen(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.Chosen(event.button.id or ""))


class IntegrationsPane(Vertical):
    """The tenant's integrations, each with its status mark; choosing one opens its overview."""

    @dataclass
    class Selected(Message):
        """An integration was chosen."""

        integration_id: int

    def compose(self) -> ComposeResult:
        """One option list; empty until the screen loads the integrations."""
        yield OptionList(id="integration-list")

    def show(self, rows: Sequence[IntegrationRow], *, current: int | None = None) -> None:
        """Replace the list, keeping the highlight on ``current`` when it is still there."""
        options = self.query_one(OptionList)
        options.clear_options()
        if not rows:
            options.add_option(Option(Text("No integrations yet", style="dim italic"), id="none", disabled=True))
            return
        for row in rows:
            prompt = Text.assemble(status_text(row.status), " ", row.name)
            options.add_option(Option(prompt, id=f"integration-{row.id}"))
        ids = [row.id for row in rows]
        options.highlighted = ids.index(current) if current in ids else 0

    @on(OptionList.OptionSelected, "#integration-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option_id and event.option_id.startswith("integration-"):
            self.post_message(self.Selected(int(event.option_id.removeprefix("integration-"))))


PLACES: tuple[tuple[str, str], ...] = (("home", "Home"), ("test-call", "Test call"), ("activity", "Activity"))


class PlacesPane(Vertical):
    """The other places: home, the test call, the activity log."""

    @dataclass
    class Chosen(Message):
        """A place was chosen: ``home``, ``test-call`` or ``activity``."""

        place: str

    def compose(self) -> ComposeResult:
        """One option per place."""
        yield OptionList(*(Option(label, id=key) for key, label in PLACES), id="place-list")

    def mark(self, view: str) -> None:
        """Highlight the place on show (none while an overview is)."""
        keys = [key for key, _ in PLACES]
        self.query_one(OptionList).highlighted = keys.index(view) if view in keys else None

    @on(OptionList.OptionSelected, "#place-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.post_message(self.Chosen(event.option_id or "home"))


class Sidebar(Vertical):
    """The left column: add actions on top, the integrations, then the other places."""

    def compose(self) -> ComposeResult:
        """Three titled panes."""
        actions = ActionsPane(id="actions-pane", classes="pane")
        actions.border_title = "Add"
        yield actions
        integrations = IntegrationsPane(id="integrations-pane", classes="pane")
        integrations.border_title = "Integrations"
        yield integrations
        places = PlacesPane(id="places-pane", classes="pane")
        places.border_title = "Go to"
        yield places
