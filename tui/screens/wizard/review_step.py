"""Step 5: everything chosen, each part with a way back to change it, and the name to save it under."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Static

from core.security import mask
from tui.screens.wizard.notification_step import preview_table
from tui.screens.wizard.scripts_step import draft_prompt
from tui.widgets.fields import FormField
from tui.wizard_state import WizardState


def settings_table(state: WizardState) -> Table | Text:
    """The settings as typed; secrets masked (a kept one says so)."""
    assert state.preset is not None
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for setting in state.preset.settings:
        value = state.settings.get(setting.name, "")
        if setting.secret:
            kept = "(unchanged)" if setting.name in state.kept_secrets else ""
            shown = Text(mask(value) if value else kept, style="dim")
        elif value:
            shown = Text(value)
        else:
            shown = Text(f"{setting.default} (default)" if setting.default else "", style="dim")
        table.add_row(setting.label, shown)
    return table


def scripts_text(state: WizardState) -> Text:
    """One entry per script."""
    if not state.scripts:
        return Text("No scripts.", style="dim")
    text = Text()
    for index, script in enumerate(state.scripts):
        if index:
            text.append("\n")
        text.append_text(draft_prompt(script.draft))
    return text


class ReviewSection(Vertical):
    """A titled summary with a Change button that goes back to its step."""

    @dataclass
    class ChangeRequested(Message):
        """Go back to ``step``."""

        step: str

    def __init__(self, step: str, title: str) -> None:
        super().__init__(id=f"review-{step}", classes="review-section")
        self.step = step
        self.border_title = title

    def compose(self) -> ComposeResult:
        """The summary and the button."""
        with Horizontal(classes="review-head"):
            yield Static("", classes="review-body")
            yield Button("Change", id=f"change-{self.step}", compact=True)

    def show(self, content: object) -> None:
        """Replace the summary."""
        self.query_one(".review-body", Static).update(content)  # type: ignore[arg-type]

    @on(Button.Pressed)
    def _change(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.ChangeRequested(self.step))


class ReviewStep(VerticalScroll):
    """The name and every part, read-only, each with Change."""

    def compose(self) -> ComposeResult:
        """Name, then the sections."""
        yield FormField("Name of this integration", Input(id="integration-name"), id="field-name")
        yield Static("", id="review-skipped", markup=False)
        yield ReviewSection("preset", "1 CRM")
        yield ReviewSection("config", "2 CRM configuration")
        yield ReviewSection("notification", "3 Call notification")
        yield ReviewSection("scripts", "4 Scripts")

    def build(self, state: WizardState) -> None:
        """Show the state."""
        preset = state.preset
        assert preset is not None
        name = self.query_one("#integration-name", Input)
        if not name.value:
            name.value = state.name or preset.name
        summary = Text.assemble((preset.name, "bold"), f"  {preset.description}")
        self.query_one("#review-preset", ReviewSection).show(summary)
        skipped = self.query_one("#review-skipped", Static)
        skipped.display = state.script_only
        skipped.update(
            f"Steps 2 and 3 are skipped: {preset.name} has no API to read phone numbers from, so nothing is "
            "cached and the notification comes from its script."
        )
        self.query_one("#review-preset", ReviewSection).display = state.editing is None
        for step in ("config", "notification"):
            self.query_one(f"#review-{step}", ReviewSection).display = not state.script_only
        if not state.script_only:
            self.query_one("#review-config", ReviewSection).show(settings_table(state))
            self.query_one("#review-notification", ReviewSection).show(preview_table(state.notification, state.sample))
        self.query_one("#review-scripts", ReviewSection).show(scripts_text(state))

    @property
    def integration_name(self) -> str:
        """The name typed."""
        return self.query_one("#integration-name", Input).value.strip()
